//! Every phase of `ProxyHttp` appears in the user guide's phase table.
#![allow(clippy::unwrap_used)]

use std::path::Path;

/// The names of the `fn`s declared inside `pub trait ProxyHttp { .. }`.
fn trait_methods(src: &str) -> Vec<String> {
    let start = src
        .find("pub trait ProxyHttp")
        .expect("proxy_trait.rs declares ProxyHttp");
    let body = &src[start..];
    let mut depth = 0usize;
    let mut end = body.len();
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let body = &body[..end];
    let mut names = Vec::new();
    for line in body.lines() {
        let line = line.trim_start();
        let rest = line
            .strip_prefix("async fn ")
            .or_else(|| line.strip_prefix("fn "));
        if let Some(rest) = rest {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

#[test]
fn every_phase_is_in_the_phase_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("src/proxy_trait.rs")).unwrap();
    let doc = std::fs::read_to_string(root.join("../docs/02-phases.md")).unwrap();
    let methods = trait_methods(&src);
    assert!(methods.len() >= 18, "found only {methods:?}");
    let missing: Vec<_> = methods
        .iter()
        .filter(|m| !doc.contains(&format!("| `{m}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "phases missing from docs/02-phases.md: {missing:?}"
    );
}
