//! An LRU list with O(1) insert, touch, remove and pop, for one shard of the
//! eviction manager and of the predictor.
//!
//! The nodes live in an arena (`Vec`) and link to each other by `u32`
//! index, with a free list for reuse, so the list allocates only when it
//! grows and a node costs its value plus 8 bytes of links. A map from digest
//! to node index finds an entry.

use crate::digest_map::{digest_map, DigestMap};
use crate::key::HashBinary;

/// No node.
const NIL: u32 = u32::MAX;

/// What a value in the list is found by.
pub(crate) trait Digested {
    /// The digest the value is indexed by.
    fn digest(&self) -> HashBinary;
}

impl Digested for HashBinary {
    fn digest(&self) -> HashBinary {
        *self
    }
}

/// A least-recently-used list of `T`, most recent at the head.
pub(crate) struct LruList<T> {
    index: DigestMap<u32>,
    nodes: Vec<Node<T>>,
    head: u32,
    tail: u32,
    /// First free node, linked through `next`.
    free: u32,
}

struct Node<T> {
    /// `None` on the free list.
    value: Option<T>,
    prev: u32,
    next: u32,
}

impl<T: Digested> LruList<T> {
    /// An empty list with room for `n` values.
    pub(crate) fn with_capacity(n: usize) -> Self {
        LruList {
            index: digest_map(n),
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

    /// Whether `digest` is in the list.
    pub(crate) fn contains(&self, digest: &HashBinary) -> bool {
        self.index.contains_key(digest)
    }

    /// Put `value` (whose digest is `digest`) at the head; returns the value
    /// it replaced, if `digest` was there.
    pub(crate) fn insert_head(&mut self, digest: HashBinary, value: T) -> Option<T> {
        if let Some(&i) = self.index.get(&digest) {
            self.move_to_head(i);
            return self.nodes[i as usize].value.replace(value);
        }
        let node = Node {
            value: Some(value),
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
        self.index.insert(digest, i);
        self.push_head(i);
        None
    }

    /// Move `digest`'s value to the head; false if absent.
    pub(crate) fn touch(&mut self, digest: &HashBinary) -> bool {
        match self.index.get(digest) {
            Some(&i) => {
                self.move_to_head(i);
                true
            }
            None => false,
        }
    }

    /// Remove and return `digest`'s value.
    pub(crate) fn remove(&mut self, digest: &HashBinary) -> Option<T> {
        let i = self.index.remove(digest)?;
        self.release(i)
    }

    /// Remove and return the least recent value, unless its digest is
    /// `spare`.
    pub(crate) fn pop_tail_unless(&mut self, spare: Option<&HashBinary>) -> Option<T> {
        let digest = self.tail()?.digest();
        if spare == Some(&digest) {
            return None;
        }
        self.index.remove(&digest);
        self.release(self.tail)
    }

    /// Remove and return the least recent value.
    pub(crate) fn pop_tail(&mut self) -> Option<T> {
        self.pop_tail_unless(None)
    }

    /// The least recent value.
    pub(crate) fn tail(&self) -> Option<&T> {
        if self.tail == NIL {
            return None;
        }
        self.nodes[self.tail as usize].value.as_ref()
    }

    /// Every value, most recent first.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let n = &self.nodes[at as usize];
            at = n.next;
            n.value.as_ref()
        })
    }

    fn move_to_head(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_head(i);
        }
    }

    /// Unlink node `i`, put it on the free list, return its value.
    fn release(&mut self, i: u32) -> Option<T> {
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        node.next = self.free;
        self.free = i;
        node.value.take()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first() {
        let mut l = LruList::with_capacity(0);
        for i in 0..4u8 {
            assert!(l.insert_head([i; 16], [i; 16]).is_none());
        }
        assert!(l.touch(&[0; 16]));
        assert!(!l.touch(&[7; 16]));
        let order: Vec<u8> = l.iter().map(|d| d[0]).collect();
        assert_eq!(order, [0, 3, 2, 1]);
        assert_eq!(l.pop_tail(), Some([1; 16]));
        assert_eq!(l.remove(&[3; 16]), Some([3; 16]));
        assert_eq!(l.pop_tail_unless(Some(&[2; 16])), None);
        assert_eq!(l.pop_tail(), Some([2; 16]));
        assert_eq!(l.pop_tail(), Some([0; 16]));
        assert!(l.pop_tail().is_none());
        assert_eq!(l.len(), 0);
        // freed nodes are reused
        l.insert_head([9; 16], [9; 16]);
        l.insert_head([8; 16], [8; 16]);
        assert_eq!(l.nodes.len(), 4);
        assert!(l.contains(&[8; 16]));
    }

    #[test]
    fn reinsert_moves_to_head_and_returns_the_old_value() {
        let mut l = LruList::with_capacity(2);
        l.insert_head([1; 16], [1; 16]);
        l.insert_head([2; 16], [2; 16]);
        assert_eq!(l.insert_head([1; 16], [1; 16]), Some([1; 16]));
        assert_eq!(l.tail(), Some(&[2; 16]));
        assert_eq!(l.len(), 2);
    }
}
