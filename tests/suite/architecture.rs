//! The shape of the crate, checked: which wing of `src/` may import which (one table), no
//! circle between sibling modules, and no printing outside the CLI and the progress display.
//!
//! The checker reads the source text: it strips comments, string literals and
//! `#[cfg(test)]` items, then resolves each `crate::` path and each `super::` chain to the
//! module it names. Its own tests feed it small made-up trees, so that each rule is shown to
//! fail when broken.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The wings, bottom to top, and what each may import besides itself. Data flows one way:
/// config -> env -> learn -> run -> many, with the CLI on top only mapping arguments onto
/// library calls. `artifacts` write what `learn` produces (a network, its evaluations) and
/// know no loop; `learn` writes no file.
const ALLOWED: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("platform", &["config"]),
    ("env", &["config", "platform"]),
    ("learn", &["env", "config", "platform"]),
    ("artifacts", &["learn", "env", "config", "platform"]),
    ("run", &["artifacts", "learn", "env", "config", "platform"]),
    (
        "many",
        &["run", "artifacts", "learn", "env", "config", "platform"],
    ),
    (
        "cli",
        &[
            "many",
            "run",
            "artifacts",
            "learn",
            "env",
            "config",
            "platform",
        ],
    ),
];

/// Files (relative to `src/`) that may print to the terminal.
const MAY_PRINT: &[&str] = &["main.rs", "run/progress.rs"];

/// What writes to the terminal: the print macros and the standard streams.
const PRINTS: &[&str] = &[
    "println!",
    "print!",
    "eprintln!",
    "eprint!",
    "dbg!",
    "stdout()",
    "stderr()",
];

/// One source file: its module path (`["learn", "qfunction", "host"]`) and its text.
struct Source {
    file: String,
    module: Vec<String>,
    text: String,
}

/// The module path of `file` (relative to `src/`): `learn/qfunction/mod.rs` is
/// `learn::qfunction`, `lib.rs` and `main.rs` the root.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The wing of a file; `main.rs` belongs to the CLI, `lib.rs` to none.
fn wing_of(file: &str) -> Option<&str> {
    match file {
        "main.rs" => Some("cli"),
        "lib.rs" => None,
        _ => file.split('/').next(),
    }
}

/// `text` without comments, without the contents of string and char literals, and without
/// the items that `#[cfg(test)]` marks.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && is_raw_string(&chars, i) {
            i = skip_raw_string(&chars, i);
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && is_char_literal(&chars, i) {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    without_test_items(&out)
}

/// Whether `chars[i..]` opens a raw string, `r"` or `r#..."`, rather than an identifier.
fn is_raw_string(chars: &[char], i: usize) -> bool {
    let before_is_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    !before_is_ident && chars.get(j) == Some(&'"')
}

/// The index just past the raw string opening at `i`.
fn skip_raw_string(chars: &[char], i: usize) -> usize {
    let mut j = i + 1;
    let mut hashes = 0;
    while chars[j] == '#' {
        hashes += 1;
        j += 1;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return j + 1 + hashes;
        }
        j += 1;
    }
    j
}

/// Whether the `'` at `i` opens a char literal rather than a lifetime or a label.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// `code` without each item that follows a `#[cfg(test)]` (up to its closing brace, or its
/// `;` for a `use` or a `mod x;`).
fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The module paths `code` (of the module `module`) names: each `crate::a::b` and each
/// `super::...::a` resolved from `module`, and each member of a `crate::{a, b}` group.
fn references(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < code.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'$';
        let rest = &code[i..];
        let (mut base, mut tail) = if starts_word && rest.starts_with("crate::") {
            (Vec::new(), &rest["crate::".len()..])
        } else if starts_word && rest.starts_with("super::") {
            let mut base = module.to_vec();
            let mut tail = rest;
            while let Some(after) = tail.strip_prefix("super::") {
                base.pop();
                tail = after;
            }
            (base, tail)
        } else {
            i += 1;
            continue;
        };
        if let Some(group) = tail.strip_prefix('{') {
            let close = group.find('}').unwrap_or(group.len());
            for member in group[..close].split(',') {
                let name: String = member
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    let mut path = base.clone();
                    path.push(name);
                    found.push(path);
                }
            }
        } else {
            while let Some(len) = tail.find(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if len == 0 || !tail[len..].starts_with("::") {
                    base.push(tail[..len].to_owned());
                    break;
                }
                base.push(tail[..len].to_owned());
                tail = &tail[len + 2..];
            }
            found.push(base);
        }
        i += 1;
    }
    found
}

/// The longest known module that `path` lies in.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// Every broken rule in `sources`, one line each.
fn violations(sources: &[Source]) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut found = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for source in sources {
        let code = code_of(&source.text);
        let Some(wing) = wing_of(&source.file) else {
            continue;
        };
        let Some(may_use) = allowed.get(wing) else {
            found.push(format!(
                "src/{}: `{wing}` is not a wing in the table of allowed imports",
                source.file
            ));
            continue;
        };
        for path in references(&source.module, &code) {
            let Some(target) = resolve(&path, &modules) else {
                continue;
            };
            let Some(target_wing) = target.first().map(String::as_str) else {
                continue;
            };
            if target_wing != wing && !may_use.contains(&target_wing) {
                found.push(format!(
                    "src/{}: `{wing}` imports `{}`, and `{wing}` may import only {:?}",
                    source.file,
                    path.join("::"),
                    may_use
                ));
            }
            let related = target.starts_with(&source.module) || source.module.starts_with(&target);
            if !related {
                edges
                    .entry(source.module.clone())
                    .or_default()
                    .insert(target);
            }
        }
        if !MAY_PRINT.contains(&source.file.as_str()) && wing != "cli" {
            for print in PRINTS {
                if contains_word(&code, print) {
                    found.push(format!(
                        "src/{}: prints (`{print}`); only the CLI and the progress display write \
                         to the terminal",
                        source.file
                    ));
                }
            }
        }
    }
    found.extend(circles(&edges));
    found
}

/// Whether `code` holds `word` with no identifier character just before it (so that
/// `eprintln!` is not also a `println!`).
fn contains_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        !code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Each circle of imports between modules neither of which contains the other.
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in edges.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let mut circle: Vec<String> = path.iter().map(|m| m.join("::")).collect();
                    // Name each circle once, from its smallest module.
                    let smallest = (0..circle.len()).min_by_key(|&k| &circle[k]).unwrap_or(0);
                    circle.rotate_left(smallest);
                    found.insert(format!("import circle: {} -> back", circle.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found.into_iter().collect()
}

/// Every `.rs` file under `dir`, relative to `root`.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let file = path
                .strip_prefix(root)
                .expect("under src/")
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            out.push(Source {
                module: module_of(&file),
                file,
                text,
            });
        }
    }
}

#[test]
fn the_crate_keeps_its_shape() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    read_tree(&root, &root, &mut sources);
    assert!(sources.len() > 40, "found only {} files", sources.len());
    let wings: BTreeSet<&str> = sources.iter().filter_map(|s| wing_of(&s.file)).collect();
    let table: BTreeSet<&str> = ALLOWED.iter().map(|(wing, _)| *wing).collect();
    assert_eq!(wings, table, "the wings in src/ and in the table differ");
    let found = violations(&sources);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// A made-up tree of `(file, text)`.
fn tree(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(file, text)| Source {
            file: (*file).to_owned(),
            module: module_of(file),
            text: (*text).to_owned(),
        })
        .collect()
}

#[test]
fn an_import_up_the_table_is_refused() {
    let sources = tree(&[
        ("learn/replay.rs", "use crate::run::checkpoint::Part;\n"),
        ("run/checkpoint/mod.rs", "pub struct Part;\n"),
        ("run/mod.rs", "pub mod checkpoint;\n"),
        ("learn/mod.rs", "pub mod replay;\n"),
    ]);
    let found = violations(&sources);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("src/learn/replay.rs: `learn` imports `run::checkpoint::Part`"));
}

#[test]
fn groups_and_super_chains_are_followed() {
    let sources = tree(&[
        ("many/worker.rs", "use super::super::cli::train;\n"),
        ("platform/device.rs", "use crate::{config, run};\n"),
        ("cli/mod.rs", "pub mod train;\n"),
        ("run/mod.rs", "\n"),
        ("config/mod.rs", "\n"),
    ]);
    let found = violations(&sources);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("`many` imports `cli::train`"));
    assert!(found[1].contains("`platform` imports `run`"));
}

#[test]
fn a_circle_between_siblings_is_refused_but_parent_and_child_may_refer_to_each_other() {
    let sources = tree(&[
        (
            "learn/qfunction/mod.rs",
            "pub use host::Net;\nuse products::Rows;\n",
        ),
        (
            "learn/qfunction/host.rs",
            "use super::products::gemm;\nuse super::Spec;\n",
        ),
        ("learn/qfunction/products.rs", "use super::host::Rows;\n"),
    ]);
    let found = violations(&sources);
    assert_eq!(
        found,
        ["import circle: learn::qfunction::host -> learn::qfunction::products -> back"]
    );
}

#[test]
fn printing_outside_the_cli_is_refused_but_not_in_tests_comments_or_strings() {
    let sources = tree(&[
        ("learn/agent.rs", "fn f() { eprintln!(\"x\"); }\n"),
        (
            "learn/replay.rs",
            "// println!(\"a comment\")\nconst S: &str = \"println!\";\n\
             #[cfg(test)]\nmod tests { fn g() { println!(\"ok in tests\"); } }\n",
        ),
        ("cli/train.rs", "fn f() { println!(\"fine\"); }\n"),
        ("run/progress.rs", "fn f() { let _ = std::io::stdout(); }\n"),
    ]);
    let found = violations(&sources);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/learn/agent.rs: prints (`eprintln!`)"));
}
