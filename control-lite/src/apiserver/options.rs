//! Query options of a request, parsed once from the URL into typed values
//! (bounded parsing: numbers are range-checked, strings length-checked).
//!
//! A leaf module: handlers below the HTTP layer take these types, never the
//! raw query.

use std::collections::HashMap;
use std::time::Duration;

use super::objects::{FieldValidation, WriteOptions};
use super::selectors::{FieldSelector, LabelSelector, Selectors};
use super::status::{ApiError, Result};
use super::table::IncludeObject;

/// Longest accepted query value (selectors included).
const MAX_VALUE_LEN: usize = 64 * 1024;
/// Longest `fieldManager` (as upstream).
const MAX_FIELD_MANAGER_LEN: usize = 128;

/// The raw query of one request. Private to the parsing below.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Decodes `a=b&c=d` (percent and `+` decoding); the last value of a repeated key wins.
    pub fn parse(raw: Option<&str>) -> Result<Query> {
        let mut map = HashMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k)?, decode(v)?);
            if v.len() > MAX_VALUE_LEN {
                return Err(ApiError::BadRequest(format!("query parameter {k} is longer than {MAX_VALUE_LEN} bytes")));
            }
            map.insert(k, v);
        }
        Ok(Query(map))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter as upstream converts query values: present and
    /// not `0` or `false` (any case) is true, so `watch=True` (what the
    /// Python client sends) and a bare `watch` both mean true.
    fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("invalid {key} {v:?}"))),
        }
    }

    /// Whether `watch=true`.
    pub fn watch(&self) -> bool {
        self.flag("watch")
    }
}

fn decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(byte.ok_or_else(|| ApiError::BadRequest(format!("invalid percent-encoding in {s:?}")))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::BadRequest(format!("query {s:?} is not UTF-8")))
}

/// Options of list and watch (`ListOptions`).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector` and `fieldSelector`.
    pub selectors: Selectors,
    /// `limit`: most items in one page (0 or none: all).
    pub limit: Option<u64>,
    /// `continue`: the token of the page to read ([`super::paging`]).
    pub continue_token: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<ResourceVersionMatch>,
    /// `watch=true`.
    pub watch: bool,
    /// Watch options (meaningful with `watch`).
    pub watch_options: WatchOptions,
}

/// How a list's `resourceVersion` is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceVersionMatch {
    /// At exactly that revision (from the store's history).
    Exact,
    /// At that revision or newer.
    NotOlderThan,
}

impl ResourceVersionMatch {
    fn parse(value: Option<&str>) -> Result<Option<ResourceVersionMatch>> {
        match value {
            None | Some("") => Ok(None),
            Some("Exact") => Ok(Some(ResourceVersionMatch::Exact)),
            Some("NotOlderThan") => Ok(Some(ResourceVersionMatch::NotOlderThan)),
            Some(other) => Err(super::paging::invalid_list_options(super::status::Cause::not_supported(
                "resourceVersionMatch",
                other,
                &["Exact", "NotOlderThan"],
            ))),
        }
    }
}

/// Options of a watch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// `resourceVersion`: start after it (unset or `0`: list first).
    pub resource_version: Option<i64>,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
}

impl ListOptions {
    /// Parses list/watch options.
    pub fn parse(q: &Query) -> Result<ListOptions> {
        let bad = |e: super::selectors::Error| ApiError::BadRequest(e.to_string());
        let selectors = Selectors {
            labels: LabelSelector::parse(q.get("labelSelector").unwrap_or_default()).map_err(bad)?,
            fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or_default()).map_err(bad)?,
        };
        let resource_version = match q.get("resourceVersion") {
            None | Some("") => None,
            Some(rv) => {
                Some(rv.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}")))?)
            }
        };
        Ok(ListOptions {
            selectors,
            limit: q.number("limit")?,
            continue_token: q.get("continue").filter(|c| !c.is_empty()).map(str::to_string),
            resource_version_match: ResourceVersionMatch::parse(q.get("resourceVersionMatch"))?,
            watch: q.watch(),
            watch_options: WatchOptions {
                resource_version,
                timeout: q.number::<u64>("timeoutSeconds")?.map(Duration::from_secs),
                bookmarks: q.flag("allowWatchBookmarks"),
                send_initial_events: q.flag("sendInitialEvents"),
            },
        })
    }
}

/// Options of create, update and patch.
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// `dryRun` and `fieldValidation`.
    pub write: WriteOptions,
    /// `fieldManager` (validated).
    pub field_manager: Option<String>,
    /// `force=true`: an apply takes fields other managers own.
    pub force: bool,
}

impl WriteParams {
    /// Parses write options.
    pub fn parse(q: &Query) -> Result<WriteParams> {
        let field_manager = q.get("fieldManager").map(str::to_string);
        if let Some(m) = &field_manager {
            if m.len() > MAX_FIELD_MANAGER_LEN || m.chars().any(char::is_control) {
                return Err(ApiError::BadRequest(format!(
                    "fieldManager must be at most {MAX_FIELD_MANAGER_LEN} printable characters"
                )));
            }
        }
        Ok(WriteParams {
            write: WriteOptions {
                dry_run: dry_run(q),
                field_validation: FieldValidation::parse(q.get("fieldValidation"))?,
                manager: None,
                requester: None,
            },
            field_manager,
            force: q.flag("force"),
        })
    }
}

/// `dryRun=All`.
pub fn dry_run(q: &Query) -> bool {
    q.get("dryRun") == Some("All")
}

/// The query part of DeleteOptions (a body may override it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteQuery {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `propagationPolicy=Orphan` or `orphanDependents=true`.
    pub orphan: bool,
}

impl DeleteQuery {
    /// Parses delete options from the query.
    pub fn parse(q: &Query) -> Result<DeleteQuery> {
        Ok(DeleteQuery {
            grace_period: q.number("gracePeriodSeconds")?,
            dry_run: dry_run(q),
            orphan: q.get("propagationPolicy") == Some("Orphan") || q.flag("orphanDependents"),
        })
    }
}

/// Options of `pods/log`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// `container`.
    pub container: Option<String>,
    /// Options passed through to the kubelet, in a fixed order.
    pub passthrough: Vec<(&'static str, String)>,
}

/// Query parameters of `pods/log` passed through to the kubelet.
const LOG_PASSED: &[&str] =
    &["follow", "tailLines", "timestamps", "previous", "sinceSeconds", "sinceTime", "limitBytes"];

impl LogOptions {
    /// Parses log options.
    pub fn parse(q: &Query) -> LogOptions {
        LogOptions {
            container: q.get("container").map(str::to_string),
            passthrough: LOG_PASSED.iter().filter_map(|k| q.get(k).map(|v| (*k, v.to_string()))).collect(),
        }
    }
}

/// Table rendering requested by `Accept` (its first entry), with the row object mode.
pub fn table_mode(accept: &str, q: &Query) -> Option<IncludeObject> {
    let first = accept.split(',').next().unwrap_or_default();
    if !first.contains("as=Table") {
        return None;
    }
    Some(match q.get("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s)).expect("query")
    }

    #[test]
    fn query_decodes_percent_and_plus_and_rejects_garbage() {
        let parsed = q("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1");
        assert_eq!(parsed.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(parsed.watch());
        assert!(Query::parse(Some("a=%zz")).is_err());
        for (raw, want) in [
            ("watch=True", true),
            ("watch=1", true),
            ("watch", true),
            ("watch=FALSE", false),
            ("watch=0", false),
            ("", false),
        ] {
            assert_eq!(q(raw).watch(), want, "{raw}");
        }
        assert!(Query::parse(Some("a=%ff")).is_err(), "not UTF-8");
        assert_eq!(Query::parse(None).expect("empty"), Query::default());
    }

    #[test]
    fn list_options_are_typed_and_bounded() {
        let o = ListOptions::parse(&q(
            "watch=true&resourceVersion=12&timeoutSeconds=30&allowWatchBookmarks=true&limit=500&continue=x",
        ))
        .expect("parse");
        assert!(o.watch);
        assert_eq!(o.limit, Some(500));
        assert_eq!(o.continue_token.as_deref(), Some("x"));
        let want = WatchOptions {
            resource_version: Some(12),
            timeout: Some(Duration::from_secs(30)),
            bookmarks: true,
            send_initial_events: false,
        };
        assert_eq!(o.watch_options, want);
        for bad in ["resourceVersion=abc", "timeoutSeconds=-1", "timeoutSeconds=99999999999999999999", "limit=x"] {
            assert!(ListOptions::parse(&q(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn write_and_delete_options() {
        let w = WriteParams::parse(&q("dryRun=All&fieldValidation=Strict&fieldManager=kubectl")).expect("write");
        assert!(w.write.dry_run);
        assert_eq!(w.write.field_validation, FieldValidation::Strict);
        assert_eq!(w.field_manager.as_deref(), Some("kubectl"));
        assert!(WriteParams::parse(&q(&format!("fieldManager={}", "m".repeat(129)))).is_err());
        assert!(WriteParams::parse(&q("fieldValidation=Loose")).is_err());
        let d = DeleteQuery::parse(&q("gracePeriodSeconds=0&propagationPolicy=Orphan")).expect("delete");
        assert_eq!(d, DeleteQuery { grace_period: Some(0), dry_run: false, orphan: true });
        assert!(DeleteQuery::parse(&q("gracePeriodSeconds=soon")).is_err());
    }

    #[test]
    fn table_mode_follows_accept_and_include_object() {
        let none = Query::default();
        assert_eq!(table_mode("application/json", &none), None);
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
        assert_eq!(table_mode(accept, &none), Some(IncludeObject::Metadata));
        assert_eq!(table_mode(accept, &q("includeObject=Object")), Some(IncludeObject::Object));
    }

    #[test]
    fn log_options_pass_known_keys_through_in_order() {
        let o = LogOptions::parse(&q("tailLines=5&container=c&follow=true&evil=1"));
        assert_eq!(o.container.as_deref(), Some("c"));
        assert_eq!(o.passthrough, vec![("follow", "true".to_string()), ("tailLines", "5".to_string())]);
    }
}
