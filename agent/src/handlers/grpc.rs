//! grpc: `grpc.health.v1.Health/Check` over plain-text HTTP/2; the answer
//! SERVING is success. The two messages are defined here with prost derive
//! (the whole proto is two fields).

use std::time::Duration;

use super::{host_port, Outcome};

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    /// Service asked about; empty for the server as a whole.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// `ServingStatus` (enum on the wire = varint).
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `ServingStatus.SERVING`.
pub const SERVING: i32 = 1;
/// The method path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

fn status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "unrecognised",
    }
}

async fn check(address: &str, service: &str, timeout: Duration) -> Result<i32, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| format!("failed to connect service {address:?}: {e}"))?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|e| e.to_string())?;
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let request = tonic::Request::new(HealthCheckRequest { service: service.to_string() });
    let path = http::uri::PathAndQuery::from_static(CHECK_PATH);
    let response = client
        .unary(request, path, codec)
        .await
        .map_err(|status| format!("rpc error: code = {:?} desc = {}", status.code(), status.message()))?;
    Ok(response.into_inner().status)
}

pub(super) async fn run(host: &str, port: u16, service: &str, timeout: Duration) -> Outcome {
    let address = host_port(host, port);
    match tokio::time::timeout(timeout, check(&address, service, timeout)).await {
        Err(_) => Outcome::Failure(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
        Ok(Err(message)) => Outcome::Failure(message),
        Ok(Ok(SERVING)) => Outcome::Success(String::new()),
        Ok(Ok(other)) => Outcome::Failure(format!("service unhealthy (responded with {:?})", status_name(other))),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use futures::future::BoxFuture;

    use super::*;

    /// A health service answering every Check with `status`.
    #[derive(Clone)]
    struct Health {
        status: i32,
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Health {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
            let status = self.status;
            Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<HealthCheckResponse, HealthCheckRequest>::default();
                let check = tower::service_fn(move |_: tonic::Request<HealthCheckRequest>| async move {
                    Ok::<_, tonic::Status>(tonic::Response::new(HealthCheckResponse { status }))
                });
                Ok(tonic::server::Grpc::new(codec).unary(check, request).await)
            })
        }
    }

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    async fn serve(status: i32) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(tonic::transport::Server::builder().add_service(Health { status }).serve_with_incoming(incoming));
        port
    }

    #[tokio::test]
    async fn serving_is_success_and_anything_else_failure() {
        let serving = serve(SERVING).await;
        assert_eq!(run("127.0.0.1", serving, "", Duration::from_secs(5)).await, Outcome::Success(String::new()));
        let not_serving = serve(2).await;
        assert_eq!(
            run("127.0.0.1", not_serving, "db", Duration::from_secs(5)).await,
            Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
    }

    #[tokio::test]
    async fn no_server_is_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        assert!(!run("127.0.0.1", port, "", Duration::from_secs(2)).await.is_success());
    }
}
