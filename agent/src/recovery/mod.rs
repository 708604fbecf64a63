//! Restart recovery: what a restarted agent needs that the runtime does not
//! hold for it.
//!
//! Almost everything is rebuilt from CRI on every sync (`observed`), so a
//! restarted agent adopts running sandboxes and containers as they are. Two
//! things are not in the runtime, and live here:
//! - the crash-loop and image-pull backoffs of each pod ([`backoff_state`]):
//!   a small JSON file `<root>/pods/<uid>/backoff.json`, written atomically
//!   (temp file + rename) whenever a backoff changes and read when the pod's
//!   worker starts; it goes with the pod's directory;
//! - which spec-hash scheme created a container: the label
//!   [`crate::spec_hash::SCHEME_LABEL`], so a new agent that hashes
//!   differently adopts older containers instead of restarting them.
//!
//! Pods deleted while the agent was down are found by the pod manager's
//! orphan sweep, which runs once the first API list is in (and the static
//! pods are known): their containers, sandboxes (and so CNI IPs), log and
//! volume directories and tmpfs mounts are removed.
//!
//! Must not: hold pod state that the runtime can tell (restart counts,
//! exit codes, sandbox ids come from CRI).

pub mod backoff_state;
pub mod pod_dirs;
