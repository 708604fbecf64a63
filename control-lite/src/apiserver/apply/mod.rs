//! Server-side apply and field management (pure decisions, no I/O).
//!
//! Every tracked write records who set which fields in
//! `metadata.managedFields` (upstream's FieldsV1 format, `fieldset`):
//! [`record_update`] gives an ordinary write (`Update`) the fields it added
//! or changed and takes them from other owners; [`apply`] merges an applied
//! configuration into the live object (`merge`), removes fields the applier
//! owned before and no longer applies (unless someone else owns them), and
//! refuses to change fields other owners hold unless forced. Applying the
//! same value as another owner shares the field.
//!
//! Associative lists and their keys come from strategic merge patch's table
//! (built-in kinds only; no schema-driven list types yet). Work is bounded
//! by `fieldset::MAX_DEPTH` and `fieldset::MAX_NODES`.

mod compare;
pub mod fieldset;
pub mod managed;
mod merge;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use compare::{compare, Comparison};
pub use fieldset::{Path, Set};
pub use managed::{Entry, Operation, Owner};
pub use merge::Part;

/// The annotation client-side `kubectl apply` keeps its last configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Field management failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `managedFields` entry or FieldsV1 tree that cannot be read.
    #[error("invalid managedFields: {0}")]
    FieldsV1(String),
    /// The applied configuration is not usable.
    #[error("invalid applied configuration: {0}")]
    Config(String),
    /// Deeper than the limit.
    #[error("the object is nested deeper than {max} levels")]
    TooDeep { max: usize },
    /// More fields than the limit.
    #[error("the object has more than {max} fields")]
    TooManyFields { max: usize },
    /// Fields other managers own would change.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
}

/// One field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// How the owner is named (`"kubectl-scale" with subresource "scale" using apps/v1`).
    pub owner: String,
    /// The field (`.spec.replicas`).
    pub path: String,
}

impl Conflict {
    /// The cause message (`conflict with "x" using apps/v1`).
    pub fn message(&self) -> String {
        format!("conflict with {}", self.owner)
    }
}

/// Upstream's message for a failed apply.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", one.owner, one.path);
    }
    let mut owners: Vec<&str> = conflicts.iter().map(|c| c.owner.as_str()).collect();
    owners.sort_unstable();
    owners.dedup();
    let mut lines = Vec::new();
    for owner in owners {
        lines.push(format!("conflicts with {owner}:"));
        lines.extend(conflicts.iter().filter(|c| c.owner == owner).map(|c| format!("- {}", c.path)));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Who writes and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer<'a> {
    /// `fieldManager`.
    pub manager: &'a str,
    /// `status`, `scale`, ... or empty.
    pub subresource: &'a str,
    /// The apiVersion written.
    pub api_version: &'a str,
    /// Which part of the object the write owns.
    pub part: Part,
    /// The write's time (RFC 3339).
    pub now: &'a str,
}

impl Writer<'_> {
    fn owner(&self, operation: Operation) -> Owner {
        Owner { manager: self.manager.to_string(), operation, subresource: self.subresource.to_string() }
    }

    fn entry(&self, operation: Operation, set: Set) -> Entry {
        Entry {
            owner: self.owner(operation),
            api_version: self.api_version.to_string(),
            time: self.now.to_string(),
            set,
        }
    }
}

/// Records an ordinary write (create, update, patch) of `next` over `live`
/// (`None` on create) by `writer` in `next`'s `managedFields`. Entries the
/// request carried replace the live ones (`[]` does not; `[{}]` clears
/// them before this write is recorded, as upstream); the writer
/// takes the fields it added or changed, removed fields leave every owner.
pub fn record_update(live: Option<&Value>, next: &mut Value, writer: &Writer<'_>) -> Result<(), Error> {
    let recorded = managed::read(next)?;
    let old = live.map(|l| merge::tracked(l, writer.part)).unwrap_or_default();
    let diff = compare(&old, &merge::tracked(next, writer.part))?;
    let mut entries = match recorded {
        managed::Recorded::Unset if diff.is_empty() => {
            // Nothing changed: the live entries stay as they are, byte for byte.
            copy_raw_entries(live, next);
            return Ok(());
        }
        managed::Recorded::Unset => live.map(managed::live_entries).unwrap_or_default(),
        // `[{}]` clears the entries first; a change in the same request is then recorded.
        managed::Recorded::Reset if diff.is_empty() => {
            managed::write(next, &[]);
            return Ok(());
        }
        managed::Recorded::Reset => Vec::new(),
        // Nothing changed: the entries sent (or kept) stay as they are.
        managed::Recorded::Entries(_) if diff.is_empty() => return Ok(()),
        managed::Recorded::Entries(e) => e,
    };
    let owner = writer.owner(Operation::Update);
    let changed = diff.changed();
    for e in &mut entries {
        e.set = e.set.difference(&diff.removed);
        if e.owner != owner {
            e.set = e.set.difference(&changed);
        }
    }
    match entries.iter_mut().find(|e| e.owner == owner) {
        Some(own) => {
            own.set = own.set.union(&changed);
            own.time = writer.now.to_string();
            own.api_version = writer.api_version.to_string();
        }
        None => entries.push(writer.entry(Operation::Update, changed)),
    }
    managed::write(next, &entries);
    Ok(())
}

/// A write nobody is recorded for: `next` keeps the live entries unless the
/// request set some (as [`record_update`] reads them).
pub fn keep_entries(live: Option<&Value>, next: &mut Value) {
    match managed::read(next) {
        Ok(managed::Recorded::Unset) => copy_raw_entries(live, next),
        Ok(managed::Recorded::Reset) => managed::write(next, &[]),
        Ok(managed::Recorded::Entries(_)) => {}
        // Unreadable entries from the request: the live ones stay.
        Err(_) => copy_raw_entries(live, next),
    }
}

/// Copies the live object's `managedFields` into `next` as they are.
fn copy_raw_entries(live: Option<&Value>, next: &mut Value) {
    let raw = live.and_then(|l| l.pointer("/metadata/managedFields")).cloned();
    if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
        match raw {
            Some(raw) => meta.insert("managedFields".into(), raw),
            None => meta.remove("managedFields"),
        };
    }
}

/// Applies `config` by `writer` to `live` (`None`: apply-as-create).
/// Returns the merged object carrying the new `managedFields`, or the
/// conflicts with other owners when not `force`d.
pub fn apply(live: Option<&Value>, config: &Value, writer: &Writer<'_>, force: bool) -> Result<Value, Error> {
    let config = merge::clean_config(config)?;
    let applied = fieldset::of_config(tracked_config(&config, writer.part).as_object().unwrap_or(&Default::default()))?;
    let empty = Value::Object(Default::default());
    let live_obj = live.unwrap_or(&empty);
    let mut entries = managed::live_entries(live_obj);
    let owner = writer.owner(Operation::Apply);
    let previous = entries.iter().find(|e| e.owner == owner).map(|e| e.set.clone());
    // Upgrade from client-side apply: the last applied configuration is what
    // this manager applied before.
    let upgraded = match (&previous, last_applied(live_obj)) {
        (None, Some(last)) => {
            let last = merge::clean_config(&last)?;
            Some(fieldset::of_config(tracked_config(&last, writer.part).as_object().unwrap_or(&Default::default()))?)
        }
        _ => None,
    };
    // The fields of the last client-side configuration pass from the
    // client-side writers to this manager.
    if let Some(up) = &upgraded {
        for e in entries.iter_mut().filter(|e| e.owner.operation == Operation::Update) {
            e.set = e.set.difference(up);
        }
    }
    let mut merged = merge::merge(live_obj, &config);
    if let Some(last) = previous.as_ref().or(upgraded.as_ref()) {
        let keep = entries.iter().filter(|e| e.owner != owner).fold(applied.clone(), |acc, e| acc.union(&e.set));
        merge::prune(&mut merged, &last.difference(&applied), &keep);
    }
    let diff = compare(&merge::tracked(live_obj, writer.part), &merge::tracked(&merged, writer.part))?;
    let changed = diff.changed();
    let mut conflicts = Vec::new();
    let mut taken = Vec::with_capacity(entries.len());
    for e in &entries {
        let clash = if e.owner == owner { Set::default() } else { e.set.intersection(&changed) };
        conflicts.extend(
            clash
                .paths()
                .into_iter()
                .map(|p| Conflict { owner: e.owner.describe(&e.api_version), path: p.to_string() }),
        );
        taken.push(e.set.intersection(&changed));
    }
    if !force && !conflicts.is_empty() {
        return Err(Error::Conflicts(conflicts));
    }
    if diff.is_empty() && upgraded.is_none() && previous.as_ref() == Some(&applied) {
        // A no-op apply: the live entries stay byte for byte, so nothing is stored.
        copy_raw_entries(live, &mut merged);
        return Ok(merged);
    }
    for (e, taken) in entries.iter_mut().zip(taken) {
        if e.owner != owner {
            e.set = e.set.difference(&taken).difference(&diff.removed);
        }
    }
    match entries.iter_mut().find(|e| e.owner == owner) {
        Some(own) => {
            own.set = applied;
            own.time = writer.now.to_string();
            own.api_version = writer.api_version.to_string();
        }
        None => entries.push(writer.entry(Operation::Apply, applied)),
    }
    managed::write(&mut merged, &entries);
    refresh_last_applied(&mut merged, &config, writer.manager);
    Ok(merged)
}

/// `live` (or nothing, for apply-as-create) with `config` merged in: what
/// the caller normalises (typed round trip) before [`normalized_config`].
pub fn merged_config(live: Option<&Value>, config: &Value) -> Result<Value, Error> {
    let config = merge::clean_config(config)?;
    let empty = Value::Object(Default::default());
    Ok(merge::merge(live.unwrap_or(&empty), &config))
}

/// The applied configuration as the server stores values: `normalized` is
/// [`merged_config`] after the typed round trip (unknown fields dropped,
/// numeric quantities as strings); the result keeps the configuration's
/// fields only, with their normalised values. Applying, comparing and field
/// sets then see the same values as the stored object, so re-applying an
/// unchanged manifest is a no-op and equal values are shared, not conflicts.
pub fn normalized_config(config: &Value, mut normalized: Value) -> Result<Value, Error> {
    let config = merge::clean_config(config)?;
    let applied = fieldset::of_config(&config)?;
    let every = fieldset::of_config(normalized.as_object().unwrap_or(&Default::default()))?;
    merge::prune(&mut normalized, &every.difference(&applied), &applied);
    Ok(normalized)
}

/// After kubectl's server-side apply to an object client-side apply also
/// manages, the last-applied annotation becomes this configuration, so a
/// later client-side apply diffs against it (upstream does the same).
fn refresh_last_applied(obj: &mut Value, config: &serde_json::Map<String, Value>, manager: &str) {
    if !manager.starts_with("kubectl") {
        return;
    }
    let Some(annotations) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else { return };
    if !annotations.contains_key(LAST_APPLIED) {
        return;
    }
    let mut config = config.clone();
    if let Some(a) = config.get_mut("metadata").and_then(|m| m.get_mut("annotations")).and_then(Value::as_object_mut) {
        a.remove(LAST_APPLIED);
    }
    annotations.insert(LAST_APPLIED.into(), Value::String(Value::Object(config).to_string()));
}

/// The configuration's part the writer owns fields in.
fn tracked_config(config: &serde_json::Map<String, Value>, part: Part) -> Value {
    merge::tracked(&Value::Object(config.clone()), part)
}

/// The live object's last client-side applied configuration, if any.
fn last_applied(obj: &Value) -> Option<Value> {
    let text = obj.pointer("/metadata/annotations")?.get(LAST_APPLIED)?.as_str()?;
    serde_json::from_str(text).ok()
}
