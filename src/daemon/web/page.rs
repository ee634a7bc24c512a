//! The embedded web page: files served at their path (`/` is `/index.html`), filled in by
//! the page's own change. Empty until then, so `/` answers 404.

/// (path, content type, bytes).
pub static PAGE: &[(&str, &str, &[u8])] = &[];
