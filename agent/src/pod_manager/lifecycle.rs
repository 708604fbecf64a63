//! The pod manager's side of the evented PLEG: routing container events
//! from `pleg` to the worker of the pod they concern.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PodManager;
use crate::pleg::{self, Route, Signal};

impl PodManager {
    /// Routes `first` and every signal already queued behind it; relists
    /// at most once for all of them.
    pub(super) async fn on_signals(&mut self, first: Signal, token: &CancellationToken) {
        let mut relist = false;
        let mut next = Some(first);
        while let Some(signal) = next {
            match signal {
                Signal::Resync => relist = true,
                Signal::Container(event) => match pleg::route(&event, self.relister.owners()) {
                    Route::Relist => relist = true,
                    Route::Wake(uid) => self.wake(&uid),
                    Route::WakeWhenExited { uid, container_id } => self.wake_when_exited(&uid, container_id, token),
                },
            }
            next = self.lifecycle.as_mut().and_then(|rx| rx.try_recv().ok());
        }
        if relist {
            self.relist().await;
        }
    }

    fn wake(&self, uid: &str) {
        if let Some(worker) = self.workers.get(uid) {
            worker.wake.notify_one();
        }
    }

    /// Wakes `uid`'s worker once the runtime shows the exit (a few ms after
    /// containerd's event), in its own task so no pod holds up the others.
    fn wake_when_exited(&self, uid: &str, container_id: String, token: &CancellationToken) {
        let Some(worker) = self.workers.get(uid) else { return };
        let (wake, runtime, token) = (worker.wake.clone(), self.deps.runtime.clone(), token.clone());
        self.tracker.spawn(async move {
            let (every, limit) = (Duration::from_millis(5), Duration::from_secs(2));
            pleg::wait_exited(runtime.as_ref(), &container_id, every, limit, &token).await;
            wake.notify_one();
        });
    }
}

/// The next lifecycle signal, or never when there is no event stream.
pub(super) async fn next_signal(signals: &mut Option<mpsc::Receiver<Signal>>) -> Option<Signal> {
    match signals {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
