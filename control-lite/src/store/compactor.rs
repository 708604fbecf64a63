//! Background compaction: keeps the last N revisions of history.
//!
//! [`compaction_target`] decides, [`spawn_compactor`] applies it on a timer
//! until its cancellation token fires.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Revision, Store};

/// The revision to compact to so that the last `keep` revisions stay
/// watchable, or `None` if that is not beyond what is already compacted.
pub fn compaction_target(current: Revision, compacted: Revision, keep: usize) -> Option<Revision> {
    let keep = Revision::try_from(keep).unwrap_or(Revision::MAX);
    let target = current.saturating_sub(keep);
    (target > compacted).then_some(target)
}

/// Every `interval`, compacts `store` so that the last `keep` revisions of
/// history remain (10,000 is a good default). Stops when `token` is cancelled.
pub fn spawn_compactor(store: Store, interval: Duration, keep: usize, token: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let Some(target) = compaction_target(store.current_revision(), store.compacted_revision(), keep) else {
                continue;
            };
            match store.compact(target).await {
                Ok(()) => tracing::debug!(target, "store: compacted"),
                Err(super::Error::Closed) => return,
                Err(error) => tracing::warn!(%error, target, "store: compaction failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_target_keeps_the_last_revisions() {
        // (current, compacted, keep, want)
        let cases: [(Revision, Revision, usize, Option<Revision>); 6] = [
            (0, 0, 10, None),
            (10, 0, 10, None),
            (11, 0, 10, Some(1)),
            (20_000, 0, 10_000, Some(10_000)),
            (20_000, 10_000, 10_000, None),
            (20_000, 5, usize::MAX, None),
        ];
        for (current, compacted, keep, want) in cases {
            assert_eq!(
                compaction_target(current, compacted, keep),
                want,
                "current {current} compacted {compacted} keep {keep}"
            );
        }
    }
}
