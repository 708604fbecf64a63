//! A recording [`CgroupDriver`] for tests of code that shapes cgroups: it
//! keeps the set of cgroups that exist and the operations in order.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::driver::CgroupDriver;
use crate::error::Result;
use crate::limits::Limits;

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `create(path)`.
    Create(String),
    /// `apply(path, limits)`.
    Apply(String, Limits),
    /// `remove(path)` of a cgroup that existed.
    Remove(String),
}

#[derive(Debug, Default)]
struct State {
    ops: Vec<Op>,
    existing: BTreeSet<String>,
}

/// The recording fake.
#[derive(Debug, Default)]
pub struct FakeDriver {
    state: Mutex<State>,
}

impl FakeDriver {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The operations so far, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.lock().ops.clone()
    }

    /// The cgroups that exist.
    pub fn existing(&self) -> BTreeSet<String> {
        self.lock().existing.clone()
    }
}

impl CgroupDriver for FakeDriver {
    fn create(&self, path: &str) -> Result<()> {
        let mut state = self.lock();
        state.ops.push(Op::Create(path.to_string()));
        let mut prefix = String::new();
        for component in path.split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            state.existing.insert(prefix.clone());
        }
        Ok(())
    }

    fn apply(&self, path: &str, limits: &Limits) -> Result<()> {
        self.lock().ops.push(Op::Apply(path.to_string(), *limits));
        Ok(())
    }

    fn remove(&self, path: &str) -> Result<()> {
        let mut state = self.lock();
        let below = format!("{path}/");
        let before = state.existing.len();
        state.existing.retain(|p| p != path && !p.starts_with(&below));
        if state.existing.len() != before {
            state.ops.push(Op::Remove(path.to_string()));
        }
        Ok(())
    }

    fn children(&self, path: &str) -> Result<Vec<String>> {
        let below = format!("{path}/");
        Ok(self
            .lock()
            .existing
            .iter()
            .filter_map(|p| p.strip_prefix(&below))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect())
    }

    fn dirs(&self, path: &str) -> Vec<PathBuf> {
        vec![PathBuf::from(path)]
    }

    fn exists(&self, path: &str) -> bool {
        self.lock().existing.contains(path)
    }
}
