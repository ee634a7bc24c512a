//! Text from outside, made safe to print: the one place that decides what reaches the
//! terminal.
//!
//! A torrent's name, comment and paths, a tracker's URL, failure reason and warning, and any
//! error chain that quotes them are hostile: an ESC, BEL or CSI in them would set the window
//! title, clear the screen or worse on a real terminal. Everything swarm prints that came from
//! outside goes through [`clean`] (bare text) or [`quoted`] (a name in a sentence); log lines
//! go through [`clean_log`] in the log writer, and JSON through [`json_safe`].
//!
//! Escaped: every control character (C0, DEL and the C1 range, which some terminals read as
//! 8-bit escapes) and the bidirectional overrides that make text display other than it reads.
//! Escapes are Rust's (`\u{1b}`, `\n`), so the output stays readable and unambiguous.

use std::borrow::Cow;

/// Whether `c` must not reach a terminal as it is.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character escaped; borrowed when there is none (the usual case).
pub fn clean(s: &str) -> Cow<'_, str> {
    escape(s, |_| false)
}

/// `s` as a double-quoted string with every unsafe character, `"` and `\` escaped (what
/// `{:?}` prints, which escapes all of them), for a name inside a sentence.
pub fn quoted(s: &str) -> String {
    let q = format!("{s:?}");
    // `{:?}` already escapes controls; this also catches anything it leaves printable.
    if q.chars().any(unsafe_char) {
        clean(&q).into_owned()
    } else {
        q
    }
}

/// A formatted log line: like [`clean`], but line breaks and tabs stay, and so does ESC when
/// the logger itself colours its output (it escapes ESC in every field it formats).
pub fn clean_log(s: &str, keep_esc: bool) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t' || (keep_esc && c == '\x1b'))
}

/// Serialized JSON with the characters `serde_json` leaves raw (DEL, C1, bidi overrides)
/// written as `\uXXXX` escapes; they can only occur inside strings, where that is valid JSON.
pub fn json_safe(json: &str) -> Cow<'_, str> {
    // `serde_json` escapes every C0 control inside strings, so those outside are its own
    // layout (pretty printing's newlines), and stay.
    let raw = |c: char| unsafe_char(c) && c >= '\x7f';
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if raw(c) {
            // All are in the Basic Multilingual Plane: one `\uXXXX` each.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn escape(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hostile sequence the tests use: OSC window title, clear screen, 8-bit CSI, BEL,
    /// carriage return, a bidi override.
    const HOSTILE: &str = "a\x1b]0;pwned\x07b\x1b[2J\u{9b}31m\r\u{202e}z\x7f";

    fn no_unsafe(s: &str) -> bool {
        !s.chars().any(unsafe_char)
    }

    #[test]
    fn clean_escapes_everything_unsafe_and_keeps_the_rest() {
        assert!(matches!(clean("plain ünïcode 名前"), Cow::Borrowed(_)));
        assert_eq!(clean("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
        let c = clean(HOSTILE);
        assert!(no_unsafe(&c), "{c}");
        assert_eq!(
            c,
            "a\\u{1b}]0;pwned\\u{7}b\\u{1b}[2J\\u{9b}31m\\r\\u{202e}z\\u{7f}"
        );
    }

    #[test]
    fn quoted_is_debug_quoting() {
        assert_eq!(quoted("movie.bin"), "\"movie.bin\"");
        assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
        assert!(no_unsafe(&quoted(HOSTILE)));
    }

    #[test]
    fn log_lines_keep_their_layout() {
        assert_eq!(clean_log("x\ty\n", false), "x\ty\n");
        assert_eq!(clean_log("\x1b[1mx\r\n", true), "\x1b[1mx\\r\n");
        let c = clean_log(HOSTILE, false);
        assert!(no_unsafe(&c), "{c}");
    }

    #[test]
    fn json_stays_json_and_safe() {
        let v = serde_json::json!({ "name": HOSTILE });
        let s = serde_json::to_string(&v).unwrap();
        let safe = json_safe(&s);
        assert!(no_unsafe(&safe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
        // Pretty printing's layout is kept.
        let s = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_safe(&s);
        assert!(safe.contains("{\n  \"name\""), "{safe}");
        assert!(!safe.chars().any(|c| unsafe_char(c) && c != '\n'), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
    }
}
