//! Checks over the source that keep the shape: the layers point one way, the top-level
//! modules import in no circle, and only the command path appends to the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may use modules of its own layer or below.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain", &["domain", "clock", "secret", "net", "config"]),
    (
        "core",
        &[
            "projection",
            "register",
            "store",
            "command",
            "service",
            "audit",
            "archive",
            "privacy",
            "access_log",
            "duty",
        ],
    ),
    (
        "features",
        &[
            "auth",
            "export",
            "calendar",
            "filing",
            "intake",
            "notify",
            "report",
            "scheduler",
            "webhooks",
        ],
    ),
    ("state", &["state"]),
    ("web", &["web"]),
    (
        "entry",
        &["startup", "cli", "cli_accounts", "cli_keys", "doctor"],
    ),
];

/// Files that may call the store's `append` / `append_numbered`.
const APPENDERS: &[&str] = &["command.rs"];

/// Files that are test modules (declared under `#[cfg(test)]`).
const TEST_FILES: &[&str] = &["tests.rs", "proptests.rs", "architecture_tests.rs"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("src entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments, doc comments and block comments), so that
/// a path named in prose does not count as a use.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let (mut i, mut in_str) = (0, false);
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1] as char);
                i += 2;
                continue;
            }
            in_str = c != b'"';
            i += 1;
            continue;
        }
        if c == b'\'' && bytes.get(i + 1) == Some(&b'"') && bytes.get(i + 2) == Some(&b'\'') {
            // The char literal '"'.
            out.push_str("'\"'");
            i += 3;
            continue;
        }
        let ident_before = i > 0 && is_ident(bytes[i - 1] as char);
        if c == b'r' && !ident_before && matches!(bytes.get(i + 1), Some(b'#') | Some(b'"')) {
            // A raw string: r"…", r#"…"#, …
            let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
            if bytes.get(i + 1 + hashes) == Some(&b'"') {
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let start = i + 2 + hashes;
                let end = bytes[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(bytes.len(), |p| start + p + close.len());
                out.push_str(&text[i..end]);
                i = end;
                continue;
            }
        }
        if c == b'"' {
            in_str = true;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        out.push(c as char);
        i += 1;
    }
    out
}

/// The top-level module a file belongs to (`src/web/staff.rs` → `web`).
fn top_module(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src_dir()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "main" | "lib" | "architecture_tests")).then(|| name.to_string())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every top-level module named after `crate::`, also inside `use crate::{a, b::c}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Names at depth 1 of the group.
            let (mut depth, mut token, mut expect_name) = (1usize, String::new(), true);
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if depth == 1 && expect_name && is_ident(c) => token.push(c),
                    _ => {
                        if !token.is_empty() {
                            found.insert(std::mem::take(&mut token));
                            expect_name = false;
                        }
                    }
                }
            }
            if !token.is_empty() {
                found.insert(token);
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            found.insert(name);
        }
    }
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// Top-level module → the top-level modules it uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(top) = top_module(&file) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("source is readable"));
        let uses = graph.entry(top.clone()).or_default();
        for used in crate_paths(&code) {
            if used != top && layer_of(&used).is_some() {
                uses.insert(used);
            }
        }
    }
    graph
}

#[test]
fn every_top_level_module_has_a_layer() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let missing: BTreeSet<String> = files
        .iter()
        .filter_map(|f| top_module(f))
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "top-level modules without a layer in LAYERS (add them where they belong): {missing:?}"
    );
}

#[test]
fn layers_point_one_way() {
    let mut upward = Vec::new();
    for (module, uses) in module_graph() {
        let own = layer_of(&module).unwrap_or(usize::MAX);
        for used in uses {
            let theirs = layer_of(&used).unwrap_or(0);
            if theirs > own {
                upward.push(format!(
                    "{module} ({}) uses {used} ({})",
                    LAYERS[own].0, LAYERS[theirs].0
                ));
            }
        }
    }
    assert!(upward.is_empty(), "imports that point upward: {upward:#?}");
}

#[test]
fn top_level_modules_import_in_no_circle() {
    let graph = module_graph();
    // Depth-first search for a back edge; report the circle found.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!(
                "top-level modules import in a circle: {}",
                circle.join(" → ")
            );
        }
    }
}

/// Calls of the store's append methods: `.append(` or `.append_numbered(` whose receiver
/// chain ends in something named `store` (after removing white space, as rustfmt splits
/// chains over lines), or the trait method called by path.
fn store_appends(code: &str) -> usize {
    let flat: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut n = 0;
    for method in [".append(", ".append_numbered("] {
        let mut rest = flat.as_str();
        while let Some(at) = rest.find(method) {
            let receiver = &rest[..at];
            let receiver = receiver.trim_end_matches("()");
            let last: String = receiver
                .chars()
                .rev()
                .take_while(|&c| is_ident(c))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if last.ends_with("store") || last.ends_with("Store") {
                n += 1;
            }
            rest = &rest[at + method.len()..];
        }
    }
    n + flat.matches("EventStore::append").count()
}

/// The code without the items under `#[cfg(test)]` (up to their `;` or matching `}`).
fn without_test_items(code: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let item = &rest[at + ATTR.len()..];
        let end = match item.find(['{', ';']) {
            Some(i) if item.as_bytes()[i] == b';' => i + 1,
            Some(i) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (j, c) in item[i..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = i + j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            None => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn only_the_command_path_appends_to_the_store() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut offenders = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if APPENDERS.contains(&name) && file.parent() == Some(src_dir().as_path()) {
            continue;
        }
        // Test modules set up their logs as they like: files that are test modules, and
        // the `#[cfg(test)]` part at the end of a file.
        if TEST_FILES.contains(&name) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("source is readable"));
        let code = without_test_items(&code);
        let n = store_appends(&code);
        if n > 0 {
            offenders.push(format!("{} ({n})", file.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "only src/command.rs may append to the store; found appends in: {offenders:#?}"
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The checks themselves can fail: a use of web from a feature, and an append.
    let uses = crate_paths("use crate::{web::AppState, domain::{Reference, Status}};");
    assert!(uses.contains("web") && uses.contains("domain"));
    assert!(crate_paths("x = crate::notify::Notify::start();").contains("notify"));
    assert!(crate_paths("// crate::web in a comment").contains("web"));
    assert!(!crate_paths(&code_of("// crate::web in a comment")).contains("web"));
    assert_eq!(
        store_appends("self\n    .store\n    .append(id, ExpectedVersion::Any, events)"),
        1
    );
    assert_eq!(
        store_appends("services.store().append_numbered(c, s, e, b)"),
        1
    );
    assert_eq!(store_appends("OpenOptions::new().append(true)"), 0);
    assert_eq!(store_appends("headers.append(\"x\", v)"), 0);
    let with_tests = "fn a() {}\n#[cfg(test)]\nmod tests { fn b() { store.append(x) } }\nfn c() { store.append(y) }";
    assert_eq!(store_appends(&without_test_items(with_tests)), 1);
}

/// What adds a route to an axum or utoipa-axum router, or makes a router to add them to.
/// Only `web/routes.rs` may: everything else registers through `Routes`, which records
/// what it serves (`web::routes()`, checked against the authorization table).
const ROUTE_ADDERS: &[&str] = &[
    ".route(",
    ".route_service(",
    ".nest(",
    ".nest_service(",
    ".fallback(",
    ".fallback_service(",
    "Router::",
    "MethodRouter",
    "routing::any",
    "on_service(",
];

fn route_adders(code: &str) -> Vec<&'static str> {
    let flat: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    ROUTE_ADDERS
        .iter()
        .copied()
        .filter(|pat| {
            flat.match_indices(pat).any(|(at, _)| {
                // `OpenApiRouter::new` makes a router whose every route is documented.
                !(pat.starts_with('R') && flat[..at].ends_with("OpenApi"))
            })
        })
        .collect()
}

#[test]
fn routes_are_added_only_through_the_route_table() {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let own = src_dir().join("web").join("routes.rs");
    let mut offenders = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file == own || TEST_FILES.contains(&name) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("source is readable"));
        let found = route_adders(&without_test_items(&code));
        if !found.is_empty() {
            offenders.push(format!("{} ({})", file.display(), found.join(", ")));
        }
    }
    assert!(
        offenders.is_empty(),
        "routes are added through web::Routes (so web::routes() lists them); found elsewhere: {offenders:#?}"
    );
    // The check can fail.
    assert_eq!(
        route_adders("Router::new()\n    .route(\"/x\", get(x))").len(),
        2
    );
    assert!(route_adders("OpenApiRouter::new().routes(routes!(x))").is_empty());
    assert_eq!(
        route_adders("axum::Router::<AppState>::new()"),
        ["Router::"]
    );
}
