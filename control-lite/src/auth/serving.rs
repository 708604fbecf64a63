//! What `bosun control` derives from the cluster CA at start: the serving
//! certificate's names, the apiserver's TLS and authenticators, and the
//! identities it hands out (admin, nodes, its own loopback clients).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use super::authn::Authenticator;
use super::ca::{Ca, Credential};
use super::sa_token::key::SigningKey;
use super::tokens::TokenTable;
use super::user::MASTERS;
use crate::apiserver::http::Security;

/// The admin kubeconfig's user (in `system:masters`).
pub const ADMIN_USER: &str = "bosun-admin";
/// The user of control's own scheduler and controllers (in `system:masters`).
pub const LOOPBACK_USER: &str = "system:kube-controller-manager";
/// The user the apiserver calls kubelets as (bound to `system:kubelet-api-admin`).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// The group of nodes.
pub const NODES_GROUP: &str = "system:nodes";

/// Setting up the apiserver's security failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ca(#[from] super::ca::Error),
    #[error(transparent)]
    Tls(#[from] super::tls::Error),
    #[error(transparent)]
    Tokens(#[from] super::tokens::Error),
}

/// DNS names of the serving certificate.
pub const SERVING_DNS: [&str; 5] =
    ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"];

/// IP addresses of the serving certificate: loopback, the bind address
/// (unless it is a wildcard), the advertise address (what pods reach
/// through the `kubernetes` Service) and that Service's ClusterIP.
pub fn serving_ips(listen: SocketAddr, advertise: Option<IpAddr>, kubernetes_service: Ipv4Addr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST), kubernetes_service.into()];
    for ip in [Some(listen.ip()), advertise].into_iter().flatten() {
        if !ip.is_unspecified() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// The URL clients use for an apiserver bound to `addr` (a wildcard bind
/// is reached on loopback).
pub fn server_url(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("https://127.0.0.1:{}", addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => format!("https://[::1]:{}", addr.port()),
        _ => format!("https://{addr}"),
    }
}

/// The apiserver's TLS (a fresh serving certificate from `ca` for
/// [`serving_ips`]) and authenticators (client certificates, the tokens of `token_file`, and
/// ServiceAccount tokens signed by `sa_key`).
pub fn security(
    ca: &Ca,
    listen: SocketAddr,
    advertise: Option<IpAddr>,
    kubernetes_service: Ipv4Addr,
    token_file: Option<&Path>,
    sa_key: Arc<SigningKey>,
) -> Result<Security, Error> {
    let serving = ca.issue_server(&SERVING_DNS, &serving_ips(listen, advertise, kubernetes_service))?;
    let tls = super::tls::server_config(ca.cert_pem(), &serving)?;
    let tokens = token_file.map(TokenTable::load).transpose()?.unwrap_or_default();
    Ok(Security { tls, authn: Authenticator::new(tokens).with_service_account_key(sa_key) })
}

/// The admin's client certificate.
pub fn admin(ca: &Ca) -> Result<Credential, super::ca::Error> {
    ca.issue_client(ADMIN_USER, MASTERS)
}

/// Control's own scheduler and controllers' client certificate.
pub fn loopback(ca: &Ca) -> Result<Credential, super::ca::Error> {
    ca.issue_client(LOOPBACK_USER, MASTERS)
}

/// The apiserver's client certificate for kubelets (no group: the
/// bootstrap binding `system:kube-apiserver-kubelet-client` grants it
/// `system:kubelet-api-admin`).
pub fn kubelet_client(ca: &Ca) -> Result<Credential, super::ca::Error> {
    ca.issue_client(KUBELET_CLIENT_USER, "")
}

/// Node `name`'s client certificate: `system:node:<name>` in `system:nodes`,
/// valid for `lifetime` (`--cluster-signing-duration`: the agent renews it
/// through a CertificateSigningRequest as it would a bootstrapped one).
pub fn node(ca: &Ca, name: &str, lifetime: std::time::Duration) -> Result<Credential, super::ca::Error> {
    ca.issue_client_for(&format!("system:node:{name}"), NODES_GROUP, lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_names_cover_loopback_the_bind_and_advertise_addresses_and_the_kubernetes_service() {
        let svc = Ipv4Addr::new(10, 96, 0, 1);
        let ips = serving_ips("192.168.1.5:6443".parse().expect("addr"), None, svc);
        for want in ["127.0.0.1", "::1", "10.96.0.1", "192.168.1.5"] {
            assert!(ips.contains(&want.parse().expect("ip")), "{want} in {ips:?}");
        }
        let advertised = serving_ips("127.0.0.1:6443".parse().expect("addr"), "192.0.2.2".parse().ok(), svc);
        assert_eq!(advertised.len(), 4, "{advertised:?}");
        assert!(advertised.contains(&"192.0.2.2".parse().expect("ip")));
        assert_eq!(serving_ips("0.0.0.0:6443".parse().expect("addr"), None, svc).len(), 3, "no wildcard SAN");
        assert_eq!(serving_ips("127.0.0.1:6443".parse().expect("addr"), None, svc).len(), 3, "no duplicate");
        let same = serving_ips("192.0.2.2:6443".parse().expect("addr"), "192.0.2.2".parse().ok(), svc);
        assert_eq!(same.len(), 4, "listen = advertise once");
    }

    #[test]
    fn clients_reach_a_wildcard_bind_on_loopback() {
        assert_eq!(server_url("0.0.0.0:6443".parse().expect("addr")), "https://127.0.0.1:6443");
        assert_eq!(server_url("10.0.0.2:6443".parse().expect("addr")), "https://10.0.0.2:6443");
    }
}
