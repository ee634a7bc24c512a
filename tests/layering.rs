//! The pure core stays pure: a source scan that holds ARCHITECTURE.md's line
//! "Dependencies point one way: `cli → session → {net, store, tracker} → engine → {wire,
//! layout, metainfo} → {bencode, types}`", at its one hard edge: tokio, files, sockets and
//! the clock live above the engine, never in it or below it.
//!
//! The rule: outside test code, the pure modules — `src/engine/`, `src/wire/`,
//! `src/layout.rs`, `src/metainfo.rs`, `src/bencode.rs`, `src/types.rs` — must not name
//!
//! - `tokio` (any path through it, `tokio::net` and `tokio::sync` included),
//! - `std::fs` (also as `fs` inside a `use std::{...}` group),
//! - sockets: `TcpStream`, `TcpListener`, `UdpSocket`,
//! - the clock: `Instant::now`, `SystemTime::now`.
//!
//! Why: the core takes events and the current time and hands back actions; it does no I/O,
//! reads no clock and spawns nothing. That is what lets it be tested with plain `#[test]`s
//! and a whole swarm be simulated in one thread on a virtual clock. The edges (`net`,
//! `store`, `tracker`, `session`, `cli`) own tokio, files, sockets and `now`. Plain data
//! such as `SocketAddr`, `IpAddr`, `Instant` and `Duration` is fine.
//!
//! Test code is skipped: `#[cfg(test)]` items (inline `mod tests { .. }` or `mod tests;`),
//! files under a `tests/` directory, and files named `tests.rs`, `*_tests.rs` or
//! `proptests.rs`. Comments, string and char literals are blanked before the scan.

use std::path::{Path, PathBuf};

/// Directories (walked) and files of the pure core, relative to the crate root.
const PURE: &[&str] = &[
    "src/engine",
    "src/wire",
    "src/layout.rs",
    "src/metainfo.rs",
    "src/bencode.rs",
    "src/types.rs",
    "src/magnet.rs",
    "src/pex",
    "src/lsd",
    "src/dht",
    "src/metadata",
];

#[test]
fn pure_modules_name_no_io_runtime_or_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for p in PURE {
        collect(&root.join(p), &mut files);
    }
    assert!(files.len() >= 10, "found only {files:?}");
    let mut hits = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display();
        for (line, name) in forbidden(&text) {
            hits.push(format!("{rel}:{line}: {name}"));
        }
    }
    assert!(
        hits.is_empty(),
        "the pure core names I/O, tokio or the clock (see tests/layering.rs):\n{}",
        hits.join("\n")
    );
}

/// `.rs` files under `path` (or `path` itself), test files left out.
fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if path.file_name().is_some_and(|n| n == "tests") {
            return;
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") && !is_test_file(path) {
        out.push(path.to_path_buf());
    }
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name == "proptests.rs" || name.ends_with("_tests.rs")
}

/// Every forbidden name in `src` outside comments, literals and `#[cfg(test)]` items, as
/// (1-based line, name).
fn forbidden(src: &str) -> Vec<(usize, &'static str)> {
    let code = strip_test_items(&blank_comments_and_literals(src));
    let toks = tokens(&code);
    let mut hits = Vec::new();
    let is = |i: usize, s: &str| toks.get(i).is_some_and(|t| t.text == s);
    for (i, t) in toks.iter().enumerate() {
        let name = match t.text.as_str() {
            "tokio" => Some("tokio"),
            "TcpStream" => Some("TcpStream"),
            "TcpListener" => Some("TcpListener"),
            "UdpSocket" => Some("UdpSocket"),
            "std" if is(i + 1, "::") && is(i + 2, "fs") => Some("std::fs"),
            "std" if is(i + 1, "::") && is(i + 2, "{") && group_names(&toks, i + 2, "fs") => {
                Some("std::fs")
            }
            "Instant" if is(i + 1, "::") && is(i + 2, "now") => Some("Instant::now"),
            "SystemTime" if is(i + 1, "::") && is(i + 2, "now") => Some("SystemTime::now"),
            _ => None,
        };
        if let Some(name) = name {
            hits.push((t.line, name));
        }
    }
    hits
}

/// Whether the `{ .. }` group opening at `toks[open]` names `ident` at its top level
/// (`use std::{fs, io}`).
fn group_names(toks: &[Token], open: usize, ident: &str) -> bool {
    let mut depth = 0;
    for t in &toks[open..] {
        match t.text.as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            s if depth == 1 && s == ident => return true,
            _ => {}
        }
    }
    false
}

struct Token {
    text: String,
    line: usize,
}

/// Identifiers, `::` and single punctuation characters, with their lines.
fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token {
                    text: c.into(),
                    line,
                });
            }
            i += 1;
        }
    }
    out
}

/// `src` with comments and string/char literals replaced by spaces (newlines kept, so line
/// numbers stay right).
fn blank_comments_and_literals(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in &mut out[from..to] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied();
        if c[i] == '/' && at(i + 1) == Some('/') {
            let end = (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len());
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && at(i + 1) == Some('*') {
            // Block comments nest in Rust.
            let (mut k, mut depth) = (i + 2, 1);
            while k < c.len() && depth > 0 {
                if c[k] == '/' && at(k + 1) == Some('*') {
                    depth += 1;
                    k += 2;
                } else if c[k] == '*' && at(k + 1) == Some('/') {
                    depth -= 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
            blank(&mut out, i, k);
            i = k;
        } else if c[i] == '"' {
            let mut k = i + 1;
            while k < c.len() && c[k] != '"' {
                k += if c[k] == '\\' { 2 } else { 1 };
            }
            let end = (k + 1).min(c.len());
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a), which stays.
            let end = if at(i + 1) == Some('\\') {
                (i + 3..c.len()).find(|&k| c[k] == '\'').map(|k| k + 1)
            } else if at(i + 2) == Some('\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else if is_ident_char(c[i]) {
            // A whole identifier at once, so only a lone `r`/`br` can start a raw string.
            let start = i;
            while i < c.len() && is_ident_char(c[i]) {
                i += 1;
            }
            let ident: String = c[start..i].iter().collect();
            if matches!(ident.as_str(), "r" | "br" | "cr") {
                if let Some(end) = raw_string_end(&c, i) {
                    blank(&mut out, start, end);
                    i = end;
                }
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// For a raw string whose `#`s or `"` start at `start` (just after the `r`), the index just
/// past its closing quote and hashes.
fn raw_string_end(c: &[char], start: usize) -> Option<usize> {
    let hashes = c[start..].iter().take_while(|&&ch| ch == '#').count();
    if c.get(start + hashes) != Some(&'"') {
        return None;
    }
    let mut k = start + hashes + 1;
    while k < c.len() {
        if c[k] == '"'
            && c[k + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return Some(k + 1 + hashes);
        }
        k += 1;
    }
    Some(c.len())
}

/// `code` (comments and literals already blanked) with every item under `#[cfg(test)]`
/// blanked: an inline module or other braced item through its closing brace, a `mod x;`
/// or `use ..;` through its semicolon.
fn strip_test_items(code: &str) -> String {
    let c: Vec<char> = code.chars().collect();
    let mut out = c.clone();
    let mut i = 0;
    while i < c.len() {
        let Some(attr_end) = cfg_test_attr_at(&c, i) else {
            i += 1;
            continue;
        };
        // The item ends at the first `;` or at the brace matching the first `{`, whichever
        // comes first outside (), [] and <>; further attributes on it are skipped alike.
        let (mut k, mut nest) = (attr_end, 0i32);
        let mut end = c.len();
        while k < c.len() {
            match c[k] {
                '(' | '[' => nest += 1,
                ')' | ']' => nest -= 1,
                ';' if nest == 0 => {
                    end = k + 1;
                    break;
                }
                '{' if nest == 0 => {
                    end = matching_brace(&c, k);
                    break;
                }
                _ => {}
            }
            k += 1;
        }
        for ch in &mut out[i..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = end;
    }
    out.into_iter().collect()
}

/// If `#[cfg(test)]` (any spacing) starts at `i`, the index just past it.
fn cfg_test_attr_at(c: &[char], i: usize) -> Option<usize> {
    if c[i] != '#' {
        return None;
    }
    let mut k = i + 1;
    for want in ["[", "cfg", "(", "test", ")", "]"] {
        while k < c.len() && c[k].is_whitespace() {
            k += 1;
        }
        let got: String = c.get(k..k + want.len())?.iter().collect();
        if got != want {
            return None;
        }
        k += want.len();
    }
    Some(k)
}

/// The index just past the `}` matching the `{` at `open` (or the end of input).
fn matching_brace(c: &[char], open: usize) -> usize {
    let mut depth = 0;
    for (k, &ch) in c.iter().enumerate().skip(open) {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return k + 1;
                }
            }
            _ => {}
        }
    }
    c.len()
}

mod checker {
    use super::{forbidden, is_test_file};
    use std::path::Path;

    #[test]
    fn flags_tokio_in_engine_code() {
        let src = "//! The engine.\n\nuse std::collections::BTreeMap;\nuse tokio::sync::mpsc;\n\
                   \npub struct Engine;\n";
        assert_eq!(forbidden(src), vec![(4, "tokio")]);
    }

    #[test]
    fn ignores_test_modules_comments_and_strings() {
        let src = r##"
pub fn decide(now: std::time::Instant) {}
// use tokio::sync::mpsc;
/* use tokio::sync::mpsc; /* nested */ std::fs::read */
/// Unlike the edge, this never calls `Instant::now()` or uses tokio::net.
const NOTE: &str = "use tokio::sync::mpsc;";
const RAW: &str = r#"std::fs::read("x") "quoted" TcpStream"#;
const C: char = '"';
fn lifetime<'a>(x: &'a str) -> &'a str { x }

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;
    fn helper() -> std::time::Instant { std::time::Instant::now() }
    mod inner { use std::fs; }
}

#[cfg(test)]
mod proptests;
#[cfg( test )]
use tokio::time;
"##;
        assert_eq!(forbidden(src), vec![]);
        let escapes = "const Q: char = '\\'';\nconst B: &[u8] = br\"\\\";\nuse tokio;\n";
        assert_eq!(forbidden(escapes), vec![(3, "tokio")]);
        let after = format!("{src}\nfn late() {{ let _ = tokio::spawn(async {{}}); }}\n");
        let last = after.lines().count();
        assert_eq!(forbidden(&after), vec![(last, "tokio")]);
    }

    #[test]
    fn flags_the_clock_files_and_sockets() {
        let src = r#"fn tick() {
    let now = Instant::now();
    let t = std::time::Instant :: now();
    let b = std::fs::read("a");
}
use std::{fs, io};
use std::net::{SocketAddr, TcpStream};
use std::io::{Read as _};
fn s(_: UdpSocket, _: TcpListener) {}
fn w() -> std::time::SystemTime { std::time::SystemTime::now() }
"#;
        assert_eq!(
            forbidden(src),
            vec![
                (2, "Instant::now"),
                (3, "Instant::now"),
                (4, "std::fs"),
                (6, "std::fs"),
                (7, "TcpStream"),
                (9, "UdpSocket"),
                (9, "TcpListener"),
                (10, "SystemTime::now"),
            ]
        );
    }

    #[test]
    fn plain_address_and_time_types_are_fine() {
        let src = r#"use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
pub fn f(now: Instant, a: SocketAddr) -> Instant { now + Duration::ZERO }
pub fn fsync_later(fs: u8) -> u8 { fs }
"#;
        assert_eq!(forbidden(src), vec![]);
    }

    #[test]
    fn test_files_are_recognised_by_name() {
        for test in [
            "src/wire/tests.rs",
            "src/metainfo_tests.rs",
            "a/proptests.rs",
        ] {
            assert!(is_test_file(Path::new(test)), "{test}");
        }
        for code in [
            "src/engine/mod.rs",
            "src/engine/upload.rs",
            "src/tests_helper.rs",
        ] {
            assert!(!is_test_file(Path::new(code)), "{code}");
        }
    }
}
