//! The engine's structure, checked: the kinds table the dashboard reads is current, the
//! engine's modules import one another without cycles, and the pure modules (the kind table,
//! access, the rules and the planners) reach no database, runtime or clock of their own.
//!
//! Refresh the table: `UPDATE_SCHEMAS=1 cargo test -p tests --test it layout`

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn engine_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src")
}

#[test]
fn committed_kinds_table_matches_the_engine() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/kinds.json");
    let generated = serde_json::to_string_pretty(&engine::kind::table_json()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run UPDATE_SCHEMAS=1 cargo test -p tests --test it layout",
        path.display()
    );
}

/// Each top-level module of the engine (a file or a folder under `engine/src`) and its text.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(engine_src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" {
            continue;
        }
        let mut text = String::new();
        let mut files = vec![path.clone()];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if p.extension().is_some_and(|e| e == "rs") {
                let t = std::fs::read_to_string(&p).unwrap();
                // Unit tests may reach anything.
                text.push_str(t.split("#[cfg(test)]").next().unwrap());
            }
        }
        out.insert(name, text);
    }
    out
}

/// The other top-level modules a module's text names: `crate::x` anywhere, or `x` as an
/// entry of a `use crate::{…}` list (not inside a nested list).
fn imports(names: &BTreeSet<String>, text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Open braces of the `use crate::{` list being read (0: not in one).
    let mut depth = 0usize;
    for line in text.lines() {
        let l = line.trim();
        let entry = l.split([':', ',', ' ', '}']).next().unwrap_or_default();
        for name in names {
            let direct = [format!("crate::{name}::"), format!("crate::{name};"), format!("crate::{name},")]
                .iter()
                .any(|p| l.contains(p.as_str()));
            if direct || depth == 1 && entry == name {
                found.insert(name.clone());
            }
        }
        if l.starts_with("use crate::{") {
            depth = 0;
            for c in l.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        } else if depth > 0 {
            for c in l.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
            }
        }
    }
    found
}

#[test]
fn engine_modules_import_each_other_without_cycles() {
    let modules = modules();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let graph: BTreeMap<&String, BTreeSet<String>> =
        modules.iter().map(|(m, t)| (m, imports(&names, t).into_iter().filter(|x| x != m).collect())).collect();
    assert!(graph.len() > 15, "the engine's modules were found: {:?}", graph.keys());
    // Depth-first search for a back edge; the path is the cycle.
    fn visit<'a>(
        m: &'a String,
        graph: &'a BTreeMap<&String, BTreeSet<String>>,
        path: &mut Vec<&'a String>,
        done: &mut BTreeSet<&'a String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|x| *x == m) {
            return Some(path[i..].iter().map(|s| s.to_string()).chain([m.clone()]).collect());
        }
        if done.contains(m) {
            return None;
        }
        path.push(m);
        for next in graph.get(m).into_iter().flatten() {
            let key = graph.keys().find(|k| **k == next).copied()?;
            if let Some(c) = visit(key, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m);
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("the engine's modules import in a cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn pure_modules_reach_no_database_runtime_or_clock() {
    let modules = modules();
    for pure in ["kind", "access", "rules", "plan"] {
        let text = &modules[pure];
        for banned in ["tokio", "surrealdb", "Store", "Engine", "SystemTime", "Instant::now"] {
            assert!(!text.contains(banned), "engine::{pure} is pure, yet names {banned}");
        }
        // Planning takes the time of a write as a fact.
        if pure != "rules" {
            assert!(!text.contains("time::now()"), "engine::{pure} reads the clock");
        }
        let sql_modules =
            ["store", "changes", "write", "tabs", "events", "orgs", "accounts", "files", "feed", "device"];
        for other in sql_modules {
            assert!(
                !imports(&modules.keys().cloned().collect(), text).contains(other),
                "engine::{pure} is pure, yet imports engine::{other}"
            );
        }
    }
}
