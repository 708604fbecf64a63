//! Pod resource rules that both planes must apply identically: the scheduler
//! and the apiserver in control-lite, the agent on the node. Keeping them in
//! one place means they can never disagree (a pod's QoS class, a request in
//! millicores).
//!
//! Owns: [`quantity`] (exact parsing of resource quantities) and [`qos`]
//! (the upstream QoS class of a pod), [`names`] (name rules such as
//! environment variable names) and [`pod_defaults`] (upstream's pod spec
//! defaults, applied by the apiserver and to static pods). Must not: do I/O or know about the
//! runtime or the API server.

pub mod names;
pub mod pod_defaults;
pub mod qos;
pub mod quantity;

pub use names::is_env_var_name;
pub use qos::pod_qos_class;
pub use quantity::{check_syntax, cpu_millis, milli_value, plain_value, value, QuantityError};
