//! gRPC bindings bosun speaks.
//!
//! Owns: the generated types and client/server stubs for the Kubernetes CRI v1
//! API (`RuntimeService`, `ImageService`) and containerd's own API (events for
//! task exit and OOM, content and images for archive import).
//!
//! Must not: contain logic. Everything here is generated code re-exported under
//! stable paths so the rest of the workspace never names the generator crates.

/// CRI v1 (`runtime.v1`): messages, `runtime_service_client`/`image_service_client`
/// and the matching server traits used by the fake CRI server in `bosun-cri`.
pub mod cri {
    pub use k8s_cri::v1::*;
}

/// containerd's native API: `services::v1::events_client`, event payloads in
/// `events`, `types` for `Envelope`/`Any` decoding, and `connect` to dial
/// containerd's unix socket.
pub mod containerd {
    pub use containerd_client::{connect, events, services, types};
}
