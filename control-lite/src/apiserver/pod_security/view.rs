//! A read-only view of the pod fields the checks look at, over the JSON
//! object (a Pod, or a workload's pod template), and the wording helpers
//! shared by the checks.

use serde_json::{Map, Value};

/// The metadata annotations and the spec of one pod (or pod template).
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a> {
    /// `metadata.annotations` (AppArmor's annotation form lives there).
    pub annotations: Option<&'a Map<String, Value>>,
    /// `spec`.
    pub spec: &'a Value,
}

/// One container of the pod: init, regular or ephemeral.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    pub name: &'a str,
    pub value: &'a Value,
}

impl<'a> Container<'a> {
    /// A field of the container's `securityContext`.
    pub fn sc(&self, pointer: &str) -> Option<&'a Value> {
        self.value.get("securityContext").and_then(|sc| sc.pointer(pointer))
    }
}

impl<'a> PodView<'a> {
    /// The view of a pod object (`metadata` + `spec`).
    pub fn of(obj: &'a Value) -> Option<PodView<'a>> {
        Some(PodView {
            annotations: obj.pointer("/metadata/annotations").and_then(Value::as_object),
            spec: obj.get("spec")?,
        })
    }

    /// A field of the pod's `securityContext`.
    pub fn sc(&self, pointer: &str) -> Option<&'a Value> {
        self.spec.get("securityContext").and_then(|sc| sc.pointer(pointer))
    }

    /// Every container, in upstream's order: init, regular, ephemeral.
    pub fn containers(&self) -> impl Iterator<Item = Container<'a>> + 'a {
        let spec = self.spec;
        ["initContainers", "containers", "ephemeralContainers"]
            .into_iter()
            .filter_map(move |field| spec.get(field).and_then(Value::as_array))
            .flatten()
            .map(|c| Container { name: c.get("name").and_then(Value::as_str).unwrap_or_default(), value: c })
    }

    /// The pod's volumes.
    pub fn volumes(&self) -> impl Iterator<Item = &'a Value> + 'a {
        self.spec.get("volumes").and_then(Value::as_array).into_iter().flatten()
    }

    /// `spec.<field>` is `true`.
    pub fn flag(&self, field: &str) -> bool {
        self.spec.get(field).and_then(Value::as_bool) == Some(true)
    }
}

/// `"a", "b"`.
pub fn quoted(items: &[impl AsRef<str>]) -> String {
    items.iter().map(|i| format!("\"{}\"", i.as_ref())).collect::<Vec<_>>().join(", ")
}

/// `container "a"` or `containers "a", "b"`.
pub fn containers_phrase(names: &[&str]) -> String {
    format!("{} {}", plural(names.len(), "container", "containers"), quoted(names))
}

/// The singular or the plural word for `n` things.
pub fn plural<'w>(n: usize, one: &'w str, many: &'w str) -> &'w str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A string field.
pub fn str_at(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}
