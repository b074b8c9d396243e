//! `/metrics`: this process's metrics in the Prometheus text exposition
//! format (version 0.0.4), rendered from the recorder the binary installed
//! ([`crate::telemetry`]). What they are is listed, with units, in
//! [`crate::telemetry::describe`]; none carries an endpoint name, URL or
//! probe address, so the public HTTP port may serve it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

use super::response::{text, Response};

/// `200` with the exposition text; `503` in a process that installed no
/// recorder (a library embedding such as the in-process test clusters).
pub fn respond() -> Response {
    let Some(body) = crate::telemetry::render() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not collected in this process (no recorder installed)\n",
        );
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(crate::telemetry::CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_recorder_it_says_so_with_503() {
        // The library's test binary installs no recorder.
        let response = super::respond();
        assert_eq!(response.status(), hyper::StatusCode::SERVICE_UNAVAILABLE);
    }
}
