//! A `kube::Client` whose transport can be swapped while every clone of it
//! is in use: [`ClientSlot`] is the tower service under the client the
//! agent's components share, and each request goes through the client in
//! the slot when it is sent. Requests (and watches) already under way
//! finish on the client they started on; new ones use the new client and
//! so open new connections with its certificate.
//!
//! Must not: hold its lock beyond cloning the client out (never across an
//! `.await`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use kube::client::Body;

/// The swappable client behind [`ClientSlot::client`].
#[derive(Clone)]
pub struct ClientSlot {
    current: Arc<RwLock<kube::Client>>,
}

impl ClientSlot {
    /// A slot holding `client`, and the shared client that sends through it.
    pub fn new(client: kube::Client) -> (ClientSlot, kube::Client) {
        let namespace = client.default_namespace().to_string();
        let slot = ClientSlot { current: Arc::new(RwLock::new(client)) };
        let shared = kube::Client::new(slot.clone(), namespace);
        (slot, shared)
    }

    /// From now on, requests go through `client`.
    pub fn replace(&self, client: kube::Client) {
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = client;
    }

    fn get(&self) -> kube::Client {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl tower::Service<Request<Body>> for ClientSlot {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, kube::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let client = self.get();
        Box::pin(async move { client.send(request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client answering every request with `body`.
    fn answering(body: &'static str) -> kube::Client {
        let service = tower::service_fn(move |_: Request<Body>| async move {
            Ok::<_, std::convert::Infallible>(Response::new(Body::from(body.as_bytes().to_vec())))
        });
        kube::Client::new(service, "default")
    }

    async fn get(client: &kube::Client) -> String {
        let request = Request::get("/version").body(Vec::new()).expect("request");
        client.request_text(request).await.expect("answer")
    }

    #[tokio::test]
    async fn requests_after_a_replace_use_the_new_client() {
        let (slot, shared) = ClientSlot::new(answering("old"));
        let clone = shared.clone();
        assert_eq!(get(&shared).await, "old");
        slot.replace(answering("new"));
        assert_eq!(get(&shared).await, "new");
        assert_eq!(get(&clone).await, "new", "clones made before the swap follow it");
        assert_eq!(shared.default_namespace(), "default");
    }
}
