//! Store-facing operations on objects: get, list, create, update (PUT, PATCH,
//! status), delete. HTTP-free so subresources and bootstrap reuse them.

use serde_json::{json, Value};

use super::apply;
use super::claims;
use super::clusterip;
use super::crd;
use super::defaults;
use super::namespaces;
use super::nodeports;
use super::objects::{
    decode, differs, encode, meta_mut, meta_str, now_rfc3339, prepare, random_suffix, ready_to_remove, requested_rv,
    resets_status_on_create, set_rv, WriteOptions,
};
use super::pod_security;
use super::priority;
use super::registry::{by_kind, Kind, ResourceInfo};
use super::selectors::Selectors;
use super::service_accounts;
use super::status::{conflict, conflict_with, invalid, not_found, ApiError, Cause, Result};
use super::validation;
use super::ApiState;
use crate::store::KeyValue;

/// Attempts of a read-modify-write before giving up with a conflict.
pub(super) const RETRIES: usize = 8;

/// Reads one object with its mod revision.
pub async fn get(state: &ApiState, info: &ResourceInfo, ns: Option<&str>, name: &str) -> Result<(Value, i64)> {
    let key = info.key(ns, name);
    let kv = state
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::from_store(info, name, "get", &key, e))?
        .ok_or_else(|| not_found(info, name))?;
    let mut obj = decode(&kv)?;
    crd::to_version(info, &mut obj);
    Ok((obj, kv.mod_revision))
}

/// Lists objects matching `selectors`; returns them and the list revision.
pub async fn list(
    state: &ApiState,
    info: &ResourceInfo,
    ns: Option<&str>,
    selectors: &Selectors,
) -> Result<(Vec<Value>, i64)> {
    let (kvs, rev) = list_stored(state, info, ns).await?;
    let items = matching(info, &kvs, selectors).collect::<Result<Vec<_>>>()?;
    Ok((items, rev))
}

/// The stored objects of a collection, undecoded, and the list revision: for
/// [`matching`] to decode one at a time, so a large list never becomes one
/// tree of values.
pub async fn list_stored(state: &ApiState, info: &ResourceInfo, ns: Option<&str>) -> Result<(Vec<KeyValue>, i64)> {
    let prefix = info.prefix(ns);
    state.store.list(&prefix).await.map_err(|e| ApiError::from_store(info, "", "list", &prefix, e))
}

/// Decodes stored objects one at a time (with their `resourceVersion`, as
/// `info`'s version), keeping those that match `selectors`.
pub fn matching<'a>(
    info: &'a ResourceInfo,
    kvs: &'a [KeyValue],
    selectors: &'a Selectors,
) -> impl Iterator<Item = Result<Value>> + 'a {
    kvs.iter()
        .map(move |kv| {
            let mut obj = decode(kv)?;
            crd::to_version(info, &mut obj);
            Ok(obj)
        })
        .filter(|obj| obj.as_ref().map_or(true, |obj| selectors.matches(obj)))
}

/// Upstream's refusal of a create whose CRD is being deleted.
fn terminating_crd() -> ApiError {
    ApiError::MethodNotAllowed("create not allowed while custom resource definition is terminating".into())
}

/// The bytes stored for `obj` of `info` (custom resources at their storage version).
fn stored_bytes(info: &ResourceInfo, obj: &Value) -> Vec<u8> {
    if info.custom.is_none() {
        return encode(obj);
    }
    let mut stored = obj.clone();
    crd::to_storage(info, &mut stored);
    encode(&stored)
}

/// After a CRD write: serve what the stored CRDs define now.
async fn after_write(state: &ApiState, info: &ResourceInfo) -> Result<()> {
    if info.kind == Kind::CustomResourceDefinition {
        crd::reload(state).await?;
    }
    Ok(())
}

/// The namespace exists and accepts new content (404 / 403 otherwise);
/// returns it (Pod Security reads its labels).
async fn ensure_namespace(state: &ApiState, info: &ResourceInfo, ns: &str, name: &str) -> Result<Value> {
    let ns_info = by_kind(Kind::Namespace);
    let key = ns_info.key(None, ns);
    let found = state.store.get(&key).await.map_err(|e| ApiError::from_store(ns_info, ns, "get", &key, e))?;
    match found {
        Some(kv) => {
            let namespace = decode(&kv)?;
            namespaces::admit_create(info, name, ns, &namespace)?;
            Ok(namespace)
        }
        None => Err(not_found(ns_info, ns)),
    }
}

fn ip_error(e: clusterip::Error) -> Vec<Cause> {
    vec![Cause { reason: "FieldValueInvalid", field: "spec.clusterIPs".into(), message: e.to_string() }]
}

/// Plans and assigns a Service's ClusterIP (`old`: the stored object on
/// update). Returns the address newly taken (to free if the write fails) and
/// the stored one to free once the write is stored.
fn service_ips(
    state: &ApiState,
    info: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(Option<String>, Option<String>)> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    let plan = clusterip::plan(state.ips.cidr(), old, obj).map_err(|causes| invalid(info, &name, causes))?;
    let system = name == "kubernetes" && meta_str(obj, "namespace") == Some("default");
    let taken = state.ips.assign(&plan.action, obj, system, dry_run).map_err(|e| invalid(info, &name, ip_error(e)))?;
    Ok((taken, plan.release))
}

/// Addresses a Service write holds: its ClusterIP and node ports.
#[derive(Debug, Default)]
struct Held {
    ip: Option<String>,
    ports: Vec<u16>,
}

impl Held {
    fn addresses(&self) -> Vec<claims::Address> {
        claims::addresses(self.ip.as_deref(), &self.ports)
    }

    /// Gives the addresses back to this apiserver's allocators only.
    fn free_local(&self, state: &ApiState) {
        if let Some(ip) = &self.ip {
            state.ips.release(ip);
        }
        state.node_ports.release(&self.ports);
    }

    /// Gives the addresses back: to the allocators and their claims.
    async fn free(self, state: &ApiState) {
        self.free_local(state);
        claims::release(&state.store, &self.addresses()).await;
    }
}

/// Plans and takes a Service's ClusterIP and node ports (`old`: the stored
/// object on update) from this apiserver's allocators. Returns what was
/// newly taken (to free if the write fails) and what the stored object
/// held that this write gives up (to free once it is stored).
fn allocate_addresses(
    state: &ApiState,
    info: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(Held, Held)> {
    let (taken_ip, release_ip) = service_ips(state, info, old, obj, dry_run)?;
    match state.node_ports.assign(old, obj, dry_run) {
        Ok(ports) => Ok((Held { ip: taken_ip, ports: ports.taken }, Held { ip: release_ip, ports: ports.release })),
        Err(causes) => {
            Held { ip: taken_ip, ports: Vec::new() }.free_local(state);
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            Err(invalid(info, &name, causes))
        }
    }
}

/// Rounds of allocating and claiming before a Service write gives up (each
/// lost claim marks one more address used, so progress is certain).
const CLAIM_ATTEMPTS: usize = 64;

/// [`allocate_addresses`], then claims what was newly taken in the store
/// ([`claims`]), so no other apiserver on the same store hands it out. On
/// the first address another apiserver claimed first, every claimed
/// address is read once and marked used (so the next plan skips all of
/// them, not one per round), and the addresses are planned again from
/// `obj` as it came in.
async fn service_addresses(
    state: &ApiState,
    info: &ResourceInfo,
    old: Option<&Value>,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(Held, Held)> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    let owner = format!("{}/{name}", meta_str(obj, "namespace").unwrap_or_default());
    let original = obj.clone();
    let mut synced = false;
    for _ in 0..CLAIM_ATTEMPTS {
        let (taken, release) = allocate_addresses(state, info, old, obj, dry_run)?;
        if dry_run {
            return Ok((taken, release));
        }
        match claims::claim(&state.store, &taken.addresses(), &owner).await {
            Ok(None) => return Ok((taken, release)),
            Ok(Some(lost)) => {
                taken.free_local(state);
                let mut used = vec![lost];
                if !synced {
                    synced = true;
                    match claims::claimed(&state.store).await {
                        Ok(all) => used.extend(all),
                        Err(e) => return Err(ApiError::from_store(info, &name, "list claims", claims::PREFIX, e)),
                    }
                }
                for address in &used {
                    match address {
                        claims::Address::Ip(ip) => state.ips.mark(ip),
                        claims::Address::Port(port) => state.node_ports.mark_port(*port),
                    }
                }
                *obj = original.clone();
            }
            Err(e) => {
                taken.free_local(state);
                return Err(ApiError::from_store(info, &name, "claim address", claims::PREFIX, e));
            }
        }
    }
    Err(ApiError::Internal(format!("no Service address could be claimed after {CLAIM_ATTEMPTS} tries")))
}

/// Startup repair of stored Services whose addresses break the rules (see
/// [`clusterip::repair`]): written straight to the store, since an update
/// would (rightly) refuse to keep the bad address. Returns how many changed.
pub async fn repair_service_ips(state: &ApiState, services: Vec<Value>) -> Result<usize> {
    let info = by_kind(Kind::Service);
    let mut repaired = 0;
    for mut svc in services {
        let Some(action) = clusterip::repair(state.ips.cidr(), &svc) else { continue };
        let (ns, name) =
            (meta_str(&svc, "namespace").map(str::to_string), meta_str(&svc, "name").unwrap_or_default().to_string());
        let rev = requested_rv(&svc)?.unwrap_or_default();
        let before = svc.pointer("/spec/clusterIP").cloned().unwrap_or_default();
        let taken = state.ips.assign(&action, &mut svc, false, false).map_err(|e| invalid(info, &name, ip_error(e)))?;
        let key = info.key(ns.as_deref(), &name);
        if let Err(e) = state.store.update(&key, encode(&svc), Some(rev)).await {
            if let Some(ip) = taken {
                state.ips.release(&ip);
            }
            return Err(ApiError::from_store(info, &name, "update", &key, e));
        }
        let after = svc.pointer("/spec/clusterIP").cloned().unwrap_or_default();
        tracing::warn!(service = %key, %before, %after, "repaired a stored Service address that broke the ClusterIP rules");
        repaired += 1;
    }
    Ok(repaired)
}

/// Creates an object from a request body. Returns it and any warnings.
pub async fn create(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    body: Value,
    opts: WriteOptions,
) -> Result<(Value, Vec<String>)> {
    if state.crds.is_terminating(info) {
        return Err(terminating_crd());
    }
    let (mut obj, mut warnings) = prepare(info, body, opts.field_validation)?;
    let mut namespace = None;
    if let (true, Some(ns)) = (info.namespaced, ns) {
        match meta_str(&obj, "namespace") {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ))
            }
            _ => {}
        }
        namespace = Some(ensure_namespace(state, info, ns, meta_str(&obj, "name").unwrap_or_default()).await?);
    }
    let generate = meta_str(&obj, "generateName").unwrap_or_default().to_string();
    let fixed_name = meta_str(&obj, "name").unwrap_or_default().to_string();
    let Some(meta) = meta_mut(&mut obj) else {
        return Err(ApiError::BadRequest("the body must be an object".into()));
    };
    if info.namespaced {
        meta.insert("namespace".into(), json!(ns.unwrap_or("default")));
    } else {
        meta.remove("namespace");
    }
    for field in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        meta.remove(field);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    if super::objects::tracks_generation(info.kind) {
        meta.insert("generation".into(), json!(1));
    }
    if resets_status_on_create(info.kind) || (info.is_custom() && info.has_status()) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    defaults::apply(info.kind, &mut obj);
    defaults::on_create(info.kind, &mut obj);
    if let (Kind::CertificateSigningRequest, Some(user)) = (info.kind, &opts.requester) {
        // Whoever asks is the requester, on every create path (POST and
        // server-side apply alike), whatever the body says.
        super::certificates::set_requester(&mut obj, user);
    }
    if info.kind == Kind::CertificateSigningRequest {
        super::certificates::restrict_subject(&obj)?;
    }
    match info.kind {
        Kind::Pod => {
            service_accounts::admit(state, &mut obj).await?;
            priority::admit_pod(state, &mut obj).await?;
        }
        Kind::PriorityClass => priority::admit_class(state, &obj).await?,
        _ => {}
    }
    if info.kind == Kind::Namespace {
        namespaces::prepare_create(&mut obj);
    }
    if info.kind == Kind::CustomResourceDefinition {
        crd::admit(state, &mut obj, None);
    }
    record_update(info, None, &mut obj, UpdateScope::Main, &opts)?;
    ensure_size(state, &obj)?;
    let attempts = if fixed_name.is_empty() && !generate.is_empty() { RETRIES } else { 1 };
    for _ in 0..attempts {
        let mut candidate = obj.clone();
        if fixed_name.is_empty() && !generate.is_empty() {
            if let Some(meta) = meta_mut(&mut candidate) {
                meta.insert("name".into(), json!(format!("{generate}{}", random_suffix())));
            }
        }
        let name = meta_str(&candidate, "name").unwrap_or_default().to_string();
        let mut causes = validation::validate(info, &candidate);
        if info.kind == Kind::Namespace {
            causes.extend(pod_security::admission::validate_namespace(&candidate, None));
        }
        if !causes.is_empty() {
            return Err(invalid(info, &name, causes));
        }
        if let Some(namespace) = &namespace {
            let user = opts.requester.as_ref().map(|u| u.name.as_str());
            warnings.extend(pod_security::admission::admit(
                &state.pod_security,
                user,
                info,
                namespace,
                &candidate,
                None,
            )?);
        }
        let allocated = if info.kind == Kind::Service {
            service_addresses(state, info, None, &mut candidate, opts.dry_run).await?.0
        } else {
            Held::default()
        };
        if opts.dry_run {
            return Ok((candidate, warnings));
        }
        let key = info.key(ns, &name);
        match state.store.create(&key, stored_bytes(info, &candidate)).await {
            Ok(rev) => {
                set_rv(&mut candidate, rev);
                after_write(state, info).await?;
                if let (true, Some(ns)) = (info.namespaced, ns) {
                    namespaces::recheck_after_create(state, info, ns, &name, &candidate).await?;
                }
                if state.crds.is_terminating(info) {
                    // Its CRD was marked while this create was in flight:
                    // undone, so no object outlives the cleanup.
                    match state.store.delete(&key, Some(rev)).await {
                        Ok(_) | Err(crate::store::Error::NotFound { .. } | crate::store::Error::Conflict { .. }) => {}
                        Err(e) => return Err(ApiError::from_store(info, &name, "delete", &key, e)),
                    }
                    return Err(terminating_crd());
                }
                if info.kind == Kind::Namespace {
                    service_accounts::ensure_namespace_defaults(state, &name).await?;
                }
                return Ok((candidate, warnings));
            }
            Err(e) => {
                allocated.free(state).await;
                let err = ApiError::from_store(info, &name, "create", &key, e);
                if !(matches!(err, ApiError::AlreadyExists { .. }) && attempts > 1) {
                    return Err(err);
                }
            }
        }
    }
    Err(ApiError::Internal(format!("no free name for generateName {generate:?} after {RETRIES} tries")))
}

/// Which part of the object an update writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateScope {
    /// The main resource (status preserved if it has a status subresource).
    Main,
    /// `/status` only.
    Status,
    /// `pods/binding`: the main resource, allowed to set `spec.nodeName` once.
    Binding,
    /// `pods/resize`: only the containers' cpu/memory resources and resize policies.
    Resize,
    /// `certificatesigningrequests/approval`: only the status conditions.
    Approval,
}

impl UpdateScope {
    fn validation(self) -> validation::UpdateKind {
        match self {
            UpdateScope::Main => validation::UpdateKind::Main,
            UpdateScope::Status => validation::UpdateKind::Status,
            UpdateScope::Binding => validation::UpdateKind::Binding,
            UpdateScope::Resize => validation::UpdateKind::Resize,
            UpdateScope::Approval => validation::UpdateKind::Approval,
        }
    }
}

/// Read-modify-write of one object. `mutate` turns the current object into the
/// requested one; `precondition` is the resourceVersion the client required.
/// Retries on concurrent writes unless a precondition was given.
pub async fn update<F>(
    state: &ApiState,
    info: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    scope: UpdateScope,
    opts: WriteOptions,
    mut mutate: F,
) -> Result<(Value, Vec<String>)>
where
    F: FnMut(&Value) -> Result<Value>,
{
    let key = info.key(ns, name);
    for _ in 0..RETRIES {
        let (current, rev) = get(state, info, ns, name).await?;
        // The client's resourceVersion (if any) is the only precondition, so
        // `mutate` sees the object without one.
        let mut bare = current.clone();
        if let Some(meta) = meta_mut(&mut bare) {
            meta.remove("resourceVersion");
        }
        let requested = mutate(&bare)?;
        let precondition = requested_rv(&requested)?;
        if precondition.is_some_and(|p| p != rev) {
            return Err(conflict(info, name));
        }
        // A uid in the body is a precondition too (as upstream): a write meant
        // for an object that was deleted and re-created under the same name
        // must not land on the new one.
        if let Some(body_uid) = meta_str(&requested, "uid").filter(|u| !u.is_empty()) {
            let stored_uid = meta_str(&current, "uid").unwrap_or_default();
            if body_uid != stored_uid {
                return Err(conflict_with(
                    info,
                    name,
                    &format!("Precondition failed: UID in precondition: {body_uid}, UID in object meta: {stored_uid}"),
                ));
            }
        }
        if let Some(body_name) = meta_str(&requested, "name").filter(|n| !n.is_empty() && *n != name) {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let (Some(body_ns), Some(ns)) = (meta_str(&requested, "namespace").filter(|n| !n.is_empty()), ns) {
            if body_ns != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
        }
        let (prepared, warnings) = prepare(info, requested, opts.field_validation)?;
        let prepared = match scope {
            UpdateScope::Resize => {
                super::resize::take_resize(&current, &prepared).map_err(|c| invalid(info, name, c))?
            }
            _ => prepared,
        };
        let status_only = matches!(scope, UpdateScope::Status | UpdateScope::Approval);
        let mut next = super::objects::merge_update(info, status_only, &current, prepared);
        if info.kind == Kind::CertificateSigningRequest {
            super::certificates::prepare_update(scope, &current, &mut next);
        }
        defaults::apply(info.kind, &mut next);
        if info.kind == Kind::Namespace && scope == UpdateScope::Main {
            namespaces::keep_finalizers(&current, &mut next);
        }
        let service = info.kind == Kind::Service && scope != UpdateScope::Status;
        if service {
            clusterip::drop_type_dependent_fields(Some(&current), &mut next);
        }
        if info.kind == Kind::CustomResourceDefinition {
            crd::admit(state, &mut next, Some(&current));
        }
        record_update(info, Some(&current), &mut next, scope, &opts)?;
        ensure_size(state, &next)?;
        set_rv(&mut next, rev);
        let mut causes = validation::validate(info, &next);
        causes.extend(validation::validate_update(info, &current, &next, scope.validation()));
        let namespace_update = info.kind == Kind::Namespace && scope == UpdateScope::Main;
        if namespace_update {
            causes.extend(pod_security::admission::validate_namespace(&next, Some(&current)));
        }
        if !causes.is_empty() {
            return Err(invalid(info, name, causes));
        }
        let mut warnings = warnings;
        if let (true, UpdateScope::Main, Some(ns)) =
            (pod_security::admission::evaluated(info.kind, &next, Some(&current)), scope, ns)
        {
            let (namespace, _) = get(state, by_kind(Kind::Namespace), None, ns).await?;
            let (config, user) = (&state.pod_security, opts.requester.as_ref().map(|u| u.name.as_str()));
            warnings.extend(pod_security::admission::admit(config, user, info, &namespace, &next, Some(&current))?);
        }
        if namespace_update {
            if let Some(enforce) = pod_security::admission::changed_enforce(&state.pod_security, &current, &next) {
                warnings.extend(existing_pod_warnings(state, name, &enforce).await?);
            }
        }
        let (taken, release) = if service {
            service_addresses(state, info, Some(&current), &mut next, opts.dry_run).await?
        } else {
            (Held::default(), Held::default())
        };
        if !differs(&current, &next) || opts.dry_run {
            taken.free(state).await;
            return Ok((next, warnings));
        }
        if ready_to_remove(info.kind, &next) {
            release.free(state).await;
            return remove(state, info, ns, name, rev, next).await.map(|o| (o, warnings));
        }
        match state.store.update(&key, stored_bytes(info, &next), Some(rev)).await {
            Ok(new_rev) => {
                release.free(state).await;
                set_rv(&mut next, new_rev);
                after_write(state, info).await?;
                return Ok((next, warnings));
            }
            Err(crate::store::Error::Conflict { .. }) if precondition.is_none() => taken.free(state).await,
            Err(e) => {
                taken.free(state).await;
                return Err(ApiError::from_store(info, name, "update", &key, e));
            }
        }
    }
    Err(conflict(info, name))
}

/// Records an ordinary write in `obj`'s `managedFields` when the request
/// names a manager (an apply has recorded itself already).
fn record_update(
    info: &ResourceInfo,
    live: Option<&Value>,
    obj: &mut Value,
    scope: UpdateScope,
    opts: &WriteOptions,
) -> Result<()> {
    let Some(manager) = opts.manager.as_ref() else {
        apply::keep_entries(live, obj);
        return Ok(());
    };
    if manager.applied {
        return Ok(());
    }
    let api_version = info.api_version();
    let writer = apply::Writer {
        manager: &manager.name,
        subresource: manager.subresource,
        api_version: &api_version,
        part: apply_part(info, scope),
        now: &now_rfc3339(),
    };
    match apply::record_update(live, obj, &writer) {
        Ok(()) => Ok(()),
        // An object too large to track is still written; its entries stay.
        Err(e @ (apply::Error::TooDeep { .. } | apply::Error::TooManyFields { .. })) => {
            tracing::warn!(kind = info.kind_name, error = %e, "managedFields not updated");
            apply::keep_entries(live, obj);
            Ok(())
        }
        Err(e) => Err(ApiError::BadRequest(e.to_string())),
    }
}

/// 413 when `obj` (with its recorded `managedFields`) encodes beyond the
/// maximum object size: the body was checked before entries were added.
fn ensure_size(state: &ApiState, obj: &Value) -> Result<()> {
    super::http::body::ensure_object_size(obj, state.config.max_object_bytes)
}

/// The part of an object a write in `scope` owns fields in.
pub fn apply_part(info: &ResourceInfo, scope: UpdateScope) -> apply::Part {
    match scope {
        UpdateScope::Status | UpdateScope::Approval => apply::Part::Status,
        _ if info.has_status() => apply::Part::MainWithoutStatus,
        _ => apply::Part::Main,
    }
}

/// Evaluates the existing pods of namespace `ns` against its new enforce
/// level (a dry run, as upstream, on at most
/// [`pod_security::admission::MAX_PODS_CHECKED`] pods).
async fn existing_pod_warnings(
    state: &ApiState,
    ns: &str,
    enforce: &pod_security::LevelVersion,
) -> Result<Vec<String>> {
    let (kvs, _) = list_stored(state, by_kind(Kind::Pod), Some(ns)).await?;
    let limit = pod_security::admission::MAX_PODS_CHECKED;
    let pods = kvs.iter().take(limit).map(decode).collect::<Result<Vec<_>>>()?;
    Ok(pod_security::admission::existing_pod_warnings(ns, enforce, &pods, kvs.len()))
}

pub(super) async fn remove(
    state: &ApiState,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    rev: i64,
    obj: Value,
) -> Result<Value> {
    let key = info.key(ns, name);
    let (del_rev, _) =
        state.store.delete(&key, Some(rev)).await.map_err(|e| ApiError::from_store(info, name, "delete", &key, e))?;
    if info.kind == Kind::Service {
        let ip = obj.pointer("/spec/clusterIP").and_then(Value::as_str);
        if let Some(ip) = ip {
            state.ips.release(ip);
        }
        state.node_ports.release_all(&obj);
        let ip = ip.filter(|ip| state.ips.cidr().nth(1).to_string() != *ip);
        claims::release(&state.store, &claims::addresses(ip, &nodeports::node_ports_of(&obj))).await;
    }
    if info.kind == Kind::CustomResourceDefinition {
        // Its objects were deleted before (`crd::cleanup`); stop serving it.
        after_write(state, info).await?;
    }
    let mut obj = obj;
    set_rv(&mut obj, del_rev);
    Ok(obj)
}
