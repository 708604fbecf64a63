//! The collector's owner graph, kept current by the informer callbacks, so
//! a sweep looks only at what changed since the last one.
//!
//! Owns: every watched object's collector view by uid, an index of
//! dependents by owner uid, and the set of uids whose decision may have
//! changed ("dirty"). A change of object `x` dirties `x` (its own owners may
//! be gone), its dependents (their owner changed) and its old and new owners
//! (a deleting owner waits for its dependents). [`Graph::take`] turns the
//! dirty set into the small slice of the graph `plan::plan` needs to decide
//! for exactly those objects. Behind a std `Mutex`, never held across
//! `.await`. Must not: do I/O or decide anything itself.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use super::plan::Node;

#[derive(Default)]
struct State {
    objects: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
    dirty: HashSet<String>,
}

/// What one sweep looks at.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// The objects to plan over: the dirty ones plus their owners and, for
    /// owners being deleted, their dependents.
    pub objects: Vec<Node>,
    /// The uids whose actions count (the dirty objects still present).
    pub focus: HashSet<String>,
}

/// A cloneable handle to the graph.
#[derive(Clone, Default)]
pub struct Graph {
    state: Arc<Mutex<State>>,
}

impl State {
    fn link(&mut self, node: &Node) {
        for owner in &node.owners {
            self.dependents.entry(owner.uid.clone()).or_default().insert(node.uid.clone());
        }
    }

    fn unlink(&mut self, node: &Node) {
        for owner in &node.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
    }

    /// Dirties `uid`, its dependents and the owners of `nodes` (its old and
    /// new versions).
    fn touch(&mut self, uid: &str, nodes: [Option<&Node>; 2]) {
        self.dirty.insert(uid.to_string());
        let dependents: Vec<String> = self.dependents.get(uid).into_iter().flatten().cloned().collect();
        self.dirty.extend(dependents);
        for node in nodes.into_iter().flatten() {
            self.dirty.extend(node.owners.iter().map(|o| o.uid.clone()));
        }
    }

    fn remove(&mut self, uid: &str) {
        if let Some(old) = self.objects.remove(uid) {
            self.unlink(&old);
            self.touch(uid, [Some(&old), None]);
        }
    }
}

impl Graph {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `node` was created or updated (a relist re-applying an
    /// unchanged object dirties nothing).
    pub fn applied(&self, node: Node) {
        let mut state = self.lock();
        let uid = node.uid.clone();
        if uid.is_empty() || state.objects.get(&uid) == Some(&node) {
            return;
        }
        let old = state.objects.insert(uid.clone(), node.clone());
        if let Some(old) = &old {
            state.unlink(old);
        }
        state.link(&node);
        state.touch(&uid, [old.as_ref(), Some(&node)]);
    }

    /// Records that the object with `uid` was deleted.
    pub fn deleted(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// After a relist of `kind`: forgets its objects `alive` rejects (the
    /// watcher sends no delete event for objects deleted while it was down).
    pub fn relisted(&self, kind: &str, alive: impl Fn(&Node) -> bool) {
        let mut state = self.lock();
        let gone: Vec<String> =
            state.objects.values().filter(|n| n.kind == kind && !alive(n)).map(|n| n.uid.clone()).collect();
        for uid in gone {
            state.remove(&uid);
        }
    }

    /// Marks `uids` for another look (actions that could not finish yet).
    pub fn retry(&self, uids: impl IntoIterator<Item = String>) {
        self.lock().dirty.extend(uids);
    }

    /// Marks every object dirty (the first sweep).
    pub fn dirty_all(&self) {
        let mut state = self.lock();
        let all: Vec<String> = state.objects.keys().cloned().collect();
        state.dirty.extend(all);
    }

    /// Takes the dirty set and returns what the sweep must plan over; an
    /// empty batch if nothing changed.
    pub fn take(&self) -> Batch {
        let mut state = self.lock();
        let dirty = std::mem::take(&mut state.dirty);
        let mut wanted: HashSet<&str> = HashSet::new();
        let mut focus = HashSet::new();
        for uid in &dirty {
            let Some(node) = state.objects.get(uid) else { continue };
            focus.insert(uid.clone());
            wanted.insert(uid);
            wanted.extend(node.owners.iter().map(|o| o.uid.as_str()));
            if node.deleting {
                wanted.extend(state.dependents.get(uid).into_iter().flatten().map(String::as_str));
            }
        }
        let mut objects: Vec<Node> = wanted.iter().filter_map(|uid| state.objects.get(*uid)).cloned().collect();
        objects.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
        Batch { objects, focus }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn node(kind: &str, name: &str, owners: &[&str]) -> Node {
        Node {
            kind: kind.to_string(),
            namespace: "default".to_string(),
            name: name.to_string(),
            uid: format!("{name}-uid"),
            owners: owners
                .iter()
                .map(|o| OwnerReference { name: o.to_string(), uid: format!("{o}-uid"), ..OwnerReference::default() })
                .collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn names(batch: &Batch) -> (Vec<String>, Vec<String>) {
        let objects = batch.objects.iter().map(|n| n.name.clone()).collect();
        let mut focus: Vec<String> = batch.focus.iter().map(|u| u.trim_end_matches("-uid").to_string()).collect();
        focus.sort();
        (objects, focus)
    }

    fn graph_of(nodes: &[Node]) -> Graph {
        let graph = Graph::default();
        for n in nodes {
            graph.applied(n.clone());
        }
        graph.take();
        graph
    }

    #[test]
    fn a_new_dependent_is_planned_with_its_owners_only() {
        let graph = graph_of(&[node("Service", "s", &[]), node("Service", "other", &[])]);
        graph.applied(node("EndpointSlice", "s-x", &["s"]));
        let batch = graph.take();
        assert_eq!(names(&batch), (vec!["s-x".into(), "s".into()], vec!["s".into(), "s-x".into()]));
        assert_eq!(graph.take(), Batch::default(), "nothing changed since");
    }

    #[test]
    fn a_deleted_owner_dirties_its_dependents() {
        let graph = graph_of(&[node("Service", "s", &[]), node("EndpointSlice", "s-x", &["s"])]);
        graph.deleted("s-uid");
        let batch = graph.take();
        assert_eq!(names(&batch), (vec!["s-x".into()], vec!["s-x".into()]));
    }

    #[test]
    fn a_deleting_owner_is_planned_with_all_its_dependents() {
        let graph = graph_of(&[
            node("Deployment", "d", &[]),
            node("ReplicaSet", "rs1", &["d"]),
            node("ReplicaSet", "rs2", &["d"]),
        ]);
        let mut doomed = node("Deployment", "d", &[]);
        doomed.deleting = true;
        doomed.finalizers = vec![super::super::plan::FOREGROUND.to_string()];
        graph.applied(doomed);
        let (objects, focus) = names(&graph.take());
        assert_eq!(objects, ["d", "rs1", "rs2"]);
        assert_eq!(focus, ["d", "rs1", "rs2"]);
    }

    #[test]
    fn reapplying_an_unchanged_object_dirties_nothing() {
        let graph = graph_of(&[node("Service", "s", &[]), node("EndpointSlice", "s-x", &["s"])]);
        graph.applied(node("EndpointSlice", "s-x", &["s"]));
        assert_eq!(graph.take(), Batch::default());
    }

    #[test]
    fn a_relist_forgets_what_it_no_longer_shows() {
        let graph = graph_of(&[node("Service", "s", &[]), node("EndpointSlice", "s-x", &["s"])]);
        graph.relisted("Service", |_| false);
        graph.relisted("EndpointSlice", |_| true);
        assert_eq!(names(&graph.take()), (vec!["s-x".into()], vec!["s-x".into()]));
    }

    #[test]
    fn retries_and_the_first_sweep_mark_objects_dirty() {
        let graph = graph_of(&[node("Service", "s", &[]), node("Service", "t", &[])]);
        graph.retry(["t-uid".to_string(), "gone-uid".to_string()]);
        assert_eq!(names(&graph.take()).1, ["t"]);
        graph.dirty_all();
        assert_eq!(names(&graph.take()).1, ["s", "t"]);
    }
}
