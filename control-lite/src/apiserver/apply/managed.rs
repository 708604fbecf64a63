//! `metadata.managedFields`: entries read from and written to objects.
//!
//! An entry is identified by manager, operation and subresource (as
//! upstream: the same manager's `Apply` and `Update` entries are different
//! owners). Entries owning nothing are dropped.

use serde_json::{json, Map, Value};

use super::fieldset::Set;
use super::Error;

/// Most entries read from one object.
pub const MAX_ENTRIES: usize = 1_000;

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

impl Operation {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }

    fn parse(s: &str) -> Option<Operation> {
        match s {
            "Apply" => Some(Operation::Apply),
            "Update" => Some(Operation::Update),
            _ => None,
        }
    }
}

/// Who wrote: the identity of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `fieldManager`.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// `status`, `scale`, ... or empty for the main resource.
    pub subresource: String,
}

impl Owner {
    /// How a conflict names this owner (upstream's wording).
    pub fn describe(&self, api_version: &str) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update && !api_version.is_empty() {
            s.push_str(&format!(" using {api_version}"));
        }
        s
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Identity.
    pub owner: Owner,
    /// The apiVersion the fields are in (empty: not given).
    pub api_version: String,
    /// When the entry last changed (RFC 3339; empty: not given).
    pub time: String,
    /// The fields owned.
    pub set: Set,
}

impl Entry {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.owner.manager));
        m.insert("operation".into(), json!(self.owner.operation.as_str()));
        // Both are optional upstream: an entry sent without them stays
        // without them (`"time": ""` would not parse as a Time).
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), json!(self.api_version));
        }
        if !self.time.is_empty() {
            m.insert("time".into(), json!(self.time));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.set.to_fields_v1());
        if !self.owner.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.owner.subresource));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Result<Entry, Error> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let operation = Operation::parse(&s("operation"))
            .ok_or_else(|| Error::FieldsV1(format!("unknown operation {:?}", s("operation"))))?;
        if v.get("fieldsType").and_then(Value::as_str).is_some_and(|t| t != "FieldsV1") {
            return Err(Error::FieldsV1(format!("unknown fieldsType {:?}", s("fieldsType"))));
        }
        let set = match v.get("fieldsV1") {
            Some(f) => Set::from_fields_v1(f)?,
            None => Set::default(),
        };
        Ok(Entry {
            owner: Owner { manager: s("manager"), operation, subresource: s("subresource") },
            api_version: s("apiVersion"),
            time: s("time"),
            set,
        })
    }
}

/// What an object's `managedFields` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The field is absent or `[]` (keep what the live object has).
    Unset,
    /// Entries that are all empty (`[{}]`): the client asks to clear the field.
    Reset,
    /// Entries to use.
    Entries(Vec<Entry>),
}

/// Reads `metadata.managedFields` of `obj`. Malformed entries are an error.
pub fn read(obj: &Value) -> Result<Recorded, Error> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Ok(Recorded::Unset);
    };
    if list.is_empty() {
        return Ok(Recorded::Unset);
    }
    if list.len() > MAX_ENTRIES {
        return Err(Error::FieldsV1(format!("more than {MAX_ENTRIES} managedFields entries")));
    }
    if list.iter().all(|e| e.as_object().is_none_or(Map::is_empty)) {
        return Ok(Recorded::Reset);
    }
    list.iter().map(Entry::from_json).collect::<Result<Vec<_>, _>>().map(Recorded::Entries)
}

/// The live object's entries (malformed ones are dropped, as upstream resets them).
pub fn live_entries(obj: &Value) -> Vec<Entry> {
    match read(obj) {
        Ok(Recorded::Entries(e)) => e,
        _ => Vec::new(),
    }
}

/// Writes `entries` (without empty ones) into `obj`'s metadata; none removes the field.
pub fn write(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries.iter().filter(|e| !e.set.is_empty()).map(Entry::to_json).collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}
