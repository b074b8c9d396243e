//! The coordinator's HTTP side on `http_addr`: every node answers from its
//! own state (no forwarding), over HTTP/1.1, with TLS when configured.
//!
//! Routes: `/healthz` ([`health`]), `/api/endpoints` ([`api`]),
//! `/api/endpoints/NAME/history` ([`history`]), `/api/incidents`
//! ([`incidents`]; what it leaves out for the public port is in its doc)
//! and `/metrics` ([`metrics`], the Prometheus text format); the status
//! page, badges and feeds come here next, each in a module of its own, so
//! a change to a page touches neither the mesh nor the Raft code.
//!
//! Modules: [`health`], [`api`], [`history`], [`incidents`], [`metrics`],
//! `response` (the few response builders).

pub mod api;
pub mod health;
pub mod history;
pub mod incidents;
pub mod metrics;
mod response;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::listener::{self, Acceptance};
use crate::node::ClusterNode;
use crate::results::MemorySink;

pub use self::response::Response;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an open connection may finish its request after shutdown.
const CONNECTION_GRACE: Duration = Duration::from_secs(1);

/// What the HTTP handlers read: the node (its applied state, Raft metrics)
/// and the latest results this node received.
#[derive(Clone)]
pub struct HttpState {
    /// This node.
    pub node: ClusterNode,
    /// The recent results per endpoint (only the leader receives any).
    pub latest: Arc<MemorySink>,
}

/// Serves HTTP/1.1 on `listener` until `shutdown`, then lets open
/// connections finish within a second.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: HttpState,
    shutdown: CancellationToken,
) {
    let acceptance = Acceptance { port: "http", tls, require_client_cert: false };
    let (mut incoming, _accepting) = listener::incoming(listener, acceptance, shutdown.clone()).into_parts();
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            next = tokio_stream::StreamExt::next(&mut incoming) => match next {
                Some(Ok(stream)) => stream,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CONNECTION_GRACE, connection).await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// Picks the handler for a request's path.
fn route<B>(state: &HttpState, request: &Request<B>) -> Response {
    match request.uri().path() {
        "/healthz" => health::healthz(&state.node),
        "/api/endpoints" => {
            let body = state.node.read_local(|applied| api::endpoints_json(&applied.mesh, &state.latest));
            response::json(StatusCode::OK, &body)
        }
        "/api/incidents" => {
            state.node.read_local(|applied| incidents::respond(&applied.mesh, request.uri().query()))
        }
        "/metrics" => metrics::respond(),
        path if history::is_history_path(path) => {
            history::respond(path, request.uri().query(), |name, window| {
                state.node.endpoint_history(name, window, history::now())
            })
        }
        _ => response::text(
            StatusCode::NOT_FOUND,
            "not found; try /healthz, /api/endpoints, /api/endpoints/NAME/history, /api/incidents or /metrics\n",
        ),
    }
}
