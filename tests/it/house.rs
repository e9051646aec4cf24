//! The house rules of docs/architecture.md, checked by reading the source: folders are layers and no file imports
//! a higher layer; files import each other without circles; only `repo/` touches storage and the master key; only
//! `format/` spells associated data and object paths; no function outside tests is longer than 60 lines.
//!
//! The reading is lexical (`use` lines and `crate::`/`super::`/child-module paths), which is what a person sees
//! when opening a file; code under `#[cfg(test)]` is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The source tree: file (relative to src/, e.g. `ops/backup/mod.rs`) → its code without tests.
fn sources() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                let code = match text.find("#[cfg(test)]") {
                    Some(at) => text[..at].to_string(),
                    None => text,
                };
                let rel = path.strip_prefix(&root).expect("under src").to_string_lossy().into_owned();
                out.insert(rel, strip_comments(&code));
            }
        }
    }
    out
}

/// Drops `//` comments and string contents (a doc comment may name a higher layer; that is no import).
fn strip_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    for line in code.lines() {
        let mut kept = String::new();
        let mut in_str = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                if c == '\\' {
                    chars.next();
                } else if c == '"' {
                    in_str = false;
                    kept.push('"');
                }
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_str = true;
            }
            // A char literal such as '{' or '\'' is no brace and no quote; a lifetime ('a) is kept.
            if c == '\'' {
                let rest: String = chars.clone().take(3).collect();
                let len = if rest.starts_with('\\') {
                    rest.find('\'').map(|p| p + 1)
                } else {
                    (rest.chars().nth(1) == Some('\'')).then_some(2)
                };
                if let Some(n) = len {
                    for _ in 0..n {
                        chars.next();
                    }
                    kept.push_str("' '");
                    continue;
                }
            }
            kept.push(c);
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The module path of a file: `ops/backup/mod.rs` → `["ops", "backup"]`, `lib.rs` → `[]`.
fn module_of(file: &str) -> Vec<String> {
    let p = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = p.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The file that defines the longest prefix of `path` that is a module.
fn file_of(modules: &BTreeMap<Vec<String>, String>, path: &[String]) -> Option<String> {
    (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]).cloned())
}

/// Every file each file refers to.
fn edges(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, String> =
        files.keys().filter(|f| f.as_str() != "main.rs").map(|f| (module_of(f), f.clone())).collect();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let mut out = BTreeMap::new();
    for (file, code) in files {
        let here = module_of(file);
        let children: BTreeSet<String> = code
            .lines()
            .filter_map(|l| {
                let l = l.trim_start().trim_start_matches("pub(crate) ").trim_start_matches("pub ");
                l.strip_prefix("mod ").map(ident)
            })
            .collect();
        let mut targets = BTreeSet::new();
        let tokens: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).collect();
        for token in tokens.iter().filter(|t| t.contains("::")) {
            let parts: Vec<String> = token.split("::").map(str::to_string).collect();
            let resolved: Option<Vec<String>> = match parts[0].as_str() {
                "crate" | "gumvault" => Some(parts[1..].to_vec()),
                "super" => {
                    let mut base = here.clone();
                    let mut rest = &parts[..];
                    while rest.first().map(String::as_str) == Some("super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    Some(base)
                }
                "self" => Some(here.iter().cloned().chain(parts[1..].iter().cloned()).collect()),
                first if children.contains(first) => Some(here.iter().cloned().chain(parts.iter().cloned()).collect()),
                _ => None,
            };
            if let Some(target) = resolved.and_then(|p| file_of(&modules, &p))
                && &target != file
            {
                targets.insert(target);
            }
        }
        out.insert(file.clone(), targets);
    }
    out
}

/// The layer of a file: its top folder's rank. Cross-cutting files (lib.rs, error.rs, exit.rs, time.rs,
/// runtime.rs, children.rs) are below everything.
fn layer(file: &str) -> (&str, u8) {
    let top = file.split('/').next().unwrap_or(file);
    let rank = match top {
        "format" => 1,
        "storage" => 2,
        "repo" => 3,
        "ops" | "config" => 4,
        "sources" | "daemon" => 5,
        "cli" => 6,
        "main.rs" => 7,
        "lib.rs" | "error.rs" | "exit.rs" | "time.rs" | "runtime.rs" | "children.rs" => 0,
        other => panic!(
            "src/{other} is neither a layer folder nor a cross-cutting file: put it in a folder, or add it to the \
             rank-0 list of layer() in tests/it/house.rs and to docs/architecture.md"
        ),
    };
    (top, rank)
}

#[test]
fn no_file_imports_a_higher_layer() {
    let mut wrong = Vec::new();
    for (file, targets) in edges(&sources()) {
        let (top, rank) = layer(&file);
        for t in targets {
            let (ttop, trank) = layer(&t);
            // Cross-cutting files (rank 0) may use each other; folders of one rank may not.
            let sideways = rank == trank && top != ttop && rank > 0;
            if trank > rank || sideways {
                wrong.push(format!("{file} -> {t}"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers (docs/architecture.md):\n{}", wrong.join("\n"));
}

#[test]
fn files_import_each_other_without_circles() {
    let graph = edges(&sources());
    // Tarjan's strongly connected components; any component of two or more files is a circle.
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        circles: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.circles.push(component);
            }
        }
    }
    let mut s = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        circles: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    let circles: Vec<String> = s.circles.iter().map(|c| c.join(" <-> ")).collect();
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

/// Lines of the source (outside the folders in `allowed`) that contain any of `needles` once `exempt` is taken
/// out of them.
fn offending_lines(allowed: &[&str], needles: &[&str], exempt: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (file, _) in sources() {
        if allowed.iter().any(|a| file.starts_with(a)) {
            continue;
        }
        // Strings matter here (an object path is a string), so read the file again with them.
        let text = std::fs::read_to_string(root.join(&file)).expect("read source");
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in text.lines().enumerate() {
            let mut code = line.split("//").next().unwrap_or("").to_string();
            for e in exempt {
                code = code.replace(e, "");
            }
            if needles.iter().any(|n| code.contains(n)) {
                out.push(format!("{file}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    out
}

/// Outside `repo/` (and `storage/` itself) nothing names the repository's storage; the parts of storage that
/// others may use are [`Location`](gumvault::storage::Location) and the signed S3 client it opens
/// ([`S3Api`](gumvault::storage::s3api::S3Api), its part size): parsing URLs and opening buckets that are not
/// the repository (the S3 source, `restore --to-s3`).
#[test]
fn only_repo_touches_storage_and_the_master_key() {
    let storage = offending_lines(
        &["repo/", "storage/", "error.rs"],
        &[".storage", "storage::", "Storage"],
        &[
            "storage::Location",
            "storage::s3api::S3Api",
            "storage::s3ops::PART_SIZE",
            "storage_class",
            "Error::Storage",
            "StorageError",
        ],
    );
    assert!(storage.is_empty(), "storage outside src/repo:\n{}", storage.join("\n"));
    let key = offending_lines(
        &["repo/", "format/"],
        &["MasterKey", "format::crypto", ".key.seal(", ".key.open(", ".key.blob_id("],
        &[],
    );
    assert!(key.is_empty(), "the master key outside src/repo:\n{}", key.join("\n"));
}

#[test]
fn only_format_spells_associated_data_and_object_paths() {
    let needles =
        ["b\"gumvault ", "\"data/", "\"index/", "\"snapshots/", "\"keys/", "\"locks/", "\"obsolete/", "\"deleted/"];
    let lines = offending_lines(&["format/"], &needles, &[]);
    assert!(lines.is_empty(), "associated data or object paths outside src/format:\n{}", lines.join("\n"));
}

#[test]
fn no_function_outside_tests_is_longer_than_60_lines() {
    let mut long = Vec::new();
    for (file, code) in sources() {
        let lines: Vec<&str> = code.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i].trim_start();
            let is_fn =
                ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn ", "const fn ", "pub const fn ", "unsafe fn "]
                    .iter()
                    .any(|p| l.starts_with(p))
                    || l.starts_with("extern \"\" fn ");
            if !is_fn {
                i += 1;
                continue;
            }
            let (mut depth, mut started, mut j) = (0i32, false, i);
            while j < lines.len() {
                for c in lines[j].chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            started = true
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (started && depth == 0) || (!started && lines[j].trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            if j - i + 1 > 60 {
                long.push(format!("{file}:{}: {} lines: {}", i + 1, j - i + 1, l));
            }
            i += 1;
        }
    }
    assert!(long.is_empty(), "functions over 60 lines:\n{}", long.join("\n"));
}
