//! The byte classes of HTTP field syntax (RFC 9110 §5), shared by the
//! parsers, the header types and the cache's directive parsing.

/// RFC 9110 §5.6.2 `tchar`: a byte of a token (a field name, a directive).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `name` is a token (RFC 9110 §5.1, §5.6.2) of at most 64 KiB − 1
/// bytes: the field names `http::HeaderName` accepts.
pub fn is_token(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= usize::from(u16::MAX) && name.iter().all(|&b| is_tchar(b))
}

/// Whether `value` holds only field-value bytes (RFC 9110 §5.5): visible
/// bytes, space, tab and obs-text; no CR, LF, NUL, other control bytes or
/// DEL. The set `http::HeaderValue` accepts; reason phrases and chunk
/// extensions use it too.
pub fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_values() {
        assert!(is_token(b"X-Custom_1~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a:b"));
        assert!(is_field_value(b"a\tb \x80"));
        assert!(!is_field_value(b"a\r\n"));
        assert!(!is_field_value(b"\x7f"));
    }
}
