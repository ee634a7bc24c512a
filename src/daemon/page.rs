//! The web page, shipped inside the binary: plain HTML, CSS and JavaScript (no build
//! step, nothing loaded from elsewhere, so it works offline). It is a client of the same
//! API the tools use (`page/app.js`).

/// Path (as requested), content type, bytes. `/` is the page itself.
pub static FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("page/index.html")),
    ("/app.js", "text/javascript; charset=utf-8", include_bytes!("page/app.js")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("page/style.css")),
];

/// The file served at `path`, if any.
pub fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, t, b)| (*t, *b))
}
