//! HTTP/2 (after ALPN `h2`) through hyper's server, honouring the query
//! knobs that make sense on a multiplexed connection. Framing faults
//! (`chunked`, `close_early`, `malformed`) are HTTP/1.1 matters and are
//! ignored here.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::behaviour::{Behaviour, HUGE_BODY_BYTES};
use super::Counters;
use crate::tasks::{TaskSet, TaskSetExecutor};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Serves one HTTP/2 connection until it closes.
pub(super) async fn serve(tls: TlsStream<TcpStream>, counters: Arc<Counters>, tasks: TaskSet) {
    let stream_tasks = tasks.clone();
    let service = service_fn(move |request| respond(request, counters.clone(), tasks.clone()));
    // Stream tasks go into the target's task set, so dropping the target
    // stops them too.
    let _ = hyper::server::conn::http2::Builder::new(TaskSetExecutor(stream_tasks))
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// Returned by the service for `reset=1`; hyper answers it with
/// `RST_STREAM(INTERNAL_ERROR)`.
#[derive(Debug)]
struct ResetStream;

impl std::fmt::Display for ResetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset requested by the test (reset=1)")
    }
}

impl std::error::Error for ResetStream {}

async fn respond(
    request: Request<Incoming>,
    counters: Arc<Counters>,
    tasks: TaskSet,
) -> Result<Response<Body>, ResetStream> {
    counters.count_request();
    let agent = request.headers().get(hyper::header::USER_AGENT).and_then(|v| v.to_str().ok());
    let failing = counters.fails_for(agent);
    let behaviour = match Behaviour::from_query(request.uri().query()).map(|b| b.failing_if(failing)) {
        Ok(behaviour) => behaviour,
        Err(message) => return Ok(plain(400, format!("vantage-tests: {message}\n"))),
    };
    if behaviour.hang {
        std::future::pending::<()>().await;
    }
    if !behaviour.headers_delay.is_zero() {
        tokio::time::sleep(behaviour.headers_delay).await;
    }
    if behaviour.reset {
        return Err(ResetStream);
    }

    let mut builder = Response::builder();
    for (name, value) in &behaviour.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = if let Some(location) = &behaviour.redirect {
        builder
            .status(behaviour.redirect_status)
            .header(LOCATION, location.as_str())
            .body(Empty::new().boxed_unsync())
    } else if Behaviour::status_has_no_body(behaviour.status) {
        builder.status(behaviour.status).body(Empty::new().boxed_unsync())
    } else {
        let builder = builder.status(behaviour.status).header(CONTENT_TYPE, behaviour.content_type.as_str());
        if behaviour.huge {
            builder.header(CONTENT_LENGTH, HUGE_BODY_BYTES).body(huge_body(&tasks))
        } else if let Some(drip) = behaviour.drip {
            let (mut sender, body) = Channel::<Bytes, Infallible>::new(1);
            let pieces = drip.split(&behaviour.body);
            tasks.spawn(async move {
                for piece in pieces {
                    tokio::time::sleep(drip.pause()).await;
                    if sender.send_data(piece).await.is_err() {
                        return;
                    }
                }
            });
            builder.header(CONTENT_LENGTH, behaviour.body.len()).body(body.boxed_unsync())
        } else {
            builder.body(Full::new(behaviour.body.clone()).boxed_unsync())
        }
    };
    Ok(response.unwrap_or_else(|error| plain(400, format!("vantage-tests: {error}\n"))))
}

/// A 64 MiB body fed piece by piece until the client stops reading.
fn huge_body(tasks: &TaskSet) -> Body {
    let (mut sender, body) = Channel::<Bytes, Infallible>::new(1);
    tasks.spawn(async move {
        let piece = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut sent = 0;
        while sent < HUGE_BODY_BYTES {
            if sender.send_data(piece.clone()).await.is_err() {
                return;
            }
            sent += piece.len() as u64;
        }
    });
    body.boxed_unsync()
}

fn plain(status: u16, text: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
