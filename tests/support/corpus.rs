//! Where the shared OpenAPI corpus is: `../shared/openapi-corpus` beside the checkout, or
//! `MCPGATE_CORPUS`. Without it a test skips, unless `MCPGATE_REQUIRE_CORPUS` is set (CI sets it),
//! when it fails. Included by the tests that use the corpus.

use std::path::{Path, PathBuf};

pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("MCPGATE_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/openapi-corpus"),
    };
    if dir.join("MANIFEST.md").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("MCPGATE_REQUIRE_CORPUS").is_none(),
        "the OpenAPI corpus is not at {} (set MCPGATE_CORPUS)",
        dir.display()
    );
    eprintln!("skipping: no OpenAPI corpus at {}", dir.display());
    None
}
