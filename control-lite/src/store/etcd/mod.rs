//! The etcd v3 backend: the same contract as the SQLite backend, kept in
//! an etcd cluster through the `etcd-client` crate.
//!
//! What maps to what:
//! * A store key is the etcd key `key_prefix + key` (the apiserver's
//!   `/registry/...` keys; `key_prefix` is empty by default).
//! * The store revision is etcd's revision: every write is one etcd txn, so
//!   revisions are global and gapless across keys, as in SQLite (but an
//!   empty etcd starts at revision 1, and writes by other etcd clients take
//!   revisions too).
//! * `create` = txn(create_revision == 0 -> put) else `AlreadyExists`;
//!   `update`/`delete` = txn(key exists [and mod_revision == expected] ->
//!   put / delete with prev kv) else a get in the same txn tells `NotFound`
//!   from `Conflict`. One round trip each.
//! * `get`/`list` are linearizable range reads (etcd's default); a list is
//!   read in pages at the revision of its first page, which is the list's
//!   revision.
//! * `watch` is an etcd watch from `after + 1` with prev kv ([`watch`]).
//! * `compact` is a physical etcd compaction.
//! * `current_revision` is the newest header revision any response carried;
//!   `compacted_revision` the highest of what this process compacted and
//!   what etcd reported in watch responses (a watch from a compacted
//!   revision is cancelled with etcd's compacted revision; etcd reports it
//!   nowhere else), so a fresh process reports 0 until a watch meets a
//!   compaction.
//! * Object counts: a background task lists the keys under `/registry/`
//!   (keys only) and follows them with a watch ([`counts`]), so writes of
//!   other apiservers are counted too.
//!
//! Every call has a timeout (`request_timeout`); a call that failed to
//! reach a member (connect error: the request was not sent) is made again
//! within it, so a dead member of a cluster costs no failed requests. Reads
//! are also made again after a leader election failed them; writes are not
//! (one that timed out may have been applied). A
//! timeout or transport error is `Error::Etcd`/`Error::EtcdTimeout`, which
//! the apiserver answers with 503. Values above what one etcd request takes (`max_request_bytes`,
//! etcd's default 1.5 MiB, less the key and txn overhead) are refused with
//! `Error::ValueTooLarge` before they are sent.

mod counts;
mod reads;
mod watch;
mod writes;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, CompactionOptions, ConnectOptions, GetOptions, KvClient, Txn};
use tokio_util::sync::CancellationToken;

use super::counts::ObjectCounts;
use super::{Error, KeyValue, Options, Result, Revision, Revisions, WatchReceiver};

/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 3 * 512 * 1024;
/// Room left in a request for the txn's framing besides key and value.
const TXN_OVERHEAD: usize = 1024;
/// Keys read per page of a list.
const PAGE: i64 = 256;
/// Pause before calling again after a member could not be reached.
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// Lists started again after a compaction overtook them.
const LIST_ATTEMPTS: usize = 3;
/// Largest response the client decodes: a page of large objects.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// How to reach the etcd cluster.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the members (`http://host:2379`).
    pub endpoints: Vec<String>,
    /// Prepended to every key (e.g. to share a cluster); empty by default.
    pub key_prefix: String,
    /// Longest wait for one etcd call.
    pub request_timeout: Duration,
    /// Longest wait to open a connection to a member.
    pub connect_timeout: Duration,
    /// The cluster's `--max-request-bytes`.
    pub max_request_bytes: usize,
}

impl EtcdOptions {
    /// Defaults for `endpoints`: no prefix, 10 s calls, 5 s connects, 1.5 MiB requests.
    pub fn new(endpoints: Vec<String>) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            key_prefix: String::new(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// The etcd backend's handle (cheap to clone).
#[derive(Clone)]
pub(super) struct Etcd {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    options: EtcdOptions,
    watch_deadline: Duration,
    watch_max_backlog: usize,
    revisions: Revisions,
    counts: ObjectCounts,
    /// Cancelled by `close`: ends watches and the counting task.
    closed: CancellationToken,
}

impl Etcd {
    pub(super) async fn connect(options: EtcdOptions, store: Options) -> Result<Etcd> {
        let endpoints = options.endpoints.join(",");
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), options.request_timeout)
            // Watches on a member cut off from the quorum are cancelled, not left silent.
            .with_require_leader(true);
        let client = timed(options.request_timeout, "connect", "", Client::connect(&options.endpoints, Some(connect)))
            .await
            .map_err(|source| Error::EtcdConnect { endpoints: endpoints.clone(), source: Box::new(source) })?;
        let etcd = Etcd {
            inner: Arc::new(Inner {
                client,
                options,
                watch_deadline: store.watch_deadline,
                watch_max_backlog: store.watch_max_backlog,
                revisions: Revisions::default(),
                counts: ObjectCounts::default(),
                closed: CancellationToken::new(),
            }),
        };
        // A first read: the cluster answers, and the current revision is known.
        let (from, end) = etcd.range_of("");
        let probe = GetOptions::new().with_range(end).with_count_only();
        etcd.range("connect", &from, Some(probe))
            .await
            .map_err(|source| Error::EtcdConnect { endpoints, source: Box::new(source) })?;
        counts::spawn(etcd.clone()).await;
        Ok(etcd)
    }

    fn kv(&self) -> KvClient {
        self.inner.client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// The etcd key of store key `key`.
    fn key(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.inner.options.key_prefix.len().saturating_add(key.len()));
        out.extend_from_slice(self.inner.options.key_prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
        if out.is_empty() {
            // etcd has no empty key; "\0" is where "every key" starts.
            out.push(0);
        }
        out
    }

    /// The etcd key range of every store key starting with `prefix`: its
    /// first key and its end (all keys for an empty prefix).
    fn range_of(&self, prefix: &str) -> (String, Vec<u8>) {
        let raw = format!("{}{prefix}", self.inner.options.key_prefix);
        (prefix.to_owned(), prefix_end(raw.as_bytes()))
    }

    /// The store form of an etcd key-value (`None` outside the prefix or not UTF-8).
    fn store_kv(&self, kv: &etcd_client::KeyValue) -> Option<KeyValue> {
        let key = std::str::from_utf8(kv.key()).ok()?.strip_prefix(self.inner.options.key_prefix.as_str())?;
        Some(KeyValue {
            key: key.to_owned(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// Runs one etcd call under the request timeout.
    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        if self.inner.closed.is_cancelled() {
            return Err(Error::Closed);
        }
        timed(self.inner.options.request_timeout, op, key, call).await
    }

    /// Runs the etcd call `make` makes under the request timeout, making it
    /// again while it fails without having reached etcd (a connect error: a
    /// dead member the client still dials), so another member serves it.
    /// Safe for writes too: a request that was never sent did not happen.
    async fn call_retrying<T, F, Fut>(&self, op: &'static str, key: &str, make: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_retrying_if(op, key, never_sent, make).await
    }

    /// [`Etcd::call_retrying`], making the call again while `retry` says
    /// its failure allows.
    async fn call_retrying_if<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        retry: fn(&etcd_client::Error) -> bool,
        mut make: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.inner.options.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let attempts = async {
            loop {
                match make().await {
                    Err(error) if retry(&error) && tokio::time::Instant::now() + RETRY_DELAY < deadline => {
                        tokio::time::sleep(RETRY_DELAY).await;
                    }
                    done => return done,
                }
            }
        };
        self.call(op, key, attempts).await
    }

    fn observe(&self, header: Option<&etcd_client::ResponseHeader>) -> Revision {
        let revision = header.map_or(0, |h| h.revision());
        self.inner.revisions.raise_current(revision);
        revision
    }

    async fn range(
        &self,
        op: &'static str,
        key: &str,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse> {
        self.range_raw(op, key, self.key(key), options).await
    }

    /// A range read from the etcd key `k` (`label` names it in errors). A
    /// read has no effect, so it is made again after a leader change too.
    async fn range_raw(
        &self,
        op: &'static str,
        label: &str,
        k: Vec<u8>,
        options: Option<GetOptions>,
    ) -> Result<etcd_client::GetResponse> {
        let response = self
            .call_retrying_if(
                op,
                label,
                |e| never_sent(e) || leader_lost(e),
                || {
                    let (mut kv, k, options) = (self.kv(), k.clone(), options.clone());
                    async move { kv.get(k, options).await }
                },
            )
            .await?;
        self.observe(response.header());
        Ok(response)
    }

    async fn txn(&self, op: &'static str, key: &str, txn: Txn) -> Result<etcd_client::TxnResponse> {
        let response = self
            .call_retrying(op, key, || {
                let (mut kv, txn) = (self.kv(), txn.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        self.observe(response.header());
        Ok(response)
    }

    pub(super) fn queue_is_full(&self) -> bool {
        false
    }

    pub(super) fn object_counts(&self) -> ObjectCounts {
        self.inner.counts.clone()
    }

    pub(super) fn current_revision(&self) -> Revision {
        self.inner.revisions.current()
    }

    pub(super) fn compacted_revision(&self) -> Revision {
        self.inner.revisions.compacted()
    }

    pub(super) async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchReceiver> {
        self.watch_with_deadline(prefix, after, self.inner.watch_deadline).await
    }

    pub(super) async fn watch_with_deadline(
        &self,
        prefix: &str,
        after: Revision,
        deadline: Duration,
    ) -> Result<WatchReceiver> {
        watch::start(self, prefix, after, deadline).await
    }

    pub(super) async fn compact(&self, keep_revisions_after: Revision) -> Result<()> {
        let target = keep_revisions_after.min(self.current_revision());
        if target <= self.compacted_revision() {
            return Ok(());
        }
        let options = Some(CompactionOptions::new().with_physical());
        match self
            .call_retrying("compact", "", || {
                let (mut kv, options) = (self.kv(), options.clone());
                async move { kv.compact(target, options).await }
            })
            .await
        {
            Ok(response) => {
                self.observe(response.header());
            }
            // Someone compacted this far already: the goal is reached.
            Err(Error::Etcd { source, .. }) if is_compacted(&source) => {}
            Err(error) => return Err(error),
        }
        self.inner.revisions.raise_compacted(target);
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.inner.closed.cancel();
    }
}

/// Runs `call` within `timeout`, mapping its failure to a store error.
async fn timed<T>(
    timeout: Duration,
    op: &'static str,
    key: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(Error::Etcd { op, key: key.to_owned(), source: Box::new(source) }),
        Err(_) => Err(Error::EtcdTimeout { op, key: key.to_owned(), after: timeout }),
    }
}

/// The end of the key range of every key starting with `prefix` (etcd's
/// convention: `"\0"` for the empty prefix, meaning all keys).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last.saturating_add(1));
            return end;
        }
    }
    vec![0]
}

/// etcd's "required revision has been compacted".
fn is_compacted(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains("has been compacted"))
}

/// Whether `error` is a failure to reach a member: the request was not sent.
fn never_sent(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains("connect error"))
}

/// A failure of a request during a leader election ("no leader", "leader
/// changed", "request timed out"): a read may be made again; a write may
/// have been applied.
fn leader_lost(error: &etcd_client::Error) -> bool {
    const MESSAGES: [&str; 3] =
        ["etcdserver: no leader", "etcdserver: leader changed", "etcdserver: request timed out"];
    matches!(error, etcd_client::Error::GRpcStatus(status) if MESSAGES.iter().any(|m| status.message().contains(m)))
}

/// etcd's "required revision is a future revision".
fn is_future(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains("future revision"))
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        let cases: [(&[u8], &[u8]); 4] =
            [(b"/registry/", b"/registry0"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0")];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix), want, "{prefix:?}");
        }
    }
}
