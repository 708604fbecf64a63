//! Interning of custom resource rows: handlers hold resource rows as
//! `&'static ResourceInfo`, so a row built from a CRD is leaked once and
//! shared by every later build of the same definition (same spec, same
//! version). At most [`MAX_ROWS`] distinct rows are made per process, which
//! bounds what CRD churn can leak; beyond it new definitions are not served.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::Custom;
use crate::apiserver::registry::{Kind, ResourceInfo, Subresource};

/// Most distinct custom resource rows made per process.
pub const MAX_ROWS: usize = 4096;

/// An owned row, before interning.
pub(super) struct Row {
    pub group: String,
    pub version: String,
    pub kind_name: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<Subresource>,
    pub custom: Custom,
}

fn table() -> &'static Mutex<HashMap<String, &'static ResourceInfo>> {
    static TABLE: OnceLock<Mutex<HashMap<String, &'static ResourceInfo>>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

/// The row made before for `identity`, if any.
pub(super) fn find(identity: &str) -> Option<&'static ResourceInfo> {
    table().lock().ok()?.get(identity).copied()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_all(v: Vec<String>) -> &'static [&'static str] {
    Box::leak(v.into_iter().map(leak).collect::<Vec<_>>().into_boxed_slice())
}

/// The `&'static` row of `row` (None: [`MAX_ROWS`] reached).
pub(super) fn intern(row: Row) -> Option<&'static ResourceInfo> {
    let mut table = table().lock().ok()?;
    if let Some(found) = table.get(&row.custom.identity) {
        return Some(found);
    }
    if table.len() >= MAX_ROWS {
        return None;
    }
    let identity = row.custom.identity.clone();
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        kind: Kind::Custom,
        group: leak(row.group),
        version: leak(row.version),
        kind_name: leak(row.kind_name),
        plural: leak(row.plural),
        singular: leak(row.singular),
        namespaced: row.namespaced,
        short_names: leak_all(row.short_names),
        categories: leak_all(row.categories),
        subresources: Box::leak(row.subresources.into_boxed_slice()),
        custom: Some(Box::leak(Box::new(row.custom))),
    }));
    table.insert(identity, info);
    Some(info)
}
