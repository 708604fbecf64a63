//! policy/v1: PodDisruptionBudget printers and the `pods/eviction`
//! subresource. The rules live in `validation::policy`, the status in
//! `controllers::disruption`; the eviction's decision is the pure
//! [`decision::decide`], applied by [`eviction::evict`].

pub mod decision;
#[cfg(test)]
mod decision_tests;
pub mod eviction;

use serde_json::{json, Value};

use super::table::Column;

const NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.");
const AGE: Column =
    ("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.");

/// Columns of a PodDisruptionBudget (kubectl's: NAME MIN AVAILABLE MAX UNAVAILABLE ALLOWED DISRUPTIONS AGE).
pub fn pdb_columns() -> Vec<Column> {
    vec![
        NAME,
        ("Min Available", "string", 0, "The minimum number of pods that must be available."),
        ("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
        ("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."),
        AGE,
    ]
}

/// An int-or-string field as printed (`N/A` when unset).
fn int_or_string_cell(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(s)) => json!(s),
        _ => json!("N/A"),
    }
}

/// The cells of a PodDisruptionBudget's row.
pub fn pdb_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        int_or_string_cell(obj.pointer("/spec/minAvailable")),
        int_or_string_cell(obj.pointer("/spec/maxUnavailable")),
        json!(obj.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0)),
        age,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_match_columns_and_print_na_for_unset_bounds() {
        let pdb =
            json!({"metadata": {"name": "web"}, "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        let row = pdb_cells(&pdb, json!("web"), json!("1m"));
        assert_eq!(row.len(), pdb_columns().len());
        assert_eq!(row, vec![json!("web"), json!("2"), json!("N/A"), json!(1), json!("1m")]);
        let pct = json!({"spec": {"maxUnavailable": "50%"}});
        assert_eq!(pdb_cells(&pct, json!("p"), json!("1s"))[1..4], [json!("N/A"), json!("50%"), json!(0)]);
    }
}
