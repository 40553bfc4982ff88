//! An LRU list with O(1) insert, touch, remove and pop, for one shard of the
//! eviction manager and of the predictor.
//!
//! The nodes live in an arena (`Vec`) and link to each other by `u32`
//! index, with a free list for reuse, so the list allocates only when it
//! grows. Each node holds its digest once: the index that finds a node by
//! digest is a table of node numbers (4 bytes a slot, hashed by the
//! node's digest), not a map with a second copy of every digest. A node
//! costs its digest (16 bytes), its value and 8 bytes of links; the
//! eviction manager's 4-byte value makes it 28.

use hashbrown::HashTable;

use crate::key::HashBinary;

/// No node.
const NIL: u32 = u32::MAX;

/// A least-recently-used list of `T` keyed by digests, most recent at the
/// head. `T::default()` fills the nodes on the free list.
pub(crate) struct LruList<T> {
    /// Node numbers, hashed by their node's digest.
    index: HashTable<u32>,
    nodes: Vec<Node<T>>,
    head: u32,
    tail: u32,
    /// First free node, linked through `next`.
    free: u32,
}

struct Node<T> {
    digest: HashBinary,
    value: T,
    prev: u32,
    next: u32,
}

/// A digest's hash in the index: its first 8 bytes (a digest is already
/// uniformly distributed).
fn hash(digest: &HashBinary) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

impl<T: Default> LruList<T> {
    /// An empty list with room for `n` values.
    pub(crate) fn with_capacity(n: usize) -> Self {
        LruList {
            index: HashTable::with_capacity(n),
            nodes: Vec::with_capacity(n),
            head: NIL,
            tail: NIL,
            free: NIL,
        }
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The node holding `digest`.
    fn find(&self, digest: &HashBinary) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(hash(digest), |&i| nodes[i as usize].digest == *digest)
            .copied()
    }

    /// Whether `digest` is in the list.
    pub(crate) fn contains(&self, digest: &HashBinary) -> bool {
        self.find(digest).is_some()
    }

    /// Put `value` (whose digest is `digest`) at the head; returns the value
    /// it replaced, if `digest` was there.
    pub(crate) fn insert_head(&mut self, digest: HashBinary, value: T) -> Option<T> {
        if let Some(i) = self.find(&digest) {
            self.move_to_head(i);
            return Some(std::mem::replace(&mut self.nodes[i as usize].value, value));
        }
        let node = Node {
            digest,
            value,
            prev: NIL,
            next: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.nodes[i as usize].next;
            self.nodes[i as usize] = node;
            i
        } else {
            // a shard would need 4 billion entries, far past any memory
            // budget, before the index saturates
            let i = u32::try_from(self.nodes.len()).unwrap_or(NIL - 1);
            self.nodes.push(node);
            i
        };
        let nodes = &self.nodes;
        self.index
            .insert_unique(hash(&digest), i, |&j| hash(&nodes[j as usize].digest));
        self.push_head(i);
        None
    }

    /// Move `digest`'s value to the head; false if absent.
    pub(crate) fn touch(&mut self, digest: &HashBinary) -> bool {
        match self.find(digest) {
            Some(i) => {
                self.move_to_head(i);
                true
            }
            None => false,
        }
    }

    /// Remove and return `digest`'s value.
    pub(crate) fn remove(&mut self, digest: &HashBinary) -> Option<T> {
        let nodes = &self.nodes;
        let entry = self
            .index
            .find_entry(hash(digest), |&i| nodes[i as usize].digest == *digest)
            .ok()?;
        let (i, _) = entry.remove();
        Some(self.release(i).1)
    }

    /// Remove and return the least recent digest and value, unless its
    /// digest is `spare`.
    pub(crate) fn pop_tail_unless(
        &mut self,
        spare: Option<&HashBinary>,
    ) -> Option<(HashBinary, T)> {
        let (digest, _) = self.tail()?;
        if spare == Some(&digest) {
            return None;
        }
        let tail = self.tail;
        let found = self.index.find_entry(hash(&digest), |&i| i == tail);
        if let Ok(entry) = found {
            entry.remove();
        }
        Some(self.release(tail))
    }

    /// Remove and return the least recent digest and value.
    pub(crate) fn pop_tail(&mut self) -> Option<(HashBinary, T)> {
        self.pop_tail_unless(None)
    }

    /// The least recent digest and its value.
    pub(crate) fn tail(&self) -> Option<(HashBinary, &T)> {
        let n = self.nodes.get(self.tail as usize)?;
        Some((n.digest, &n.value))
    }

    /// Every digest and value, most recent first.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&HashBinary, &T)> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let n = &self.nodes[at as usize];
            at = n.next;
            Some((&n.digest, &n.value))
        })
    }

    fn move_to_head(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_head(i);
        }
    }

    /// Unlink node `i` (already out of the index), put it on the free
    /// list, return its digest and value.
    fn release(&mut self, i: u32) -> (HashBinary, T) {
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        node.next = self.free;
        self.free = i;
        (node.digest, std::mem::take(&mut node.value))
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn push_head(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = i;
        } else {
            self.tail = i;
        }
        self.head = i;
    }
}

/// The size of one node holding a `T`, in bytes.
#[cfg(test)]
pub(crate) fn node_size<T>() -> usize {
    std::mem::size_of::<Node<T>>()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first() {
        let mut l = LruList::with_capacity(0);
        for i in 0..4u8 {
            assert!(l.insert_head([i; 16], u32::from(i)).is_none());
        }
        assert!(l.touch(&[0; 16]));
        assert!(!l.touch(&[7; 16]));
        let order: Vec<u8> = l.iter().map(|(d, _)| d[0]).collect();
        assert_eq!(order, [0, 3, 2, 1]);
        assert_eq!(l.pop_tail(), Some(([1; 16], 1)));
        assert_eq!(l.remove(&[3; 16]), Some(3));
        assert_eq!(l.remove(&[3; 16]), None);
        assert_eq!(l.pop_tail_unless(Some(&[2; 16])), None);
        assert_eq!(l.pop_tail(), Some(([2; 16], 2)));
        assert_eq!(l.pop_tail(), Some(([0; 16], 0)));
        assert!(l.pop_tail().is_none());
        assert_eq!(l.len(), 0);
        // freed nodes are reused
        l.insert_head([9; 16], 9);
        l.insert_head([8; 16], 8);
        assert_eq!(l.nodes.len(), 4);
        assert!(l.contains(&[8; 16]));
        assert!(!l.contains(&[1; 16]));
    }

    #[test]
    fn many_values_are_found_after_the_index_grows() {
        let mut l = LruList::with_capacity(0);
        let d = |i: u32| {
            let mut d = [0u8; 16];
            d[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
            d[12..].copy_from_slice(&i.to_le_bytes());
            d
        };
        for i in 0..10_000 {
            l.insert_head(d(i), i);
        }
        for i in (0..10_000).step_by(2) {
            assert_eq!(l.remove(&d(i)), Some(i));
        }
        assert_eq!(l.len(), 5_000);
        assert!((1..10_000).step_by(2).all(|i| l.contains(&d(i))));
        assert_eq!(l.pop_tail(), Some((d(1), 1)));
    }

    #[test]
    fn reinsert_moves_to_head_and_returns_the_old_value() {
        let mut l = LruList::with_capacity(2);
        l.insert_head([1; 16], 1u32);
        l.insert_head([2; 16], 2);
        assert_eq!(l.insert_head([1; 16], 10), Some(1));
        assert_eq!(l.tail(), Some(([2; 16], &2)));
        assert_eq!(l.len(), 2);
    }
}
