//! Where a `.torrent` given on the command line comes from: a path, `-` (standard input) or
//! an `http(s)://` URL. A magnet link is parsed (so a malformed one is told what part is
//! wrong) and then refused with a clear word: only `fetch` takes one (`cli/torrents.rs`).
//!
//! Invariant: whatever the source, at most [`MAX_TORRENT_FILE`] bytes are read before the
//! input is refused, and a download is bounded in time ([`FETCH_TIMEOUT`]).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::metainfo::{Metainfo, MAX_TORRENT_FILE};

/// The whole download of a `.torrent` by URL, connection included: long enough for a slow
/// server (a `.torrent` is a few hundred KB at most), short enough that a dead one is
/// reported rather than waited on. curl has no default; 30 s is what aria2 uses to connect.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The `.torrent` named by `arg`, parsed.
pub fn load(arg: &str) -> Result<Metainfo> {
    let (bytes, what) = read(arg)?;
    Metainfo::from_bytes(&bytes).with_context(|| format!("{what} is not a valid torrent"))
}

/// The raw bytes named by `arg`, and how to name their source in a message.
fn read(arg: &str) -> Result<(Vec<u8>, String)> {
    let lower = arg.get(..8).unwrap_or(arg).to_ascii_lowercase();
    if crate::magnet::is_magnet(arg) {
        crate::magnet::Magnet::parse(arg).context("invalid magnet link")?;
        bail!(
            "a magnet link has no .torrent to read here: `swarm fetch` takes the link \
             itself, or give the .torrent file (a path, an http(s):// URL, or - for \
             standard input)"
        );
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let what = super::text::clean(arg).into_owned();
        return Ok((
            download(arg).with_context(|| format!("fetching {what}"))?,
            what,
        ));
    }
    if arg == "-" {
        let what = "standard input".to_string();
        let bytes = read_capped(std::io::stdin().lock()).context("reading standard input")?;
        return Ok((bytes.ok_or_else(|| too_big(&what))?, what));
    }
    let path = Path::new(arg);
    let what = path.display().to_string();
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {what}"))?
        .len();
    if len > MAX_TORRENT_FILE {
        return Err(too_big(&what));
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {what}"))?;
    Ok((bytes, what))
}

fn too_big(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} is larger than a .torrent may be ({MAX_TORRENT_FILE} bytes at most)")
}

/// Everything `r` holds, or `None` past [`MAX_TORRENT_FILE`] bytes (reading stops there).
fn read_capped(r: impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    r.take(MAX_TORRENT_FILE + 1).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= MAX_TORRENT_FILE).then_some(buf))
}

/// GET `url` (following redirects, as reqwest does up to 10), refusing a body past
/// [`MAX_TORRENT_FILE`] whether or not the server announced its length.
fn download(url: &str) -> Result<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("swarm/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        let mut resp = client.get(url).send().await?.error_for_status()?;
        if resp.content_length().is_some_and(|n| n > MAX_TORRENT_FILE) {
            return Err(too_big("the response"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if (body.len() + chunk.len()) as u64 > MAX_TORRENT_FILE {
                return Err(too_big("the response"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnets_are_refused_by_name() {
        let e = load("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567").unwrap_err();
        assert!(
            format!("{e:#}").contains("a magnet link has no .torrent to read here"),
            "{e:#}"
        );
        let e = load("MAGNET:?xt=urn:btih:0123").unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "invalid magnet link: xt: the info-hash is 4 characters long; it must be 40 \
             (hex) or 32 (base32)"
        );
    }

    #[test]
    fn reads_are_capped() {
        let small = vec![b'x'; 10];
        assert_eq!(read_capped(&small[..]).unwrap(), Some(small.clone()));
        let big = vec![0u8; MAX_TORRENT_FILE as usize + 1];
        assert_eq!(read_capped(&big[..]).unwrap(), None);
    }
}
