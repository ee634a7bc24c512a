//! [`Slab`]: a vector with a hash index, the registry's table for swarms and for peers.
//!
//! Invariant: `index[k] == i` exactly when `items[i].0 == k`; removal is swap-remove, so
//! positions are dense (random sampling by position, resumable sweep cursors).

use std::collections::HashMap;
use std::hash::Hash;

/// A vector with a hash index: O(1) lookup, O(1) swap-remove, O(1) random access (for
/// sampling) and a stable position order for a resumable sweep cursor.
#[derive(Debug)]
pub(crate) struct Slab<K, V> {
    pub(crate) items: Vec<(K, V)>,
    index: HashMap<K, usize>,
}

impl<K: Copy + Eq + Hash, V> Slab<K, V> {
    pub(crate) fn new() -> Self {
        Slab {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = *self.index.get(k)?;
        Some(&mut self.items[i].1)
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.index.get(k).map(|&i| &self.items[i].1)
    }

    pub(crate) fn position(&self, k: &K) -> Option<usize> {
        self.index.get(k).copied()
    }

    pub(crate) fn insert_new(&mut self, k: K, v: V) {
        self.index.insert(k, self.items.len());
        self.items.push((k, v));
    }

    pub(crate) fn remove_at(&mut self, i: usize) -> (K, V) {
        let (k, v) = self.items.swap_remove(i);
        self.index.remove(&k);
        if let Some((moved, _)) = self.items.get(i) {
            self.index.insert(*moved, i);
        }
        (k, v)
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.position(k)?;
        Some(self.remove_at(i).1)
    }
}
