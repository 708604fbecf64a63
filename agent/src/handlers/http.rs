//! httpGet: one shared client (no proxy, certificates not verified, as
//! upstream probes); status 200..400 is success. Redirects are followed to
//! the same host only (at most 10); a redirect elsewhere is answered with the
//! 3xx itself, which counts as success (upstream's rule).

use std::sync::OnceLock;
use std::time::Duration;

use super::{host_port, HttpGet, Outcome, Scheme};

/// Upstream's probe User-Agent shape.
const USER_AGENT: &str = "kube-probe/1.33";
/// Body bytes kept for failure messages (upstream: 10 KiB).
const MAX_BODY: usize = 10 * 1024;
const MAX_REDIRECTS: usize = 10;

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let policy = reqwest::redirect::Policy::custom(|attempt| {
                let same_host =
                    attempt.previous().first().map(|first| first.host_str()) == Some(attempt.url().host_str());
                if attempt.previous().len() > MAX_REDIRECTS || !same_host {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            });
            reqwest::Client::builder()
                .no_proxy()
                .danger_accept_invalid_certs(true)
                .redirect(policy)
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|error| tracing::error!(%error, "cannot build the probe HTTP client"))
                .ok()
        })
        .as_ref()
}

pub(super) async fn run(get: &HttpGet, timeout: Duration) -> Outcome {
    let scheme = match get.scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let url = format!("{scheme}://{}{}", host_port(&get.host, get.port), get.path);
    let Some(client) = client() else {
        return Outcome::Failure("no HTTP client".into());
    };
    let mut request = client.get(&url).timeout(timeout);
    let has = |name: &str| get.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        request = request.header("User-Agent", USER_AGENT);
    }
    if !has("accept") {
        request = request.header("Accept", "*/*");
    }
    for (name, value) in &get.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            return Outcome::Failure(format!(
                "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        }
        Err(error) => return Outcome::Failure(format!("Get \"{url}\": {error}")),
    };
    let status = response.status().as_u16();
    let body = match tokio::time::timeout(timeout, response.bytes()).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned(),
        _ => String::new(),
    };
    if (200..400).contains(&status) {
        Outcome::Success(body)
    } else {
        Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves one canned response per connection; returns the port.
    async fn serve(responses: Vec<&'static str>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for response in responses {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        port
    }

    fn get(port: u16, path: &str) -> HttpGet {
        HttpGet { scheme: Scheme::Http, host: "127.0.0.1".into(), port, path: path.into(), headers: vec![] }
    }

    #[tokio::test]
    async fn status_decides_success() {
        let port = serve(vec![
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            "HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        assert_eq!(run(&get(port, "/"), Duration::from_secs(5)).await, Outcome::Success("ok".into()));
        assert_eq!(
            run(&get(port, "/"), Duration::from_secs(5)).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
    }

    #[tokio::test]
    async fn redirect_to_another_host_is_success_without_following() {
        let port = serve(vec![
            "HTTP/1.1 302 Found\r\nlocation: http://192.0.2.1/x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        assert!(run(&get(port, "/"), Duration::from_secs(5)).await.is_success());
    }

    #[tokio::test]
    async fn redirect_on_the_same_host_is_followed() {
        let port = serve(vec![
            "HTTP/1.1 302 Found\r\nlocation: /down\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            "HTTP/1.1 503 Down\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        assert!(!run(&get(port, "/"), Duration::from_secs(5)).await.is_success());
    }

    #[tokio::test]
    async fn unreachable_port_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(!run(&get(port, "/"), Duration::from_secs(2)).await.is_success());
    }
}
