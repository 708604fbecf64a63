//! Repair of leaked address claims (upstream's ClusterIP and node port
//! repair controllers, for [`claims`]).
//!
//! A claim is written before its Service. An apiserver that dies between
//! the two, or whose best-effort release failed, leaves a claim no stored
//! Service holds, and its address would stay out of use for good. Every
//! [`INTERVAL`] each apiserver lists the claims, then the Services, and
//! calls a claim *leaked* when no Service holds its address. A write in
//! flight also looks like that for a moment, so a claim is released only
//! after it was seen leaked, unchanged (same store revision), in
//! [`RUNS_BEFORE_RELEASE`] consecutive runs, and by a delete conditioned on
//! that revision: a claim made again meanwhile is never touched. Several
//! apiservers repairing at once is harmless (the loser's delete conflicts).
//!
//! The other direction is repaired too: an address a stored Service holds
//! without a claim is claimed again for it. A run that meets a Service it
//! cannot decode releases nothing.
//!
//! [`plan`] decides (pure); [`run`] lists, applies and keeps the suspects.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use serde_json::Value;

use super::claims::{self, Address, PREFIX};
use super::nodeports;
use super::objects::{decode, meta_str};
use super::registry::{by_kind, Kind};
use super::ApiState;
use crate::store::{self, Revision};

/// Time between two repair runs (upstream: 3 minutes).
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Consecutive runs a claim must be seen leaked before it is released.
pub const RUNS_BEFORE_RELEASE: u32 = 3;

/// Claims seen leaked so far: the claim's revision and in how many runs.
pub type Suspects = HashMap<Address, (Revision, u32)>;

/// The claims to release now, and the suspects to keep for the next run,
/// from the claims in the store (address, revision) and the addresses the
/// stored Services hold.
pub fn plan(
    claims: &[(Address, Revision)],
    held: &HashSet<Address>,
    before: &Suspects,
) -> (Vec<(Address, Revision)>, Suspects) {
    let mut release = Vec::new();
    let mut suspects = Suspects::new();
    for (address, revision) in claims {
        if held.contains(address) {
            continue;
        }
        let runs = match before.get(address) {
            Some((seen, runs)) if seen == revision => runs.saturating_add(1),
            _ => 1,
        };
        if runs >= RUNS_BEFORE_RELEASE {
            release.push((address.clone(), *revision));
        } else {
            suspects.insert(address.clone(), (*revision, runs));
        }
    }
    (release, suspects)
}

/// Repairs every [`INTERVAL`] until `token` is cancelled.
pub async fn run(state: std::sync::Arc<ApiState>, token: CancellationToken) {
    let mut suspects = Suspects::new();
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
        match repair(&state, &suspects).await {
            Ok(next) => suspects = next,
            Err(error) => tracing::warn!(%error, "repairing service address claims"),
        }
    }
}

/// One run: lists the claims, then the Services (so a Service written
/// before the claims were read is seen), releases what [`plan`] says.
/// Returns the suspects for the next run.
pub async fn repair(state: &ApiState, suspects: &Suspects) -> store::Result<Suspects> {
    let (claim_kvs, _) = state.store.list(PREFIX).await?;
    let claims: Vec<(Address, Revision)> =
        claim_kvs.iter().filter_map(|kv| Address::of_key(&kv.key).map(|a| (a, kv.mod_revision))).collect();
    let (services, _) = state.store.list(&by_kind(Kind::Service).prefix(None)).await?;
    let claimed: HashSet<&Address> = claims.iter().map(|(a, _)| a).collect();
    let mut held = HashSet::new();
    let mut unclaimed = Vec::new();
    for kv in &services {
        let Ok(svc) = decode(kv) else {
            // What an undecodable Service holds is unknown: release nothing
            // this run (the suspects are kept as they were).
            return Ok(suspects.clone());
        };
        // Every address a Service names is held, inside this apiserver's
        // ranges or not (another apiserver may have other ranges).
        let ip =
            svc.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        held.extend(claims::addresses(ip, &nodeports::node_ports_of(&svc)));
        let owner = format!(
            "{}/{}",
            meta_str(&svc, "namespace").unwrap_or_default(),
            meta_str(&svc, "name").unwrap_or_default()
        );
        let missing: Vec<Address> =
            super::stored_addresses(state, &svc).into_iter().filter(|a| !claimed.contains(a)).collect();
        if !missing.is_empty() {
            unclaimed.push((missing, owner));
        }
    }
    // The other direction: a stored Service's address with no claim (an
    // ambiguous write, a release that raced) is claimed again.
    for (addresses, owner) in &unclaimed {
        claims::ensure(&state.store, addresses, owner).await?;
    }
    let (release, next) = plan(&claims, &held, suspects);
    for (address, revision) in release {
        let key = address.key();
        match state.store.delete(&key, Some(revision)).await {
            Ok(_) => {
                tracing::info!(%key, "released a leaked service address claim");
                match &address {
                    Address::Ip(ip) => state.ips.release(ip),
                    Address::Port(port) => state.node_ports.release(&[*port]),
                }
            }
            Err(store::Error::NotFound { .. } | store::Error::Conflict { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::apiserver::{bootstrap, crud, objects::WriteOptions};
    use crate::store::Store;

    #[test]
    fn a_claim_is_released_after_three_runs_unchanged_and_unheld() {
        let ip = Address::Ip("10.96.0.9".into());
        let port = Address::Port(30001);
        let held: HashSet<Address> = [port.clone()].into();
        let claims = vec![(ip.clone(), 7), (port.clone(), 8)];
        let (release, s1) = plan(&claims, &held, &Suspects::new());
        assert!(release.is_empty());
        assert_eq!(s1, Suspects::from([(ip.clone(), (7, 1))]), "a held claim is no suspect");
        let (release, s2) = plan(&claims, &held, &s1);
        assert!(release.is_empty());
        let (release, s3) = plan(&claims, &held, &s2);
        assert_eq!(release, [(ip.clone(), 7)]);
        assert!(s3.is_empty());
        // Claimed again meanwhile (a new revision): counting starts over.
        let (release, again) = plan(&[(ip.clone(), 12)], &held, &s2);
        assert!(release.is_empty());
        assert_eq!(again[&ip], (12, 1));
        // Held again: no longer a suspect.
        let (release, none) = plan(&[(ip.clone(), 7)], &[ip].into(), &s2);
        assert!(release.is_empty() && none.is_empty());
    }

    #[tokio::test]
    async fn a_claim_left_by_a_crash_is_released_and_its_address_serves_again() {
        let store = Store::open_in_memory().expect("store");
        let token = CancellationToken::new();
        let state = Arc::new(ApiState::new(store.clone(), "10.96.0.0/16".parse().expect("cidr"), "x".into(), token));
        bootstrap(&state, 6443).await.expect("bootstrap");
        let svc = |name: &str, ip: &str| json!({"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}});
        let info = by_kind(Kind::Service);
        crud::create(&state, info, Some("default"), svc("kept", "10.96.0.20"), WriteOptions::default())
            .await
            .expect("create");
        // A claim lost (an ambiguous write, a raced release): claimed again.
        let kept = Address::Ip("10.96.0.20".into());
        store.delete(&kept.key(), None).await.expect("drop the claim");
        // As an apiserver that died between its claim and its Service write.
        let leaked = Address::Ip("10.96.0.21".into());
        store.create(&leaked.key(), b"default/lost".to_vec()).await.expect("claim");

        let mut suspects = Suspects::new();
        for run in 1..=RUNS_BEFORE_RELEASE {
            assert!(store.get(&leaked.key()).await.expect("get").is_some(), "kept until run {run}");
            suspects = repair(&state, &suspects).await.expect("repair");
        }
        assert!(store.get(&leaked.key()).await.expect("get").is_none(), "released");
        let owner = store.get(&kept.key()).await.expect("get").expect("still claimed").value;
        assert_eq!(owner, b"default/kept");
        crud::create(&state, info, Some("default"), svc("reuse", "10.96.0.21"), WriteOptions::default())
            .await
            .expect("the leaked address can be given again");
    }
}
