//! Keeps docs/podspec-fields.md true: every field of k8s-openapi's PodSpec,
//! Container, Volume and security contexts has a row (and no row names a
//! field that does not exist), and every refusal the table claims is made,
//! by the apiserver's validation or by the agent's admission, naming the field.
//! No cluster needed.

use std::collections::BTreeMap;

use bosun_agent::admission;
use bosun_control::apiserver::objects::{prepare, FieldValidation};
use bosun_control::apiserver::registry::{by_kind, Kind};
use bosun_control::apiserver::{defaults, validation};
use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, PodSpec, SecurityContext, Volume};
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{json, Value};

const TABLE: &str = include_str!("../docs/podspec-fields.md");

/// A deserializer that only records the field list a struct asks for.
struct FieldNames<'a>(&'a mut Vec<&'static str>);

impl<'de> de::Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.extend_from_slice(fields);
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut names = Vec::new();
    let _ = T::deserialize(FieldNames(&mut names));
    assert!(!names.is_empty(), "{} declares no fields", std::any::type_name::<T>());
    names
}

/// `section -> field -> (state, notes)` from the markdown tables.
fn table() -> BTreeMap<String, BTreeMap<String, (String, String)>> {
    let mut out: BTreeMap<String, BTreeMap<String, (String, String)>> = BTreeMap::new();
    let mut section = String::new();
    for line in TABLE.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_string();
            continue;
        }
        let Some(row) = line.strip_prefix("| `") else { continue };
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells.len() >= 3, "malformed row: {line}");
        let field = cells[0].trim_end_matches('`').to_string();
        let state = cells[1].trim().to_string();
        let notes = cells[2].trim_end_matches('|').trim().to_string();
        let previous = out.entry(section.clone()).or_default().insert(field.clone(), (state, notes));
        assert!(previous.is_none(), "{section}.{field} appears twice");
    }
    out
}

const STATES: [&str; 7] =
    ["works", "partly", "refused (apiserver)", "refused (node)", "no effect", "in progress (issue 8)", "missing"];

#[test]
fn every_field_has_exactly_one_row_with_a_known_state() {
    let table = table();
    let types: [(&str, Vec<&str>); 5] = [
        ("PodSpec", fields_of::<PodSpec>()),
        ("Container", fields_of::<Container>()),
        ("Volume", fields_of::<Volume>()),
        ("PodSecurityContext", fields_of::<PodSecurityContext>()),
        ("SecurityContext", fields_of::<SecurityContext>()),
    ];
    for (section, fields) in &types {
        let rows = table.get(*section).unwrap_or_else(|| panic!("no section {section}"));
        for field in fields {
            assert!(rows.contains_key(*field), "{section}.{field} is not in docs/podspec-fields.md");
        }
        for field in rows.keys() {
            assert!(fields.contains(&field.as_str()), "{section}.{field} is in the table but not in k8s-openapi");
        }
    }
    assert!(table.contains_key("EphemeralContainer"), "ephemeral containers have a row");
    for (section, rows) in &table {
        for (field, (state, notes)) in rows {
            assert!(STATES.contains(&state.as_str()), "{section}.{field}: unknown state {state:?}");
            if matches!(state.as_str(), "partly" | "no effect" | "missing") {
                assert!(!notes.is_empty(), "{section}.{field}: a {state} row says why");
            }
        }
    }
}

/// Where a refusal comes from, and what makes it.
enum Refuser {
    Apiserver,
    Node,
}

/// A pod spec fragment for every refusal the table claims, merged into a
/// plain pod; `needle` must appear in the refusal (field path or message).
fn examples() -> Vec<(&'static str, &'static str, Refuser, Value, &'static str)> {
    use Refuser::{Apiserver, Node};
    let c = |extra: Value| {
        let mut base = json!({"name": "c", "image": "busybox"});
        json_merge(&mut base, extra);
        json!({"containers": [base]})
    };
    let vol = |source: Value| json!({"volumes": [source]});
    let volume_sources: Vec<(&'static str, Value)> = vec![
        ("awsElasticBlockStore", json!({"volumeID": "v"})),
        ("azureDisk", json!({"diskName": "d", "diskURI": "u"})),
        ("azureFile", json!({"secretName": "s", "shareName": "s"})),
        ("cephfs", json!({"monitors": ["m"]})),
        ("cinder", json!({"volumeID": "v"})),
        ("csi", json!({"driver": "d"})),
        ("ephemeral", json!({})),
        ("fc", json!({})),
        ("flexVolume", json!({"driver": "d"})),
        ("flocker", json!({})),
        ("gcePersistentDisk", json!({"pdName": "p"})),
        ("gitRepo", json!({"repository": "r"})),
        ("glusterfs", json!({"endpoints": "e", "path": "p"})),
        ("image", json!({"reference": "busybox"})),
        ("iscsi", json!({"iqn": "i", "lun": 0, "targetPortal": "t"})),
        ("nfs", json!({"server": "s", "path": "/p"})),
        ("persistentVolumeClaim", json!({"claimName": "c"})),
        ("photonPersistentDisk", json!({"pdID": "p"})),
        ("portworxVolume", json!({"volumeID": "v"})),
        ("quobyte", json!({"registry": "r", "volume": "v"})),
        ("rbd", json!({"image": "i", "monitors": ["m"]})),
        ("scaleIO", json!({"gateway": "g", "secretRef": {"name": "s"}, "system": "s"})),
        ("storageos", json!({})),
        ("vsphereVolume", json!({"volumePath": "p"})),
    ];
    let mut out = vec![
        (
            "PodSpec",
            "ephemeralContainers",
            Apiserver,
            json!({"ephemeralContainers": [{"name": "d", "image": "busybox"}]}),
            "spec.ephemeralContainers",
        ),
        (
            "PodSpec",
            "hostAliases",
            Node,
            json!({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]}),
            "spec.hostAliases",
        ),
        ("PodSpec", "resourceClaims", Node, json!({"resourceClaims": [{"name": "gpu"}]}), "spec.resourceClaims"),
        ("PodSpec", "runtimeClassName", Node, json!({"runtimeClassName": "kata"}), "spec.runtimeClassName"),
        ("PodSpec", "setHostnameAsFQDN", Node, json!({"setHostnameAsFQDN": true}), "spec.setHostnameAsFQDN"),
        ("PodSpec", "overhead", Node, json!({"overhead": {"cpu": "10m"}}), "spec.overhead"),
        ("PodSpec", "resources", Node, json!({"resources": {"limits": {"cpu": "1"}}}), "spec.resources"),
        ("PodSpec", "hostUsers", Node, json!({"hostUsers": false}), "spec.hostUsers"),
        ("PodSpec", "os", Node, json!({"os": {"name": "windows"}}), "OS field"),
        (
            "Container",
            "volumeDevices",
            Node,
            c(json!({"volumeDevices": [{"name": "v", "devicePath": "/dev/x"}]})),
            "volumeDevices",
        ),
        ("Container", "resources", Node, c(json!({"resources": {"claims": [{"name": "gpu"}]}})), "resources.claims"),
        (
            "Container",
            "volumeMounts",
            Node,
            {
                let mut spec = c(
                    json!({"volumeMounts": [{"name": "v", "mountPath": "/m", "readOnly": true, "recursiveReadOnly": "Enabled"}]}),
                );
                spec["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
                spec
            },
            "recursiveReadOnly",
        ),
        (
            "EphemeralContainer",
            "*",
            Apiserver,
            json!({"ephemeralContainers": [{"name": "d", "image": "busybox", "tty": true}]}),
            "spec.ephemeralContainers",
        ),
        (
            "Volume",
            "projected",
            Node,
            vol(json!({"name": "p", "projected": {"sources": [{"clusterTrustBundle": {"path": "b", "name": "n"}}]}})),
            "clusterTrustBundle",
        ),
        (
            "PodSecurityContext",
            "appArmorProfile",
            Node,
            json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
            "appArmorProfile",
        ),
        (
            "PodSecurityContext",
            "seccompProfile",
            Node,
            json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}),
            "seccompProfile",
        ),
        (
            "PodSecurityContext",
            "supplementalGroupsPolicy",
            Node,
            json!({"securityContext": {"supplementalGroupsPolicy": "Strict"}}),
            "supplementalGroupsPolicy",
        ),
        (
            "PodSecurityContext",
            "sysctls",
            Node,
            json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}),
            "kernel.msgmax",
        ),
        (
            "SecurityContext",
            "appArmorProfile",
            Node,
            c(json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}})),
            "appArmorProfile",
        ),
        ("SecurityContext", "procMount", Node, c(json!({"securityContext": {"procMount": "Unmasked"}})), "procMount"),
        (
            "SecurityContext",
            "seccompProfile",
            Node,
            c(json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}})),
            "seccompProfile",
        ),
    ];
    out.push(("PodSpec", "volumes", Node, vol(json!({"name": "n", "nfs": {"server": "s", "path": "/p"}})), "nfs"));
    out.push(("Volume", "emptyDir", Node, vol(json!({"name": "h", "emptyDir": {"medium": "HugePages"}})), "HugePages"));
    for (name, source) in volume_sources {
        let mut volume = json!({"name": "v"});
        volume[name] = source;
        out.push(("Volume", name, Node, vol(volume), name));
    }
    out
}

fn json_merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
}

fn pod_with(fragment: &Value) -> Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    json_merge(&mut spec, fragment.clone());
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

/// The apiserver's causes for creating `pod`, as `field: message` lines.
fn apiserver_causes(pod: &Value) -> Vec<String> {
    let info = by_kind(Kind::Pod);
    let (mut obj, _) = prepare(info, pod.clone(), FieldValidation::Strict).expect("typed pod");
    defaults::apply(Kind::Pod, &mut obj);
    validation::validate(info, &obj).into_iter().map(|c| format!("{}: {}", c.field, c.message)).collect()
}

fn node_refusal(pod: &Value) -> Option<String> {
    let pod: Pod = serde_json::from_value(pod.clone()).expect("pod");
    admission::admit(&pod).err().map(|r| format!("{}: {}", r.reason.as_str(), r.message))
}

#[test]
fn every_refusal_in_the_table_is_made() {
    let plain = pod_with(&json!({}));
    assert_eq!(apiserver_causes(&plain), Vec::<String>::new(), "the base pod is valid");
    assert_eq!(node_refusal(&plain), None, "the base pod is admitted");
    let examples = examples();
    let table = table();
    for (section, rows) in &table {
        for (field, (state, notes)) in rows {
            if !format!("{state} {notes}").contains("refused (") {
                continue;
            }
            let found = examples.iter().any(|(s, f, ..)| s == section && f == field);
            assert!(found, "{section}.{field} is marked refused but has no example in tests/podspec_fields.rs");
        }
    }
    for (section, field, refuser, fragment, needle) in examples {
        let (state, notes) = table
            .get(section)
            .and_then(|rows| rows.get(field))
            .unwrap_or_else(|| panic!("{section}.{field} has an example but no row"));
        let pod = pod_with(&fragment);
        match refuser {
            Refuser::Apiserver => {
                assert!(format!("{state} {notes}").contains("refused (apiserver)"), "{section}.{field}");
                let causes = apiserver_causes(&pod);
                assert!(causes.iter().any(|c| c.contains(needle)), "{section}.{field}: {causes:?} lacks {needle:?}");
            }
            Refuser::Node => {
                assert!(format!("{state} {notes}").contains("refused (node)"), "{section}.{field}");
                assert_eq!(apiserver_causes(&pod), Vec::<String>::new(), "{section}.{field}: valid for the apiserver");
                let refusal = node_refusal(&pod).unwrap_or_else(|| panic!("{section}.{field}: admitted"));
                assert!(refusal.contains(needle), "{section}.{field}: {refusal:?} lacks {needle:?}");
            }
        }
    }
}
