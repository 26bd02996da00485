//! The layering rules as tests over the source tree: no two files import each other in a
//! circle, and only the web edge touches actix or the web state (`AppState`). Imports go
//! down: `main` -> `startup` -> web edge (routes, handlers, `edge`, `ops` routes and
//! middleware) -> domains (use cases, stores, consumers) -> shared domain modules (`series`,
//! `outbox`, `audit`) -> core (`scoring`, `auth` core, `db`, `ids`, `error`, telemetry).
//!
//! A rough reading like the one reviewers use: `use crate::..`/`use super::..` trees and
//! inline `crate::` paths, resolved to the longest file module they name; an import of a
//! file's own ancestor (a parent `mod.rs`) is not a layer edge. Test modules are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files that are the web edge although not named `routes.rs`: handlers and the HTTP
/// plumbing. Anything else must not import actix or `AppState`.
const WEB_EDGE: &[&str] = &[
    "lib.rs",
    "main.rs",
    "startup.rs",
    "state.rs",
    "openapi.rs",
    "extract.rs",
    // `ApiError` answers as problem+json (actix's `ResponseError`).
    "error.rs",
    // The public base URL as seen in a request (forwarded headers).
    "config.rs",
    "edge/authenticate.rs",
    "edge/middleware.rs",
    "console/mod.rs",
    "launch/pages.rs",
    "auth/smart.rs",
    "analytics/alliance_outcome.rs",
    "analytics/clinicians.rs",
    "analytics/trend_chart.rs",
    "analytics/trends.rs",
    "analytics/patients.rs",
    "export/dictionary.rs",
    "export/pseudonym_key.rs",
    "export/responses.rs",
    "fhir/metadata.rs",
    "fhir/mod.rs",
    "fhir/observation.rs",
    "fhir/questionnaire.rs",
    "fhir/questionnaire_response.rs",
    "instruments/lifecycle.rs",
    "instruments/scoring.rs",
    "responses/erase.rs",
    "layers.rs",
    "webhooks/recovery.rs",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` -> `a::b`; `a/mod.rs` -> `a`; `lib.rs` -> ``.
fn module_of(relative: &str) -> String {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    if matches!(parts.last(), Some(&"mod") | Some(&"lib") | Some(&"main")) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without its `#[cfg(test)] mod ... { }` part (tests may import anything).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let (mut depth, mut start) = (0, 0);
        let bytes = inner.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            match b {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                b',' if depth == 0 => {
                    expand(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(prefix, &inner[start..], out);
        return;
    }
    if tree.is_empty() {
        return;
    }
    match tree.split_once("::") {
        Some((head, rest)) => {
            let mut next = prefix.to_vec();
            next.push(head.trim().to_string());
            expand(&next, rest, out);
        }
        None => {
            let mut path = prefix.to_vec();
            path.push(tree.split(" as ").next().unwrap_or(tree).trim().to_string());
            out.push(path);
        }
    }
}

/// Every module path a file names (absolute, as segments).
fn named_paths(module: &str, is_dir_module: bool, text: &str) -> Vec<Vec<String>> {
    let here: Vec<String> = module.split("::").filter(|s| !s.is_empty()).map(String::from).collect();
    // `super` of a file `a::b` is `a`; of a directory module `a` (a/mod.rs) it is the root.
    let parent: Vec<String> = if is_dir_module || !here.is_empty() {
        here[..here.len().saturating_sub(1)].to_vec()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let before_ok = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let after = &rest[i + 4..];
        let Some(end) = after.find(';') else { break };
        let tree: String = after[..end].chars().filter(|c| !c.is_whitespace()).collect();
        if before_ok {
            if let Some(t) = tree.strip_prefix("crate::") {
                expand(&[], t, &mut out);
            } else if let Some(mut t) = tree.strip_prefix("super::") {
                let mut base = parent.clone();
                while let Some(more) = t.strip_prefix("super::") {
                    base.pop();
                    t = more;
                }
                expand(&base, t, &mut out);
            } else if let Some(t) = tree.strip_prefix("self::") {
                expand(&here, t, &mut out);
            }
        }
        rest = &after[end..];
    }
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let before_ok = i == 0 || {
            let b = rest.as_bytes()[i - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        };
        let after = &rest[i + 7..];
        if before_ok {
            let path: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.split("::").filter(|s| !s.is_empty()).map(String::from).collect());
        }
        rest = after;
    }
    out
}

struct Tree {
    /// Module path -> path relative to `src`.
    files: BTreeMap<String, String>,
    edges: BTreeMap<String, BTreeSet<String>>,
}

fn read_tree() -> Tree {
    let root = src();
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    let mut files = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for path in paths {
        let relative = path
            .strip_prefix(&root)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let module = module_of(&relative);
        texts.insert(module.clone(), std::fs::read_to_string(&path).unwrap_or_default());
        files.insert(module, relative);
    }
    let resolve = |segments: &[String]| -> Option<String> {
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| files.contains_key(m))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &texts {
        let is_dir_module = files
            .get(module)
            .is_some_and(|f| f.ends_with("mod.rs") || f == "lib.rs");
        let targets = edges.entry(module.clone()).or_default();
        for segments in named_paths(module, is_dir_module, without_tests(text)) {
            let Some(target) = resolve(&segments) else { continue };
            let is_ancestor = module.is_empty() || target.is_empty() || module.starts_with(&format!("{target}::"));
            if target != *module && !is_ancestor {
                targets.insert(target);
            }
        }
    }
    Tree { files, edges }
}

/// Strongly connected groups of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(targets) = s.edges.get(v) {
            for w in targets {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let low = s.low[v].min(s.low[w]);
                    s.low.insert(v, low);
                } else if s.on_stack.contains(w) {
                    let low = s.low[v].min(s.index[w]);
                    s.low.insert(v, low);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.found.push(group);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_two_files_import_each_other_in_a_circle() {
    let tree = read_tree();
    assert!(
        tree.files.len() > 100,
        "the source tree was read ({} files)",
        tree.files.len()
    );
    assert!(
        tree.edges["workers::outbox"].contains("outbox"),
        "the reading finds imports: {:?}",
        tree.edges["workers::outbox"]
    );
    let found = circles(&tree.edges);
    assert!(found.is_empty(), "import circles: {found:#?}");
}

#[test]
fn the_reading_finds_a_circle_where_there_is_one() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.insert("a".into(), ["b".to_string()].into());
    edges.insert("b".into(), ["c".to_string()].into());
    edges.insert("c".into(), ["a".to_string()].into());
    edges.insert("d".into(), ["a".to_string()].into());
    assert_eq!(circles(&edges), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    let mut paths = Vec::new();
    expand(&[], "a::{b, c::{d, e as f}}", &mut paths);
    assert_eq!(paths, vec![vec!["a", "b"], vec!["a", "c", "d"], vec!["a", "c", "e"]]);
}

#[test]
fn only_the_web_edge_touches_actix_or_the_web_state() {
    let tree = read_tree();
    let mut offenders = Vec::new();
    for relative in tree.files.values() {
        if relative.ends_with("routes.rs") || WEB_EDGE.contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(src().join(relative)).unwrap_or_default();
        let text = without_tests(&text);
        if ["actix_web", "AppState", "crate::state"]
            .iter()
            .any(|t| text.contains(t))
        {
            offenders.push(relative.clone());
        }
    }
    assert!(
        offenders.is_empty(),
        "below the web edge but using actix or AppState: {offenders:?}"
    );
}
