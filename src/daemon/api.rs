//! The seam between the HTTP edge (`web`) and the API's semantics (`qbt`): a request as
//! the edge has parsed it, and what the semantics answer. Plain data.
//!
//! The edge owns sockets, authentication (`auth/login`, `auth/logout` never get here),
//! size caps and multipart parsing; `qbt` owns paths below `/api/v2/`, parameters, JSON
//! and status codes. A request either gets its response at once (reads, answered from the
//! [`View`](super::model::View)) or becomes a [`Command`] whose outcome `qbt` renders.

use super::model::{Command, CommandError, CommandReply};

/// An HTTP method as far as the API cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One uploaded file of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The form field (`torrents` for `torrents/add`).
    pub field: String,
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// A request below `/api/v2/`, parsed and capped by the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: Method,
    /// The path after `/api/v2/`, e.g. `torrents/info`.
    pub path: String,
    /// Query string, then urlencoded form or multipart text fields, decoded, in order.
    pub params: Vec<(String, String)>,
    pub uploads: Vec<Upload>,
}

impl ApiRequest {
    /// The first value of `name`, if given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// How a command's outcome is to be answered (each endpoint answers in its own words:
/// `torrents/add` says `Ok.` or `Fails.`, most say nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// 200 with an empty body on success.
    Empty,
    /// `torrents/add`: 200 `Ok.`, or 200 `Fails.` when nothing could be added (as
    /// qBittorrent 4.5 answers).
    Add,
}

/// What `qbt` makes of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Reply(ApiResponse),
    /// Ask the core; answer with `qbt::render`'s response for `kind`.
    Ask(Command, ReplyKind),
}

/// A client's position in `sync/maindata` (qBittorrent's `rid`): what it was last sent.
/// One per authenticated session; the edge keeps it, `qbt` reads and updates it.
#[derive(Debug, Clone, Default)]
pub struct SyncState {
    /// The last `rid` handed out (0: none yet).
    pub rid: u64,
    /// The full state sent with `rid`, to diff the next answer against.
    pub last: Option<serde_json::Value>,
}

/// The outcome of a command, as the core reports it.
pub type Outcome = Result<CommandReply, CommandError>;
