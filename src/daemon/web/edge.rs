//! One request, from hyper's types to an answer: checks, login/logout, the session, body
//! reading under caps, the handler, and the command round trip to the core.
//!
//! Status codes follow qBittorrent's web server: a Host that does not name us or a
//! cross-site Origin/Referer → 401 `Unauthorized`; no session → 403 `Forbidden`; a banned
//! address logging in → 403; wrong credentials → 200 `Fails.`.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Response, StatusCode};
use tokio::sync::oneshot;

use super::{auth, check, multipart, Shared, BODY_TIMEOUT, COMMAND_TIMEOUT, MAX_BODY};
use crate::daemon::api::{ApiRequest, ApiResponse, Method, Step, Upload};
use crate::daemon::page;

type Resp = Response<Full<Bytes>>;

/// The session cookie's name, as qBittorrent before 5.2 calls it (5.2 renamed it to
/// `QBT_SID_<port>`; clients echo whatever they are given).
pub const COOKIE: &str = "SID";
const API: &str = "/api/v2/";
/// What is read of a body over [`MAX_BODY`] before answering 413, so that a client still
/// sending gets the answer rather than a reset; past it the connection is dropped.
const DRAIN_LIMIT: usize = 64 << 20;
const BANNED: &str =
    "Your IP address has been banned after too many failed authentication attempts.";

pub(super) async fn respond(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Shared,
) -> Resp {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let host = header(headers, "host").unwrap_or_default();
    if !check::host_allowed(host, local, &shared.cfg.extra_hosts) {
        tracing::debug!("web: {peer}: Host {host:?} refused");
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let method = match parts.method {
        hyper::Method::GET | hyper::Method::HEAD => Method::Get,
        hyper::Method::POST => Method::Post,
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    };
    let path = parts.uri.path();
    let Some(endpoint) = path.strip_prefix(API) else {
        return static_file(path, method);
    };
    // CSRF: every API request (qBittorrent checks all but the page itself).
    if check::cross_site(host, header(headers, "origin"), header(headers, "referer")) {
        tracing::debug!("web: {peer}: cross-site request refused");
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let query = parts.uri.query().unwrap_or("");
    let now = Instant::now();
    let sid = header(headers, "cookie")
        .and_then(|c| check::cookie(c, COOKIE))
        .filter(|sid| {
            shared
                .auth
                .lock()
                .is_ok_and(|mut a| a.sessions.touch(sid, now))
        })
        .map(str::to_owned);

    if endpoint == "auth/login" {
        if method != Method::Post {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        let params = match read_params(body, headers, query).await {
            Ok((p, _)) => p,
            Err(r) => return r,
        };
        return login(&params, peer, shared).await;
    }
    let Some(sid) = sid else {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    };
    if endpoint == "auth/logout" {
        if method != Method::Post {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        if let Ok(mut a) = shared.auth.lock() {
            a.sessions.end(&sid);
        }
        let mut r = text(StatusCode::OK, "");
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{COOKIE}=; HttpOnly; SameSite=Strict; path=/; Max-Age=0"
        )) {
            r.headers_mut().insert("set-cookie", v);
        }
        return r;
    }
    let (params, uploads) = match read_params(body, headers, query).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let api = ApiRequest {
        method,
        path: endpoint.to_string(),
        params,
        uploads,
    };
    api_call(&api, &sid, shared).await
}

/// The handler's answer, with the session's `sync/maindata` position lent for the call.
async fn api_call(api: &ApiRequest, sid: &str, shared: &Shared) -> Resp {
    let view = shared.view.borrow().clone();
    let mut sync = match shared.auth.lock() {
        Ok(mut a) => a.sessions.take_sync(sid),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    let step = (shared.handler)(api, &view, &mut sync);
    drop(view);
    if let Ok(mut a) = shared.auth.lock() {
        a.sessions.put_sync(sid, sync);
    }
    match step {
        Step::Reply(r) => api_response(r),
        Step::Ask(cmd, kind) => {
            let (tx, rx) = oneshot::channel();
            let asked = tokio::time::timeout(COMMAND_TIMEOUT, async {
                shared.commands.send((cmd, tx)).await.ok()?;
                rx.await.ok()
            })
            .await;
            match asked {
                Ok(Some(outcome)) => api_response((shared.render)(kind, outcome)),
                // The core is busy past the timeout, or gone (stopping).
                _ => text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
            }
        }
    }
}

async fn login(params: &[(String, String)], peer: SocketAddr, shared: &Shared) -> Resp {
    let ip = peer.ip().to_canonical();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (user, password) = (get("username"), get("password"));
    if shared
        .auth
        .lock()
        .map_or(true, |mut a| a.limiter.is_banned(ip, Instant::now()))
    {
        return text(StatusCode::FORBIDDEN, BANNED);
    }
    let Ok(_permit) = shared.hashing.acquire().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    let phc = shared.cfg.password_hash.clone();
    let pw_ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    let ok = auth::slow_equals(user.as_bytes(), shared.cfg.user.as_bytes()) && pw_ok;
    let Ok(mut a) = shared.auth.lock() else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let now = Instant::now();
    if !ok {
        a.limiter.fail(ip, now);
        tracing::info!("web: failed login from {ip}");
        return text(StatusCode::OK, "Fails.");
    }
    a.limiter.succeed(ip);
    let sid = a.sessions.start(now);
    let mut r = text(StatusCode::OK, "Ok.");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={sid}; HttpOnly; SameSite=Strict; path=/"
    )) {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}

/// Query parameters, then the body's: urlencoded fields, or multipart fields and files.
/// Other content types contribute nothing. Over [`MAX_BODY`] → 413; malformed → 400;
/// too slow → 408.
async fn read_params(
    body: Incoming,
    headers: &HeaderMap,
    query: &str,
) -> Result<(Vec<(String, String)>, Vec<Upload>), Resp> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let declared = header(headers, "content-length").and_then(|l| l.parse::<u64>().ok());
    let bytes = match read_body(body, declared).await {
        BodyRead::Done(b) => b,
        BodyRead::TooLarge => return Err(text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")),
        BodyRead::Slow => return Err(text(StatusCode::REQUEST_TIMEOUT, "Request Timeout")),
        BodyRead::Broken => return Err(text(StatusCode::BAD_REQUEST, "Bad Request")),
    };
    let ctype = header(headers, "content-type").unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        params.extend(form_urlencoded::parse(&bytes).into_owned());
        Ok((params, Vec::new()))
    } else if mime.eq_ignore_ascii_case("multipart/form-data") {
        let Some(boundary) = multipart::boundary(ctype) else {
            return Err(text(StatusCode::BAD_REQUEST, "Bad Request"));
        };
        match multipart::parse(&bytes, &boundary) {
            Ok(form) => {
                params.extend(form.params);
                Ok((params, form.uploads))
            }
            Err(multipart::MultipartError::TooLarge) => {
                Err(text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"))
            }
            Err(e) => Err(text(StatusCode::BAD_REQUEST, &e.to_string())),
        }
    } else {
        Ok((params, Vec::new()))
    }
}

enum BodyRead {
    Done(Bytes),
    TooLarge,
    Slow,
    Broken,
}

/// The body, at most [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`]. A body over the cap is
/// read on and discarded up to [`DRAIN_LIMIT`] so the client can read the 413.
async fn read_body(mut body: Incoming, declared: Option<u64>) -> BodyRead {
    let too_large = declared.is_some_and(|l| l > MAX_BODY as u64);
    let read = async {
        let mut buf = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return BodyRead::Broken;
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            seen = seen.saturating_add(data.len());
            if too_large || seen > MAX_BODY {
                buf = Vec::new();
                if seen > DRAIN_LIMIT {
                    return BodyRead::TooLarge;
                }
                continue;
            }
            buf.extend_from_slice(&data);
        }
        if too_large || seen > MAX_BODY {
            BodyRead::TooLarge
        } else {
            BodyRead::Done(Bytes::from(buf))
        }
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(BodyRead::Slow)
}

fn static_file(path: &str, method: Method) -> Resp {
    if method != Method::Get {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let path = if path == "/" { "/index.html" } else { path };
    let Some((_, ctype, bytes)) = page::PAGE.iter().find(|(p, _, _)| *p == path) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut r = Response::new(Full::new(Bytes::from_static(bytes)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, content_type(ctype));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if ctype.starts_with("text/html") {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static(
                "default-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'",
            ),
        );
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    }
    r
}

fn api_response(r: ApiResponse) -> Resp {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, content_type(r.content_type));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: &str) -> Resp {
    api_response(ApiResponse {
        status: status.as_u16(),
        content_type: "text/plain; charset=UTF-8",
        body: body.as_bytes().to_vec(),
    })
}

/// A content type from a table someone else fills; one that is no valid header value
/// becomes `application/octet-stream` rather than a panic.
fn content_type(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
