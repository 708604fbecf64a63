//! Lists in pages (`limit`/`continue`) and at a `resourceVersion`
//! (`resourceVersionMatch`): which revision and keys a list request reads,
//! decided from its options alone, and the continue tokens between pages.
//!
//! All pages of one list read at the first page's revision, so a client
//! paging through a collection sees one consistent snapshot, as from etcd.
//! The token says where the next page starts and at which revision, in
//! upstream's form: base64 of `{"v":"meta.k8s.io/v1","rv":R,"start":S}`,
//! where S is the next key relative to the collection's prefix. Once R is
//! compacted the token is expired (410), and the error carries a token that
//! continues at the current revision, for clients that accept an
//! inconsistent list (`rv` -1, as upstream).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::options::{ListOptions, ResourceVersionMatch};
use super::status::{ApiError, Cause, Result};

/// The version tag of a continue token.
const TOKEN_VERSION: &str = "meta.k8s.io/v1";
/// The revision of a token that continues at the current revision.
const INCONSISTENT: i64 = -1;
/// Longest continue token taken (keys are bounded far below this).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Where a continue token says the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    /// Tag of the token's format.
    pub v: String,
    /// The revision of the list; -1: the current one.
    pub rv: i64,
    /// The first key of the next page, relative to the collection's prefix.
    pub start: String,
}

impl ContinueToken {
    /// The token of the page after `last_key` (a key under `prefix`) at `rv`.
    pub fn after(prefix: &str, last_key: &str, rv: i64) -> ContinueToken {
        let relative = last_key.strip_prefix(prefix).unwrap_or(last_key);
        ContinueToken { v: TOKEN_VERSION.into(), rv, start: format!("{relative}\u{0}") }
    }

    /// The token's text.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    /// Reads a client's token (400 if it is not one of ours).
    pub fn decode(text: &str) -> Result<ContinueToken> {
        let bad = |why: &str| ApiError::BadRequest(format!("continue key is not valid: {why}"));
        if text.len() > MAX_TOKEN_BYTES {
            return Err(bad("too long"));
        }
        let json = base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| bad("not base64"))?;
        let token: ContinueToken = serde_json::from_slice(&json).map_err(|_| bad("not a continue token"))?;
        if token.v != TOKEN_VERSION {
            return Err(bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
        }
        if token.rv == 0 || token.rv < INCONSISTENT {
            return Err(bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
        }
        if token.start.is_empty() {
            return Err(bad("encoded start key is empty"));
        }
        Ok(token)
    }
}

/// What a list request reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPlan {
    /// The revision to read at (`None`: the current one).
    pub revision: Option<i64>,
    /// The first key to read, relative to the collection's prefix.
    pub start: Option<String>,
    /// Most items in the page (`None`: all).
    pub limit: Option<usize>,
    /// The list must be at least this new (`resourceVersion` without
    /// `Exact`): 504 if the store is behind it.
    pub not_older_than: Option<i64>,
}

/// Decides what a list with `opts` reads (400/422 for contradictory
/// options, with upstream's messages).
pub fn plan(opts: &ListOptions) -> Result<ListPlan> {
    let rv = opts.watch_options.resource_version;
    let limit = opts.limit.filter(|n| *n > 0).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if let Some(m) = opts.resource_version_match {
        let forbidden = match (rv, &opts.continue_token) {
            (None, _) => Some("resourceVersionMatch is forbidden unless resourceVersion is provided"),
            (_, Some(_)) => Some("resourceVersionMatch is forbidden when continue is provided"),
            (Some(0), _) if m == ResourceVersionMatch::Exact => {
                Some("resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")
            }
            _ => None,
        };
        if let Some(message) = forbidden {
            return Err(invalid_list_options(Cause {
                reason: "FieldValueForbidden",
                field: "resourceVersionMatch".into(),
                message: format!("Forbidden: {message}"),
            }));
        }
    }
    if let Some(text) = &opts.continue_token {
        if matches!(rv, Some(rv) if rv != 0) {
            return Err(ApiError::BadRequest("specifying resource version is not allowed when using continue".into()));
        }
        let token = ContinueToken::decode(text)?;
        let revision = (token.rv != INCONSISTENT).then_some(token.rv);
        return Ok(ListPlan { revision, start: Some(token.start), limit, not_older_than: None });
    }
    Ok(match (opts.resource_version_match, rv) {
        (Some(ResourceVersionMatch::Exact), Some(rv)) => {
            ListPlan { revision: Some(rv), start: None, limit, not_older_than: None }
        }
        // "0" or none: any revision will do, and the current one is served.
        (_, Some(0) | None) => ListPlan { revision: None, start: None, limit, not_older_than: None },
        // Upstream's legacy rule: a resourceVersion with a limit and no
        // match is exact.
        (None, Some(rv)) if limit.is_some() => {
            ListPlan { revision: Some(rv), start: None, limit, not_older_than: None }
        }
        (_, Some(rv)) => ListPlan { revision: None, start: None, limit, not_older_than: Some(rv) },
    })
}

/// Upstream's 422 for list options that contradict each other.
pub fn invalid_list_options(cause: Cause) -> ApiError {
    ApiError::Invalid {
        qualified_kind: "ListOptions.meta.k8s.io".into(),
        group: "meta.k8s.io".into(),
        kind: "ListOptions".into(),
        name: String::new(),
        causes: vec![cause],
    }
}

/// The 410 for a token whose revision is compacted: it carries a token that
/// goes on from the same key at the current revision.
pub fn expired(start: &str) -> ApiError {
    let token = ContinueToken { v: TOKEN_VERSION.into(), rv: INCONSISTENT, start: start.to_owned() };
    ApiError::ContinueExpired { continue_token: token.encode() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(rv: i64, start: &str) -> String {
        ContinueToken { v: TOKEN_VERSION.into(), rv, start: start.into() }.encode()
    }

    fn opts(rv: Option<i64>, m: Option<ResourceVersionMatch>, limit: Option<u64>, cont: Option<String>) -> ListOptions {
        let mut o = ListOptions { limit, continue_token: cont, resource_version_match: m, ..Default::default() };
        o.watch_options.resource_version = rv;
        o
    }

    #[test]
    fn tokens_round_trip_and_strangers_are_refused() {
        let t = ContinueToken::after("/registry/pods/", "/registry/pods/ns/web-1", 42);
        assert_eq!(t.start, "ns/web-1\u{0}");
        assert_eq!(ContinueToken::decode(&t.encode()).unwrap(), t);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for bad in [
            "%%%".to_string(),
            b64("not json"),
            b64(r#"{"v":"v2","rv":3,"start":"a"}"#),
            b64(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#),
            b64(r#"{"v":"meta.k8s.io/v1","rv":-7,"start":"a"}"#),
            b64(r#"{"v":"meta.k8s.io/v1","rv":3,"start":""}"#),
            "A".repeat(MAX_TOKEN_BYTES + 4),
        ] {
            let err = ContinueToken::decode(&bad).unwrap_err().to_string();
            assert!(err.starts_with("continue key is not valid"), "{bad}: {err}");
        }
    }

    #[test]
    fn plans_follow_the_list_options() {
        use ResourceVersionMatch::{Exact, NotOlderThan};
        let none = ListPlan::default();
        let cases = [
            (opts(None, None, None, None), none.clone()),
            (opts(None, None, Some(0), None), none.clone()),
            (opts(None, None, Some(5), None), ListPlan { limit: Some(5), ..none.clone() }),
            (opts(Some(0), None, Some(5), None), ListPlan { limit: Some(5), ..none.clone() }),
            (opts(Some(0), Some(NotOlderThan), None, None), none.clone()),
            (opts(Some(9), None, None, None), ListPlan { not_older_than: Some(9), ..none.clone() }),
            (opts(Some(9), None, Some(4), None), ListPlan { revision: Some(9), limit: Some(4), ..none.clone() }),
            (opts(Some(9), Some(NotOlderThan), None, None), ListPlan { not_older_than: Some(9), ..none.clone() }),
            (opts(Some(9), Some(Exact), Some(2), None), ListPlan { revision: Some(9), limit: Some(2), ..none.clone() }),
            (
                opts(None, None, Some(3), Some(token(12, "ns/a\u{0}"))),
                ListPlan { revision: Some(12), start: Some("ns/a\u{0}".into()), limit: Some(3), not_older_than: None },
            ),
            (
                opts(Some(0), None, None, Some(token(-1, "b\u{0}"))),
                ListPlan { start: Some("b\u{0}".into()), ..none.clone() },
            ),
        ];
        for (o, want) in cases {
            assert_eq!(plan(&o).unwrap(), want, "{o:?}");
        }
    }

    #[test]
    fn contradictory_options_are_refused_with_upstream_messages() {
        use ResourceVersionMatch::Exact;
        let t = || Some(token(12, "a\u{0}"));
        let cases = [
            (opts(Some(5), None, None, t()), "specifying resource version is not allowed when using continue"),
            (
                opts(Some(5), Some(Exact), None, t()),
                "Forbidden: resourceVersionMatch is forbidden when continue is provided",
            ),
            (
                opts(None, Some(Exact), None, None),
                "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            ),
            (
                opts(Some(0), Some(Exact), None, None),
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ),
        ];
        for (o, want) in cases {
            let err = plan(&o).unwrap_err().to_string();
            assert!(err.ends_with(want), "{o:?}: {err}");
        }
    }
}
