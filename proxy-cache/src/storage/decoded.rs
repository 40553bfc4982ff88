//! A fixed table of the decoded metas of recently hit entries, so that a hot
//! entry's serialized meta is not read back on every hit.
//!
//! [`MemCache`](super::memory::MemCache) keeps each entry's [`CacheMeta`]
//! serialized, for its memory per entry, and reading it back costs a hit
//! about 3,500 instructions for a 7-line header (three allocations, a walk
//! of every line). The table keeps the decoded form of the last entry hit
//! in each of [`SLOTS`] slots, picked by the key's digest: a hit on an entry
//! whose decoded meta is in its slot clones an `Arc` instead.
//!
//! A slot names its entry by a [`Weak`] reference and is used only when that
//! is the very entry the map returned (pointer equality). While the `Weak`
//! lives, the entry's allocation cannot be reused for another one, so equal
//! pointers always mean the same entry; and an entry never changes (a meta
//! update or a new fill stores a new one), so its decoded meta stays right.
//! A slot's `Weak` keeps only the entry's small record allocated, not its
//! buffers: the table holds at most [`SLOTS`] metas and records.
//!
//! Slots are [`ArcSwapOption`]s: a hit reads its slot without a lock, and a
//! decode replaces the slot's content with one atomic swap.

use std::sync::{Arc, Weak};

use arc_swap::ArcSwapOption;
use proxy_core::error::Result;

use crate::key::HashBinary;
use crate::meta::CacheMeta;

/// Number of slots: the number of hot entries whose metas stay decoded.
/// Each full slot holds 8 bytes of pointer, a 32-byte record and one
/// decoded meta (about 700 bytes for a 7-line header): about 0.75 MiB
/// when every slot is full.
pub(crate) const SLOTS: usize = 1024;

/// One decoded meta and the entry it was decoded from.
struct Decoded<E> {
    entry: Weak<E>,
    meta: CacheMeta,
}

/// The table (see the module docs). `E` is the storage's entry type.
pub(crate) struct DecodedMetas<E> {
    slots: Box<[ArcSwapOption<Decoded<E>>]>,
}

impl<E> DecodedMetas<E> {
    pub(crate) fn new() -> Self {
        DecodedMetas {
            slots: (0..SLOTS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    /// The meta of `entry`, stored under `digest`: from its slot when the
    /// slot holds this entry's, else `decode(entry)`, kept in the slot.
    ///
    /// # Errors
    /// What `decode` returns (the slot is then left as it was).
    pub(crate) fn get_or_decode(
        &self,
        digest: &HashBinary,
        entry: &Arc<E>,
        decode: impl FnOnce(&E) -> Result<CacheMeta>,
    ) -> Result<CacheMeta> {
        let slot = &self.slots[slot_index(digest)];
        if let Some(d) = slot.load().as_deref() {
            if std::ptr::eq(d.entry.as_ptr(), Arc::as_ptr(entry)) {
                return Ok(d.meta.clone());
            }
        }
        let meta = decode(entry)?;
        slot.store(Some(Arc::new(Decoded {
            entry: Arc::downgrade(entry),
            meta: meta.clone(),
        })));
        Ok(meta)
    }
}

/// A digest's slot: digests are uniform, so any of their bits will do; these
/// are not the ones [`shard_index`](crate::digest_map::shard_index) uses.
fn slot_index(digest: &HashBinary) -> usize {
    (usize::from(digest[0]) | usize::from(digest[1]) << 8) % SLOTS
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::{Duration, SystemTime};

    use proxy_core::http::ResponseHeader;

    fn meta(status: u16) -> CacheMeta {
        let now = SystemTime::now();
        let header = ResponseHeader::build(status, None).unwrap();
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header)
    }

    #[test]
    fn a_hot_entry_is_decoded_once_and_a_new_entry_again() {
        let table = DecodedMetas::<u16>::new();
        let decodes = Cell::new(0);
        let decode = |e: &u16| {
            decodes.set(decodes.get() + 1);
            Ok(meta(*e))
        };
        let digest = [7u8; 16];
        let first = Arc::new(200u16);
        for _ in 0..3 {
            let m = table.get_or_decode(&digest, &first, decode).unwrap();
            assert_eq!(m.response_header().status, 200);
        }
        assert_eq!(decodes.get(), 1);
        // the entry replaced under the same key: its own meta, decoded
        let second = Arc::new(404u16);
        let m = table.get_or_decode(&digest, &second, decode).unwrap();
        assert_eq!(m.response_header().status, 404);
        assert_eq!(decodes.get(), 2);
        // the second entry dropped: its allocation stays while the slot
        // names it, so no new entry can be mistaken for it
        drop(second);
        let third = Arc::new(500u16);
        let m = table.get_or_decode(&digest, &third, decode).unwrap();
        assert_eq!(m.response_header().status, 500);
        assert_eq!(decodes.get(), 3);
    }

    #[test]
    fn a_failed_decode_leaves_the_slot_as_it_was() {
        let table = DecodedMetas::<u16>::new();
        let digest = [9u8; 16];
        let entry = Arc::new(200u16);
        table
            .get_or_decode(&digest, &entry, |e| Ok(meta(*e)))
            .unwrap();
        let other = Arc::new(201u16);
        let failed = table.get_or_decode(&digest, &other, |_| {
            proxy_core::error::Error::e_explain(
                proxy_core::error::ErrorType::InternalError,
                "unreadable",
            )
        });
        assert!(failed.is_err());
        let m = table
            .get_or_decode(&digest, &entry, |_| panic!("must come from the slot"))
            .unwrap();
        assert_eq!(m.response_header().status, 200);
    }
}
