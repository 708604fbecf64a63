//! Reads on etcd: linearizable range reads (etcd's default), lists in
//! pages at the revision of their first page.

use etcd_client::GetOptions;

use super::{is_compacted, Etcd, LIST_ATTEMPTS, PAGE};
use crate::store::{Error, KeyValue, Result, Revision};

impl Etcd {
    pub(in crate::store) async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let response = self.range("get", key, None).await?;
        Ok(response.kvs().first().and_then(|kv| self.store_kv(kv)))
    }

    pub(in crate::store) async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        self.list_with(prefix, false).await
    }

    /// Every key under `prefix` (values too unless `keys_only`), read in
    /// pages at the first page's revision. A compaction between two pages
    /// makes that revision unreadable: the list starts again (a few times).
    pub(super) async fn list_with(&self, prefix: &str, keys_only: bool) -> Result<(Vec<KeyValue>, Revision)> {
        let mut attempt = 1;
        loop {
            match self.list_pages(prefix, keys_only).await {
                Err(Error::Etcd { source, .. }) if is_compacted(&source) && attempt < LIST_ATTEMPTS => attempt += 1,
                listed => return listed,
            }
        }
    }

    /// The next page starts after the raw last key of the previous page, not
    /// after the last key kept: keys the store skips (not UTF-8, written by
    /// another etcd client) must not make a page read again.
    async fn list_pages(&self, prefix: &str, keys_only: bool) -> Result<(Vec<KeyValue>, Revision)> {
        let (first, end) = self.range_of(prefix);
        let mut from = self.key(&first);
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE).with_revision(revision);
            if keys_only {
                options = options.with_keys_only();
            }
            let response = self.range_raw("list", prefix, from, Some(options)).await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            out.extend(response.kvs().iter().filter_map(|kv| self.store_kv(kv)));
            match response.kvs().last() {
                Some(last) if response.more() => from = after_key(last.key()),
                _ => return Ok((out, revision)),
            }
        }
    }
}

/// The least etcd key above `key`.
fn after_key(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len().saturating_add(1));
    next.extend_from_slice(key);
    next.push(0);
    next
}
