//! Merging an applied configuration into the live object, and removing the
//! fields an applier gave up.
//!
//! The merge follows the field sets' list kinds (associative lists by key,
//! set lists as sets, everything else replaced) on a configuration cleaned
//! of nulls and `$` keys, which apply does not have.

use serde_json::{Map, Value};

use std::collections::{HashMap, HashSet};

use super::fieldset::{is_atomic_object, list_items, Budget, Element, ListItems, Set};
use super::Error;

/// Object metadata that is not owned by anyone (identity and server-set fields).
const UNTRACKED_META: [&str; 11] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "generateName",
];

/// Which part of an object a write may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything but `status` (which has its own subresource).
    MainWithoutStatus,
    /// Everything (the kind has no status subresource).
    Main,
    /// `status` only.
    Status,
}

/// The part of `obj` a write owns fields in: no apiVersion, kind or
/// identity metadata, and status or the rest depending on `part`.
pub fn tracked(obj: &Value, part: Part) -> Value {
    let Some(m) = obj.as_object() else {
        return Value::Object(Map::new());
    };
    let mut out = Map::new();
    for (k, v) in m {
        let keep = match part {
            Part::Status => k == "status",
            Part::MainWithoutStatus => !matches!(k.as_str(), "apiVersion" | "kind" | "status"),
            Part::Main => !matches!(k.as_str(), "apiVersion" | "kind"),
        };
        if !keep {
            continue;
        }
        if k == "metadata" {
            let mut meta = v.as_object().cloned().unwrap_or_default();
            for f in UNTRACKED_META {
                meta.remove(f);
            }
            if !meta.is_empty() {
                out.insert(k.clone(), Value::Object(meta));
            }
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

/// The configuration without nulls, `$` keys and `metadata.managedFields`
/// (bounded: at most `fieldset::MAX_DEPTH` deep).
pub fn clean_config(config: &Value) -> Result<Map<String, Value>, Error> {
    let Some(m) = config.as_object() else {
        return Err(Error::Config("the applied configuration must be an object".into()));
    };
    let mut budget = Budget::default();
    let mut out = clean_map(m, &mut budget, 0)?;
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    Ok(out)
}

fn clean_map(m: &Map<String, Value>, budget: &mut Budget, depth: usize) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for (k, v) in m {
        if v.is_null() || k.starts_with('$') {
            continue;
        }
        out.insert(k.clone(), clean(v, budget, depth.saturating_add(1))?);
    }
    Ok(out)
}

fn clean(v: &Value, budget: &mut Budget, depth: usize) -> Result<Value, Error> {
    budget.step(depth)?;
    Ok(match v {
        Value::Object(m) => Value::Object(clean_map(m, budget, depth)?),
        Value::Array(l) => {
            Value::Array(l.iter().map(|i| clean(i, budget, depth.saturating_add(1))).collect::<Result<_, _>>()?)
        }
        other => other.clone(),
    })
}

/// `live` with `config` merged in: objects field by field, associative
/// lists item by item (by the same keys as field sets; new items appended),
/// set lists as sets; anything else (and atomic selectors) replaced.
pub fn merge(live: &Value, config: &Map<String, Value>) -> Value {
    let mut out = live.as_object().cloned().unwrap_or_default();
    merge_map(&mut out, config, "");
    Value::Object(out)
}

fn merge_map(live: &mut Map<String, Value>, config: &Map<String, Value>, field: &str) {
    for (k, cv) in config {
        let merged = match live.get(k) {
            Some(lv) => merge_value(lv, cv, field, k),
            None => cv.clone(),
        };
        live.insert(k.clone(), merged);
    }
}

fn merge_value(live: &Value, config: &Value, parent: &str, field: &str) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !is_atomic_object(field, c) => {
            let mut out = l.clone();
            merge_map(&mut out, c, field);
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match (list_items(parent, field, l), list_items(parent, field, c)) {
            (ListItems::Keyed(l), ListItems::Keyed(c)) => {
                let mut out: Vec<Value> = l.iter().map(|(_, v)| (*v).clone()).collect();
                let index: HashMap<&Element, usize> = l.iter().enumerate().map(|(i, (e, _))| (e, i)).collect();
                for (e, cv) in c {
                    match index.get(&e) {
                        Some(&i) => {
                            let (Some(lm), Some(cm)) = (out[i].as_object_mut(), cv.as_object()) else { continue };
                            merge_map(lm, cm, field);
                        }
                        None => out.push(cv.clone()),
                    }
                }
                Value::Array(out)
            }
            (ListItems::Set(l), ListItems::Set(_)) => {
                let seen: HashSet<Element> = l.into_iter().collect();
                let mut out = live.as_array().cloned().unwrap_or_default();
                let values = config.as_array().map(Vec::as_slice).unwrap_or_default();
                let mut added = HashSet::new();
                for v in values {
                    let e = Element::Value(v.to_string());
                    if !seen.contains(&e) && added.insert(e) {
                        out.push(v.clone());
                    }
                }
                Value::Array(out)
            }
            _ => config.clone(),
        },
        _ => config.clone(),
    }
}

/// Removes from `obj` the members of `remove` (paths relative to the object
/// root), except paths `keep` has anything at or below: those stay and only
/// what below them is in `remove` and not kept goes.
pub fn prune(obj: &mut Value, remove: &Set, keep: &Set) {
    if let Some(m) = obj.as_object_mut() {
        prune_map(m, "", remove, Some(keep));
    }
}

fn prune_map(m: &mut Map<String, Value>, field: &str, remove: &Set, keep: Option<&Set>) {
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let e = Element::Field(k.clone());
        let Some(r) = remove.child(&e) else { continue };
        let kept = keep.and_then(|s| s.child(&e));
        if r.is_member() && kept.is_none_or(Set::is_empty) {
            m.remove(&k);
            continue;
        }
        if let Some(v) = m.get_mut(&k) {
            let was_empty = is_empty_container(v);
            prune_value(v, field, &k, r, kept);
            // A parent the pruning emptied goes too, unless someone owns it.
            if !was_empty && is_empty_container(v) && kept.is_none_or(Set::is_empty) {
                m.remove(&k);
            }
        }
    }
}

fn prune_value(v: &mut Value, parent: &str, field: &str, remove: &Set, keep: Option<&Set>) {
    match v {
        Value::Object(m) => prune_map(m, field, remove, keep),
        Value::Array(items) => {
            let elements: Vec<Option<Element>> = match list_items(parent, field, items) {
                ListItems::Keyed(keyed) => keyed.into_iter().map(|(e, _)| Some(e)).collect(),
                ListItems::Set(values) => values.into_iter().map(Some).collect(),
                ListItems::Atomic => return,
            };
            let mut out = Vec::with_capacity(items.len());
            for (mut item, e) in std::mem::take(items).into_iter().zip(elements) {
                if let Some(e) = e {
                    if let Some(r) = remove.child(&e) {
                        let kept = keep.and_then(|s| s.child(&e));
                        if r.is_member() && kept.is_none_or(Set::is_empty) {
                            continue;
                        }
                        if let Some(m) = item.as_object_mut() {
                            prune_map(m, field, r, kept);
                        }
                    }
                }
                out.push(item);
            }
            *items = out;
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(l) => l.is_empty(),
        _ => false,
    }
}
