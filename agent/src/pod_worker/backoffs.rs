//! The worker's side of saved backoffs (`crate::recovery::backoff_state`):
//! read once when the worker starts, written after each change.

use super::PodWorker;
use crate::recovery::backoff_state::{self, BackoffState};

impl PodWorker {
    /// Takes back the backoffs a previous agent saved for this pod.
    pub(super) async fn restore_backoffs(&mut self) {
        let path = backoff_state::path(&self.deps.root_dir, &self.uid);
        match tokio::task::spawn_blocking(move || backoff_state::load(&path)).await {
            Ok(Ok(Some(state))) => {
                tracing::debug!(uid = %self.uid, ?state, "backoffs restored");
                state.restore_into(&mut self.crash, &mut self.pull);
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::warn!(%error, uid = %self.uid, "saved backoffs ignored"),
            Err(error) => tracing::warn!(%error, uid = %self.uid, "reading saved backoffs"),
        }
    }

    /// Saves the backoffs (after a change), so an agent restart keeps them.
    pub(super) async fn save_backoffs(&self) {
        let path = backoff_state::path(&self.deps.root_dir, &self.uid);
        let state = BackoffState::of(&self.crash, &self.pull);
        match tokio::task::spawn_blocking(move || backoff_state::save(&path, &state)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, uid = %self.uid, "saving backoffs"),
            Err(error) => tracing::warn!(%error, uid = %self.uid, "saving backoffs"),
        }
    }
}
