//! Comparison of two objects as field sets: what a write added, removed or
//! modified. Added and removed subtrees count every node (objects and list
//! items too); modified holds the leaves whose value changed.

use serde_json::{Map, Value};

use super::fieldset::{is_atomic_object, list_items, nodes, Budget, Element, ListItems, Nodes, Set};
use super::Error;

/// What changed from one object to the next.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Paths only in the new object.
    pub added: Set,
    /// Paths only in the old object.
    pub removed: Set,
    /// Leaves in both with different values.
    pub modified: Set,
}

impl Comparison {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }

    /// Added and modified paths: what the writer set.
    pub fn changed(&self) -> Set {
        self.added.union(&self.modified)
    }
}

/// Compares `old` with `new` (both objects; a non-object is empty).
pub fn compare(old: &Value, new: &Value) -> Result<Comparison, Error> {
    let empty = Map::new();
    let mut c = Comparison::default();
    let mut budget = Budget::default();
    let (o, n) = (old.as_object().unwrap_or(&empty), new.as_object().unwrap_or(&empty));
    walk_objects(o, n, "", &mut Vec::new(), &mut c, &mut budget)?;
    Ok(c)
}

fn walk_objects(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    field: &str,
    path: &mut Vec<Element>,
    c: &mut Comparison,
    budget: &mut Budget,
) -> Result<(), Error> {
    for (k, ov) in old {
        path.push(Element::Field(k.clone()));
        match new.get(k) {
            Some(nv) => walk(ov, nv, field, k, path, c, budget)?,
            None => nodes(ov, field, k, path, &mut c.removed, budget, Nodes::Every)?,
        }
        path.pop();
    }
    for (k, nv) in new {
        if !old.contains_key(k) {
            path.push(Element::Field(k.clone()));
            nodes(nv, field, k, path, &mut c.added, budget, Nodes::Created)?;
            path.pop();
        }
    }
    Ok(())
}

fn walk(
    old: &Value,
    new: &Value,
    parent: &str,
    field: &str,
    path: &mut Vec<Element>,
    c: &mut Comparison,
    budget: &mut Budget,
) -> Result<(), Error> {
    budget.step(path.len())?;
    match (old, new) {
        (Value::Object(o), Value::Object(n))
            if (!o.is_empty() || !n.is_empty()) && !is_atomic_object(field, o) && !is_atomic_object(field, n) =>
        {
            walk_objects(o, n, field, path, c, budget)
        }
        (Value::Array(o), Value::Array(n)) => match (list_items(parent, field, o), list_items(parent, field, n)) {
            (ListItems::Keyed(o), ListItems::Keyed(n)) => {
                let old_items: std::collections::HashMap<&Element, &Value> = o.iter().map(|(e, v)| (e, *v)).collect();
                let new_keys: std::collections::HashSet<&Element> = n.iter().map(|(e, _)| e).collect();
                for (e, ov) in &o {
                    if !new_keys.contains(e) {
                        path.push(e.clone());
                        c.removed.insert(path);
                        if let Some(m) = ov.as_object() {
                            for (k, v) in m {
                                path.push(Element::Field(k.clone()));
                                nodes(v, field, k, path, &mut c.removed, budget, Nodes::Every)?;
                                path.pop();
                            }
                        }
                        path.pop();
                    }
                }
                for (e, nv) in &n {
                    path.push(e.clone());
                    match old_items.get(e) {
                        Some(ov) => {
                            let empty = Map::new();
                            let (om, nm) = (ov.as_object().unwrap_or(&empty), nv.as_object().unwrap_or(&empty));
                            walk_objects(om, nm, field, path, c, budget)?;
                        }
                        None => {
                            c.added.insert(path);
                            if let Some(m) = nv.as_object() {
                                for (k, v) in m {
                                    path.push(Element::Field(k.clone()));
                                    nodes(v, field, k, path, &mut c.added, budget, Nodes::Created)?;
                                    path.pop();
                                }
                            }
                        }
                    }
                    path.pop();
                }
                Ok(())
            }
            (ListItems::Set(o), ListItems::Set(n)) => {
                let old_values: std::collections::HashSet<&Element> = o.iter().collect();
                let new_values: std::collections::HashSet<&Element> = n.iter().collect();
                for (values, other, into) in [(&o, &new_values, &mut c.removed), (&n, &old_values, &mut c.added)] {
                    for e in values.iter().filter(|e| !other.contains(e)) {
                        path.push(e.clone());
                        into.insert(path);
                        path.pop();
                    }
                }
                Ok(())
            }
            _ => {
                if old != new {
                    c.modified.insert(path);
                }
                Ok(())
            }
        },
        _ => {
            if old != new {
                c.modified.insert(path);
            }
            Ok(())
        }
    }
}
