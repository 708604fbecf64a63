use super::*;

/// The schema a `$ref` (or an `allOf: [$ref]` with a description) points to.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema["$ref"].as_str().or_else(|| schema["allOf"][0]["$ref"].as_str()).unwrap_or_default();
    let name = target.strip_prefix(schemas::REF_PREFIX).unwrap_or_else(|| panic!("not a ref: {schema}"));
    &doc["components"]["schemas"][name]
}

fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, sub) in map {
                match (k.as_str(), sub) {
                    ("$ref", Value::String(s)) => out.push(s),
                    _ => collect_refs(sub, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

#[test]
fn every_patch_operation_advertises_field_validation_and_its_gvk() {
    let doc = group_version("apps", "v1").expect("apps");
    let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(
        item["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    let has = item["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query");
    assert!(has);
    assert!(group_version("", "v1").expect("core")["paths"]["/api/v1/nodes/{name}"].is_object());
}

#[test]
fn no_patch_operation_has_a_request_body_so_kubectl_keeps_its_compiled_in_patch_strategies() {
    for (g, v) in group_versions() {
        let doc = group_version(g, v).expect("served");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            assert!(item["patch"].get("requestBody").is_none(), "{path}");
        }
    }
}

#[test]
fn the_root_lists_every_group_version_with_its_content_hash() {
    let root: Value = serde_json::from_slice(&documents().root.body).expect("json");
    for (g, v) in group_versions() {
        let p = gv_path(g, v);
        let url = root["paths"][&p]["serverRelativeURL"].as_str().unwrap_or_default();
        let served = &documents().group_versions[&p];
        assert_eq!(url, format!("/openapi/v3/{p}?hash={}", served.hash));
        assert_eq!(served.hash, hash(group_version(g, v).expect("served").to_string().as_bytes()), "stable");
    }
}

#[test]
fn pod_schema_documents_its_containers() {
    let doc = group_version("", "v1").expect("core");
    let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert!(pod["description"].as_str().unwrap_or_default().starts_with("Pod is a collection of containers"));
    assert!(pod.get("required").is_none(), "metadata is optional: {pod}");
    let spec = &pod["properties"]["spec"];
    assert!(spec["description"].as_str().unwrap_or_default().contains("desired behavior of the pod"));
    let containers = &resolve(&doc, spec)["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert!(containers["description"].as_str().unwrap_or_default().contains("List of containers"));
    assert_eq!(containers["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Container");
    let container = resolve(&doc, &containers["items"]);
    assert!(container["description"].as_str().unwrap_or_default().starts_with("A single application container"));
    assert_eq!(container["required"], json!(["name"]));
    let resources = resolve(&doc, &container["properties"]["resources"]);
    assert!(resources["properties"]["limits"]["additionalProperties"].is_object());
}

#[test]
fn every_served_kind_and_list_carries_its_group_version_kind() {
    for r in RESOURCES {
        let doc = group_version(r.group, r.version).expect("served");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let has = |kind: &str| {
            let want = json!({"group": r.group, "version": r.version, "kind": kind});
            schemas.values().any(|s| s["x-kubernetes-group-version-kind"].as_array().is_some_and(|a| a.contains(&want)))
        };
        assert!(has(r.kind_name), "{}", r.kind_name);
        assert_eq!(has(&format!("{}List", r.kind_name)), !r.is_review(), "{}List", r.kind_name);
    }
    let core = group_version("", "v1").expect("core");
    let list = &core["components"]["schemas"]["io.k8s.api.core.v1.PodList"];
    assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Pod");
    assert!(list["properties"]["kind"]["description"].as_str().unwrap_or_default().starts_with("Kind is a string"));
}

#[test]
fn every_reference_resolves_within_its_document() {
    for (g, v) in group_versions() {
        let doc = group_version(g, v).expect("served");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r.strip_prefix(schemas::REF_PREFIX).unwrap_or_else(|| panic!("{r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{g}/{v}: {r}");
        }
    }
}

#[test]
fn quantities_and_int_or_strings_accept_both_numbers_and_strings() {
    let doc = group_version("apps", "v1").expect("apps");
    for name in ["io.k8s.apimachinery.pkg.api.resource.Quantity", "io.k8s.apimachinery.pkg.util.intstr.IntOrString"] {
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["x-kubernetes-int-or-string"], true, "{name}");
        assert!(schema.get("type").is_none(), "{name}: {schema}");
    }
}

#[test]
fn documents_are_served_with_an_etag_and_cached_for_good_under_their_hash() {
    let served = &documents().group_versions["apis/apps/v1"];
    let etag = format!("\"{}\"", served.hash);
    let query = format!("hash={}", served.hash);
    let resp = v3_response("apis/apps/v1", Some(&query), &HeaderMap::new()).expect("served");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::ETAG], etag.as_str());
    assert!(resp.headers()[header::CACHE_CONTROL].to_str().unwrap_or_default().contains("immutable"));
    let stale = v3_response("apis/apps/v1", Some("hash=0"), &HeaderMap::new()).expect("served");
    assert_eq!(stale.headers()[header::CACHE_CONTROL], "no-cache, private");
    let mut headers = HeaderMap::new();
    headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).expect("etag"));
    let again = v3_response("apis/apps/v1", None, &headers).expect("served");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(v3_response("apis/nope/v1", None, &HeaderMap::new()).is_none());
}

#[test]
fn document_sizes_and_build_time() {
    let started = Instant::now();
    let docs = build();
    let ms = started.elapsed().as_millis();
    let sizes: Vec<_> = docs.group_versions.iter().map(|(p, d)| format!("{p}={}", d.body.len())).collect();
    let total: usize = docs.group_versions.values().map(|d| d.body.len()).sum();
    eprintln!("openapi v3: {ms} ms, {total} bytes: {}", sizes.join(" "));
    assert!(docs.group_versions["api/v1"].body.len() > 100_000);
}

#[test]
fn openapi_v2_is_an_empty_protobuf_document_with_a_parseable_content_type() {
    let response = v2_response();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap_or_default();
    // Go's mime.ParseMediaType rejects '@' in a subtype.
    assert!(!content_type.contains('@') && content_type.ends_with("+protobuf"), "{content_type}");
}

#[test]
fn custom_documents_are_rendered_once_per_set_of_served_rows() {
    let crd = |plural: &str, kind: &str| {
        json!({"metadata": {"name": format!("{plural}.cache.io")}, "spec": {"group": "cache.io", "scope": "Cluster",
            "names": {"plural": plural, "singular": plural, "kind": kind, "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true}]},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}})
    };
    let served = crate::apiserver::crd::Served::default();
    served.set(&[crd("things", "Thing")], 1);
    let cache = CustomCache::default();
    let first = cache.get(&served.rows());
    assert!(first.group_versions.contains_key("apis/cache.io/v1"));
    // The same CRDs listed again (new `Arc`, same interned rows): no re-render.
    served.set(&[crd("things", "Thing")], 2);
    assert!(Arc::ptr_eq(&first, &cache.get(&served.rows())));
    served.set(&[crd("things", "Thing"), crd("gadgets", "Gadget")], 3);
    let second = cache.get(&served.rows());
    assert!(!Arc::ptr_eq(&first, &second));
    let doc: Value = serde_json::from_slice(&second.group_versions["apis/cache.io/v1"].body).expect("json");
    assert!(doc["paths"].as_object().is_some_and(|p| p.keys().any(|k| k.contains("/gadgets"))), "{doc}");
    let resp = v3_response_with("apis/cache.io/v1", None, &HeaderMap::new(), &served.rows(), &cache).expect("served");
    assert_eq!(
        resp.headers()[header::ETAG],
        format!("\"{}\"", second.group_versions["apis/cache.io/v1"].hash).as_str()
    );
}
