//! `ARCHITECTURE.md` says which module may import which; this holds the code to it. A module's
//! code is its file and folder under `src/`, less its unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ARCHITECTURE: &str = include_str!("../ARCHITECTURE.md");

/// `module → allowed imports`, from the `## Dependencies` section.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let section = ARCHITECTURE
        .split("\n## Dependencies")
        .nth(1)
        .and_then(|it| it.split("\n## ").next())
        .expect("ARCHITECTURE.md has a Dependencies section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .map(|line| {
            let (module, imports) = line.split_once("` → ").expect("a line reads - `module` → a, b");
            (module.to_owned(), imports.split(", ").map(str::to_owned).collect())
        })
        .collect()
}

/// The source of `path` without its unit tests and comments.
fn code(path: &Path) -> String {
    let name = path.file_name().and_then(|it| it.to_str()).unwrap_or_default();
    if name == "tests.rs" || name == "testing.rs" {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines().filter(|it| !it.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|it| it == "rs") {
            out.push(path);
        }
    }
}

/// The modules of the crate `module` names, as `crate::name`.
fn imports(code: &str, module: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(at, _)| {
            let rest = &code[at + "crate::".len()..];
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        })
        .filter(|it| !it.is_empty() && it != module)
        .collect()
}

#[test]
fn modules_import_only_what_the_architecture_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = allowed();
    assert!(allowed.contains_key("upstream") && allowed.contains_key("config"), "{allowed:?}");
    let mut strays = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let Some(module) = path.file_stem().and_then(|it| it.to_str()).map(str::to_owned) else { continue };
        if path.is_dir() || matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let mut paths = vec![path.clone()];
        if src.join(&module).is_dir() {
            files(&src.join(&module), &mut paths);
        }
        let used: BTreeSet<String> = paths.iter().flat_map(|it| imports(&code(it), &module)).collect();
        let permitted = allowed.get(&module).cloned().unwrap_or_default();
        for it in used.difference(&permitted) {
            strays.push(format!("{module} imports {it}"));
        }
    }
    assert!(strays.is_empty(), "imports ARCHITECTURE.md does not allow:\n{}", strays.join("\n"));
}

#[test]
fn the_converter_and_the_store_stand_alone() {
    let allowed = allowed();
    let none = BTreeSet::new();
    assert_eq!(allowed.get("store").unwrap_or(&none), &none, "the store is a leaf");
    assert_eq!(allowed.get("openapi").unwrap_or(&none), &none);
    assert_eq!(allowed["tools"], BTreeSet::from(["openapi".to_owned()]));
    assert!(!allowed["upstream"].contains("auth") && !allowed["upstream"].contains("openapi"));
}
