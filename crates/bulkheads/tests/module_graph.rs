//! The crate's shape, checked: no module imports a module that imports it back (directly or
//! through others), and no source file grows past about 400 lines without saying why.
//!
//! Every `crate::`, `super::` and `self::` path in the sources (in `use` items and in code,
//! groups such as `use crate::a::{b, c::d}` expanded) is resolved to the deepest module it
//! names; each is an edge of the module graph. A path that stops at the crate root
//! (`crate::Stats`) goes through `lib.rs`'s re-exports, which import every module: such a
//! path shows up as a cycle, so library code names the module that defines an item.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest file without a reason at its top.
const MAX_LINES: usize = 420;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with its module path (`lib.rs` is `[]`, `a/mod.rs` is
/// `["a"]`, `a/b.rs` is `["a", "b"]`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut p = prefix.to_vec();
            p.push(name);
            modules(&path, &p, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut p = prefix.to_vec();
            if name != "mod" && name != "lib" {
                p.push(name);
            }
            out.insert(p, path);
        }
    }
}

/// The text without comments, string literals and char literals (kept as blanks), so paths
/// quoted in docs or messages are not taken for imports.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'r' && b[i..].starts_with(b"r#\"") {
            let end = text[i + 3..].find("\"#").map_or(b.len(), |e| i + 3 + e + 2);
            i = end;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n'); lifetimes ('a) are left alone.
            let end = text[i + 1..].find('\'').map_or(b.len(), |e| i + 1 + e + 1);
            i = end;
            out.push_str("' '");
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_at(s: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Reads a path after `start::` at `i`: `a::b`, or a group `{a::b, c}`, into `out`.
fn read_path(s: &[u8], i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let i = skip_ws(s, i);
    if i < s.len() && s[i] == b'{' {
        let mut i = i + 1;
        loop {
            i = skip_ws(s, i);
            if i >= s.len() || s[i] == b'}' {
                return i + 1;
            }
            i = read_path(s, i, prefix.clone(), out);
            i = skip_ws(s, i);
            if i < s.len() && s[i] == b',' {
                i += 1;
            }
        }
    }
    let (id, mut j) = ident_at(s, i);
    let mut path = prefix;
    if !id.is_empty() {
        path.push(id);
    }
    if s[j..].starts_with(b"::") {
        j += 2;
        return read_path(s, j, path, out);
    }
    out.push(path);
    j
}

/// Every path starting with `crate`, `super` or `self` in `code`, each with the inline
/// modules (`mod tests { .. }`) it sits in.
fn paths(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let s = code.as_bytes();
    let mut out = Vec::new();
    // Inline modules open at brace depths.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        let boundary =
            i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_' || s[i - 1] == b':');
        if boundary && s[i..].starts_with(b"mod ") {
            let (id, j) = ident_at(s, skip_ws(s, i + 4));
            let j = skip_ws(s, j);
            if !id.is_empty() && j < s.len() && s[j] == b'{' {
                inline.push((id, depth));
                depth += 1;
                i = j + 1;
                continue;
            }
        }
        let head = ["crate", "super", "self"].into_iter().find(|h| {
            let h = h.as_bytes();
            boundary && s[i..].starts_with(h) && s[i + h.len()..].starts_with(b"::")
        });
        if let Some(head) = head {
            let mut found = Vec::new();
            // A group's braces are read here, so they leave the depth count alone.
            let end = read_path(s, i + head.len() + 2, vec![head.to_owned()], &mut found);
            let within: Vec<String> = inline.iter().map(|(m, _)| m.clone()).collect();
            out.extend(found.into_iter().map(|p| (within.clone(), p)));
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// The deepest module `path` names, seen from module `at`.
fn resolve(path: &[String], at: &[String], known: &BTreeSet<Vec<String>>) -> Vec<String> {
    let mut module: Vec<String> = Vec::new();
    let mut rest = path;
    while let Some((head, tail)) = rest.split_first() {
        match head.as_str() {
            "crate" => module.clear(),
            "self" => module = at.to_vec(),
            "super" => {
                // `super` is the parent of the current module, whether its file is `a/b.rs`
                // or `a/b/mod.rs`.
                if rest.len() == path.len() {
                    module = at.to_vec();
                }
                module.pop();
            }
            _ => break,
        }
        rest = tail;
    }
    for seg in rest {
        let mut next = module.clone();
        next.push(seg.clone());
        if known.contains(&next) {
            module = next;
        } else {
            break;
        }
    }
    module
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate (lib.rs)".to_owned()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut through_root = Vec::new();
    for (module, file) in &files {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        for (within, p) in paths(&code) {
            let mut at = module.clone();
            at.extend(within.iter().cloned());
            let target = resolve(&p, &at, &known);
            // A module's own items, and its children declared with `mod`, are not edges.
            if target.is_empty() && !module.is_empty() {
                through_root.push(format!("{}: {}", name(module), p.join("::")));
            }
            if target != *module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // The crate root declares and re-exports everything: its edges are not imports, but a
    // module that names an item through the root depends on the root, which depends on it.
    assert!(
        through_root.is_empty(),
        "these paths name items through the crate root (lib.rs re-exports), which imports every module back; name the defining module instead:\n  {}",
        through_root.join("\n  ")
    );
    edges.remove(&Vec::new());

    // Cycles: a depth-first search that reports the first cycle it meets.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            let mut cycle: Vec<String> = stack[i..].iter().map(|s| name(s)).collect();
            cycle.push(name(m));
            cycles.push(cycle.join(" -> "));
            return;
        }
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, stack, done, cycles);
        }
        stack.pop();
        done.insert(m.clone());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for m in files.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(
        cycles.is_empty(),
        "import cycles:\n  {}",
        cycles.join("\n  ")
    );
    // The walk saw the crate: a broken parser would find no edges and prove nothing.
    assert!(
        edges.len() > 20,
        "only {} modules with imports found",
        edges.len()
    );
}

#[test]
fn source_files_stay_short_or_say_why() {
    let mut files = BTreeMap::new();
    modules(&src(), &[], &mut files);
    let long: Vec<String> = files
        .values()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text.lines().count();
            let says_why = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.contains("Longer than"));
            (lines > MAX_LINES && !says_why).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these or say why at their top: {long:?}"
    );
}
