//! The layering of ARCHITECTURE.md, checked: every `crate::` path in a file
//! under `src/` names a module of a lower layer than the file's own. The
//! table in ARCHITECTURE.md is the one list of layers, so the document and
//! the code cannot drift apart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// Module → layer, from the rows `| N | `a`, `b` | … |` of the Layers table.
fn layers() -> BTreeMap<String, u32> {
    let text = fs::read_to_string(Path::new(CRATE).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is readable");
    let mut layers = BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, layer, modules, ..] = cells[..] else {
            continue;
        };
        let Ok(layer) = layer.parse::<u32>() else {
            continue;
        };
        for m in modules.split(',') {
            let m = m.trim().trim_matches('`');
            assert!(
                layers.insert(m.to_string(), layer).is_none(),
                "ARCHITECTURE.md lists `{m}` twice"
            );
        }
    }
    assert!(layers.len() > 10, "no Layers table found: {layers:?}");
    layers
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to: `src/tc/batch.rs` → `tc`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The modules a file's code names as `crate::m`, comments left out.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
        }
    }
    found
}

#[test]
fn every_import_runs_down_a_layer() {
    let layers = layers();
    let src = Path::new(CRATE).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = layers.get(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer of ARCHITECTURE.md",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(file).expect("a source file is readable");
        for (line, target) in imports(&text) {
            if target == module {
                continue;
            }
            match layers.get(&target) {
                Some(&layer) if layer < own => {}
                Some(&layer) => wrong.push(format!(
                    "{}:{line}: `{module}` (layer {own}) imports `{target}` (layer {layer})",
                    file.display()
                )),
                None => wrong.push(format!(
                    "{}:{line}: `{target}` is in no layer of ARCHITECTURE.md",
                    file.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_module_of_lib_is_in_a_layer() {
    let layers = layers();
    let lib = fs::read_to_string(Path::new(CRATE).join("src/lib.rs")).expect("src/lib.rs");
    for line in lib.lines() {
        let line = line.trim();
        let Some(rest) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
        else {
            continue;
        };
        let name = rest.trim_end_matches(';');
        assert!(
            layers.contains_key(name),
            "src/lib.rs declares `{name}`, which ARCHITECTURE.md puts in no layer"
        );
    }
    for m in layers.keys() {
        assert!(
            lib.contains(&format!("mod {m};")),
            "ARCHITECTURE.md lists `{m}`, which src/lib.rs does not declare"
        );
    }
}

#[test]
fn the_check_sees_what_it_checks() {
    let found =
        imports("use crate::units::Rate; // crate::policy in a comment\nx(crate::tc::kernel)");
    assert_eq!(found, [(1, "units".to_string()), (2, "tc".to_string())]);
}
