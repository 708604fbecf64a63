//! The bosun node agent (`bosun agent`): kubelet + kube-proxy in one daemon.
//! (in progress)

/// Flags of `bosun agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {}

/// Runs the agent until `token` is cancelled.
pub async fn run(_args: AgentArgs, _token: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    Ok(())
}
