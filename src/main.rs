//! `bosun`: the one binary. A thin CLI that dispatches to the crates:
//! `bosun agent` (the node agent), `bosun control` (control-lite), `bosun up` /
//! `bosun down` (a one-node cluster on this machine), `bosun images` (build,
//! push and import bosun's own images), `bosun install` (the binary, systemd
//! units and default config in place), `bosun token create` (a bootstrap
//! token for joining a node).

mod down;
mod images;
mod install;
mod supervise;
mod token;
mod up;
mod up_state;
mod up_steps;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// jemalloc instead of glibc malloc: glibc's per-thread arenas roughly doubled
/// the control plane's RSS at scale (see `control-lite/benches/memory.rs`);
/// jemalloc's background threads return freed pages to the kernel.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start (`_RJEM_MALLOC_CONF` in the
/// environment still overrides them). One arena instead of four per CPU,
/// small thread caches, and freed pages returned within a second: the
/// agent's heap at 110 pods went from 10.9 to 6.8 MiB with these
/// (`benches/pod_start.rs`), at no cost in pod start time; nothing in bosun
/// allocates hard enough from many threads to need more arenas.
#[allow(unsafe_code)] // jemalloc finds its options under this symbol name.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 86] =
    b"background_thread:true,narenas:1,tcache_max:1024,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(name = "bosun", version, about = "Kubernetes worker-node agent with a bundled thin control plane")]
struct Cli {
    /// How log lines are written to stderr: `text` (for people) or `json`
    /// (one object per line, with the event's fields, for log collectors).
    /// `bosun up` passes it on to the daemons it starts.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The flag's value, as `bosun up` passes it on.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Logging for the whole process, set up once here: `RUST_LOG` filters
/// (default: info, quieter client libraries), lines go to stderr.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube=warn,tower=warn,hyper=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        // An event's fields sit at the top of its object, next to
        // timestamp, level and target.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

// Parsed once at start; the agent's many kubelet flags make its variant big.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the node agent (kubelet + proxy) against an apiserver.
    Agent(Box<bosun_agent::AgentArgs>),
    /// Run control-lite: apiserver, store, scheduler and controllers.
    Control(bosun_control::ControlArgs),
    /// Bring up a one-node cluster: our containerd, registry, control-lite and agent.
    Up(up::UpArgs),
    /// Stop the cluster `bosun up` runs and remove what it created.
    Down(up::DownArgs),
    /// Build, push or import bosun's own images.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Install this binary, the systemd units and a default config (below --root).
    Install(install::InstallArgs),
    /// Bootstrap tokens for joining nodes (TLS bootstrapping).
    #[command(subcommand)]
    Token(token::TokenCommand),
}

/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Runs the command; a fatal error is written in the log format asked for
/// (a JSON line for log collectors, or anyhow's report for people) and the
/// process exits 1.
#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let format = cli.log_format;
    init_logging(format);
    if let Err(error) = run(cli).await {
        match format {
            LogFormat::Json => tracing::error!(error = format!("{error:#}"), "fatal error; exiting"),
            LogFormat::Text => eprintln!("Error: {error:?}"),
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Agent(args) => bosun_agent::run(*args, shutdown_token()).await,
        Command::Control(args) => bosun_control::run(args, shutdown_token()).await,
        Command::Up(args) => up::up(args, cli.log_format, shutdown_token()).await,
        Command::Down(args) => down::down(args).await,
        Command::Images(command) => images::run(command),
        Command::Install(args) => install::run(args),
        Command::Token(command) => token::run(command).await,
    }
}
