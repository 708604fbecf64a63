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
        Ok(_) = registered.wait_for(|done| *done) => {
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
