//! The coordinator's modules stay layered along the data flow, so the
//! dependency picture in ARCHITECTURE.md stays true: nothing imports
//! "upward". Each module may name only the modules listed for it (its own
//! always), checked over every `crate::` path in its source.
//!
//! ```text
//! state ← raft/node (the cluster) ← mesh ← admin ← app
//!   ▲              ▲                        │
//!   └──── sinks ───┘ (the webhook dispatcher) ◄┘ (webhook test)
//!              results (no coordinator deps) ◄── sinks (TSDB export)   http ← app
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Module → the other top-level modules it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    ("state", &[]),
    ("results", &[]),
    // The webhook dispatcher reads the outbox and records outcomes; TSDB
    // export subscribes to the results fan-out (`results::ResultSink`) and
    // reads names and agreed states from the state.
    ("sinks", &["state", "node", "results"]),
    ("listener", &[]),
    ("auth", &["state"]),
    ("raft", &["state", "node", "listener"]),
    ("node", &["state", "raft", "listener"]),
    ("mesh", &["state", "node", "auth", "results"]),
    // `webhook test` sends through the webhook sink's service.
    ("admin", &["state", "node", "raft", "mesh", "auth", "results", "sinks"]),
    ("http", &["state", "node", "results", "listener"]),
    ("agreement", &["state", "mesh", "results"]),
];

#[test]
fn modules_import_only_what_their_layer_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, allowed) in ALLOWED {
        let allowed: BTreeSet<&str> = allowed.iter().copied().chain([*module]).collect();
        let files = module_files(&src, module);
        assert!(!files.is_empty(), "module {module} has no source files under {}", src.display());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                for used in crate_paths(line) {
                    if !allowed.contains(used.as_str()) {
                        violations.push(format!(
                            "{}:{}: {module} imports crate::{used}",
                            file.display(),
                            number + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering broken (see coordinator/tests/layers.rs):\n{}",
        violations.join("\n")
    );
}

/// The probe's library is there for dev mode's in-process probes only.
#[test]
fn only_dev_mode_uses_the_probe_crate() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut users = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path != src.join("dev.rs")
                && std::fs::read_to_string(&path).unwrap().contains("vantage_probe")
            {
                users.push(path.display().to_string());
            }
        }
    }
    assert!(users.is_empty(), "vantage_probe used outside dev.rs: {users:?}");
}

#[test]
fn the_checker_sees_crate_paths() {
    assert_eq!(crate_paths("use crate::mesh::{Mesh, crate::x};"), ["mesh", "x"]);
    assert_eq!(crate_paths("// vantage_crate::y and crate_name"), Vec::<String>::new());
}

/// The top-level module names after each `crate::` on a line.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

/// `src/<module>.rs` and everything under `src/<module>/`.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
