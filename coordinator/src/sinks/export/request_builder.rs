//! The HTTP request of one batch, built without I/O: where it goes, the
//! protocol's headers, credentials and the operator's headers. A target's
//! [`RequestTemplate`] is built once, when the exporter starts, so a bad
//! header or URL is found then, not per batch.

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT,
};
use http::{Method, Request, Uri};

use super::config::{InfluxApi, InfluxConfig, RemoteWriteConfig};

/// The `User-Agent` of export requests.
pub const EXPORT_USER_AGENT: &str = concat!("vantage-coordinator/", env!("CARGO_PKG_VERSION"));
/// The remote-write protocol version header's value (1.0).
pub const REMOTE_WRITE_VERSION: &str = "0.1.0";

/// Which body a target takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Prometheus remote-write 1.0.
    RemoteWrite,
    /// InfluxDB line protocol.
    Influx,
}

impl Protocol {
    /// `remote_write` or `influx`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::RemoteWrite => "remote_write",
            Protocol::Influx => "influx",
        }
    }
}

/// Why a target's requests cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The URL is not an HTTP URI.
    #[error("export URL {url:?} is not a valid HTTP URI: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A header name or value cannot be sent.
    #[error("header {name:?} cannot be sent: {reason}")]
    BadHeader {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Everything of a target's requests but the body.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// The body format.
    pub protocol: Protocol,
    uri: Uri,
    headers: HeaderMap,
}

impl RequestTemplate {
    /// The template of a remote-write target.
    pub fn remote_write(config: &RemoteWriteConfig) -> Result<RequestTemplate, RequestError> {
        let mut headers = custom_headers(&config.headers)?;
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
        headers.insert(
            HeaderName::from_static("x-prometheus-remote-write-version"),
            HeaderValue::from_static(REMOTE_WRITE_VERSION),
        );
        headers.insert(USER_AGENT, HeaderValue::from_static(EXPORT_USER_AGENT));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            headers.insert(AUTHORIZATION, basic(user, password)?);
        }
        if let Some(token) = &config.bearer_token {
            headers.insert(AUTHORIZATION, secret_header(&format!("Bearer {token}"))?);
        }
        Ok(RequestTemplate { protocol: Protocol::RemoteWrite, uri: uri(config.url.as_str())?, headers })
    }

    /// The template of an InfluxDB target (`api` from
    /// [`InfluxConfig::api`]).
    pub fn influx(config: &InfluxConfig, api: &InfluxApi) -> Result<RequestTemplate, RequestError> {
        let mut url = config.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        let mut headers = custom_headers(&config.headers)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(USER_AGENT, HeaderValue::from_static(EXPORT_USER_AGENT));
        match api {
            InfluxApi::V1 { db, retention_policy, credentials } => {
                url.set_path(&format!("{base}/write"));
                {
                    let mut query = url.query_pairs_mut();
                    query.clear().append_pair("db", db);
                    if let Some(rp) = retention_policy {
                        query.append_pair("rp", rp);
                    }
                    query.append_pair("precision", "ms");
                }
                if let Some((user, password)) = credentials {
                    headers.insert(AUTHORIZATION, basic(user, password)?);
                }
            }
            InfluxApi::V2 { org, bucket, token } => {
                url.set_path(&format!("{base}/api/v2/write"));
                url.query_pairs_mut()
                    .clear()
                    .append_pair("org", org)
                    .append_pair("bucket", bucket)
                    .append_pair("precision", "ms");
                if let Some(token) = token {
                    headers.insert(AUTHORIZATION, secret_header(&format!("Token {token}"))?);
                }
            }
        }
        Ok(RequestTemplate { protocol: Protocol::Influx, uri: uri(url.as_str())?, headers })
    }

    /// Where requests go.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The POST of one encoded batch.
    pub fn build(&self, body: Bytes) -> Request<Bytes> {
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

fn uri(url: &str) -> Result<Uri, RequestError> {
    url.parse()
        .map_err(|e: http::uri::InvalidUri| RequestError::BadUrl { url: url.into(), reason: e.to_string() })
}

fn custom_headers(headers: &std::collections::BTreeMap<String, String>) -> Result<HeaderMap, RequestError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |reason: String| RequestError::BadHeader { name: name.clone(), reason };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(e.to_string()))?;
        map.insert(header, HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?);
    }
    Ok(map)
}

fn basic(user: &str, password: &str) -> Result<HeaderValue, RequestError> {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    secret_header(&format!("Basic {encoded}"))
}

/// A credential header, marked sensitive so it is never logged by `http`'s
/// Debug.
fn secret_header(value: &str) -> Result<HeaderValue, RequestError> {
    let mut header = HeaderValue::from_str(value).map_err(|_| RequestError::BadHeader {
        name: "authorization".into(),
        reason: "the credential has characters a header cannot carry".into(),
    })?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::export::config::parse_http_url;

    #[test]
    fn remote_write_requests_carry_the_protocol_headers_and_credentials() {
        let mut config = RemoteWriteConfig::at(parse_http_url("http://127.0.0.1:9090/api/v1/write").unwrap());
        config.username = Some("user".into());
        config.password = Some("pass".into());
        config.headers.insert("X-Scope-OrgID".into(), "ops".into());
        let template = RequestTemplate::remote_write(&config).unwrap();
        let request = template.build(Bytes::from_static(b"x"));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "http://127.0.0.1:9090/api/v1/write");
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_string();
        assert_eq!(header("content-encoding"), "snappy");
        assert_eq!(header("content-type"), "application/x-protobuf");
        assert_eq!(header("x-prometheus-remote-write-version"), "0.1.0");
        assert_eq!(header("authorization"), "Basic dXNlcjpwYXNz");
        assert!(request.headers()["authorization"].is_sensitive());
        assert_eq!(header("x-scope-orgid"), "ops");
        config.username = None;
        config.password = None;
        config.bearer_token = Some("tok".into());
        let request = RequestTemplate::remote_write(&config).unwrap().build(Bytes::new());
        assert_eq!(request.headers()["authorization"], "Bearer tok");
    }

    #[test]
    fn influx_urls_for_both_versions() {
        let v1 = InfluxConfig::from_url(parse_http_url("http://127.0.0.1:8086/?db=my%20db&u=a&p=b").unwrap());
        let api = v1.api().unwrap();
        let request = RequestTemplate::influx(&v1, &api).unwrap().build(Bytes::new());
        assert_eq!(request.uri(), "http://127.0.0.1:8086/write?db=my+db&precision=ms");
        assert_eq!(request.headers()["authorization"], "Basic YTpi");
        assert_eq!(request.headers()["content-type"], "text/plain; charset=utf-8");
        let v2 = InfluxConfig::from_url(
            parse_http_url("https://influx.example.com/proxy/?org=ops&bucket=vantage&token=t0k").unwrap(),
        );
        let api = v2.api().unwrap();
        let request = RequestTemplate::influx(&v2, &api).unwrap().build(Bytes::new());
        assert_eq!(
            request.uri(),
            "https://influx.example.com/proxy/api/v2/write?org=ops&bucket=vantage&precision=ms"
        );
        assert_eq!(request.headers()["authorization"], "Token t0k");
        let default = InfluxConfig::from_url(parse_http_url("http://127.0.0.1:8086").unwrap());
        assert_eq!(
            default.api().unwrap(),
            InfluxApi::V1 { db: "vantage".into(), retention_policy: None, credentials: None }
        );
    }
}
