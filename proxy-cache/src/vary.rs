//! Variance (RFC 9111 §4.1): which stored variant of a resource answers a
//! request, from the response's `Vary` and the request's values of the
//! fields it names.
//!
//! [`vary_names`] reads the `Vary` fields of a response; [`variance_for`]
//! digests the request's values of those fields into the variance slot of a
//! [`CacheKey`](crate::CacheKey). Values are normalised first so that
//! requests a server would treat alike share a variant: surrounding and
//! repeated whitespace removed, list members trimmed; for `Accept-Encoding`
//! also lowercased and sorted, so `gzip, br` and `br,gzip` match.

use proxy_core::http::{is_tchar, FieldLines, RequestHeader, ResponseHeader};

use crate::key::{hash_parts, HashBinary};

/// The field names a response varies on, lowercased, sorted, without
/// duplicates; or `*` (never matches, RFC 9111 §4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaryNames {
    names: Vec<String>,
    wildcard: bool,
}

impl VaryNames {
    /// Whether the response has `Vary: *`.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether the response does not vary.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.wildcard
    }

    /// The names, lowercased and sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Parse every `Vary` field of `resp` (a comma-separated list of field names
/// or `*`, RFC 9110 §12.5.5). Invalid members are ignored.
pub fn vary_names(resp: &ResponseHeader) -> VaryNames {
    let mut out = VaryNames::default();
    for v in resp.field_values(&http::header::VARY) {
        let Ok(v) = std::str::from_utf8(v) else {
            continue;
        };
        for name in v.split(',') {
            let name = name.trim();
            if name == "*" {
                out.wildcard = true;
            } else if !name.is_empty() && name.bytes().all(is_tchar) {
                out.names.push(name.to_ascii_lowercase());
            }
        }
    }
    out.names.sort();
    out.names.dedup();
    out
}

/// Builds a variance digest from (name, value) pairs in any order.
#[derive(Debug, Default)]
pub struct VarianceBuilder {
    values: Vec<(String, Vec<u8>)>,
}

impl VarianceBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the value of field `name` (an absent field is an empty value).
    pub fn add_value(&mut self, name: &str, value: &[u8]) {
        self.values
            .push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Add an owned value.
    pub fn add_owned_value(&mut self, name: String, value: Vec<u8>) {
        self.values.push((name.to_ascii_lowercase(), value));
    }

    /// The digest, or `None` when nothing was added (the response does not
    /// vary). Sorted by name first, so the order of `add_*` calls does not
    /// matter.
    pub fn finalize(mut self) -> Option<HashBinary> {
        if self.values.is_empty() {
            return None;
        }
        self.values.sort();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(self.values.len() * 2);
        for (n, v) in &self.values {
            parts.push(n.as_bytes());
            parts.push(v);
        }
        Some(hash_parts(&parts))
    }
}

/// The variance of `req` for a response varying on `names`: `None` when it
/// does not vary (or varies on `*`, which the cache never stores). The
/// request's values of each named field (all its lines, joined with `, `)
/// are normalised as the module doc says.
pub fn variance_for(names: &VaryNames, req: &RequestHeader) -> Option<HashBinary> {
    if names.names.is_empty() || names.wildcard {
        return None;
    }
    let mut b = VarianceBuilder::new();
    for name in &names.names {
        // a token (checked by `vary_names`), so always a valid name; the
        // usual ones (Accept-Encoding, Origin...) are standard: no allocation
        let joined = match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => req.field_values(&h).collect::<Vec<_>>().join(&b","[..]),
            Err(_) => Vec::new(),
        };
        b.add_owned_value(name.clone(), normalise(name, &joined));
    }
    b.finalize()
}

/// Trim list members and collapse inner whitespace; for `Accept-Encoding`,
/// lowercase and sort the members too.
fn normalise(name: &str, value: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    let mut members: Vec<String> = text
        .split(',')
        .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|m| !m.is_empty())
        .collect();
    if name == "accept-encoding" {
        for m in &mut members {
            *m = m.to_ascii_lowercase().replace(' ', "");
        }
        members.sort();
        members.dedup();
    }
    members.join(",").into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn resp(vary: &[&str]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for v in vary {
            r.append_header("Vary", *v).unwrap();
        }
        r
    }

    fn req(fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in fields {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn names_are_lowercased_sorted_and_merged_across_lines() {
        let n = vary_names(&resp(&[
            "Accept-Encoding, User-Agent",
            "accept-encoding",
            "bad name",
        ]));
        assert_eq!(n.names(), ["accept-encoding", "user-agent"]);
        assert!(vary_names(&resp(&["Accept, *"])).is_wildcard());
        assert!(vary_names(&resp(&[])).is_empty());
    }

    #[test]
    fn accept_encoding_order_and_case_do_not_matter() {
        let n = vary_names(&resp(&["Accept-Encoding"]));
        let a = variance_for(&n, &req(&[("Accept-Encoding", "gzip, br")]));
        let b = variance_for(&n, &req(&[("accept-encoding", "BR,gzip")]));
        let c = variance_for(&n, &req(&[("Accept-Encoding", "gzip")]));
        let none = variance_for(&n, &req(&[]));
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(c, none);
    }

    #[test]
    fn other_fields_keep_case_but_not_extra_whitespace() {
        let n = vary_names(&resp(&["X-Tenant"]));
        let a = variance_for(&n, &req(&[("X-Tenant", "  Blue  Team ")]));
        let b = variance_for(&n, &req(&[("X-Tenant", "Blue Team")]));
        let c = variance_for(&n, &req(&[("X-Tenant", "blue team")]));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn builder_is_order_independent() {
        let mut x = VarianceBuilder::new();
        x.add_value("a", b"1");
        x.add_value("b", b"2");
        let mut y = VarianceBuilder::new();
        y.add_value("B", b"2");
        y.add_value("a", b"1");
        assert_eq!(x.finalize(), y.finalize());
        assert_eq!(VarianceBuilder::new().finalize(), None);
    }

    proptest::proptest! {
        /// Any Vary value and any request value: no panic, and the digest
        /// depends only on the normalised value.
        #[test]
        fn vary_parsing_never_panics(vary in "\\PC{0,64}", value in "\\PC{0,64}") {
            let mut r = ResponseHeader::build(200, None).unwrap();
            if r.append_header("Vary", vary.as_str()).is_ok() {
                let names = vary_names(&r);
                let mut q = RequestHeader::build("GET", b"/", None).unwrap();
                for n in names.names() {
                    let _ = q.append_header(n.clone(), value.as_str());
                }
                let _ = variance_for(&names, &q);
            }
        }
    }

    #[test]
    fn no_input_panics() {
        let n = vary_names(&resp(&["a, b, c"]));
        for v in ["", ",,,", " , ", "\t", "é"] {
            let _ = variance_for(&n, &req(&[("a", v)]));
        }
    }
}
