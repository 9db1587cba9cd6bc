//! The layering rule of ARCHITECTURE.md, checked: within each crate, no file imports a file that
//! (directly or through others) imports it back.
//!
//! A file's imports are the modules its `crate::a::b` and `super::x` paths name (outside
//! comments and test code), resolved to the deepest module that is a file. A module's own
//! descendants are its facade's business (`mod child; pub use child::Thing;`), so a path from a
//! module into its own subtree is not an edge; a path from a child up to its parent is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 5] = [
    "crates/switchboard-core",
    "crates/switchboard-providers",
    "crates/switchboard-sim",
    "crates/switchboard-server",
    "crates/switchboard",
];

/// Files that are test code as a whole (they may import anything they test).
fn is_test_file(module: &[String]) -> bool {
    module.last().is_some_and(|name| matches!(name.as_str(), "tests" | "testing" | "script"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").into()
}

/// Every `.rs` file below `src`, keyed by its module path (`["health", "book"]`).
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("below src").with_extension("");
            let mut module: Vec<String> =
                relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            found.insert(module, text);
        }
    }
    found
}

/// The text that is not test code or comments: inline `#[cfg(test)] mod tests { .. }` blocks
/// end a file by convention here, so everything from the first one on is cut.
fn production_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests {").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths named after `crate::` or `super::` in `code`, absolute.
fn named_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    for anchor in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(anchor) {
            let start = from + at;
            from = start + anchor.len();
            let follows_word =
                start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let is_inner = start >= 2 && &code[start - 2..start] == "::";
            if follows_word || is_inner {
                continue;
            }
            // `super` of module `a::b` is `a`, whether it is `a/b.rs` or `a/b/mod.rs`.
            let base = if anchor == "super::" {
                module[..module.len().saturating_sub(1)].to_vec()
            } else {
                Vec::new()
            };
            expand(base, &code[from..], &mut paths);
        }
    }
    paths
}

/// Reads one path (`a::b::Item`, `super::x`, `{a, b::{c, d}}`) from the start of `text`, below
/// `base`, into `paths`; returns how much of `text` it read.
fn expand(mut base: Vec<String>, text: &str, paths: &mut Vec<Vec<String>>) -> usize {
    let mut read = 0;
    loop {
        let rest = &text[read..];
        let ident: String =
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            if rest.starts_with('{') {
                // A group: every item is a path of its own, groups nest.
                read += 1;
                loop {
                    let skipped = text[read..].len() - text[read..].trim_start().len();
                    read += skipped;
                    if text[read..].starts_with('}') || read >= text.len() {
                        read += 1;
                        break;
                    }
                    read += expand(base.clone(), &text[read..], paths);
                    let skipped = text[read..].len() - text[read..].trim_start().len();
                    read += skipped;
                    if text[read..].starts_with(',') {
                        read += 1;
                    }
                }
            } else if rest.starts_with('*') {
                read += 1;
            }
            break;
        }
        read += ident.len();
        if ident == "super" {
            base.pop();
        } else if ident != "self" {
            base.push(ident);
        }
        match text[read..].strip_prefix("::") {
            Some(_) => read += 2,
            None => {
                // `Item as Alias`: the alias is not a path.
                if let Some(alias) = text[read..].strip_prefix(" as ") {
                    read += 4 + alias
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .count();
                }
                break;
            }
        }
    }
    paths.push(base);
    read.max(1)
}

/// The deepest module of `path` that is a file of the crate.
fn resolve(path: &[String], files: &BTreeMap<Vec<String>, String>) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|len| path[..len].to_vec()).find(|prefix| files.contains_key(prefix))
}

fn edges(files: &BTreeMap<Vec<String>, String>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, text) in files {
        if is_test_file(module) {
            continue;
        }
        let code = production_code(text);
        let imports = graph.entry(module.clone()).or_default();
        for path in named_paths(module, &code) {
            let Some(target) = resolve(&path, files) else { continue };
            let is_own_subtree = target.starts_with(module);
            if !is_own_subtree && !is_test_file(&target) {
                imports.insert(target);
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..].iter().map(|n| n.join("::")).collect();
                cycle.push(node.join("::"));
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Open);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph.keys().find_map(|node| visit(node, graph, &mut marks, &mut Vec::new()))
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let root = repo_root();
    for krate in CRATES {
        let files = modules(&root.join(krate).join("src"));
        assert!(files.len() > 3, "{krate}: found no sources");
        let graph = edges(&files);
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{krate}: import cycle {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_a_cycle_and_resolves_groups_and_super() {
    let files: BTreeMap<Vec<String>, String> = [
        (vec![], "mod a;\nmod b;\n".to_owned()),
        (vec!["a".to_owned()], "use crate::{b::{Thing, deep::More}, c};\n".to_owned()),
        (vec!["c".to_owned()], "\n".to_owned()),
        (vec!["b".to_owned()], "pub mod deep;\n".to_owned()),
        (vec!["b".to_owned(), "deep".to_owned()], "use super::super::a::X;\n".to_owned()),
    ]
    .into_iter()
    .collect();
    let graph = edges(&files);
    let a = vec!["a".to_owned()];
    let deep = vec!["b".to_owned(), "deep".to_owned()];
    assert!(graph[&a].contains(&deep), "{graph:?}");
    assert!(graph[&deep].contains(&a), "{graph:?}");
    assert!(graph[&a].contains(&vec!["c".to_owned()]), "a group after a nested group: {graph:?}");
    let cycle = find_cycle(&graph).expect("a -> b::deep -> a");
    assert_eq!(cycle.first(), cycle.last());
    // A parent naming its own child is its facade, not an edge; the child naming it is.
    let facade: BTreeMap<Vec<String>, String> = [
        (vec!["p".to_owned()], "mod c;\npub use c::Item;\nuse crate::p::c::Other;\n".to_owned()),
        (vec!["p".to_owned(), "c".to_owned()], "use super::Shared;\n".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(find_cycle(&edges(&facade)), None);
    // Comments and inline test modules do not count.
    let quiet: BTreeMap<Vec<String>, String> = [
        (vec!["x".to_owned()], "// crate::y::Z\n".to_owned()),
        (
            vec!["y".to_owned()],
            "use crate::x::A;\n#[cfg(test)]\nmod tests {\n use crate::z::B;\n}".to_owned(),
        ),
        (vec!["z".to_owned()], "use crate::y::C;\n".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(find_cycle(&edges(&quiet)), None);
}
