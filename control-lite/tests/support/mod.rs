//! Shared by control-lite's integration tests: an in-process apiserver on
//! 127.0.0.1:0 over a store in a given directory, with a kubeconfig for it
//! written there.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bosun_control::apiserver::{serve, ApiConfig, ApiState};
use bosun_control::store::Store;
use tokio_util::sync::CancellationToken;

pub struct Apiserver {
    pub store: Store,
    pub addr: SocketAddr,
    pub token: CancellationToken,
    pub server: tokio::task::JoinHandle<()>,
    pub state: Arc<ApiState>,
}

/// Opens (or reopens, for restart tests) `dir/store.db` and serves it.
pub async fn start_apiserver(dir: &Path) -> anyhow::Result<Apiserver> {
    start_apiserver_with(dir, ApiConfig::default()).await
}

/// Like [`start_apiserver`] with the given limits.
pub async fn start_apiserver_with(dir: &Path, config: ApiConfig) -> anyhow::Result<Apiserver> {
    let store = Store::open(&dir.join("store.db"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let token = CancellationToken::new();
    let state = Arc::new(
        ApiState::new(store.clone(), "10.96.0.0/16".parse()?, addr.to_string(), token.clone()).with_config(config),
    );
    let server_token = token.clone();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        let state = server_state;
        if let Err(e) = serve(listener, state, server_token).await {
            eprintln!("apiserver: {e}");
        }
    });
    bosun_control::apiserver::kubeconfig::write_kubeconfig(&dir.join("kubeconfig"), &format!("http://{addr}"))?;
    Ok(Apiserver { store, addr, token, server, state })
}
