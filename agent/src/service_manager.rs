//! What the agent tells the service manager (systemd) about itself: ready,
//! alive (watchdog) and stopping, through `bosun-notify`.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// The agent's main loop, as systemd sees it: `READY=1` once the kubelet
/// API listens and the Node is registered with a status; then `WATCHDOG=1`
/// while every essential task still runs (one that ended, e.g. by a panic,
/// leaves the agent limping: better restarted by systemd); `STOPPING=1`
/// when `token` is cancelled.
pub(crate) async fn serve_until_cancelled(
    mut registered: tokio::sync::watch::Receiver<bool>,
    essential: &[(&'static str, tokio::task::JoinHandle<()>)],
    bind: &SocketAddr,
    node_name: &str,
    token: &CancellationToken,
) {
    let notifier = bosun_notify::Notifier::from_env();
    tokio::select! {
        () = token.cancelled() => {}
        true = registration(&mut registered) => {
            tracing::info!(node = %node_name, "node registered; agent ready");
            notifier.ready(&format!("node {node_name} registered, kubelet API on {bind}"));
            let healthy = || {
                let ended = essential.iter().find(|(_, task)| task.is_finished()).map(|(name, _)| *name);
                std::future::ready(ended.map_or(Ok(()), |name| Err(format!("{name} task ended"))))
            };
            notifier.watchdog(healthy, token).await;
        }
    }
    notifier.stopping();
}

/// Resolves to true once `registered` turns true (false if its sender is
/// gone). The borrow `wait_for` returns holds the channel's read lock: it
/// is dropped here, before the watchdog loop, or the node agent's next
/// send would block its runtime thread for good.
async fn registration(registered: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    registered.wait_for(|done| *done).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The node agent keeps heartbeating (sending on `registered`) after
    /// the agent is ready, i.e. inside the branch `registration` selected:
    /// those sends must not wait on a borrow the branch still holds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_after_registration_do_not_block() {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        tx.send_replace(true);
        let token = CancellationToken::new();
        tokio::select! {
            () = token.cancelled() => panic!("not cancelled"),
            true = registration(&mut rx) => {
                let heartbeats = tokio::task::spawn_blocking(move || {
                    for _ in 0..100 {
                        tx.send_if_modified(|done| !std::mem::replace(done, true));
                    }
                });
                tokio::time::timeout(Duration::from_secs(60), heartbeats)
                    .await
                    .expect("sends blocked behind the ready branch")
                    .expect("sender task");
            }
        }
    }

    #[tokio::test]
    async fn registration_is_false_when_the_node_agent_is_gone() {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        drop(tx);
        assert!(!registration(&mut rx).await);
    }
}
