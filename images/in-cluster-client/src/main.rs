//! `in-cluster-client`: a test fixture run inside a pod, so the tests see a
//! real in-cluster client (kube-rs `Client::try_default()`: the
//! `KUBERNETES_SERVICE_HOST`/`_PORT` environment the agent sets from the
//! `kubernetes` Service, and the projected ServiceAccount token, `ca.crt`
//! and namespace) reach the apiserver and get exactly what RBAC grants.
//!
//! It first prints `server: <host>:<port>` (the in-cluster environment the
//! client dials) and `namespace: <ns>`. Each round lists pods, then secrets, in the pod's namespace and prints
//! one line per attempt: `pods: ok 3`, `secrets: forbidden`,
//! `secrets: status 401 Unauthorized` or `pods: error <transport error>`.
//! Rounds repeat (one second apart, at most `ROUNDS`, default 60) until
//! both lists got an answer from the apiserver, so a Service whose
//! endpoints appear a moment late is retried, not reported as broken; then
//! the process exits 0 (1 if the apiserver never answered both).
//!
//! Built static (`crt-static`) by `make pause`, like the pause binary.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use kube::Client;

/// Rounds when no argument says otherwise.
const DEFAULT_ROUNDS: u32 = 60;
/// Pause between rounds.
const ROUND_GAP: Duration = Duration::from_secs(1);

/// What one list attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 200 with this many items.
    Ok(usize),
    /// 403 from the authorizer.
    Forbidden,
    /// Another HTTP status from the apiserver.
    Status(u16, String),
    /// No answer from the apiserver (connect, TLS, timeout).
    Unreachable(String),
}

impl Outcome {
    /// Whether the apiserver answered (any status).
    fn answered(&self) -> bool {
        !matches!(self, Outcome::Unreachable(_))
    }

    /// The printed form after `<resource>: `.
    fn render(&self) -> String {
        match self {
            Outcome::Ok(n) => format!("ok {n}"),
            Outcome::Forbidden => "forbidden".into(),
            Outcome::Status(code, reason) => format!("status {code} {reason}"),
            Outcome::Unreachable(message) => format!("error {message}"),
        }
    }
}

/// Classifies a list result.
fn outcome<T>(result: Result<kube::core::ObjectList<T>, kube::Error>) -> Outcome
where
    T: Clone,
{
    match result {
        Ok(list) => Outcome::Ok(list.items.len()),
        Err(kube::Error::Api(status)) if status.code == 403 => Outcome::Forbidden,
        Err(kube::Error::Api(status)) => Outcome::Status(status.code, status.reason.clone()),
        Err(error) => Outcome::Unreachable(error.to_string()),
    }
}

/// `ROUNDS` from the command line (the only argument).
fn rounds(mut args: impl Iterator<Item = String>) -> Result<u32, String> {
    match args.next() {
        None => Ok(DEFAULT_ROUNDS),
        Some(n) => n.parse::<u32>().map_err(|e| format!("rounds {n:?}: {e}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds = match rounds(std::env::args().skip(1)) {
        Ok(n) => n,
        Err(message) => {
            eprintln!("in-cluster-client: {message}");
            std::process::exit(2);
        }
    };
    let client = match Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            println!("config: error {error}");
            std::process::exit(1);
        }
    };
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    println!("server: {}:{}", env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT"));
    println!("namespace: {}", client.default_namespace());
    for round in 1..=rounds {
        let pods = outcome(Api::<Pod>::default_namespaced(client.clone()).list(&ListParams::default()).await);
        println!("pods: {}", pods.render());
        let secrets = outcome(Api::<Secret>::default_namespaced(client.clone()).list(&ListParams::default()).await);
        println!("secrets: {}", secrets.render());
        if pods.answered() && secrets.answered() {
            return;
        }
        if round < rounds {
            tokio::time::sleep(ROUND_GAP).await;
        }
    }
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_render_one_word_verdicts() {
        assert_eq!(Outcome::Ok(3).render(), "ok 3");
        assert_eq!(Outcome::Forbidden.render(), "forbidden");
        assert_eq!(Outcome::Status(401, "Unauthorized".into()).render(), "status 401 Unauthorized");
        assert!(!Outcome::Unreachable("refused".into()).answered());
        assert!(Outcome::Forbidden.answered());
    }

    #[test]
    fn rounds_default_and_parse() {
        assert_eq!(rounds(std::iter::empty()), Ok(DEFAULT_ROUNDS));
        assert_eq!(rounds(["3".to_string()].into_iter()), Ok(3));
        assert!(rounds(["x".to_string()].into_iter()).is_err());
    }
}
