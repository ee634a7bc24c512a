//! `multipart/form-data` (RFC 7578) over a body already read into memory and capped by the
//! caller: text fields become parameters, file fields become [`Upload`]s. Pure.
//!
//! Hostile input: every size is capped (parts, header block, each file, each text field),
//! nothing is allocated by a length the client declares, and anything that does not parse
//! is an error, never a panic.

use crate::daemon::api::Upload;

/// One `.torrent` file: the largest real ones (hundreds of thousands of pieces) are a few
/// MiB; qBittorrent caps a torrent file at 100 MiB, we keep to 10 MiB.
pub const MAX_UPLOAD: usize = 10 << 20;
/// A text field (a list of magnet URIs, a save path): 1 MiB is far above any real list.
pub const MAX_TEXT_FIELD: usize = 1 << 20;
/// Parts in one body: `torrents/add` with a few hundred files at once still fits.
pub const MAX_PARTS: usize = 1000;
/// The header block of one part.
const MAX_PART_HEADERS: usize = 8 << 10;
/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    #[error("multipart part too large")]
    TooLarge,
}

/// The fields of a multipart body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Form {
    pub params: Vec<(String, String)>,
    pub uploads: Vec<Upload>,
}

/// The boundary named in a `Content-Type: multipart/form-data; boundary=...` value.
pub fn boundary(content_type: &str) -> Option<String> {
    let (mime, rest) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let b = params(rest)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v)?;
    (!b.is_empty() && b.len() <= MAX_BOUNDARY).then_some(b)
}

/// Splits `body` into its fields.
pub fn parse(body: &[u8], boundary: &str) -> Result<Form, MultipartError> {
    use MultipartError::Malformed;
    let delim = [b"--", boundary.as_bytes()].concat();
    let sep = [b"\r\n--", boundary.as_bytes()].concat();
    // The first delimiter may follow a preamble (RFC 2046), which is ignored.
    let mut pos = if body.starts_with(&delim) {
        delim.len()
    } else {
        find(body, &sep, 0).ok_or(Malformed("no boundary"))? + sep.len()
    };
    let mut form = Form::default();
    let mut parts = 0usize;
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(form); // the close delimiter; an epilogue is ignored
        }
        if !rest.starts_with(b"\r\n") {
            return Err(Malformed("boundary not followed by CRLF"));
        }
        let start = pos + 2;
        let end = find(body, &sep, start).ok_or(Malformed("unterminated part"))?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(MultipartError::TooLarge);
        }
        part(&body[start..end], &mut form)?;
        pos = end + sep.len();
    }
}

fn part(raw: &[u8], form: &mut Form) -> Result<(), MultipartError> {
    use MultipartError::Malformed;
    let split = find(raw, b"\r\n\r\n", 0).ok_or(Malformed("part without header end"))?;
    if split > MAX_PART_HEADERS {
        return Err(MultipartError::TooLarge);
    }
    let headers = std::str::from_utf8(&raw[..split]).map_err(|_| Malformed("part headers"))?;
    let content = &raw[split + 4..];
    let disposition = headers
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, v)| v)
        .ok_or(Malformed("part without Content-Disposition"))?;
    let (kind, rest) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(Malformed("part is not form-data"));
    }
    let ps = params(rest);
    let get = |name: &str| {
        ps.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let field = get("name").ok_or(Malformed("part without a name"))?;
    match get("filename") {
        Some(filename) => {
            if content.len() > MAX_UPLOAD {
                return Err(MultipartError::TooLarge);
            }
            form.uploads.push(Upload {
                field,
                filename,
                bytes: content.to_vec(),
            });
        }
        None => {
            if content.len() > MAX_TEXT_FIELD {
                return Err(MultipartError::TooLarge);
            }
            let value = String::from_utf8(content.to_vec()).map_err(|_| Malformed("text field"))?;
            form.params.push((field, value));
        }
    }
    Ok(())
}

/// `; key=value; key="quoted; value"` → pairs, keys trimmed, quotes and `\` escapes removed.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.trim().is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c != ';') {
                chars.next();
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ';').collect();
            value = value.trim().to_string();
        }
        out.push((key.trim().to_string(), value));
    }
}

/// First position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..].iter().position(|b| *b == first)?;
        i += off;
        if hay.get(i..i + needle.len())? == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, file, content) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            match file {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/x-bittorrent\r\n\r\n").as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    #[test]
    fn boundary_from_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary("text/plain; boundary=x"), None);
        assert_eq!(
            boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))),
            None
        );
    }

    #[test]
    fn text_and_file_fields() {
        let b = body(&[
            (
                "urls",
                None,
                b"magnet:?xt=urn:btih:aa\nmagnet:?xt=urn:btih:bb",
            ),
            ("torrents", Some("a;b.torrent"), b"d4:infode\r\n--Xy"),
            ("paused", None, b"true"),
        ]);
        let f = parse(&b, "XyZ").unwrap();
        assert_eq!(
            f.params,
            vec![
                (
                    "urls".into(),
                    "magnet:?xt=urn:btih:aa\nmagnet:?xt=urn:btih:bb".into()
                ),
                ("paused".into(), "true".into())
            ]
        );
        assert_eq!(f.uploads.len(), 1);
        assert_eq!(f.uploads[0].field, "torrents");
        assert_eq!(f.uploads[0].filename, "a;b.torrent");
        assert_eq!(f.uploads[0].bytes, b"d4:infode\r\n--Xy");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let ok = body(&[("a", None, b"1")]);
        for bad in [
            &b""[..],
            b"garbage",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1",
            b"--XyZ\r\nNo-Disposition: x\r\n\r\n1\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data\r\n\r\n1\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\n1\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n1\r\n--XyZ--",
            b"--XyZjunk",
            &ok[..ok.len() - 9],
        ] {
            assert!(
                matches!(parse(bad, "XyZ"), Err(MultipartError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse(&ok, "XyZ").is_ok());
    }

    #[test]
    fn oversized_parts_are_refused() {
        let big = vec![b'a'; MAX_UPLOAD + 1];
        let b = body(&[("torrents", Some("x.torrent"), &big)]);
        assert_eq!(parse(&b, "XyZ"), Err(MultipartError::TooLarge));
        let text = vec![b'a'; MAX_TEXT_FIELD + 1];
        let b = body(&[("urls", None, &text)]);
        assert_eq!(parse(&b, "XyZ"), Err(MultipartError::TooLarge));
        let many: Vec<(&str, Option<&str>, &[u8])> =
            (0..=MAX_PARTS).map(|_| ("a", None, &b"1"[..])).collect();
        assert_eq!(parse(&body(&many), "XyZ"), Err(MultipartError::TooLarge));
    }
}
