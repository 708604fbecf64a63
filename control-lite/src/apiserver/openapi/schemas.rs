//! `components.schemas` of a group/version document, generated from the
//! k8s-openapi types (their `schemars` implementations carry the upstream
//! names, such as `io.k8s.api.core.v1.Pod`, and the upstream field
//! descriptions). Nothing here describes a field by hand.
//!
//! The generator runs with OpenAPI 3.0 settings: references point into
//! `#/components/schemas/`, and a reference with a description beside it
//! becomes `allOf: [$ref]` plus the description, the shape upstream serves and
//! kubectl explain reads. On top of the generated definitions:
//! - every served kind, and its list, carries `x-kubernetes-group-version-kind`
//!   (explain finds a kind's schema by it);
//! - lists (`PodList`, ...) are generated from the item type, as k8s-openapi
//!   has no schema for its generic `List<T>`;
//! - `metadata` is not `required` on kinds: k8s-openapi marks it so because
//!   its field is not optional, but it deserializes a missing one as empty,
//!   and upstream does not require it.

use std::borrow::Cow;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::apiserver::registry::ResourceInfo;
use crate::apiserver::schema::{with_type, TypeVisitor, Typed};

/// Where references point (OpenAPI 3).
pub const REF_PREFIX: &str = "#/components/schemas/";

/// The list of `T`, named `<T's name>List` as upstream names lists.
struct ListOf<T>(PhantomData<T>);

impl<T: JsonSchema> JsonSchema for ListOf<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("{}List", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        // apiVersion and kind say the same of a list as of its items.
        let item = T::json_schema(generator);
        let property = |name: &str| item.get("properties").and_then(|p| p.get(name)).cloned().unwrap_or(json!({}));
        let short = T::schema_name().rsplit('.').next().map(str::to_string).unwrap_or_default();
        let items = generator.subschema_for::<T>();
        let mut metadata = generator.subschema_for::<ListMeta>();
        metadata.insert("description".into(), "Standard list metadata.".into());
        json_schema!({
            "description": format!("{short}List is a list of {short} objects."),
            "type": "object",
            "properties": {
                "apiVersion": property("apiVersion"),
                "kind": property("kind"),
                "items": {"description": format!("List of {short} objects."), "type": "array", "items": items},
                "metadata": metadata,
            },
            "required": ["items"],
        })
    }
}

/// Adds a kind's schema (and its list's, for stored kinds) to a generator;
/// returns their names.
struct AddKind<'a> {
    generator: &'a mut SchemaGenerator,
    with_list: bool,
}

impl TypeVisitor for AddKind<'_> {
    type Output = (String, Option<String>);

    fn visit<T: Typed>(self) -> Self::Output {
        let kind = ref_name(&self.generator.subschema_for::<T>());
        let list = self.with_list.then(|| ref_name(&self.generator.subschema_for::<ListOf<T>>()));
        (kind, list)
    }
}

/// The definition name a `$ref` schema points to.
fn ref_name(schema: &Schema) -> String {
    let target = schema.get("$ref").and_then(Value::as_str).unwrap_or_default();
    target.strip_prefix(REF_PREFIX).unwrap_or(target).to_string()
}

fn gvk(r: &ResourceInfo, kind: &str) -> Value {
    json!([{"group": r.group, "version": r.version, "kind": kind}])
}

/// The schemas of `rows` (one group/version) and of everything they reference.
pub fn components(rows: &[&ResourceInfo]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let (custom, rows): (Vec<&ResourceInfo>, Vec<&ResourceInfo>) = rows.iter().copied().partition(|r| r.is_custom());
    let meta = (!custom.is_empty()).then(|| generator.subschema_for::<ObjectMeta>());
    let names: Vec<_> = rows
        .iter()
        .map(|r| {
            let added = with_type(r.kind, AddKind { generator: &mut generator, with_list: !r.is_review() });
            (*r, added)
        })
        .collect();
    let mut defs = generator.take_definitions(true);
    for r in custom {
        if let (Some(c), Some(meta)) = (r.custom, &meta) {
            defs.insert(custom_name(r), custom_schema(r, &c.openapi, meta.as_value()));
        }
    }
    for (r, (kind, list)) in names {
        if let Some(Value::Object(schema)) = defs.get_mut(&kind) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk(r, r.kind_name));
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
        }
        let list_schema = list.as_ref().and_then(|l| defs.get_mut(l)).and_then(Value::as_object_mut);
        if let Some(schema) = list_schema {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk(r, &format!("{}List", r.kind_name)));
        }
    }
    defs
}

/// Upstream's name of a custom kind's schema: the reversed group, the
/// version and the kind (`com.example.v1.Widget`).
fn custom_name(r: &ResourceInfo) -> String {
    let group: Vec<&str> = r.group.rsplit('.').collect();
    format!("{}.{}.{}", group.join("."), r.version, r.kind_name)
}

/// A custom kind's schema: its CRD's `openAPIV3Schema` with `apiVersion`,
/// `kind` and `metadata` described, as upstream publishes it.
fn custom_schema(r: &ResourceInfo, schema: &Value, meta: &Value) -> Value {
    let mut out = schema.clone();
    let text = |d: &str| json!({"type": "string", "description": d});
    if let Some(map) = out.as_object_mut() {
        let props = map.entry("properties").or_insert_with(|| json!({}));
        if let Some(props) = props.as_object_mut() {
            props.insert(
                "apiVersion".into(),
                text("APIVersion defines the versioned schema of this representation of an object."),
            );
            props.insert(
                "kind".into(),
                text("Kind is a string value representing the REST resource this object represents."),
            );
            props.insert("metadata".into(), json!({"allOf": [meta], "description": "Standard object's metadata."}));
        }
        map.insert("x-kubernetes-group-version-kind".into(), gvk(r, r.kind_name));
    }
    out
}
