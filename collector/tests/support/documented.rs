//! The 5.0.5 reporter bodies that docs/protocol.md documents, read from the doc itself so that
//! the doc and the tests that replay them cannot drift. Included by `collector/tests/rollup_golden.rs`
//! and the root package's `tests/legacy_reporter.rs`.

use std::path::Path;

/// The body named `name` in `protocol_md`, byte for byte: the fenced block after
/// `<!-- legacy-body: NAME -->`.
pub fn documented_body(protocol_md: &Path, name: &str) -> Vec<u8> {
    let doc = std::fs::read_to_string(protocol_md)
        .unwrap_or_else(|e| panic!("{}: {e}", protocol_md.display()));
    let marker = format!("<!-- legacy-body: {name} -->\n```json\n");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker:?} missing in {}", protocol_md.display()))
        + marker.len();
    let end = start + doc[start..].find("\n```").expect("the fenced block ends");
    doc.as_bytes()[start..end].to_vec()
}
