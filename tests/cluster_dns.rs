//! Cluster DNS on the real stack (`bosun up`, real containerd, CNI and
//! kubectl): a pod's resolv.conf points at the agent's DNS server with the
//! cluster search path and `ndots:5`; from inside the pod a Service
//! resolves by full name and by its short name (search path), its named port has an SRV record, a headless
//! Service returns its pods' IPs, and an outside name is forwarded to the
//! node's upstream resolver — here a tiny DNS responder this test runs on
//! the node's address, listed in the `--resolv-conf` file after a loopback
//! entry the agent must skip (no internet needed). From the host, direct
//! queries check NXDOMAIN, TCP, and that a Service created later resolves.
//! One cluster for all.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use support::cluster::Cluster;

/// Generous: a loaded 2-core machine running a debug build.
const DEADLINE: Duration = Duration::from_secs(120);
/// The outside name the fake upstream knows, and its address.
const EXTERNAL: &str = "external.bosun-test.";
const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

fn manifest(registry: &str) -> String {
    let image = format!("{registry}/bosun/app:1.0");
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: dnsweb
spec:
  replicas: 2
  selector:
    matchLabels: {{app: dnsweb}}
  template:
    metadata:
      labels: {{app: dnsweb}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: {image}
        command: ["sh", "-c", "mkdir -p /www && echo dns-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: dnsweb}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web-headless
spec:
  clusterIP: None
  selector: {{app: dnsweb}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
"#
    )
}

/// A DNS responder standing in for the node's upstream resolver: answers
/// [`EXTERNAL`] with [`EXTERNAL_IP`], NXDOMAIN otherwise; counts queries.
fn fake_upstream(addr: SocketAddr) -> Result<Arc<AtomicUsize>> {
    let socket = UdpSocket::bind(addr).with_context(|| format!("binding the fake upstream on {addr}"))?;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            let Some(query) = request.queries.first() else { continue };
            let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
            reply.metadata.recursion_desired = request.metadata.recursion_desired;
            reply.metadata.recursion_available = true;
            reply.add_query(query.clone());
            if query.name().to_ascii().eq_ignore_ascii_case(EXTERNAL) {
                counter.fetch_add(1, Ordering::SeqCst);
                if query.query_type() == RecordType::A {
                    reply.add_answer(Record::from_rdata(query.name().clone(), 30, RData::A(A(EXTERNAL_IP))));
                }
            } else {
                reply.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = reply.to_vec() {
                let _ = socket.send_to(&bytes, from);
            }
        }
    });
    Ok(seen)
}

/// `kubectl exec client -- args`, bounded in time: (success, stdout+stderr).
fn exec(cluster: &Cluster, args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new("timeout")
        .arg("60")
        .arg("kubectl")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["exec", "client", "--"])
        .args(args)
        .output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

/// Runs `args` in the client until it succeeds with output satisfying `check`.
fn exec_until(cluster: &Cluster, args: &[&str], check: impl Fn(&str) -> bool) -> Result<String> {
    exec_until_output(cluster, args, true, check)
}

/// [`exec_until`]; `must_succeed: false` accepts any exit status.
fn exec_until_output(
    cluster: &Cluster,
    args: &[&str],
    must_succeed: bool,
    check: impl Fn(&str) -> bool,
) -> Result<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (ok, text) = exec(cluster, args)?;
        if (ok || !must_succeed) && check(&text) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("{args:?} never satisfied the check; last output:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One query straight to the server, over UDP or TCP.
fn ask(server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Result<Message> {
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(Name::from_ascii(name)?, qtype));
    let bytes = request.to_vec()?;
    let reply = if tcp {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut framed = u16::try_from(bytes.len())?.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len)?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply)?;
        reply
    } else {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        socket.send_to(&bytes, server)?;
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf)?;
        buf[..n].to_vec()
    };
    let reply = Message::from_vec(&reply)?;
    ensure!(reply.metadata.id == request.metadata.id, "reply to another query");
    Ok(reply)
}

fn addresses(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn pods_resolve_services_by_name_and_other_names_through_the_node_resolver() -> Result<()> {
    let node_ip = bosun_agent::host::detect_node_ip().context("no node IP")?;
    let upstream_seen = fake_upstream(SocketAddr::new(IpAddr::V4(node_ip), 53))?;
    let dir = tempfile::tempdir()?;
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&resolv_conf, format!("nameserver 127.0.0.1\nnameserver {node_ip}\nsearch corp.bosun-test\n"))?;
    let cluster = Cluster::start_with("dns-node", &["--resolv-conf".into(), resolv_conf.display().to_string()])?;

    let (ok, out, err) = cluster.apply_stdin(&manifest(&cluster.registry))?;
    ensure!(ok, "apply: {out}{err}");
    let web_ips = {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let pods = cluster.running_pods("app=dnsweb")?;
            if pods.len() == 2 {
                break pods.into_iter().map(|(_, ip)| ip).collect::<Vec<_>>();
            }
            ensure!(
                Instant::now() < deadline,
                "web pods not running: {}",
                cluster.kubectl_ok(&["get", "pods", "-o", "wide"])?
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let cluster_ip = cluster.kubectl_ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])?;

    // resolv.conf as upstream's kubelet writes it for ClusterFirst.
    let resolv = exec_until(&cluster, &["cat", "/etc/resolv.conf"], |t| t.contains("nameserver"))?;
    let server_ip: IpAddr =
        resolv.lines().find_map(|l| l.strip_prefix("nameserver ")).context("nameserver line")?.trim().parse()?;
    ensure!(resolv.lines().filter(|l| l.starts_with("nameserver")).count() == 1, "one nameserver:\n{resolv}");
    ensure!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local corp.bosun-test"),
        "cluster search path then the host's:\n{resolv}"
    );
    ensure!(resolv.contains("options ndots:5"), "ndots:5:\n{resolv}");
    let server = SocketAddr::new(server_ip, 53);

    // Full name, from the pod.
    exec_until(&cluster, &["nslookup", "web.default.svc.cluster.local"], |t| t.contains(&cluster_ip))?;
    // Short name through the search path (busybox's resolver reads the
    // search line; the image's static glibc cannot load NSS for getaddrinfo).
    // busybox tries every search domain and exits 1 if any is NXDOMAIN, as
    // the later ones are: the first one must have found the Service.
    exec_until_output(&cluster, &["nslookup", "web"], false, |t| {
        t.contains("Name:\tweb.default.svc.cluster.local") && t.contains(&cluster_ip)
    })?;
    // SRV for the named port.
    let srv = exec_until(&cluster, &["nslookup", "-type=srv", "_http._tcp.web.default.svc.cluster.local"], |t| {
        t.contains("web.default.svc.cluster.local")
    })?;
    ensure!(srv.contains(" 80 ") || srv.contains("port = 80") || srv.contains(" 80\n"), "SRV names port 80:\n{srv}");
    // Headless: the pods' own IPs.
    exec_until(&cluster, &["nslookup", "web-headless.default.svc.cluster.local"], |t| {
        web_ips.iter().all(|ip| t.contains(ip.as_str()))
    })?;
    // An outside name goes to the node's (non-loopback) upstream.
    let before = upstream_seen.load(Ordering::SeqCst);
    exec_until(&cluster, &["nslookup", EXTERNAL.trim_end_matches('.')], |t| t.contains(&EXTERNAL_IP.to_string()))?;
    ensure!(upstream_seen.load(Ordering::SeqCst) > before, "the fake upstream saw the forwarded query");

    // Direct queries from the host: exact records and codes.
    let reply = ask(server, "web.default.svc.cluster.local.", RecordType::A, false)?;
    ensure!(addresses(&reply) == vec![cluster_ip.parse::<IpAddr>()?], "A over UDP: {reply:?}");
    let reply = ask(server, "web.default.svc.cluster.local.", RecordType::A, true)?;
    ensure!(addresses(&reply) == vec![cluster_ip.parse::<IpAddr>()?], "A over TCP: {reply:?}");
    let reply = ask(server, "nope.default.svc.cluster.local.", RecordType::A, false)?;
    ensure!(reply.metadata.response_code == ResponseCode::NXDomain, "unknown cluster name: {reply:?}");
    let reply = ask(server, "_http._tcp.web-headless.default.svc.cluster.local.", RecordType::SRV, false)?;
    ensure!(reply.answers.len() == 2, "one SRV per headless endpoint: {reply:?}");
    let reply = ask(server, EXTERNAL, RecordType::A, true)?;
    ensure!(addresses(&reply) == vec![IpAddr::V4(EXTERNAL_IP)], "forwarded over TCP: {reply:?}");

    // A Service created now resolves once the watch delivers it.
    let (ok, out, err) = cluster.apply_stdin(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: late\nspec:\n  selector: {app: none}\n  ports: [{port: 81}]\n",
    )?;
    ensure!(ok, "apply late: {out}{err}");
    let late_ip: IpAddr =
        cluster.kubectl_ok(&["get", "service", "late", "-o", "jsonpath={.spec.clusterIP}"])?.trim().parse()?;
    let deadline = Instant::now() + DEADLINE;
    while addresses(&ask(server, "late.default.svc.cluster.local.", RecordType::A, false)?) != vec![late_ip] {
        ensure!(Instant::now() < deadline, "the new Service never resolved");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.kubectl_ok(&["delete", "service", "late"])?;
    let deadline = Instant::now() + DEADLINE;
    while ask(server, "late.default.svc.cluster.local.", RecordType::A, false)?.metadata.response_code
        != ResponseCode::NXDomain
    {
        ensure!(Instant::now() < deadline, "the deleted Service still resolves");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
