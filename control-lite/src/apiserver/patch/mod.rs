//! PATCH bodies: JSON merge patch, strategic merge patch and JSON patch.
//!
//! Strategic merge patch is in `strategic` (merge keys of the built-in list
//! fields; unknown lists are replaced).
//!
//! Bounded work: a JSON patch has at most [`Limits::max_operations`]
//! operations, the bytes its `copy` operations duplicate count against
//! [`Limits::max_bytes`], and every patch's result must encode within
//! `max_bytes`. Keyed and set-like list merges index the original list, so
//! they are linear in the list sizes.

mod strategic;

use serde_json::Value;

pub use strategic::{list_strategy, strategic_merge, ListStrategy};

/// Most operations in one JSON patch (as upstream).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Bounds of one patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most JSON patch operations.
    pub max_operations: usize,
    /// Largest encoded result (and most bytes `copy` operations may duplicate).
    pub max_bytes: usize,
}

/// Patch failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The patch body is not valid JSON of the right shape.
    #[error("invalid patch body: {0}")]
    Body(String),
    /// A JSON patch operation failed.
    #[error("the json patch could not be applied: {0}")]
    JsonPatch(#[from] json_patch::PatchError),
    /// CBOR apply bodies are not implemented.
    #[error("application/apply-patch+cbor is not supported by this apiserver; send application/apply-patch+yaml")]
    ApplyUnsupported,
    /// An apply body where only patches are supported (subresources such as `/scale`).
    #[error("server-side apply (application/apply-patch+yaml) is not supported here; use a patch type")]
    NotAPatch,
    /// A JSON patch with too many operations.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {count}")]
    TooManyOperations { count: usize, max: usize },
    /// The patched object (or what copy operations duplicate) is too large.
    #[error("the patched object is larger than the limit of {max} bytes")]
    TooLarge { max: usize },
    /// Unknown content type.
    #[error("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json")]
    UnknownType(String),
}

/// Supported patch kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 7386.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// RFC 6902.
    Json,
    /// Server-side apply (`application/apply-patch+yaml`): handled by `apply`, not here.
    Apply,
}

impl PatchType {
    /// From the request Content-Type.
    pub fn from_content_type(ct: &str) -> Result<PatchType, Error> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            "application/apply-patch+cbor" => Err(Error::ApplyUnsupported),
            other => Err(Error::UnknownType(other.to_string())),
        }
    }
}

/// Applies `body` of `kind` to `doc` within `limits`, returning the patched document.
pub fn apply(kind: PatchType, doc: &Value, body: &[u8], limits: Limits) -> Result<Value, Error> {
    let mut out = doc.clone();
    match kind {
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| Error::Body(e.to_string()))?;
            json_patch::merge(&mut out, &patch);
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| Error::Body(e.to_string()))?;
            if !patch.is_object() {
                return Err(Error::Body("a strategic merge patch must be a JSON object".into()));
            }
            out = strategic_merge(&out, &patch, "");
        }
        PatchType::Apply => return Err(Error::NotAPatch),
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(|e| Error::Body(e.to_string()))?;
            if patch.0.len() > limits.max_operations {
                return Err(Error::TooManyOperations { count: patch.0.len(), max: limits.max_operations });
            }
            apply_json_patch(&mut out, &patch.0, limits.max_bytes)?;
        }
    }
    if encoded_len_within(&out, limits.max_bytes).is_none() {
        return Err(Error::TooLarge { max: limits.max_bytes });
    }
    Ok(out)
}

/// Applies JSON patch operations one by one (on a copy, so no undo log),
/// counting the bytes `copy` operations duplicate against `max_bytes`: without
/// that, a few copies of a document into itself grow it exponentially.
fn apply_json_patch(doc: &mut Value, ops: &[json_patch::PatchOperation], max_bytes: usize) -> Result<(), Error> {
    let mut copied = 0usize;
    for op in ops {
        if let json_patch::PatchOperation::Copy(copy) = op {
            let budget = max_bytes.saturating_sub(copied);
            if let Some(source) = doc.pointer(copy.from.as_str()) {
                let size = encoded_len_within(source, budget).ok_or(Error::TooLarge { max: max_bytes })?;
                copied = copied.saturating_add(size);
            }
        }
        json_patch::patch_unsafe(doc, std::slice::from_ref(op))?;
    }
    Ok(())
}

/// The JSON-encoded size of `v` if it is at most `max` (stops counting past it).
pub fn encoded_len_within(v: &Value, max: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        max: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n = self.n.saturating_add(buf.len());
            if self.n > self.max {
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, max };
    serde_json::to_writer(&mut counter, v).ok().map(|()| counter.n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) const LIMITS: Limits = Limits { max_operations: MAX_JSON_PATCH_OPERATIONS, max_bytes: 1 << 20 };

    #[test]
    fn json_patch_operation_count_and_result_size_are_bounded() {
        let doc = json!({"a": "x"});
        let op = json!({"op": "replace", "path": "/a", "value": "y"});
        let ops = |n: usize| Value::Array(vec![op.clone(); n]).to_string();
        assert!(apply(PatchType::Json, &doc, ops(10_000).as_bytes(), LIMITS).is_ok());
        let err = apply(PatchType::Json, &doc, ops(10_001).as_bytes(), LIMITS).expect_err("too many");
        assert!(matches!(err, Error::TooManyOperations { count: 10_001, max: 10_000 }), "{err}");
        // Copying the document into itself doubles it each time.
        let big = json!({"a": "x".repeat(1000)});
        let doubling: Vec<Value> =
            (0..20).map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")})).collect();
        let small = Limits { max_bytes: 100_000, ..LIMITS };
        let err = apply(PatchType::Json, &big, Value::Array(doubling).to_string().as_bytes(), small);
        assert!(matches!(err, Err(Error::TooLarge { .. })), "{err:?}");
        for kind in [PatchType::Merge, PatchType::Strategic] {
            let grow = json!({"b": "y".repeat(200_000)}).to_string();
            assert!(matches!(apply(kind, &doc, grow.as_bytes(), small), Err(Error::TooLarge { .. })), "{kind:?}");
        }
        assert_eq!(encoded_len_within(&json!({"a": 1}), 100), Some(7));
        assert_eq!(encoded_len_within(&json!({"a": 1}), 6), None);
    }

    #[test]
    fn merge_and_json_patches_and_content_types() {
        let orig = json!({"spec": {"replicas": 1, "list": [1, 2]}});
        let out = apply(PatchType::Merge, &orig, br#"{"spec":{"replicas":5,"list":[3]}}"#, LIMITS).expect("merge");
        assert_eq!(out, json!({"spec": {"replicas": 5, "list": [3]}}));
        let out = apply(PatchType::Json, &orig, br#"[{"op":"replace","path":"/spec/replicas","value":2}]"#, LIMITS)
            .expect("json patch");
        assert_eq!(out["spec"]["replicas"], 2);
        assert!(apply(PatchType::Json, &orig, br#"[{"op":"remove","path":"/nope"}]"#, LIMITS).is_err());
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8").ok(),
            Some(PatchType::Merge)
        );
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml").ok(), Some(PatchType::Apply));
        assert!(matches!(PatchType::from_content_type("application/apply-patch+cbor"), Err(Error::ApplyUnsupported)));
    }
}
