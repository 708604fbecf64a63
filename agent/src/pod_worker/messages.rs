//! Termination messages of exited containers, read once per container
//! (bounded reads, see [`crate::termination_message`]) and remembered while
//! the container exists.

use std::collections::HashMap;

use crate::observed::{ObservedPod, RunState};
use crate::termination_message;

/// Messages read so far, by container id.
#[derive(Debug, Default)]
pub(super) struct TerminationMessages {
    read: HashMap<String, Option<String>>,
}

impl TerminationMessages {
    /// Appends each exited container's termination message to its runtime
    /// message (as upstream does: `runtime message: termination message`).
    pub(super) async fn fill(&mut self, observed: &mut ObservedPod) {
        self.read.retain(|id, _| observed.containers.iter().any(|c| &c.id == id));
        for c in observed.containers.iter_mut().filter(|c| c.state == RunState::Exited && c.termination.is_some()) {
            let message = match self.read.get(&c.id) {
                Some(message) => message.clone(),
                None => {
                    let message = termination_message::read(c).await;
                    self.read.insert(c.id.clone(), message.clone());
                    message
                }
            };
            if let Some(message) = message {
                if !c.message.is_empty() {
                    c.message.push_str(": ");
                }
                c.message.push_str(&message);
            }
        }
    }
}
