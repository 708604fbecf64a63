//! Claims of Service addresses in the store, so that apiservers sharing one
//! etcd never give one ClusterIP or node port to two Services.
//!
//! Each apiserver's allocators (`clusterip`, `nodeports`) stay in memory
//! and pick a candidate; before a Service write is stored, every address it
//! newly takes is claimed with a create of a key of its own
//! (`/bosun/claims/clusterips/<ip>`, `/bosun/claims/nodeports/<port>`, value:
//! the Service's `namespace/name`). A create fails if the key exists, in
//! any apiserver, so exactly one claim of an address wins; the loser marks
//! the address used in its allocator and picks again. A claim is deleted
//! when its Service gives the address up (delete, type change) or its write
//! fails. The keys are outside `/registry/`: they are no API objects. A
//! claim left behind (a crash between claim and write, a failed release) is
//! released by [`super::claims_repair`].
//!
//! Must not: decide which address a Service gets (the allocators do).

use crate::store::{self, Store};

/// Where the claim keys live.
pub const PREFIX: &str = "/bosun/claims/";

/// One Service address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A ClusterIP.
    Ip(String),
    /// A node port (or health-check node port).
    Port(u16),
}

impl Address {
    /// The claim key of this address.
    pub fn key(&self) -> String {
        match self {
            Address::Ip(ip) => format!("{PREFIX}clusterips/{ip}"),
            Address::Port(port) => format!("{PREFIX}nodeports/{port}"),
        }
    }
}

impl Address {
    /// The address a claim key names (None: not a claim key).
    pub fn of_key(key: &str) -> Option<Address> {
        let rest = key.strip_prefix(PREFIX)?;
        if let Some(ip) = rest.strip_prefix("clusterips/") {
            return (!ip.is_empty()).then(|| Address::Ip(ip.to_owned()));
        }
        rest.strip_prefix("nodeports/")?.parse().ok().map(Address::Port)
    }
}

/// Every address claimed in the store, by any apiserver.
pub async fn claimed(store: &Store) -> store::Result<Vec<Address>> {
    let (kvs, _) = store.list(PREFIX).await?;
    Ok(kvs.iter().filter_map(|kv| Address::of_key(&kv.key)).collect())
}

/// The addresses of `ip` and `ports`, in that order.
pub fn addresses(ip: Option<&str>, ports: &[u16]) -> Vec<Address> {
    ip.map(|ip| Address::Ip(ip.to_owned())).into_iter().chain(ports.iter().map(|p| Address::Port(*p))).collect()
}

/// Claims every one of `addresses` for `owner` (`namespace/name`). If one
/// is claimed already, gives back the claims this call made and returns
/// that address; on a store error, gives them back and fails.
pub async fn claim(store: &Store, addresses: &[Address], owner: &str) -> store::Result<Option<Address>> {
    for (i, address) in addresses.iter().enumerate() {
        let outcome = store.create(&address.key(), owner.as_bytes().to_vec()).await;
        let lost = match outcome {
            Ok(_) => continue,
            Err(store::Error::AlreadyExists { .. }) => Ok(Some(address.clone())),
            Err(error) => Err(error),
        };
        release(store, addresses.get(..i).unwrap_or_default()).await;
        return lost;
    }
    Ok(None)
}

/// Claims the addresses of a stored Service that has them already (at
/// startup: Services written before claims existed, or by an apiserver
/// that died between its claim and its write). An existing claim is fine.
pub async fn ensure(store: &Store, addresses: &[Address], owner: &str) -> store::Result<()> {
    for address in addresses {
        match store.create(&address.key(), owner.as_bytes().to_vec()).await {
            Ok(_) | Err(store::Error::AlreadyExists { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Deletes the claims of `addresses` (best effort: a claim that stays
/// keeps its address out of use, it never hands it out twice).
pub async fn release(store: &Store, addresses: &[Address]) {
    for address in addresses {
        let key = address.key();
        match store.delete(&key, None).await {
            Ok(_) | Err(store::Error::NotFound { .. }) => {}
            Err(error) => tracing::warn!(%key, %error, "could not release an address claim; the address stays taken"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_keys_name_their_addresses() {
        for address in [Address::Ip("10.96.0.7".into()), Address::Port(30080)] {
            assert_eq!(Address::of_key(&address.key()), Some(address));
        }
        for other in
            ["/bosun/claims/nodeports/x", "/bosun/claims/clusterips/", "/registry/pods/a", "/bosun/claims/other/1"]
        {
            assert_eq!(Address::of_key(other), None, "{other}");
        }
    }

    #[tokio::test]
    async fn one_claim_of_an_address_wins_and_a_lost_claim_gives_back_the_rest() {
        let store = Store::open_in_memory().expect("store");
        let ip = Address::Ip("10.96.0.7".into());
        assert_eq!(claim(&store, &[ip.clone(), Address::Port(30001)], "default/a").await.expect("claim"), None);
        // Another apiserver (the same store) wants 30002 and the taken IP.
        let lost = claim(&store, &[Address::Port(30002), ip.clone()], "default/b").await.expect("claim");
        assert_eq!(lost, Some(ip.clone()));
        assert_eq!(store.get(&Address::Port(30002).key()).await.expect("get"), None, "given back");
        let owner = store.get(&ip.key()).await.expect("get").expect("claimed").value;
        assert_eq!(owner, b"default/a");
        release(&store, std::slice::from_ref(&ip)).await;
        assert_eq!(claim(&store, &[ip], "default/b").await.expect("claim"), None, "free again");
        ensure(&store, &[Address::Port(30001)], "default/a").await.expect("an existing claim is fine");
    }

    #[test]
    fn claim_keys_are_outside_the_registry() {
        assert_eq!(Address::Ip("10.96.0.7".into()).key(), "/bosun/claims/clusterips/10.96.0.7");
        assert_eq!(Address::Port(30001).key(), "/bosun/claims/nodeports/30001");
        assert_eq!(addresses(Some("10.96.0.7"), &[30001]), [Address::Ip("10.96.0.7".into()), Address::Port(30001)]);
    }
}
