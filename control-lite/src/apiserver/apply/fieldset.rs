//! Field sets: trees of field paths in upstream's FieldsV1 shape.
//!
//! A path is a list of [`Element`]s: a field name (`f:name`), an item of an
//! associative list named by its merge key (`k:{"name":"x"}`), or a value
//! of a set-like list (`v:"x"`). A node of the tree is a *member* when the
//! path itself is in the set (serialised as `.` when it also has children).
//!
//! Which lists are associative (and by which key) and which are sets comes
//! from strategic merge patch's table ([`list_strategy`]); every other list
//! is atomic (a leaf). Walks are bounded by [`Budget`].

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::Error;
use crate::apiserver::patch::{list_strategy, ListStrategy};

/// Deepest path a field set may hold.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one walk may visit.
pub const MAX_NODES: usize = 200_000;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// A field of an object.
    Field(String),
    /// An item of an associative list: its key as canonical JSON (`{"name":"x"}`).
    Key(String),
    /// An item of a set-like list: its value as JSON.
    Value(String),
    /// An item by position (only read from stored sets; never produced).
    Index(String),
}

impl Element {
    fn encode(&self) -> String {
        match self {
            Element::Field(f) => format!("f:{f}"),
            Element::Key(k) => format!("k:{k}"),
            Element::Value(v) => format!("v:{v}"),
            Element::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Result<Element, Error> {
        let bad = || Error::FieldsV1(format!("unknown path element {s:?}"));
        let (tag, rest) = s.split_once(':').ok_or_else(bad)?;
        let canonical = |text: &str| -> Result<String, Error> {
            let v: Value = serde_json::from_str(text).map_err(|_| bad())?;
            Ok(v.to_string())
        };
        match tag {
            "f" => Ok(Element::Field(rest.to_string())),
            "k" => Ok(Element::Key(canonical(rest)?)),
            "v" => Ok(Element::Value(canonical(rest)?)),
            "i" => Ok(Element::Index(rest.to_string())),
            _ => Err(bad()),
        }
    }
}

/// A path of elements rendered as upstream prints it (`.spec.containers[name="a"].image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub Vec<Element>);

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            match e {
                Element::Field(name) => write!(f, ".{name}")?,
                Element::Key(k) => {
                    let fields = serde_json::from_str::<Map<String, Value>>(k).unwrap_or_default();
                    let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, "[{}]", parts.join(","))?
                }
                Element::Value(v) => write!(f, "[={v}]")?,
                Element::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A set of paths as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    member: bool,
    children: BTreeMap<Element, Set>,
}

impl Set {
    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: &[Element]) {
        let mut node = self;
        for e in path {
            node = node.children.entry(e.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[Element]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or any path below it is a member.
    pub fn covers(&self, path: &[Element]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// The subtree at `path`.
    pub fn node(&self, path: &[Element]) -> Option<&Set> {
        let mut node = self;
        for e in path {
            node = node.children.get(e)?;
        }
        Some(node)
    }

    /// The child at `e`, if any.
    pub fn child(&self, e: &Element) -> Option<&Set> {
        self.children.get(e)
    }

    /// Whether this node itself is a member.
    pub fn is_member(&self) -> bool {
        self.member
    }

    /// Paths in either set.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.union_in(other);
        out
    }

    fn union_in(&mut self, other: &Set) {
        self.member |= other.member;
        for (e, child) in &other.children {
            self.children.entry(e.clone()).or_default().union_in(child);
        }
    }

    /// Paths of `self` not in `other`.
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set { member: self.member && !other.member, children: BTreeMap::new() };
        for (e, child) in &self.children {
            let diff = match other.children.get(e) {
                Some(o) => child.difference(o),
                None => child.clone(),
            };
            if !diff.is_empty() {
                out.children.insert(e.clone(), diff);
            }
        }
        out
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set { member: self.member && other.member, children: BTreeMap::new() };
        for (e, child) in &self.children {
            if let Some(o) = other.children.get(e) {
                let both = child.intersection(o);
                if !both.is_empty() {
                    out.children.insert(e.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<Element>, out: &mut Vec<Path>) {
        if self.member && !prefix.is_empty() {
            out.push(Path(prefix.clone()));
        }
        for (e, child) in &self.children {
            prefix.push(e.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 JSON form.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (e, child) in &self.children {
            m.insert(e.encode(), child.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Parses the FieldsV1 JSON form (at most [`MAX_DEPTH`] deep, [`MAX_NODES`] nodes).
    pub fn from_fields_v1(v: &Value) -> Result<Set, Error> {
        let mut budget = Budget::default();
        let mut set = Self::parse_node(v, &mut budget, 0)?;
        // The root is never a member.
        set.member = false;
        Ok(set)
    }

    fn parse_node(v: &Value, budget: &mut Budget, depth: usize) -> Result<Set, Error> {
        budget.step(depth)?;
        let m = v.as_object().ok_or_else(|| Error::FieldsV1("a node must be an object".into()))?;
        let mut set = Set { member: m.is_empty(), children: BTreeMap::new() };
        for (k, child) in m {
            if k == "." {
                set.member = true;
                continue;
            }
            let node = Self::parse_node(child, budget, depth.saturating_add(1))?;
            set.children.insert(Element::decode(k)?, node);
        }
        Ok(set)
    }
}

/// Bounds one walk over user input.
#[derive(Debug, Default)]
pub struct Budget {
    nodes: usize,
}

impl Budget {
    /// Counts one node at `depth`.
    pub fn step(&mut self, depth: usize) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(1);
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { max: MAX_DEPTH });
        }
        if self.nodes > MAX_NODES {
            return Err(Error::TooManyFields { max: MAX_NODES });
        }
        Ok(())
    }
}

/// The key element of list item `item` merged by `key`, if it has one.
/// Ports are keyed by number and protocol (default `TCP`), as upstream's
/// list-map keys, although strategic merge uses the number alone.
pub fn key_element(item: &Value, key: &str) -> Option<Element> {
    let obj = item.as_object()?;
    let mut m = Map::new();
    m.insert(key.to_string(), obj.get(key)?.clone());
    if matches!(key, "containerPort" | "port") {
        let protocol = obj.get("protocol").cloned().unwrap_or_else(|| Value::from("TCP"));
        m.insert("protocol".into(), protocol);
    }
    Some(Element::Key(Value::Object(m).to_string()))
}

/// How a list value is tracked: its items by key (`Some`), or atomic (`None`).
pub enum ListItems<'a> {
    /// Items by key element (each key once).
    Keyed(Vec<(Element, &'a Value)>),
    /// Values of a set-like list.
    Set(Vec<Element>),
    /// A leaf.
    Atomic,
}

/// Classifies the list `field` (inside field `parent`) holding `items`: a
/// keyed list whose items lack keys or repeat one is atomic.
pub fn list_items<'a>(parent: &str, field: &str, items: &'a [Value]) -> ListItems<'a> {
    match list_strategy(parent, field) {
        ListStrategy::MergeKey(key) => {
            let mut out = Vec::with_capacity(items.len());
            let mut seen = std::collections::HashSet::with_capacity(items.len());
            for item in items {
                match key_element(item, key) {
                    Some(e) if seen.insert(e.clone()) => out.push((e, item)),
                    _ => return ListItems::Atomic,
                }
            }
            ListItems::Keyed(out)
        }
        ListStrategy::PrimitiveSet => ListItems::Set(items.iter().map(|v| Element::Value(v.to_string())).collect()),
        ListStrategy::Replace => ListItems::Atomic,
    }
}

/// The field set of an applied configuration: its leaves, the items of its
/// associative lists (with their fields), the values of its set lists.
/// Non-empty objects are not members themselves; empty ones are leaves.
pub fn of_config(config: &Map<String, Value>) -> Result<Set, Error> {
    let mut set = Set::default();
    let mut budget = Budget::default();
    walk_object(config, "", &mut Vec::new(), &mut set, &mut budget, Nodes::Leaves)?;
    Ok(set)
}

/// Which nodes a walk records besides leaves and list items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    /// Leaves and list items (an applied configuration).
    Leaves,
    /// Also map-typed objects (`.` in FieldsV1), as a write that created them owns them.
    Created,
    /// Every node (what a removal takes from every owner).
    Every,
}

/// Fields that are maps (string keys chosen by users), not structs: a write
/// creating one owns the map itself too. Without schemas, by name.
fn is_map_field(field: &str) -> bool {
    matches!(
        field,
        "labels"
            | "annotations"
            | "data"
            | "binaryData"
            | "stringData"
            | "matchLabels"
            | "nodeSelector"
            | "limits"
            | "requests"
            | "capacity"
            | "allocatable"
            | "parameters"
    )
}

/// Label selectors are atomic structs upstream (`x-kubernetes-map-type:
/// atomic`): owned, compared and replaced as one leaf.
pub fn is_atomic_object(field: &str, m: &Map<String, Value>) -> bool {
    matches!(field, "selector" | "labelSelector" | "namespaceSelector")
        && m.keys().all(|k| k == "matchLabels" || k == "matchExpressions")
}

/// The nodes of `v` at `path` (field `field` of an object in field `parent`).
pub fn nodes(
    v: &Value,
    parent: &str,
    field: &str,
    path: &mut Vec<Element>,
    set: &mut Set,
    budget: &mut Budget,
    which: Nodes,
) -> Result<(), Error> {
    walk_value(v, parent, field, path, set, budget, which)
}

fn walk_object(
    m: &Map<String, Value>,
    field: &str,
    path: &mut Vec<Element>,
    set: &mut Set,
    budget: &mut Budget,
    which: Nodes,
) -> Result<(), Error> {
    for (k, v) in m {
        path.push(Element::Field(k.clone()));
        walk_value(v, field, k, path, set, budget, which)?;
        path.pop();
    }
    Ok(())
}

fn walk_value(
    v: &Value,
    parent: &str,
    field: &str,
    path: &mut Vec<Element>,
    set: &mut Set,
    budget: &mut Budget,
    which: Nodes,
) -> Result<(), Error> {
    budget.step(path.len())?;
    match v {
        Value::Object(m) if !m.is_empty() && !is_atomic_object(field, m) => {
            if which == Nodes::Every || (which == Nodes::Created && is_map_field(field)) {
                set.insert(path);
            }
            walk_object(m, field, path, set, budget, which)
        }
        Value::Array(items) => match list_items(parent, field, items) {
            ListItems::Keyed(keyed) => {
                if which == Nodes::Every || keyed.is_empty() {
                    set.insert(path);
                }
                for (e, item) in keyed {
                    path.push(e);
                    set.insert(path);
                    if let Some(m) = item.as_object() {
                        walk_object(m, field, path, set, budget, which)?;
                    }
                    path.pop();
                }
                Ok(())
            }
            ListItems::Set(values) => {
                if which != Nodes::Leaves || values.is_empty() {
                    set.insert(path);
                }
                for e in values {
                    budget.step(path.len())?;
                    path.push(e);
                    set.insert(path);
                    path.pop();
                }
                Ok(())
            }
            ListItems::Atomic => {
                set.insert(path);
                Ok(())
            }
        },
        _ => {
            set.insert(path);
            Ok(())
        }
    }
}
