//! Reading one list request: the page [`paging::plan`] decided, filtered
//! by selectors, with its metadata (revision, continue token, remaining
//! count). The apply side of paging; the decisions are in [`paging`].

use super::objects::decode;
use super::paging::{self, ContinueToken};
use super::registry::ResourceInfo;
use super::selectors::Selectors;
use super::status::{ApiError, Result};
use super::ApiState;
use crate::store::{self, KeyValue, ListRange};

/// Most stored objects read per store call while filtering a page by
/// selectors (a page of `limit` matches may take several calls).
const FILTERED_CHUNK: usize = 512;

/// The list metadata of a page: its revision, the next page's token and
/// how many objects follow it (known without selectors only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMeta {
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// The stored objects of one list request ([`paging::plan`]) that match
/// `selectors`, undecoded, and the page's metadata. A page of `limit` objects
/// with selectors reads the collection in chunks until it has `limit`
/// matches or the collection ends; all chunks read at the first one's
/// revision. At a past revision (a continue token) the rest of the
/// collection is read in one call, so the store's scan of the writes since
/// that revision is made once per request.
pub async fn list_page(
    state: &ApiState,
    info: &ResourceInfo,
    ns: Option<&str>,
    plan: &paging::ListPlan,
    selectors: &Selectors,
) -> Result<(Vec<KeyValue>, PageMeta)> {
    let prefix = info.prefix(ns);
    let chunk = match plan.limit {
        Some(limit) if selectors.is_empty() => Some(limit),
        // At a past revision each store call costs a scan of what changed
        // since: the rest is read at once, as an unlimited list would be.
        Some(_) if plan.revision.is_some() => None,
        Some(limit) => Some(limit.clamp(FILTERED_CHUNK, FILTERED_CHUNK.saturating_mul(8))),
        None => None,
    };
    let mut range = ListRange {
        prefix: prefix.clone(),
        start: plan.start.as_ref().map(|s| format!("{prefix}{s}")),
        limit: chunk,
        revision: plan.revision,
    };
    let mut out = Vec::new();
    loop {
        let page = state.store.list_page(range.clone()).await.map_err(|e| page_error(info, &prefix, plan, e))?;
        if let Some(min) = plan.not_older_than.filter(|min| page.revision < *min) {
            return Err(ApiError::TooLargeResourceVersion { requested: min, current: page.revision });
        }
        range.revision = Some(page.revision);
        let read = page.kvs.len();
        // The next chunk starts after the last key read, matched or not.
        let next_start = page.kvs.last().map(|kv| format!("{}\u{0}", kv.key));
        for (i, kv) in page.kvs.into_iter().enumerate() {
            if !selectors.is_empty() && !selectors.matches(&decode(&kv)?) {
                continue;
            }
            out.push(kv);
            if plan.limit.is_some_and(|limit| out.len() >= limit) {
                let more = i.saturating_add(1) < read || page.remaining > 0;
                let last = out.last().map(|kv| kv.key.as_str()).unwrap_or_default();
                let meta = PageMeta {
                    revision: page.revision,
                    continue_token: more.then(|| ContinueToken::after(&prefix, last, page.revision).encode()),
                    remaining: (more && selectors.is_empty()).then_some(page.remaining),
                };
                return Ok((out, meta));
            }
        }
        match next_start {
            Some(start) if page.remaining > 0 => range.start = Some(start),
            _ => return Ok((out, PageMeta { revision: page.revision, continue_token: None, remaining: None })),
        }
    }
}

/// Maps a page's store error: an expired continue token gets a token that
/// continues at the current revision (410), a revision from the future 504.
fn page_error(info: &ResourceInfo, prefix: &str, plan: &paging::ListPlan, e: store::Error) -> ApiError {
    match (e, &plan.start) {
        (store::Error::Compacted { .. }, Some(start)) => paging::expired(start),
        (store::Error::FutureRevision { requested, current }, _) => {
            ApiError::TooLargeResourceVersion { requested, current }
        }
        (e, _) => ApiError::from_store(info, "", "list", prefix, e),
    }
}
