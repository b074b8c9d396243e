//! The few response shapes the HTTP side sends.

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

/// Every response has a complete body.
pub type Response = hyper::Response<Full<Bytes>>;

/// A JSON body, one line.
pub(super) fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// A plain-text body.
pub(super) fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
