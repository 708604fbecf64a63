//! The gRPC health service, written out by hand (what tonic's codegen would
//! generate for `grpc.health.v1.Health/Check`; the proto is two fields).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::server::{NamedService, UnaryService};

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;
/// While this file exists, every known service is NOT_SERVING.
const NOT_SERVING_FILE: &str = "/tmp/not-serving";
/// The named service this server knows besides the server itself (`""`).
const SERVICE_NAME: &str = "probe-target";

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// The answer for `service`: a status, or NOT_FOUND for an unknown name.
fn check(service: &str, not_serving: bool) -> Result<i32, tonic::Status> {
    match service {
        "" | SERVICE_NAME if not_serving => Ok(NOT_SERVING),
        "" | SERVICE_NAME => Ok(SERVING),
        other => Err(tonic::Status::not_found(format!("unknown service {other}"))),
    }
}

struct Check;

impl UnaryService<HealthCheckRequest> for Check {
    type Response = HealthCheckResponse;
    type Future = BoxFuture<tonic::Response<HealthCheckResponse>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<HealthCheckRequest>) -> Self::Future {
        Box::pin(async move {
            let not_serving = tokio::fs::try_exists(NOT_SERVING_FILE).await.unwrap_or(false);
            let status = check(&request.get_ref().service, not_serving)?;
            Ok(tonic::Response::new(HealthCheckResponse { status }))
        })
    }
}

#[derive(Clone)]
struct Health;

impl NamedService for Health {
    const NAME: &'static str = "grpc.health.v1.Health";
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Health {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != "/grpc.health.v1.Health/Check" {
                return Ok(tonic::Status::unimplemented(request.uri().path().to_string()).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Check, request).await)
        })
    }
}

/// Serves the health service on `0.0.0.0:port` until the process ends.
pub async fn serve(port: u16) -> Result<(), String> {
    let address = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    tonic::transport::Server::builder()
        .add_service(Health)
        .serve(address)
        .await
        .map_err(|e| format!("gRPC server on {address}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_services_follow_the_file_and_unknown_ones_are_not_found() {
        assert_eq!(check("", false).unwrap(), SERVING);
        assert_eq!(check("probe-target", false).unwrap(), SERVING);
        assert_eq!(check("", true).unwrap(), NOT_SERVING);
        assert_eq!(check("other", false).unwrap_err().code(), tonic::Code::NotFound);
    }
}
