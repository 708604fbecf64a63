//! Priority admission (upstream's `Priority` admission plugin) and the
//! built-in PriorityClasses.
//!
//! Owns: resolving a new pod's `priorityClassName` (or the `globalDefault`
//! class) to `spec.priority` and `spec.preemptionPolicy`; refusing an
//! unknown class (422 on `spec.priorityClassName`) and a `spec.priority`
//! that contradicts the class; allowing one `globalDefault` class; creating
//! the `system-*` classes at bootstrap. The decisions are pure
//! (`resolve_pod`, `second_default`); the async wrappers only list classes.

use serde_json::{json, Value};

use super::crud;
use super::objects::{meta_str, WriteOptions};
use super::registry::{by_kind, Kind};
use super::selectors::Selectors;
use super::status::{invalid, ApiError, Cause, Result};
use super::validation::priority::SYSTEM_CLASSES;
use super::ApiState;

/// Preemption policy of a class that does not say.
pub const DEFAULT_PREEMPTION_POLICY: &str = "PreemptLowerPriority";

/// A PriorityClass as admission needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Object name.
    pub name: String,
    /// Its priority value.
    pub value: i32,
    /// Whether pods without a class get this one.
    pub global_default: bool,
    /// Its preemption policy.
    pub preemption_policy: String,
}

impl Class {
    fn from_json(obj: &Value) -> Class {
        let value = obj.get("value").and_then(Value::as_i64).unwrap_or(0);
        Class {
            name: meta_str(obj, "name").unwrap_or_default().to_string(),
            value: i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX }),
            global_default: obj.get("globalDefault").and_then(Value::as_bool).unwrap_or(false),
            preemption_policy: obj
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_PREEMPTION_POLICY)
                .to_string(),
        }
    }
}

/// Why a pod's priority cannot be admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `priorityClassName` names no class (422 on the field).
    UnknownClass(String),
    /// `spec.priority` was set and differs from the class (403, as upstream).
    PriorityMismatch {
        /// What the pod asked for.
        given: i32,
        /// What the class says.
        computed: i32,
    },
}

/// Fills `spec.priority`, `spec.priorityClassName` (from the global default)
/// and `spec.preemptionPolicy` of a new pod in JSON form.
pub fn resolve_pod(pod: &mut Value, classes: &[Class]) -> std::result::Result<(), Refusal> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    let name = spec.get("priorityClassName").and_then(Value::as_str).unwrap_or_default().to_string();
    let class = if name.is_empty() {
        // The highest global default, as upstream picks among several.
        classes.iter().filter(|c| c.global_default).max_by_key(|c| c.value)
    } else {
        Some(classes.iter().find(|c| c.name == name).ok_or(Refusal::UnknownClass(name))?)
    };
    let computed = class.map_or(0, |c| c.value);
    let given = spec.get("priority").and_then(Value::as_i64);
    if let Some(given) = given {
        if given != i64::from(computed) {
            let given = i32::try_from(given).unwrap_or(if given < 0 { i32::MIN } else { i32::MAX });
            return Err(Refusal::PriorityMismatch { given, computed });
        }
    }
    spec.insert("priority".into(), json!(computed));
    if let Some(class) = class {
        spec.insert("priorityClassName".into(), json!(class.name));
        if spec.get("preemptionPolicy").is_none_or(Value::is_null) {
            spec.insert("preemptionPolicy".into(), json!(class.preemption_policy));
        }
    } else if spec.get("preemptionPolicy").is_none_or(Value::is_null) {
        spec.insert("preemptionPolicy".into(), json!(DEFAULT_PREEMPTION_POLICY));
    }
    Ok(())
}

/// The other class already marked `globalDefault`, when `class` wants to be one too.
pub fn second_default<'a>(class: &Class, classes: &'a [Class]) -> Option<&'a Class> {
    if !class.global_default {
        return None;
    }
    classes.iter().find(|c| c.global_default && c.name != class.name)
}

async fn classes(state: &ApiState) -> Result<Vec<Class>> {
    let info = by_kind(Kind::PriorityClass);
    let (items, _) = crud::list(state, info, None, &Selectors::default()).await?;
    Ok(items.iter().map(Class::from_json).collect())
}

/// Admission of a new pod: resolves its priority in place.
pub async fn admit_pod(state: &ApiState, pod: &mut Value) -> Result<()> {
    let classes = classes(state).await?;
    let name = meta_str(pod, "name").unwrap_or_default().to_string();
    resolve_pod(pod, &classes).map_err(|refusal| match refusal {
        Refusal::UnknownClass(class) => invalid(
            by_kind(Kind::Pod),
            &name,
            vec![Cause {
                reason: "FieldValueNotFound",
                field: "spec.priorityClassName".into(),
                message: format!(
                    "Not found: {}: no PriorityClass with name {class} was found",
                    Value::from(class.as_str())
                ),
            }],
        ),
        Refusal::PriorityMismatch { given, computed } => ApiError::Forbidden(format!(
            "pods \"{name}\" is forbidden: the integer value of priority ({given}) must not be provided in pod spec; \
             priority admission controller computed {computed} from the given PriorityClass name"
        )),
    })
}

/// Admission of a PriorityClass write: at most one `globalDefault`.
pub async fn admit_class(state: &ApiState, obj: &Value) -> Result<()> {
    let class = Class::from_json(obj);
    if let Some(other) = second_default(&class, &classes(state).await?) {
        return Err(ApiError::Forbidden(format!(
            "priorityclasses.scheduling.k8s.io \"{}\" is forbidden: PriorityClass {} is already marked as default. Only one default can exist",
            class.name, other.name
        )));
    }
    Ok(())
}

/// Creates the `system-*` classes if missing.
pub async fn bootstrap(state: &ApiState) -> Result<()> {
    let info = by_kind(Kind::PriorityClass);
    for (name, value, description) in SYSTEM_CLASSES {
        let body = json!({"metadata": {"name": name}, "value": value, "description": description});
        match crud::create(state, info, None, body, WriteOptions::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, value: i32, global_default: bool, policy: &str) -> Class {
        Class { name: name.into(), value, global_default, preemption_policy: policy.into() }
    }

    #[test]
    fn pods_get_their_class_priority() {
        let classes = [class("high", 1000, false, "PreemptLowerPriority"), class("batch", -5, false, "Never")];
        let with_default = [classes[0].clone(), classes[1].clone(), class("normal", 10, true, "PreemptLowerPriority")];
        type Want = std::result::Result<(Value, Value, Value), Refusal>;
        let cases: Vec<(&str, Value, &[Class], Want)> = vec![
            (
                "no class, no default: 0",
                json!({}),
                &classes,
                Ok((json!(0), Value::Null, json!("PreemptLowerPriority"))),
            ),
            (
                "named class",
                json!({"priorityClassName": "high"}),
                &classes,
                Ok((json!(1000), json!("high"), json!("PreemptLowerPriority"))),
            ),
            (
                "class policy Never",
                json!({"priorityClassName": "batch"}),
                &classes,
                Ok((json!(-5), json!("batch"), json!("Never"))),
            ),
            (
                "pod policy wins",
                json!({"priorityClassName": "high", "preemptionPolicy": "Never"}),
                &classes,
                Ok((json!(1000), json!("high"), json!("Never"))),
            ),
            (
                "global default",
                json!({}),
                &with_default,
                Ok((json!(10), json!("normal"), json!("PreemptLowerPriority"))),
            ),
            (
                "matching priority is fine",
                json!({"priorityClassName": "high", "priority": 1000}),
                &classes,
                Ok((json!(1000), json!("high"), json!("PreemptLowerPriority"))),
            ),
            (
                "unknown class",
                json!({"priorityClassName": "nope"}),
                &classes,
                Err(Refusal::UnknownClass("nope".into())),
            ),
            (
                "contradicting priority",
                json!({"priority": 7}),
                &classes,
                Err(Refusal::PriorityMismatch { given: 7, computed: 0 }),
            ),
        ];
        for (name, spec, classes, want) in cases {
            let mut pod = json!({"metadata": {"name": "p"}, "spec": spec});
            let got = resolve_pod(&mut pod, classes).map(|()| {
                (
                    pod["spec"]["priority"].clone(),
                    pod["spec"]["priorityClassName"].clone(),
                    pod["spec"]["preemptionPolicy"].clone(),
                )
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn only_one_global_default() {
        let classes = [class("a", 1, true, "Never"), class("b", 2, false, "Never")];
        assert_eq!(second_default(&class("c", 3, true, "Never"), &classes), Some(&classes[0]));
        assert_eq!(second_default(&class("a", 5, true, "Never"), &classes), None, "updating itself");
        assert_eq!(second_default(&class("c", 3, false, "Never"), &classes), None);
    }
}
