//! `/api/endpoints/NAME/history`: one endpoint's history as JSON, read
//! from this node's own state machine (every node answers, leader or not).
//!
//! The body is `vantage-core`'s [`EndpointHistory`] as serde writes it,
//! the same document `vantagectl endpoint history --json` prints. It keeps
//! the HTTP port's rule (see [`super::incidents`]): it shows what a status
//! page could show. In: the endpoint's name, uptime figures, per-day bars
//! with the ids of the incidents that overlap them, and per region check
//! counts and latency quantiles. Out: probes (ids, names, addresses), URLs
//! and failure messages, which the view does not carry at all.
//!
//! ```text
//! GET /api/endpoints/NAME/history[?window=24h|7d|30d|90d]     (default 24h)
//! 200 {"endpoint":"api","window":"7d","resolution":"hour",
//!      "from_unix_ms":…,"to_unix_ms":…,
//!      "uptime":{"ratio":0.9995,"counted_ms":…,"downtime_ms":…,"maintenance_ms":…,"flapping_ms":…},
//!      "uptime_windows":[{"window":"24h","ratio":…,…},…],
//!      "days":[{"start_unix_ms":…,"uptime":1.0,"downtime_ms":0,"maintenance_ms":0,"incidents":[]},…],
//!      "regions":[{"region":"eu","summary":{…},"points":[{"start_unix_ms":…,"checks":60,
//!        "failures":0,"total_ms":{"p50":…,"p95":…,"p99":…},"ttfb_ms":{…},
//!        "phases_mean_ms":{"dns":…}}]}]}
//! 400 {"error":"…"} for a bad or unknown parameter (naming the windows) or an empty name
//! 404 {"error":"…"} for an unknown endpoint
//! 500 {"error":"…"} when this node cannot read its history (the cause is logged, not sent)
//! ```
//!
//! NAME is percent-decoded (`web%20shop`); `+` is a plus sign in a path.
//! A 200 may be cached for [`MAX_AGE_SECONDS`]: rollups are committed about
//! once a minute. Errors are not cached.

use std::borrow::Cow;

use hyper::StatusCode;
use serde_json::json;
use vantage_core::history::{EndpointHistory, Window};
use vantage_core::validate::MAX_NAME_LEN;

use super::response::{self, Response};
use crate::node::HistoryError;
use crate::state::UnixMillis;

/// How long a client may keep a 200.
pub const MAX_AGE_SECONDS: u32 = 30;

const PREFIX: &str = "/api/endpoints/";
const SUFFIX: &str = "/history";

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The endpoint's name, percent-decoded.
    pub endpoint: String,
    /// `window=`: 24h when not given.
    pub window: Window,
}

/// Why a request cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter is unknown or its value malformed, or the name is not
    /// text.
    #[error("{0}")]
    BadParameter(String),
    /// No endpoint has the name.
    #[error("no endpoint is named {0:?}")]
    UnknownEndpoint(String),
}

/// Whether `path` is a history route (`/api/endpoints/…/history`).
pub fn is_history_path(path: &str) -> bool {
    path.len() >= PREFIX.len() + SUFFIX.len() && path.starts_with(PREFIX) && path.ends_with(SUFFIX)
}

/// Answers `GET /api/endpoints/NAME/history?…` (`path` is one, see
/// [`is_history_path`]) with `read`: the node's
/// [`endpoint_history`](crate::node::ClusterNode::endpoint_history) at the
/// time of the request.
pub fn respond(
    path: &str,
    query: Option<&str>,
    read: impl FnOnce(&str, Window) -> Result<EndpointHistory, HistoryError>,
) -> Response {
    let answer =
        HistoryQuery::parse(path, query.unwrap_or_default()).map_err(Answer::Refused).and_then(|q| {
            read(&q.endpoint, q.window).map_err(|error| match error {
                HistoryError::UnknownEndpoint(name) => Answer::Refused(QueryError::UnknownEndpoint(name)),
                HistoryError::Storage(reason) => Answer::Failed(reason),
            })
        });
    match answer {
        Ok(history) => {
            let body = serde_json::to_value(&history).unwrap_or_else(|e| json!({ "error": e.to_string() }));
            let mut response = response::json(StatusCode::OK, &body);
            cache_control(&mut response, &format!("max-age={MAX_AGE_SECONDS}"));
            response
        }
        Err(Answer::Refused(error)) => {
            let status = match error {
                QueryError::BadParameter(_) => StatusCode::BAD_REQUEST,
                QueryError::UnknownEndpoint(_) => StatusCode::NOT_FOUND,
            };
            let mut response = response::json(status, &json!({ "error": error.to_string() }));
            cache_control(&mut response, "no-cache");
            response
        }
        Err(Answer::Failed(reason)) => {
            tracing::error!(path, error = %reason, "cannot read an endpoint's history");
            let body = json!({ "error": "this node cannot read its history now; ask another node" });
            let mut response = response::json(StatusCode::INTERNAL_SERVER_ERROR, &body);
            cache_control(&mut response, "no-cache");
            response
        }
    }
}

/// A request that is not answered with a history.
enum Answer {
    /// The request's fault (400, 404).
    Refused(QueryError),
    /// This node's: its history could not be read (500; the reason is
    /// logged, not sent: it can name files).
    Failed(String),
}

impl HistoryQuery {
    /// The endpoint named in `path` (percent-decoded) and the parameters
    /// of `query` (percent-decoded, `+` as space). Unknown parameters are
    /// refused, so a misspelt one is not silently ignored.
    pub fn parse(path: &str, query: &str) -> Result<HistoryQuery, QueryError> {
        let segment = path.strip_prefix(PREFIX).and_then(|p| p.strip_suffix(SUFFIX)).unwrap_or_default();
        let endpoint = match percent_encoding::percent_decode_str(segment).decode_utf8() {
            Ok(Cow::Borrowed("")) => {
                return Err(QueryError::BadParameter(
                    "no endpoint named in the path; use /api/endpoints/NAME/history".into(),
                ))
            }
            Ok(name) => name.into_owned(),
            Err(_) => {
                return Err(QueryError::BadParameter("the endpoint's name is not UTF-8".into()));
            }
        };
        if endpoint.len() > MAX_NAME_LEN {
            // No name is that long: not found, and not echoed back whole.
            let shown: String = endpoint.chars().take(MAX_NAME_LEN).collect();
            return Err(QueryError::UnknownEndpoint(format!("{shown}…")));
        }
        let mut window = Window::Day;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "window" => {
                    window = value
                        .parse()
                        .map_err(|e| QueryError::BadParameter(format!("window={value}: {e}")))?;
                }
                other => {
                    return Err(QueryError::BadParameter(format!(
                        "unknown parameter {other:?}; use window=24h, 7d, 30d or 90d"
                    )))
                }
            }
        }
        Ok(HistoryQuery { endpoint, window })
    }
}

/// "now" for a request: the wall clock, through the one clock abstraction.
pub fn now() -> UnixMillis {
    use vantage_core::clock::WallClock;
    UnixMillis::from(vantage_core::clock::SystemWallClock.now())
}

fn cache_control(response: &mut Response, value: &str) {
    if let Ok(value) = http::HeaderValue::from_str(value) {
        response.headers_mut().insert(http::header::CACHE_CONTROL, value);
    }
}

#[cfg(test)]
mod tests;
