//! The entry file's header: what [`super::DiskCache`] writes before the
//! serialized meta and the body, and checks on every read.
//!
//! All integers little endian:
//!
//! ```text
//! offset  size  field
//!  0       8    magic "PXCACHE\0"
//!  8       4    format version (1)
//! 12       4    meta length M
//! 16       8    body length B (written last, when the fill finishes)
//! 24      16    primary digest (CacheKey::primary_bin)
//! 40       1    1 when a variance digest follows, else 0
//! 41      16    variance digest (zeros when absent)
//! 57       2    user tag length T
//! 59       T    user tag (UTF-8)
//! 59+T     M    CacheMeta::serialize
//! 59+T+M   B    body
//! ```
//!
//! A file is whole when its length is exactly `59 + T + M + B`; anything
//! else (a crash mid-write of a file that was renamed anyway, a truncation,
//! a foreign file) is rejected.

use proxy_core::error::{Error, ErrorType, Result};

use crate::key::{CompactCacheKey, HashBinary};

/// The first 8 bytes of every entry file.
pub(crate) const MAGIC: [u8; 8] = *b"PXCACHE\0";
/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Length of the fixed part of the header.
pub(crate) const FIXED_LEN: usize = 59;
/// Offset of the body length field, patched when a fill finishes.
pub(crate) const BODY_LEN_AT: u64 = 16;

/// The parsed fixed header of an entry file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub(crate) key: CompactCacheKey,
    pub(crate) meta_len: u32,
    pub(crate) body_len: u64,
}

impl EntryHeader {
    /// Offset of the serialized meta.
    pub(crate) fn meta_offset(&self) -> u64 {
        (FIXED_LEN + self.key.user_tag.len()) as u64
    }

    /// Offset of the body.
    pub(crate) fn body_offset(&self) -> u64 {
        self.meta_offset() + u64::from(self.meta_len)
    }

    /// The exact length a whole file has.
    pub(crate) fn file_len(&self) -> u64 {
        self.body_offset() + self.body_len
    }

    /// Header and meta bytes, ready to be written at offset 0.
    pub(crate) fn encode(&self, meta: &[u8]) -> Vec<u8> {
        let tag = self.key.user_tag.as_bytes();
        let mut out = Vec::with_capacity(FIXED_LEN + tag.len() + meta.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.meta_len.to_le_bytes());
        out.extend_from_slice(&self.body_len.to_le_bytes());
        out.extend_from_slice(&self.key.primary);
        match self.key.variance {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v);
            }
            None => {
                out.push(0);
                out.extend_from_slice(&[0; 16]);
            }
        }
        out.extend_from_slice(&(tag.len() as u16).to_le_bytes());
        out.extend_from_slice(tag);
        out.extend_from_slice(meta);
        out
    }

    /// A header for `key` whose meta is `meta_len` bytes and body
    /// `body_len`. The user tag is cut to 64 KiB - 1 bytes (on a character
    /// boundary); it is not part of the digest.
    ///
    /// # Errors
    /// `InternalError` when the meta is 4 GiB or more.
    pub(crate) fn new(key: &CompactCacheKey, meta_len: usize, body_len: u64) -> Result<Self> {
        let Ok(meta_len) = u32::try_from(meta_len) else {
            return Error::e_explain(ErrorType::InternalError, "cache meta of 4 GiB or more");
        };
        let mut key = key.clone();
        if key.user_tag.len() > usize::from(u16::MAX) {
            let mut end = usize::from(u16::MAX);
            while !key.user_tag.is_char_boundary(end) {
                end -= 1;
            }
            key.user_tag = key.user_tag[..end].into();
        }
        Ok(EntryHeader {
            key,
            meta_len,
            body_len,
        })
    }

    /// Parse the fixed part and the user tag from the start of a file.
    /// `Ok(None)`: `buf` is too short to hold them (read more, or the file
    /// is truncated).
    ///
    /// # Errors
    /// `FileReadError` for a wrong magic, an unknown version or a tag that
    /// is not UTF-8: not an entry file this code wrote.
    pub(crate) fn decode(buf: &[u8]) -> Result<Option<Self>> {
        if buf.len() < FIXED_LEN {
            return Ok(None);
        }
        if buf[..8] != MAGIC {
            return Error::e_explain(ErrorType::FileReadError, "not a cache entry file (magic)");
        }
        let version = u32::from_le_bytes(le(&buf[8..12]));
        if version != VERSION {
            return Error::e_explain(
                ErrorType::FileReadError,
                format!("cache entry format version {version}, expected {VERSION}"),
            );
        }
        let meta_len = u32::from_le_bytes(le(&buf[12..16]));
        let body_len = u64::from_le_bytes(le(&buf[16..24]));
        let primary: HashBinary = le(&buf[24..40]);
        let variance = (buf[40] != 0).then(|| le(&buf[41..57]));
        let tag_len = usize::from(u16::from_le_bytes(le(&buf[57..59])));
        let Some(tag) = buf.get(FIXED_LEN..FIXED_LEN + tag_len) else {
            return Ok(None);
        };
        let Ok(tag) = std::str::from_utf8(tag) else {
            return Error::e_explain(ErrorType::FileReadError, "cache entry user tag not UTF-8");
        };
        Ok(Some(EntryHeader {
            key: CompactCacheKey {
                primary,
                variance,
                user_tag: tag.into(),
            },
            meta_len,
            body_len,
        }))
    }
}

/// Copy a slice of known length into an array. The callers slice exactly
/// `N` bytes out of a buffer whose length was checked, so the copy cannot
/// fail; a short slice would leave zeros rather than panic.
fn le<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = s.len().min(N);
    a[..n].copy_from_slice(&s[..n]);
    a
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(variance: Option<HashBinary>, tag: &str) -> CompactCacheKey {
        CompactCacheKey {
            primary: [3; 16],
            variance,
            user_tag: tag.into(),
        }
    }

    #[test]
    fn encodes_and_decodes_back() {
        for (variance, tag) in [(None, ""), (Some([9; 16]), "tag é")] {
            let h = EntryHeader::new(&key(variance, tag), 5, 1234).unwrap();
            let bytes = h.encode(b"meta!");
            assert_eq!(bytes.len() as u64, h.body_offset());
            assert_eq!(EntryHeader::decode(&bytes).unwrap().unwrap(), h);
            assert_eq!(h.file_len(), h.body_offset() + 1234);
        }
    }

    #[test]
    fn short_buffers_ask_for_more_and_foreign_files_are_rejected() {
        let h = EntryHeader::new(&key(None, "abc"), 0, 0).unwrap();
        let bytes = h.encode(b"");
        assert_eq!(EntryHeader::decode(&bytes[..10]).unwrap(), None);
        assert_eq!(EntryHeader::decode(&bytes[..FIXED_LEN + 1]).unwrap(), None);
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(EntryHeader::decode(&bad).is_err());
        let mut bad = bytes;
        bad[8] = 9;
        assert!(EntryHeader::decode(&bad).is_err());
    }
}
