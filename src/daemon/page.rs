//! The web page, shipped inside the binary: plain HTML, CSS and JavaScript (no build
//! step, nothing loaded from elsewhere, so it works offline). It is a client of the same
//! API the tools use (`page/app.js`).

/// (path, content type, bytes); `/` is served as `/index.html`.
pub static PAGE: &[(&str, &str, &[u8])] = &[
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_bytes!("page/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("page/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("page/style.css"),
    ),
];
