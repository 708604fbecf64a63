//! tcpSocket: a TCP connection that opens within the timeout is success.

use std::time::Duration;

use super::{host_port, Outcome};

pub(super) async fn run(host: &str, port: u16, timeout: Duration) -> Outcome {
    let address = host_port(host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
        Ok(Ok(_stream)) => Outcome::Success(String::new()),
        Ok(Err(error)) => Outcome::Failure(format!("dial tcp {address}: {error}")),
        Err(_) => Outcome::Failure(format!("dial tcp {address}: i/o timeout")),
    }
}
