//! `bosun control`: wiring of store, apiserver, scheduler and controllers.

/// Flags of `bosun control`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControlArgs {}

/// Runs the control plane until `token` is cancelled.
pub async fn run(_args: ControlArgs, _token: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    Ok(())
}
