//! The apiserver's limits through real HTTP on an in-process apiserver:
//! body and patch sizes, slow and excess connections, requests in flight,
//! and watches whose client stopped reading. Limits are made small through
//! `ApiConfig` so each test is quick; every wait is on a condition with a
//! generous deadline.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::body::Body;
use bosun_control::apiserver::ApiConfig;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::Apiserver;

/// Generous bound for anything the test waits on.
const PATIENCE: Duration = Duration::from_secs(60);
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";

/// A response: status, `Retry-After` and the body as JSON (`Null` if it is not).
#[derive(Debug)]
struct Resp {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

/// A keep-alive HTTP/1 client connection.
struct Conn {
    send: http1::SendRequest<Body>,
}

impl Conn {
    async fn open(api: &Apiserver) -> Result<Conn> {
        let stream = api.connect().await?;
        let (send, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when either side closes; the tests observe that through requests.
            let _ = conn.await;
        });
        Ok(Conn { send })
    }

    async fn call(&mut self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<Resp> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "apiserver")
            .header("content-type", content_type)
            .body(Body::from(body))?;
        let resp = tokio::time::timeout(PATIENCE, self.send.send_request(req)).await.context("response")??;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = axum::body::to_bytes(Body::new(resp.into_body()), usize::MAX).await?;
        Ok(Resp { status, retry_after, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) })
    }
}

/// One request on a fresh connection.
async fn call(api: &Apiserver, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Result<Resp> {
    Conn::open(api).await?.call(method, path, content_type, body).await
}

fn configmap(name: &str, data_bytes: usize) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "x".repeat(data_bytes)}})
        .to_string()
        .into_bytes()
}

fn assert_status(resp: &Resp, code: u16, reason: &str) {
    assert_eq!(resp.status, code, "{resp:?}");
    assert_eq!(resp.body["kind"], "Status", "{resp:?}");
    assert_eq!(resp.body["reason"], reason, "{resp:?}");
    assert_eq!(resp.body["code"], code, "{resp:?}");
}

/// Reads until the server closes the connection (EOF or reset) or `PATIENCE` passes.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => bail!("the server did not close the connection within {PATIENCE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Status code and JSON body of a raw HTTP/1 response.
fn parse_raw(raw: &[u8]) -> Result<(u16, Value)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let code = head.split_whitespace().nth(1).context("status line")?.parse()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .context("content-length")?
        .parse()?;
    Ok((code, serde_json::from_str(body.get(..len).context("short body")?)?))
}

/// Waits (up to `PATIENCE`) until `check` holds.
async fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::test]
async fn four_mebibyte_body_gets_413_status_and_nothing_is_stored() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let body = configmap("big", 4 * 1024 * 1024);
    let head = format!(
        "POST {CONFIGMAPS} HTTP/1.1\r\nHost: apiserver\r\nContent-Type: {JSON}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (mut rd, mut wr) = tokio::io::split(api.connect().await?);
    // The server answers without reading the whole body; the writer may fail then.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
    });
    let mut raw = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") || parse_raw(&raw).is_err() {
        match tokio::time::timeout(PATIENCE, rd.read(&mut buf)).await.context("no response")? {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    let (code, status) = parse_raw(&raw)?;
    assert_eq!(code, 413);
    assert_eq!(status["reason"], "RequestEntityTooLarge", "{status}");
    assert!(status["message"].as_str().is_some_and(|m| m.contains("3145728")), "{status}");
    assert_eq!(call(&api, "GET", &format!("{CONFIGMAPS}/big"), JSON, Vec::new()).await?.status, 404);
    api.token.cancel();
    Ok(())
}

#[tokio::test]
async fn patch_limits_reject_too_many_operations_and_oversized_results() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let api = support::start_apiserver(dir.path()).await?;
    let mut c = Conn::open(&api).await?;
    let created = c.call("POST", CONFIGMAPS, JSON, configmap("cm", 1000)).await?;
    assert_eq!(created.status, 201, "{created:?}");
    let rv = created.body["metadata"]["resourceVersion"].clone();
    let path = format!("{CONFIGMAPS}/cm");
    let ops = |n: usize| -> Vec<u8> {
        let op = json!({"op": "test", "path": "/metadata/name", "value": "cm"});
        Value::Array(vec![op; n]).to_string().into_bytes()
    };
    let resp = c.call("PATCH", &path, "application/json-patch+json", ops(10_001)).await?;
    assert_status(&resp, 413, "RequestEntityTooLarge");
    assert!(resp.body["message"].as_str().is_some_and(|m| m.contains("10000")), "{resp:?}");
    let resp = c.call("PATCH", &path, "application/json-patch+json", ops(10_000)).await?;
    assert_eq!(resp.status, 200, "10,000 operations are allowed: {resp:?}");

    // Past the 1.5 MiB object limit, within the 3 MiB body limit.
    let grow = json!({"data": {"big": "y".repeat(2 * 1024 * 1024)}}).to_string().into_bytes();
    for patch_type in ["application/merge-patch+json", "application/strategic-merge-patch+json"] {
        let resp = c.call("PATCH", &path, patch_type, grow.clone()).await?;
        assert_status(&resp, 413, "RequestEntityTooLarge");
    }
    // Copies of a map into itself double it each time: exponential growth from a tiny body.
    let copies: Vec<Value> =
        (0..16).map(|i| json!({"op": "copy", "from": "/data", "path": format!("/data/c{i}")})).collect();
    let resp =
        c.call("PATCH", &path, "application/json-patch+json", Value::Array(copies).to_string().into_bytes()).await?;
    assert_status(&resp, 413, "RequestEntityTooLarge");
    // Nothing of the rejected patches was stored.
    let now = c.call("GET", &path, JSON, Vec::new()).await?;
    assert_eq!(now.body["metadata"]["resourceVersion"], rv, "{:?}", now.body["metadata"]);
    assert!(now.body["data"].get("big").is_none());
    assert_eq!(now.body["data"].as_object().map(|d| d.len()), Some(1));
    api.token.cancel();
    Ok(())
}

#[tokio::test]
async fn half_a_header_is_disconnected_after_the_timeout_and_others_are_served() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ApiConfig { header_read_timeout: Duration::from_millis(300), ..ApiConfig::default() };
    let api = support::start_apiserver_with(dir.path(), config).await?;
    let mut slow = api.connect().await?;
    slow.write_all(b"GET /api HTTP/1.1\r\nHost: apiserver\r\nX-Slow: ").await?;
    // No TLS handshake at all: closed after the same timeout.
    let mut silent = TcpStream::connect(api.addr).await?;
    let answered = read_until_closed(&mut slow).await?;
    assert!(answered.is_empty() || answered.starts_with(b"HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answered));
    let answered = read_until_closed(&mut silent).await?;
    assert!(answered.is_empty(), "{}", String::from_utf8_lossy(&answered));
    assert_eq!(call(&api, "GET", "/api/v1/namespaces", JSON, Vec::new()).await?.status, 200);
    api.token.cancel();
    Ok(())
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_while_others_are_served() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ApiConfig { max_connections: 2, ..ApiConfig::default() };
    let api = support::start_apiserver_with(dir.path(), config).await?;
    // Two connections, each proven accepted by a response.
    let mut a = Conn::open(&api).await?;
    let mut b = Conn::open(&api).await?;
    assert_eq!(a.call("GET", "/version", JSON, Vec::new()).await?.status, 200);
    assert_eq!(b.call("GET", "/version", JSON, Vec::new()).await?.status, 200);
    // A third is closed without an answer (before any TLS).
    let mut third = TcpStream::connect(api.addr).await?;
    third.write_all(b"GET /version HTTP/1.1\r\nHost: apiserver\r\n\r\n").await?;
    let answered = read_until_closed(&mut third).await?;
    assert!(answered.is_empty(), "{}", String::from_utf8_lossy(&answered));
    // The first two are still served.
    assert_eq!(a.call("GET", "/api/v1/namespaces", JSON, Vec::new()).await?.status, 200);
    assert_eq!(b.call("GET", "/api/v1/namespaces", JSON, Vec::new()).await?.status, 200);
    // Closing one frees its slot for a new connection.
    drop(a);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(resp) = call(&api, "GET", "/version", JSON, Vec::new()).await {
            assert_eq!(resp.status, 200);
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no connection was served after one closed");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.token.cancel();
    Ok(())
}

#[tokio::test]
async fn mutating_requests_over_the_inflight_limit_get_429_with_retry_after() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ApiConfig { max_mutating_requests_inflight: 1, ..ApiConfig::default() };
    let api = support::start_apiserver_with(dir.path(), config).await?;
    // A create whose body is only half sent holds the one mutating slot.
    let held = configmap("held", 10);
    let mut holder = api.connect().await?;
    let head = format!(
        "POST {CONFIGMAPS} HTTP/1.1\r\nHost: apiserver\r\nContent-Type: {JSON}\r\nContent-Length: {}\r\n\r\n",
        held.len()
    );
    holder.write_all(head.as_bytes()).await?;
    holder.write_all(&held[..1]).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let refused = loop {
        let body = json!({"metadata": {"generateName": "other-"}, "data": {}}).to_string().into_bytes();
        let resp = call(&api, "POST", CONFIGMAPS, JSON, body).await?;
        if resp.status == 429 {
            break resp;
        }
        assert_eq!(resp.status, 201, "{resp:?}");
        if tokio::time::Instant::now() > deadline {
            bail!("never refused while the slot was held");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_status(&refused, 429, "TooManyRequests");
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    // Reads have their own pool.
    assert_eq!(call(&api, "GET", CONFIGMAPS, JSON, Vec::new()).await?.status, 200);
    // Finishing the held request frees the slot.
    holder.write_all(&held[1..]).await?;
    let mut raw = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    while parse_raw(&raw).is_err() {
        let n = tokio::time::timeout(PATIENCE, holder.read(&mut buf)).await??;
        anyhow::ensure!(n > 0, "connection closed before the response");
        raw.extend_from_slice(&buf[..n]);
    }
    assert_eq!(parse_raw(&raw)?.0, 201);
    let after = call(&api, "POST", CONFIGMAPS, JSON, configmap("after", 10)).await?;
    assert_eq!(after.status, 201, "{after:?}");
    api.token.cancel();
    Ok(())
}

#[tokio::test]
async fn watch_whose_reader_stops_is_closed_after_the_deadline_while_writes_continue() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = ApiConfig {
        watch_deadline: Duration::from_millis(300),
        write_stall_timeout: Duration::from_millis(300),
        ..ApiConfig::default()
    };
    let api = support::start_apiserver_with(dir.path(), config).await?;
    let mut watcher = api.connect().await?;
    watcher.write_all(format!("GET {CONFIGMAPS}?watch=true HTTP/1.1\r\nHost: apiserver\r\n\r\n").as_bytes()).await?;
    wait_for("the watch to open", || api.state.open_watches() == 1).await?;
    // The watcher reads nothing; 64 KiB events fill the socket buffers.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut writes = 0;
    while api.state.open_watches() > 0 {
        if tokio::time::Instant::now() > deadline {
            bail!("the watch was still open after {writes} writes");
        }
        let resp = tokio::time::timeout(
            PATIENCE,
            call(&api, "POST", CONFIGMAPS, JSON, configmap(&format!("cm{writes}"), 64 * 1024)),
        )
        .await
        .context("a write waited on the stalled watch")??;
        assert_eq!(resp.status, 201, "{resp:?}");
        writes += 1;
    }
    assert!(writes > 0);
    // Its connection is closed too (after what was buffered), not held.
    read_until_closed(&mut watcher).await?;
    // Writes go on.
    assert_eq!(call(&api, "POST", CONFIGMAPS, JSON, configmap("later", 10)).await?.status, 201);
    api.token.cancel();
    Ok(())
}
