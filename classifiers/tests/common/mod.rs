//! Helpers shared by the crate's integration tests.

use std::path::Path;

/// True when every path exists. Otherwise the test is skipped with a message, or fails when
/// `CI=true` (CI installs them: `.ci/test.sh`).
pub fn present(paths: &[&Path]) -> bool {
    let missing: Vec<String> = (paths.iter())
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} missing (run .ci/test.sh)",
        missing.join(", ")
    );
    eprintln!("skipping: {} missing", missing.join(", "));
    false
}
