//! Reads on etcd: linearizable range reads (etcd's default), lists in
//! pages at the revision of their first page.

use etcd_client::GetOptions;

use super::{is_compacted, is_future, Etcd, LIST_ATTEMPTS, PAGE};
use crate::store::{Error, KeyValue, ListPage, ListRange, Result, Revision};

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
        let from = self.key(prefix);
        let (kvs, revision) = self.read_pages(prefix, from, 0, keys_only).await?;
        Ok((kvs, revision))
    }

    /// Every key from etcd key `from` to the end of `prefix`, at `revision`
    /// (0: now), read in pages at one revision; returns the revision read.
    async fn read_pages(
        &self,
        prefix: &str,
        mut from: Vec<u8>,
        mut revision: Revision,
        keys_only: bool,
    ) -> Result<(Vec<KeyValue>, Revision)> {
        let (_, end) = self.range_of(prefix);
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

    /// One page of `range`: etcd reads at a past revision natively, and
    /// counts the keys of the range at it.
    pub(in crate::store) async fn list_page(&self, range: ListRange) -> Result<ListPage> {
        let prefix = range.prefix.as_str();
        let from = match &range.start {
            Some(start) if start.as_str() > prefix => self.key(start),
            _ => self.key(prefix),
        };
        let revision = range.revision.unwrap_or(0);
        if let Some(requested) = range.revision {
            let compacted = self.compacted_revision();
            if requested < compacted {
                return Err(Error::Compacted { requested, compacted });
            }
        }
        let read = match range.limit {
            None => self.read_pages(prefix, from, revision, false).await.map(|(kvs, revision)| ListPage {
                kvs,
                revision,
                remaining: 0,
            }),
            Some(limit) => self.one_page(prefix, from, revision, limit).await,
        };
        read.map_err(|e| match (e, range.revision) {
            (Error::Etcd { source, .. }, Some(requested)) if is_compacted(&source) => {
                Error::Compacted { requested, compacted: self.compacted_revision().max(requested.saturating_add(1)) }
            }
            (Error::Etcd { source, .. }, Some(requested)) if is_future(&source) => {
                Error::FutureRevision { requested, current: self.current_revision() }
            }
            (e, _) => e,
        })
    }

    /// One page of up to `limit` keys from `from`. A page whose keys were
    /// all skipped (not UTF-8, another client's) is read past, so a page
    /// is empty only at the end of the range.
    async fn one_page(&self, prefix: &str, mut from: Vec<u8>, revision: Revision, limit: usize) -> Result<ListPage> {
        let (_, end) = self.range_of(prefix);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut revision = revision;
        loop {
            let options = GetOptions::new().with_range(end.clone()).with_limit(limit).with_revision(revision);
            let response = self.range_raw("list", prefix, from, Some(options)).await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            let returned = i64::try_from(response.kvs().len()).unwrap_or(i64::MAX);
            let remaining = if response.more() { response.count().saturating_sub(returned).max(1) } else { 0 };
            let kvs: Vec<KeyValue> = response.kvs().iter().filter_map(|kv| self.store_kv(kv)).collect();
            match response.kvs().last() {
                Some(last) if kvs.is_empty() && response.more() => from = after_key(last.key()),
                _ => return Ok(ListPage { kvs, revision, remaining }),
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
