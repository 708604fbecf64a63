//! The apiserver's limits ([`ApiConfig`], upstream-like defaults) and the
//! in-flight request limiter.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::call::Class;
use crate::apiserver::patch;
use crate::apiserver::status::{ApiError, Result};

/// Limits of the apiserver. [`ApiConfig::default`] follows upstream where
/// upstream has a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest request body (upstream: 3 MiB) -> 413.
    pub max_body_bytes: usize,
    /// Largest object a write may produce, encoded as JSON (etcd's default
    /// request limit, 1.5 MiB) -> 413.
    pub max_object_bytes: usize,
    /// Most operations in one JSON patch (upstream: 10,000) -> 413.
    pub max_json_patch_operations: usize,
    /// Non-mutating requests in flight (upstream: 400) -> 429.
    pub max_requests_inflight: usize,
    /// Mutating requests in flight (upstream: 200) -> 429.
    pub max_mutating_requests_inflight: usize,
    /// `Retry-After` of a 429.
    pub retry_after: Duration,
    /// Open connections; further connections are closed at once.
    pub max_connections: usize,
    /// Concurrent streams on one HTTP/2 connection (Go's default, 250). An
    /// HTTP/1 connection serves one request at a time.
    pub max_streams_per_connection: u32,
    /// Time to receive a request's headers, and an idle connection's next
    /// request (upstream: 32 s); then the connection is closed.
    pub header_read_timeout: Duration,
    /// Time to receive a request's body -> 408.
    pub body_read_timeout: Duration,
    /// A response write that makes no progress for this long (the client
    /// stopped reading) closes the connection.
    pub write_stall_timeout: Duration,
    /// A watch whose next event is not accepted within this long is closed,
    /// in the HTTP layer and in the store, and never holds up writers.
    pub watch_deadline: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 3 * 1024 * 1024,
            max_object_bytes: 3 * 512 * 1024,
            max_json_patch_operations: patch::MAX_JSON_PATCH_OPERATIONS,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            retry_after: Duration::from_secs(1),
            max_connections: 2048,
            max_streams_per_connection: 250,
            header_read_timeout: Duration::from_secs(32),
            body_read_timeout: Duration::from_secs(60),
            write_stall_timeout: Duration::from_secs(60),
            watch_deadline: Duration::from_secs(60),
        }
    }
}

impl ApiConfig {
    /// The bounds of one patch.
    pub fn patch_limits(&self) -> patch::Limits {
        patch::Limits { max_operations: self.max_json_patch_operations, max_bytes: self.max_object_bytes }
    }
}

/// Requests in flight, per [`Class`].
#[derive(Debug)]
pub struct InFlight {
    read_only: Arc<Semaphore>,
    mutating: Arc<Semaphore>,
    retry_after_seconds: u64,
}

impl InFlight {
    /// Limiter for `config`.
    pub fn new(config: &ApiConfig) -> InFlight {
        InFlight {
            read_only: Arc::new(Semaphore::new(config.max_requests_inflight)),
            mutating: Arc::new(Semaphore::new(config.max_mutating_requests_inflight)),
            retry_after_seconds: config.retry_after.as_secs().max(1),
        }
    }

    /// A slot for a request of `class` (held until the response is built),
    /// `None` if exempt, or `TooManyRequests` if its class is full or, for a
    /// mutating request, the store's write queue is (`store_full`).
    pub fn admit(&self, class: Class, store_full: bool) -> Result<Option<OwnedSemaphorePermit>> {
        let busy = ApiError::TooManyRequests { retry_after_seconds: self.retry_after_seconds };
        let pool = match class {
            Class::Exempt => return Ok(None),
            Class::ReadOnly => &self.read_only,
            Class::Mutating if store_full => return Err(busy),
            Class::Mutating => &self.mutating,
        };
        pool.clone().try_acquire_owned().map(Some).map_err(|_| busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_have_separate_pools_and_exempt_is_unlimited() {
        let config = ApiConfig { max_requests_inflight: 1, max_mutating_requests_inflight: 1, ..ApiConfig::default() };
        let limiter = InFlight::new(&config);
        let read = limiter.admit(Class::ReadOnly, false).expect("first read");
        assert!(read.is_some());
        let refused = limiter.admit(Class::ReadOnly, false);
        assert!(matches!(refused, Err(ApiError::TooManyRequests { retry_after_seconds: 1 })));
        let write = limiter.admit(Class::Mutating, false).expect("writes have their own pool");
        assert!(limiter.admit(Class::Exempt, true).expect("exempt").is_none());
        drop((read, write));
        assert!(limiter.admit(Class::ReadOnly, true).is_ok(), "slot returned; reads do not queue writes");
        assert!(limiter.admit(Class::Mutating, true).is_err(), "a full store queue refuses writes");
    }

    #[test]
    fn defaults_are_upstream_numbers() {
        let c = ApiConfig::default();
        assert_eq!(c.max_body_bytes, 3_145_728);
        assert_eq!(c.max_object_bytes, 1_572_864);
        assert_eq!((c.max_requests_inflight, c.max_mutating_requests_inflight), (400, 200));
        assert_eq!(c.patch_limits().max_operations, 10_000);
    }
}
