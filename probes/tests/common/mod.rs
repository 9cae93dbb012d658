//! What the probe suites over captured fixtures share: the golden-finding check.

use sr_probes::Finding;
use std::path::PathBuf;

/// Compares `f` with `tests/golden/<dir>/<name>.finding.json`, or rewrites that file under
/// `UPDATE_GOLDEN=1`.
pub fn golden(dir: &str, name: &str, f: &Finding) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/{dir}/{name}.finding.json"));
    let got = serde_json::to_string_pretty(&serde_json::json!({
        "status": f.status, "reasons": f.reasons, "services": f.services, "facts": f.facts,
    }))
    .unwrap()
        + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        got, want,
        "{dir}/{name}: golden differs (UPDATE_GOLDEN=1 to refresh)"
    );
}
