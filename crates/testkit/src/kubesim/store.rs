//! The simulated API server's storage: objects by resource, namespace and name, one
//! resourceVersion counter for all of them (like etcd's revision), and the recent history of
//! changes that watches resume from. History older than the compaction point is gone: a watch
//! that asks for it gets 410 Gone, as from a real API server after etcd compaction.

use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::broadcast;

/// Where an object lives: resource (plural), namespace, name.
pub type Key = (String, String, String);

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: u64,
    pub resource: String,
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

/// How many changes are kept for watches to resume from.
const HISTORY: usize = 4096;

pub struct Store {
    objects: BTreeMap<Key, Value>,
    revision: u64,
    history: VecDeque<Change>,
    /// The oldest revision a watch may resume after.
    compacted: u64,
    changes: broadcast::Sender<Change>,
    /// Bumped by a compaction: open watches end (as when an API server restarts).
    pub epoch: u64,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            objects: BTreeMap::new(),
            revision: 1,
            history: VecDeque::new(),
            compacted: 0,
            changes: broadcast::channel(HISTORY).0,
            epoch: 0,
        }
    }
}

impl Store {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Every object of `resource` in `namespace`.
    pub fn all(&self, resource: &str, namespace: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, n, _), _)| r == resource && n == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every object of `resource`, in every namespace.
    pub fn everywhere(&self, resource: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, _, _), _)| r == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Writes `object` under `key` with the next resourceVersion, and tells the watches.
    pub fn put(&mut self, key: Key, mut object: Value) -> Value {
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(key.clone(), object.clone());
        self.record(key, kind, object.clone());
        object
    }

    /// Removes the object under `key`, and tells the watches.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.revision += 1;
        object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        self.record(key.clone(), "DELETED", object.clone());
        Some(object)
    }

    fn record(&mut self, key: Key, kind: &'static str, object: Value) {
        let change = Change {
            revision: self.revision,
            resource: key.0,
            namespace: key.1,
            kind,
            object,
        };
        if self.history.len() == HISTORY
            && let Some(dropped) = self.history.pop_front()
        {
            self.compacted = dropped.revision;
        }
        self.history.push_back(change.clone());
        let _ = self.changes.send(change);
    }

    /// The changes after `revision` (to replay), and a receiver of those to come; `None` when
    /// that history is compacted away (410 Gone).
    pub fn since(&self, revision: u64) -> Option<(Vec<Change>, broadcast::Receiver<Change>)> {
        if revision < self.compacted {
            return None;
        }
        let replay = self
            .history
            .iter()
            .filter(|c| c.revision > revision)
            .cloned()
            .collect();
        Some((replay, self.changes.subscribe()))
    }

    /// A receiver of the changes to come.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Forgets all history up to now and ends open watches: a watch that resumes from before
    /// now gets 410 Gone and must list again.
    pub fn compact(&mut self) {
        self.revision += 1;
        self.compacted = self.revision;
        self.history.clear();
        self.epoch += 1;
    }
}
