//! `bosun token create`: a bootstrap token for joining a node (TLS
//! bootstrapping, as `kubeadm token create`). It writes the token's Secret
//! (`kube-system/bootstrap-token-<id>`) through the API with an admin
//! kubeconfig and prints the token; with `--bootstrap-kubeconfig-out` it
//! also writes the kubeconfig a joining agent starts with (the admin
//! kubeconfig's server and CA, the token; 0600) and prints the join command.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bosun_control::auth::bootstrap_token;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;

/// `bosun token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token and print it.
    Create(CreateArgs),
}

/// Flags of `bosun token create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Admin kubeconfig (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// How long the token authenticates (`24h`, `90m`, `1h30m`; `0`: forever).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Extra groups of the token's user (each `system:bootstrappers:<name>`).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// What the token is for.
    #[arg(long, default_value = "created by bosun token create")]
    pub description: String,
    /// Also write a bootstrap kubeconfig for a joining agent here (0600).
    #[arg(long)]
    pub bootstrap_kubeconfig_out: Option<PathBuf>,
}

/// Runs `bosun token`.
pub async fn run(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create(args) => create(args).await,
    }
}

async fn create(args: CreateArgs) -> Result<()> {
    for g in &args.groups {
        if !g.starts_with(&format!("{}:", bootstrap_token::GROUP)) {
            bail!("--groups: {g:?} must start with {}:", bootstrap_token::GROUP);
        }
    }
    let kubeconfig = match &args.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?,
        None => kube::config::Kubeconfig::read().context("read the kubeconfig")?,
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig.clone(), &Default::default())
        .await
        .context("load the kubeconfig")?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("kube client")?;
    let (id, secret) = bootstrap_token::generate();
    let expiration = expiration_of(args.ttl, jiff::Timestamp::now())?;
    let groups: Vec<&str> = args.groups.iter().map(String::as_str).collect();
    let object = bootstrap_token::secret_for(&id, &secret, expiration.as_deref(), &groups, &args.description);
    let object: Secret = serde_json::from_value(object).context("token Secret")?;
    Api::<Secret>::namespaced(client, bootstrap_token::NAMESPACE)
        .create(&PostParams::default(), &object)
        .await
        .context("create the token Secret")?;
    let token = format!("{id}.{secret}");
    println!("{token}");
    if let Some(out) = &args.bootstrap_kubeconfig_out {
        let ca = ca_data(&kubeconfig)?;
        write_bootstrap_kubeconfig(out, server.trim_end_matches('/'), &ca, &token)?;
        eprintln!("bootstrap kubeconfig: {}", out.display());
        eprintln!(
            "join a node with: bosun agent --bootstrap-kubeconfig {} --kubeconfig /var/lib/bosun/agent/kubeconfig",
            out.display()
        );
    }
    Ok(())
}

/// The token's `expiration` (RFC 3339) for `ttl` from `now`; none for 0.
pub fn expiration_of(ttl: Duration, now: jiff::Timestamp) -> Result<Option<String>> {
    if ttl.is_zero() {
        return Ok(None);
    }
    let span = jiff::SignedDuration::try_from(ttl).context("--ttl too long")?;
    let at = now.checked_add(span).context("--ttl too long")?;
    Ok(Some(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// `24h`, `90m`, `45s`, `1h30m` (units h, m, s; at most a year), or `0`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    const MAX: u64 = 366 * 24 * 3600;
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (mut total, mut number) = (0u64, None::<u64>);
    for c in text.chars() {
        match c {
            '0'..='9' => {
                let digit = u64::from(c.to_digit(10).unwrap_or(0));
                let n = number.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(digit));
                number = Some(n.filter(|n| *n <= MAX).ok_or("too long")?);
            }
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                let n = number.take().ok_or_else(|| format!("{text:?}: a unit without a number"))?;
                total =
                    n.checked_mul(unit).and_then(|s| total.checked_add(s)).filter(|t| *t <= MAX).ok_or("too long")?;
            }
            _ => return Err(format!("{text:?}: want e.g. 24h, 90m, 1h30m or 0")),
        }
    }
    if number.is_some() || total == 0 {
        return Err(format!("{text:?}: want e.g. 24h, 90m, 1h30m or 0"));
    }
    Ok(Duration::from_secs(total))
}

/// The CA bundle (base64 PEM) of the kubeconfig's current cluster.
fn ca_data(kubeconfig: &kube::config::Kubeconfig) -> Result<String> {
    use base64::Engine as _;
    let context_name = kubeconfig.current_context.clone().unwrap_or_default();
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .context("the kubeconfig has no current context")?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .context("the kubeconfig's context names no cluster")?;
    match (&cluster.certificate_authority_data, &cluster.certificate_authority) {
        (Some(data), _) => Ok(data.clone()),
        (None, Some(file)) => Ok(base64::engine::general_purpose::STANDARD.encode(std::fs::read(file)?)),
        (None, None) => bail!("the kubeconfig has no cluster CA"),
    }
}

fn write_bootstrap_kubeconfig(path: &std::path::Path, server: &str, ca_data: &str, token: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bootstrap", "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": "tls-bootstrap-token-user", "user": {"token": token}}],
        "contexts": [{"name": "tls-bootstrap", "context": {"cluster": "bootstrap", "user": "tls-bootstrap-token-user"}}],
        "current-context": "tls-bootstrap",
    });
    let text = serde_yaml_ng::to_string(&doc)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    // `mode` applies only to a new file: an existing one is made private
    // before the token goes in.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units_and_bounds() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse_ttl("24h"), Ok(h(24)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_ttl("0"), Ok(Duration::ZERO));
        for bad in ["", "24", "h", "1d", "-1h", "99999999999999999999h", "9000h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expiration_is_rfc3339_after_now() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        assert_eq!(expiration_of(Duration::from_secs(3600), now).expect("ok").as_deref(), Some("2026-01-01T01:00:00Z"));
        assert_eq!(expiration_of(Duration::ZERO, now).expect("ok"), None);
    }
}
