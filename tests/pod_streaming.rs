//! `kubectl exec`, `kubectl attach` and `kubectl port-forward` on the real
//! stack (`bosun up`, the kubectl on PATH): through the apiserver's upgrade
//! proxy to the agent's kubelet API and containerd's streaming server.
//! Exec: output on stdout and stderr, the exit code propagated, stdin with
//! `-i`, a terminal with `-t` that gets kubectl's window size; attach to a
//! container reading its stdin; port-forward carrying several concurrent
//! connections; errors for a missing container. Also the kubelet API's
//! `/pods` and `/runningpods`. One cluster for all.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use support::cluster::Cluster;

/// Generous: a loaded 2-core machine running a debug build.
const DEADLINE: Duration = Duration::from_secs(120);
/// Concurrent connections through one port-forward session.
const CONNECTIONS: usize = 8;

fn manifest(registry: &str) -> String {
    let image = format!("{registry}/bosun/app:1.0");
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {image}
    command: ["sh", "-c", "mkdir -p /www && echo served-by-pod > /www/index.html && httpd -f -p 8080 -h /www"]
  - name: reader
    image: {image}
    stdin: true
    command: ["sh", "-c", "while read line; do echo echo:$line; done"]
"#
    )
}

fn kubectl(cluster: &Cluster) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", &cluster.kubeconfig);
    cmd
}

/// Runs kubectl with `input` on stdin; (exit code, stdout, stderr).
fn run(cluster: &Cluster, args: &[&str], input: Option<&str>) -> Result<(i32, String, String)> {
    let mut child = kubectl(cluster)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(text) = input {
        child.stdin.take().context("stdin")?.write_all(text.as_bytes())?;
    }
    let out = wait_output(child)?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    ))
}

/// `wait_with_output` bounded by [`DEADLINE`] (the child is killed after it).
fn wait_output(child: Child) -> Result<std::process::Output> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => Ok(out?),
        Err(_) => {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            bail!("kubectl did not finish within {DEADLINE:?}")
        }
    }
}

/// A kubectl child killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads lines of `reader` on a thread, so waits can be bounded.
fn lines(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, what: &str, matches: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if matches(&line) => return Ok(line),
            Ok(_) => {}
            Err(_) => bail!("no line {what} within {DEADLINE:?}"),
        }
    }
}

fn wait_running(cluster: &Cluster) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let pod = cluster.json(&["get", "pod", "shell"])?;
        let ready = pod["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| cs.len() == 2 && cs.iter().all(|c| c["state"]["running"].is_object()));
        if ready {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "pod shell not running: {}", pod["status"]);
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn exec_scenarios(cluster: &Cluster) -> Result<()> {
    let (code, out, err) =
        run(cluster, &["exec", "shell", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2"], None)?;
    ensure!(code == 0, "exec exit {code}: {err}");
    ensure!(out == "out\n", "stdout {out:?}");
    ensure!(err == "err\n", "stderr {err:?}");

    let (code, _, err) = run(cluster, &["exec", "shell", "-c", "main", "--", "sh", "-c", "exit 7"], None)?;
    ensure!(code == 7, "exit code 7 propagated, got {code}: {err}");

    let (code, out, err) = run(
        cluster,
        &["exec", "-i", "shell", "-c", "main", "--", "sh", "-c", "read a; read b; echo got:$a:$b"],
        Some("one\ntwo\n"),
    )?;
    ensure!(code == 0 && out == "got:one:two\n", "exec -i: exit {code}, out {out:?}, err {err:?}");

    // stdin EOF: kubectl's v5 close reaches the command as end of input.
    let (code, out, err) = run(cluster, &["exec", "-i", "shell", "-c", "main", "--", "cat"], Some("hi\n"))?;
    ensure!(code == 0 && out == "hi\n", "echo hi | kubectl exec -i -- cat: exit {code}, out {out:?}, err {err:?}");
    let (code, out, err) =
        run(cluster, &["exec", "-i", "shell", "-c", "main", "--", "sh", "-c", "wc -c; exit 3"], Some("12345"))?;
    ensure!(code == 3 && out.trim() == "5", "stdin EOF then exit 3: exit {code}, out {out:?}, err {err:?}");

    // A terminal: `script` gives kubectl a pty of 37 rows x 91 columns; kubectl
    // sends that size on the resize channel and the container's tty has it.
    // kubectl sends the size right after the streams open, so the command
    // waits for it (bounded) rather than racing it.
    let inner = "stty rows 37 cols 91; kubectl exec -it shell -c main -- sh -c \
        'for i in $(seq 600); do stty size | grep -qx \"37 91\" && break; sleep 0.1; done; stty size; tty'";
    let out = Command::new("script")
        .args(["-qec", inner, "/dev/null"])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = wait_output(out)?;
    // The terminal echoes a NUL kubectl writes as `^@`, somewhere in the output.
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "").replace("^@", "");
    ensure!(out.status.success(), "exec -it failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    ensure!(text.lines().any(|l| l == "37 91"), "the container's tty has kubectl's size: {text:?}");
    ensure!(text.lines().any(|l| l.starts_with("/dev/pts/")), "a tty was allocated: {text:?}");

    let (code, _, err) = run(cluster, &["exec", "shell", "-c", "nope", "--", "true"], None)?;
    ensure!(code != 0 && err.contains("nope"), "a missing container is an error naming it: {code} {err:?}");
    Ok(())
}

/// A raw `v5.channel.k8s.io` client of the apiserver's `pods/exec` (what
/// kubectl does with a real terminal): resize messages on channel 4 change
/// the container's terminal size; the exit status arrives on channel 3.
mod raw_exec {
    use std::io::ErrorKind;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use anyhow::{bail, ensure, Context, Result};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::{client, Error, Message, WebSocket};

    use super::support::access::Access;
    use super::DEADLINE;

    type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    pub struct Session {
        socket: WebSocket<Tls>,
        /// Channel 1 so far.
        pub stdout: String,
        /// Channel 3 (the exit `Status`).
        pub status: String,
        pub closed: bool,
    }

    impl Session {
        pub fn open(access: &Access, pod: &str, container: &str, command: &[&str]) -> Result<Session> {
            let api = access.address();
            let mut query = form_query(container, command);
            query.push_str("&stdin=true&stdout=true&tty=true");
            let url = format!("ws://{api}/api/v1/namespaces/default/pods/{pod}/exec?{query}");
            let mut request = url.into_client_request()?;
            request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("v5.channel.k8s.io"));
            let tcp = TcpStream::connect(api)?;
            // The TLS and websocket handshakes get long reads; the session short ones.
            tcp.set_read_timeout(Some(DEADLINE))?;
            let host = api.rsplit_once(':').map_or(api, |(host, _)| host).to_string();
            let tls = rustls::ClientConnection::new(access.tls()?, host.try_into()?)?;
            let stream = rustls::StreamOwned::new(tls, tcp);
            let (socket, response) = client(request, stream).context("websocket handshake")?;
            socket.get_ref().sock.set_read_timeout(Some(Duration::from_millis(200)))?;
            let protocol = response.headers().get("Sec-WebSocket-Protocol").and_then(|v| v.to_str().ok());
            ensure!(protocol == Some("v5.channel.k8s.io"), "answered protocol {protocol:?}");
            Ok(Session { socket, stdout: String::new(), status: String::new(), closed: false })
        }

        pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<()> {
            let mut message = vec![channel];
            message.extend_from_slice(data);
            self.socket.send(Message::Binary(message.into()))?;
            Ok(())
        }

        pub fn resize(&mut self, width: u16, height: u16) -> Result<()> {
            self.send(4, format!(r#"{{"Width":{width},"Height":{height}}}"#).as_bytes())
        }

        /// Reads what arrives within one read timeout.
        fn pump(&mut self) -> Result<()> {
            match self.socket.read() {
                Ok(Message::Binary(data)) => match data.split_first() {
                    Some((1, rest)) => self.stdout.push_str(&String::from_utf8_lossy(rest)),
                    Some((3, rest)) => self.status.push_str(&String::from_utf8_lossy(rest)),
                    _ => {}
                },
                Ok(Message::Close(_)) => self.closed = true,
                Ok(_) => {}
                Err(Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => self.closed = true,
                Err(e) => return Err(e.into()),
            }
            Ok(())
        }

        /// Sends `probe` on stdin until stdout contains `want` (bounded).
        pub fn probe_until(&mut self, probe: &[u8], want: &str) -> Result<()> {
            let deadline = Instant::now() + DEADLINE;
            let mut last_probe: Option<Instant> = None;
            while !self.stdout.contains(want) {
                ensure!(!self.closed, "session closed before {want:?}: {:?}", self.stdout);
                ensure!(Instant::now() < deadline, "no {want:?} within {DEADLINE:?}: {:?}", self.stdout);
                if last_probe.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
                    self.send(0, probe)?;
                    last_probe = Some(Instant::now());
                }
                self.pump()?;
            }
            Ok(())
        }

        /// Reads until the runtime closes the session (bounded).
        pub fn until_closed(&mut self) -> Result<()> {
            let deadline = Instant::now() + DEADLINE;
            while !self.closed {
                if Instant::now() >= deadline {
                    bail!("session not closed within {DEADLINE:?}: {:?} {:?}", self.stdout, self.status);
                }
                self.pump()?;
            }
            Ok(())
        }
    }

    fn form_query(container: &str, command: &[&str]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("container", container);
        for arg in command {
            query.append_pair("command", arg);
        }
        query.finish()
    }
}

fn resize_scenario(cluster: &Cluster) -> Result<()> {
    let command = ["sh", "-c", "while read x; do echo size:$(stty size | tr ' ' x); done; echo bye"];
    let mut session = raw_exec::Session::open(&cluster.access()?, "shell", "main", &command)?;
    session.resize(91, 37)?;
    session.probe_until(b"\n", "size:37x91")?;
    session.resize(120, 50)?;
    session.probe_until(b"\n", "size:50x120")?;
    // On a terminal, end of input is Ctrl-D (closing stdin does not hang up
    // the pty): `read` sees EOF, the loop ends, the command exits 0.
    session.send(0, &[0x04])?;
    session.until_closed()?;
    ensure!(session.stdout.contains("bye"), "Ctrl-D ended the loop: {:?}", session.stdout);
    ensure!(session.status.contains("Success"), "exit status {:?}", session.status);
    Ok(())
}

fn attach_scenario(cluster: &Cluster) -> Result<()> {
    let mut child = kubectl(cluster)
        .args(["attach", "-i", "shell", "-c", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = lines(child.stdout.take().context("stdout")?);
    let mut stdin = child.stdin.take().context("stdin")?;
    let _guard = Running(child);
    // Lines written before the session is up are lost to the container, so
    // keep writing until one comes back.
    let deadline = Instant::now() + DEADLINE;
    loop {
        stdin.write_all(b"ping\n")?;
        stdin.flush()?;
        match stdout.recv_timeout(Duration::from_millis(500)) {
            Ok(line) if line == "echo:ping" => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("kubectl attach ended early"),
        }
        ensure!(Instant::now() < deadline, "attach: no echo within {DEADLINE:?}");
    }
    stdin.write_all(b"second\n")?;
    wait_line(&stdout, "echo:second", |l| l == "echo:second")?;
    Ok(())
}

fn http_get(port: u16) -> Result<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(DEADLINE))?;
    conn.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer)
}

fn port_forward_scenario(cluster: &Cluster) -> Result<()> {
    let mut child = kubectl(cluster)
        .args(["port-forward", "pod/shell", ":8080"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = lines(child.stdout.take().context("stdout")?);
    let _guard = Running(child);
    let line = wait_line(&stdout, "Forwarding from 127.0.0.1", |l| l.starts_with("Forwarding from 127.0.0.1:"))?;
    let port: u16 = line
        .trim_start_matches("Forwarding from 127.0.0.1:")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("port in {line:?}"))?;
    // Open every connection before reading any answer, so they share the session at once.
    let conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let conn = TcpStream::connect(("127.0.0.1", port))?;
            conn.set_read_timeout(Some(DEADLINE))?;
            Ok(conn)
        })
        .collect::<Result<_>>()?;
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            std::thread::spawn(move || -> Result<String> {
                conn.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")?;
                let mut answer = String::new();
                conn.read_to_string(&mut answer)?;
                Ok(answer)
            })
        })
        .collect();
    for handle in handles {
        let answer = handle.join().map_err(|_| anyhow::anyhow!("connection thread panicked"))??;
        // busybox httpd answers HTTP/1.1 whatever the request's version.
        ensure!(answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"), "answer {answer:?}");
        ensure!(answer.ends_with("served-by-pod\n"), "body {answer:?}");
    }
    // The session stays usable after those connections closed.
    ensure!(http_get(port)?.ends_with("served-by-pod\n"), "a later connection works too");
    Ok(())
}

/// `GET` of the node's kubelet API at the address and port its Node object
/// publishes, over HTTPS as the admin.
fn kubelet_get(cluster: &Cluster, path: &str) -> Result<serde_json::Value> {
    let body = support::kubelet::Kubelet::of(cluster, "stream-node")?.get(path)?;
    Ok(serde_json::from_str(&body)?)
}

/// `/pods` lists the pods the agent runs (full objects), `/runningpods` what
/// the runtime runs (name, namespace, uid and the running containers).
fn kubelet_api_scenario(cluster: &Cluster) -> Result<()> {
    let uid = cluster.json(&["get", "pod", "shell"])?["metadata"]["uid"].as_str().context("uid")?.to_string();
    let pods = kubelet_get(cluster, "/pods")?;
    ensure!(pods["kind"] == "PodList", "/pods kind: {pods}");
    let shell = pods["items"].as_array().and_then(|items| items.iter().find(|p| p["metadata"]["name"] == "shell"));
    let shell = shell.with_context(|| format!("shell in /pods: {pods}"))?;
    ensure!(shell["metadata"]["uid"] == uid.as_str() && shell["spec"]["containers"][1]["stdin"] == true, "{shell}");

    let running = kubelet_get(cluster, "/runningpods")?;
    ensure!(running["kind"] == "PodList", "/runningpods kind: {running}");
    let items = running["items"].as_array().context("items")?;
    let pod = items.iter().find(|p| p["metadata"]["name"] == "shell").with_context(|| format!("shell: {running}"))?;
    ensure!(pod["metadata"]["namespace"] == "default", "{pod}");
    ensure!(pod["metadata"]["uid"] == uid.as_str(), "uid {pod}");
    let names: Vec<&str> =
        pod["spec"]["containers"].as_array().context("containers")?.iter().filter_map(|c| c["name"].as_str()).collect();
    ensure!(names == ["main", "reader"], "running containers {names:?}");
    ensure!(
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| c["image"].as_str().is_some_and(|i| !i.is_empty())),
        "images {pod}"
    );
    Ok(())
}

#[test]
fn exec_attach_and_port_forward_through_the_apiserver() -> Result<()> {
    let cluster = Cluster::start("stream-node")?;
    let (ok, out, err) = cluster.apply_stdin(&manifest(&cluster.registry))?;
    ensure!(ok, "apply: {out}{err}");
    wait_running(&cluster)?;
    kubelet_api_scenario(&cluster).context("kubelet API")?;
    exec_scenarios(&cluster).context("exec")?;
    resize_scenario(&cluster).context("resize")?;
    attach_scenario(&cluster).context("attach")?;
    port_forward_scenario(&cluster).context("port-forward")?;
    Ok(())
}
