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
    let why = format!("no OpenAPI corpus at {} (set MCPGATE_CORPUS)", dir.display());
    eprintln!("skipping: {why}");
    // As `harness::skip` does; this file is included without the harness.
    let line = format!(
        "{} {}: {why}\n",
        env!("CARGO_CRATE_NAME"),
        std::thread::current().name().unwrap_or("a test")
    );
    let skipped = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped.txt");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skipped)
        .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
    if let Err(err) = written {
        eprintln!("cannot note the skip in {skipped}: {err}");
    }
    None
}
