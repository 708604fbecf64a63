//! Fail-over between several apiservers (`--api-servers`): one
//! `kube::Client` whose requests go to the apiserver in use, moving on to
//! the next one when a request to it fails without an HTTP answer (refused,
//! reset, timed out: the server is down or unreachable).
//!
//! Owns: the choice of apiserver ([`after_failure`], pure) and a tower
//! service that applies it over one ordinary client per apiserver (each
//! with the kubeconfig's credentials and TLS, its server replaced). The
//! failed request itself is not sent again (its body is gone); its caller
//! retries as it would after any transport error, and informers re-open
//! their watches, now on the next apiserver. An HTTP error status (a 503
//! while etcd is down) is an answer: it does not move on.
//!
//! Must not: know what the requests are.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, Uri};
use kube::client::Body;

/// Errors building the fail-over client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no apiserver address given")]
    NoServers,
    #[error("apiserver address {url:?} is not a URL")]
    Url {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("client for apiserver {url}")]
    Client {
        url: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// The apiserver to use after a request to `failed` failed, while
/// `current` is in use, of `count`: the one after `failed` if it is still
/// the one in use; otherwise `current` (a concurrent failure moved on already).
pub fn after_failure(current: usize, failed: usize, count: usize) -> usize {
    if current != failed || count == 0 {
        return current;
    }
    failed.checked_add(1).map_or(0, |next| next % count)
}

/// Parses `--api-servers` values.
pub fn parse_servers(urls: &[String]) -> Result<Vec<Uri>, Error> {
    urls.iter().map(|url| url.parse().map_err(|source| Error::Url { url: url.clone(), source })).collect()
}

/// A client of `servers` (in order of preference) with `config`'s
/// credentials, TLS and timeouts; just `config`'s server if `servers` is empty.
pub fn client(config: kube::Config, servers: &[Uri]) -> Result<kube::Client, Error> {
    let build = |url: &Uri| {
        let mut config = config.clone();
        config.cluster_url = url.clone();
        kube::Client::try_from(config)
            .map_err(|source| Error::Client { url: url.to_string(), source: Box::new(source) })
    };
    if servers.is_empty() {
        return build(&config.cluster_url);
    }
    let clients = servers.iter().map(build).collect::<Result<Vec<_>, _>>()?;
    let namespace = config.default_namespace.clone();
    let service = Failover { clients: Arc::new(clients), current: Arc::default() };
    Ok(kube::Client::new(service, namespace))
}

/// The tower service behind [`client`].
#[derive(Clone)]
struct Failover {
    clients: Arc<Vec<kube::Client>>,
    current: Arc<AtomicUsize>,
}

/// Whether `error` came without an HTTP answer from the server.
fn unreachable(error: &kube::Error) -> bool {
    matches!(error, kube::Error::HyperError(_) | kube::Error::Service(_))
}

impl tower::Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let count = self.clients.len();
        let used = self.current.load(Ordering::Acquire) % count.max(1);
        let (clients, current) = (self.clients.clone(), self.current.clone());
        Box::pin(async move {
            let client = clients.get(used).ok_or_else(|| kube::Error::Service("no apiserver configured".into()))?;
            let result = client.send(request).await;
            if let Err(error) = &result {
                if unreachable(error) && count > 1 {
                    let moved = current.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                        Some(after_failure(now, used, count)).filter(|next| *next != now)
                    });
                    if let Ok(from) = moved {
                        let to = after_failure(from, used, count);
                        tracing::warn!(%error, from, to, "apiserver unreachable; failing over to the next one");
                    }
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_moves_on_once_and_wraps_round() {
        // (current, failed, count) -> next
        let cases = [
            ((0, 0, 3), 1),
            ((1, 1, 3), 2),
            ((2, 2, 3), 0),
            ((1, 0, 3), 1), // another failure moved on already
            ((0, 0, 1), 0), // nowhere else to go
            ((0, 0, 0), 0),
            ((usize::MAX, usize::MAX, 3), 0),
        ];
        for ((current, failed, count), want) in cases {
            assert_eq!(after_failure(current, failed, count), want, "{current} {failed} {count}");
        }
    }

    #[test]
    fn servers_parse_as_urls() {
        let urls = parse_servers(&["https://10.0.0.1:6443".into(), "https://10.0.0.2:6443".into()]).expect("urls");
        assert_eq!(urls[1].authority().map(|a| a.as_str()), Some("10.0.0.2:6443"));
        assert!(matches!(parse_servers(&["not a url".into()]), Err(Error::Url { .. })));
    }
}
