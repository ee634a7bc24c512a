//! The qBittorrent Web API v2 subset, pure: a parsed request and the latest
//! [`View`] in, a response or a [`Command`](crate::daemon::model::Command) out. No I/O.
//!
//! Paths, parameters, status codes, JSON keys and JSON types follow qBittorrent 4.5.2
//! (the version we report, [`APP_VERSION`]); the key sets were captured from a real
//! `qbittorrent-nox` 4.5.2 and are pinned in the tests. Where swarm knows less than
//! libtorrent (per-tracker peer counts, seeds vs leechers), the field is present with
//! qBittorrent's "unknown" value (-1 or 0), never invented.
//!
//! Invariants: [`handle`] and [`render`] never panic on any input; no allocation is
//! sized by a number in a request; a [`SyncState`] holds one full copy of the last state.

mod app;
mod commands;
mod diagnosis;
mod params;
mod peers;
mod sync;
mod torrents;
mod trackers;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_commands;
#[cfg(test)]
mod tests_sync;

use super::api::{ApiRequest, ApiResponse, Method, Outcome, ReplyKind, Step, SyncState};
use super::model::{CommandError, CommandReply, View};

pub use torrents::state_for;

/// The qBittorrent version we answer `app/version` with. 4.5.2 because it is the
/// version whose shapes we checked field by field against a running `qbittorrent-nox`
/// (Debian bookworm's); `qbittorrent-api` then uses the `pause`/`resume` endpoints, and
/// states are named `pausedDL`/`pausedUP`. We also answer v5's `stop`/`start` and its
/// `stopped`/`running` filters, so clients written for either work.
pub const APP_VERSION: &str = "v4.5.2";
/// The Web API version qBittorrent 4.5.2 reports; `qbittorrent-api` gates endpoints and
/// parameter names on it (`stop`/`start` from 2.11, `paused` before it).
pub const WEB_API_VERSION: &str = "2.8.19";

/// qBittorrent's "infinite" ETA: 100 days in seconds (`MAX_ETA`).
const JSON_ETA_INFINITE: i64 = 8_640_000;

const TEXT: &str = "text/plain; charset=UTF-8";
const JSON: &str = "application/json";

/// A request refused before it reached the core: a status and qBittorrent's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail {
    pub status: u16,
    pub message: String,
}

impl Fail {
    fn new(status: u16, message: &str) -> Self {
        Fail {
            status,
            message: message.to_string(),
        }
    }
    pub fn bad_request() -> Self {
        Fail::new(400, "Bad Request")
    }
    pub fn not_found() -> Self {
        Fail::new(404, "Not Found")
    }
    pub fn conflict(message: &str) -> Self {
        Fail::new(409, message)
    }
    fn response(&self) -> ApiResponse {
        text(self.status, &self.message)
    }
}

pub(crate) fn text(status: u16, body: &str) -> ApiResponse {
    ApiResponse {
        status,
        content_type: TEXT,
        body: body.as_bytes().to_vec(),
    }
}

pub(crate) fn json(value: &serde_json::Value) -> ApiResponse {
    ApiResponse {
        status: 200,
        content_type: JSON,
        // Serialising a `Value` cannot fail (its keys are strings).
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

/// The map inside a `json!({...})` literal (always an object).
pub(crate) fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// What one endpoint does with a request.
type Handler = fn(&ApiRequest, &View, &mut SyncState) -> Result<Step, Fail>;

/// Every endpoint: path, whether qBittorrent refuses GET on it (405), handler.
const ENDPOINTS: &[(&str, bool, Handler)] = &[
    ("app/version", false, app::version),
    ("app/webapiVersion", false, app::webapi_version),
    ("app/buildInfo", false, app::build_info),
    ("app/preferences", false, app::preferences),
    ("app/setPreferences", true, app::set_preferences),
    ("transfer/info", false, app::transfer_info),
    ("torrents/info", false, torrents::info),
    ("torrents/properties", false, torrents::properties),
    ("torrents/files", false, torrents::files),
    ("torrents/trackers", false, trackers::trackers),
    ("torrents/categories", false, commands::categories),
    ("sync/maindata", false, sync::maindata),
    ("sync/torrentPeers", false, peers::torrent_peers),
    // swarm's own, in a namespace qBittorrent does not use.
    ("swarm/diagnosis", false, diagnosis::diagnosis),
    ("swarm/stalled", false, diagnosis::stalled),
    ("torrents/add", true, commands::add),
    ("torrents/delete", true, commands::delete),
    ("torrents/pause", true, commands::pause),
    ("torrents/stop", true, commands::pause),
    ("torrents/resume", true, commands::resume),
    ("torrents/start", true, commands::resume),
    ("torrents/recheck", true, commands::recheck),
    ("torrents/filePrio", true, commands::file_prio),
    ("torrents/setCategory", true, commands::set_category),
    ("torrents/createCategory", true, commands::create_category),
    ("torrents/setUploadLimit", true, commands::set_upload_limit),
    (
        "torrents/setDownloadLimit",
        true,
        commands::set_download_limit,
    ),
];

/// A request below /api/v2/ (auth/* never reaches this).
pub fn handle(req: &ApiRequest, view: &View, sync: &mut SyncState) -> Step {
    let path = req.path.trim_matches('/');
    let Some((_, post_only, handler)) = ENDPOINTS.iter().find(|(p, _, _)| *p == path) else {
        return Step::Reply(Fail::not_found().response());
    };
    if *post_only && req.method == Method::Get {
        return Step::Reply(text(405, "Method Not Allowed"));
    }
    handler(req, view, sync).unwrap_or_else(|fail| Step::Reply(fail.response()))
}

/// The answer to a command's outcome.
pub fn render(kind: ReplyKind, outcome: Outcome) -> ApiResponse {
    match (kind, outcome) {
        (ReplyKind::Empty, Ok(_)) => text(200, ""),
        // qBittorrent 4.5.2 answers 200 either way and says which in the body.
        (ReplyKind::Add, Ok(CommandReply::Added(added))) if added.is_empty() => text(200, "Fails."),
        (ReplyKind::Add, Ok(_)) => text(200, "Ok."),
        (ReplyKind::Add, Err(CommandError::NotFound)) => text(200, "Fails."),
        // An invalid `.torrent`: qBittorrent's 415 "is not a valid torrent file".
        (ReplyKind::Add, Err(CommandError::BadRequest(m))) => text(415, &m),
        (ReplyKind::Empty, Err(CommandError::NotFound)) => Fail::not_found().response(),
        (ReplyKind::Empty, Err(CommandError::BadRequest(m))) => text(400, &m),
        (_, Err(CommandError::Forbidden(m))) => text(403, &m),
        (_, Err(CommandError::Failed(m))) => text(500, &m),
    }
}
