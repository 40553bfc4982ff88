//! A fixed table of the decoded metas of recently hit entries, so that a hot
//! entry's serialized meta is not read back on every hit.
//!
//! [`MemCache`](super::memory::MemCache) keeps each entry's [`CacheMeta`]
//! serialized, for its memory per entry, and reading it back costs a hit
//! about 3,500 instructions for a 7-line header (three allocations, a walk
//! of every line). The table keeps the decoded form of the last meta read
//! in each of [`SLOTS`] slots, picked by the key's digest: a hit whose
//! serialized meta is the one its slot was decoded from clones an `Arc`
//! instead.
//!
//! A slot is named by its serialized bytes, compared in full (a few hundred
//! bytes, tens of nanoseconds): decoding is a function of those bytes
//! alone, so equal bytes give an equal meta whichever entry they came
//! from, and the table needs no hold on any entry. The slot keeps its own
//! copy of the bytes. Only metas of at most [`KEPT_MAX`] serialized bytes
//! are kept (nearly all: an origin's 7-line header is about 270), so the
//! table holds at most [`SLOTS`] such metas and copies, about 12 MiB
//! however large the headers it is given; a larger meta is decoded on
//! every hit.
//!
//! Slots are [`ArcSwapOption`]s: a hit reads its slot without a lock, and a
//! decode replaces the slot's content with one atomic swap.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use proxy_core::error::Result;

use crate::key::HashBinary;
use crate::meta::CacheMeta;

/// Number of slots: the number of hot entries whose metas stay decoded.
/// Each full slot holds 8 bytes of pointer, one decoded meta (about 700
/// bytes for a 7-line header) and a copy of its serialized form (about
/// 270): about 1 MiB when every slot is full of such metas.
pub(crate) const SLOTS: usize = 1024;

/// The largest serialized meta kept in a slot, in bytes. Its decoded form
/// is about twice as large (the header's bytes, a map and the positions
/// of its lines).
pub(crate) const KEPT_MAX: usize = 4096;

/// One decoded meta and the bytes it was decoded from.
struct Decoded {
    bytes: Box<[u8]>,
    meta: CacheMeta,
}

/// The table (see the module docs).
pub(crate) struct DecodedMetas {
    slots: Box<[ArcSwapOption<Decoded>]>,
}

impl DecodedMetas {
    pub(crate) fn new() -> Self {
        DecodedMetas {
            slots: (0..SLOTS).map(|_| ArcSwapOption::empty()).collect(),
        }
    }

    /// The meta serialized as `bytes`, of the entry stored under `digest`:
    /// from its slot when the slot was decoded from the same bytes, else
    /// `decode(bytes)`, kept in the slot.
    ///
    /// # Errors
    /// What `decode` returns (the slot is then left as it was).
    pub(crate) fn get_or_decode(
        &self,
        digest: &HashBinary,
        bytes: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<CacheMeta>,
    ) -> Result<CacheMeta> {
        let slot = &self.slots[slot_index(digest)];
        if let Some(d) = slot.load().as_deref() {
            if *d.bytes == *bytes {
                return Ok(d.meta.clone());
            }
        }
        let meta = decode(bytes)?;
        if bytes.len() > KEPT_MAX {
            return Ok(meta);
        }
        slot.store(Some(Arc::new(Decoded {
            bytes: bytes.into(),
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
    fn a_hot_meta_is_decoded_once_and_a_new_one_again() {
        let table = DecodedMetas::new();
        let decodes = Cell::new(0);
        let decode = |b: &[u8]| {
            decodes.set(decodes.get() + 1);
            CacheMeta::deserialize(b)
        };
        let digest = [7u8; 16];
        let first = meta(200).serialize();
        for _ in 0..3 {
            let m = table.get_or_decode(&digest, &first, decode).unwrap();
            assert_eq!(m.response_header().status, 200);
        }
        assert_eq!(decodes.get(), 1);
        // the entry replaced under the same key: its own meta, decoded
        let second = meta(404).serialize();
        let m = table.get_or_decode(&digest, &second, decode).unwrap();
        assert_eq!(m.response_header().status, 404);
        assert_eq!(decodes.get(), 2);
        // bytes that differ only at their end are not taken for the slot's
        let mut third = second.clone();
        *third.last_mut().unwrap() ^= 1;
        let mut seen = None;
        let _ = table.get_or_decode(&digest, &third, |b| {
            seen = Some(b.to_vec());
            Ok(meta(500))
        });
        assert_eq!(seen.as_deref(), Some(&third[..]));
    }

    #[test]
    fn a_large_meta_is_decoded_every_time_and_not_kept() {
        let table = DecodedMetas::new();
        let mut h = ResponseHeader::build(200, None).unwrap();
        h.insert_header("x-big", "v".repeat(KEPT_MAX)).unwrap();
        let now = SystemTime::now();
        let big = CacheMeta::new(now, now, 0, 0, h).serialize();
        assert!(big.len() > KEPT_MAX);
        let decodes = Cell::new(0);
        for _ in 0..2 {
            table
                .get_or_decode(&[3; 16], &big, |b| {
                    decodes.set(decodes.get() + 1);
                    CacheMeta::deserialize(b)
                })
                .unwrap();
        }
        assert_eq!(decodes.get(), 2);
        assert!(table.slots[slot_index(&[3; 16])].load().is_none());
    }

    #[test]
    fn a_failed_decode_leaves_the_slot_as_it_was() {
        let table = DecodedMetas::new();
        let digest = [9u8; 16];
        let entry = meta(200).serialize();
        table
            .get_or_decode(&digest, &entry, CacheMeta::deserialize)
            .unwrap();
        let other = meta(201).serialize();
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
