//! The read side of endpoint history on a real coordinator
//! (`app::run`, loopback sockets): AdminService.EndpointHistory and
//! `GET /api/endpoints/NAME/history` answer the same view from the node's
//! own state machine, and refuse unknown endpoints and windows alike.
//! Rollups themselves are the storage's suite's; here an endpoint without
//! checks yet still has its uptime and day bars.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vantage_coordinator::auth::AdminAuth;
use vantage_coordinator::config::Config;
use vantage_core::history::{EndpointHistory, Window};
use vantage_proto::pb;
use vantage_proto::pb::admin_service_client::AdminServiceClient;

const TOKEN: &str = "test-admin-token-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

/// `GET path` over plain HTTP/1.1: status, headers (lowercase names) and
/// the body parsed as JSON.
fn get(port: u16, path: &str) -> (u16, String, Value) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), serde_json::from_str(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpc_and_the_http_route_serve_one_view_and_refuse_alike() {
    let dir = tempfile::tempdir().unwrap();
    let (api, raft, http) = (free_port(), free_port(), free_port());
    let loopback = |port| ([127, 0, 0, 1], port).into();
    let config = Config::single_node(dir.path().join("data"), loopback(api), loopback(raft), loopback(http));
    config.validate().unwrap();
    let auth = AdminAuth::new(vantage_coordinator::auth::token_hash(TOKEN));
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(vantage_coordinator::app::run(config, None, auth, shutdown.clone()));

    let url = format!("http://127.0.0.1:{api}");
    let mut client = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await {
            break AdminServiceClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let spec = pb::EndpointSpec {
        name: "web shop".into(),
        url: "https://shop.example.com/".into(),
        interval_ms: 60_000,
        timeout_ms: 10_000,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let added = loop {
        let request = pb::AddEndpointRequest {
            mutation: Some(pb::Mutation { idempotency_key: "add-1".into() }),
            spec: Some(spec.clone()),
        };
        match client.add_endpoint(authorized(request)).await {
            Ok(reply) => break reply.into_inner().endpoint.unwrap(),
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e; // no leader yet
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("add failed: {e:?}"),
        }
    };

    // The rpc, by id, over 7 days.
    let request =
        pb::EndpointHistoryRequest { endpoint: added.id.to_string(), window: "7d".into(), consistent: true };
    let reply = client.endpoint_history(authorized(request)).await.unwrap().into_inner();
    let view = EndpointHistory::try_from(&reply).unwrap();
    assert_eq!((view.endpoint.as_str(), view.window), ("web shop", Window::Week));
    assert_eq!(view.days.len(), 7);
    assert!(view.regions.is_empty(), "no checks yet");
    assert_eq!(view.uptime.downtime_ms, 0);
    assert!(view.uptime.counted_ms < 60_000, "monitored only since it was added: {:?}", view.uptime);
    assert_eq!(view.uptime_windows.iter().map(|w| w.window).collect::<Vec<_>>(), Window::ALL);

    // The HTTP port, by name, percent-encoded: the same view, read a moment later.
    let (status, head, body) = get(http, "/api/endpoints/web%20shop/history?window=7d");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: max-age=30"), "{head}");
    let served: EndpointHistory = serde_json::from_value(body).unwrap();
    assert!(served.to_unix_ms >= view.to_unix_ms);
    let same_moment = EndpointHistory {
        from_unix_ms: view.from_unix_ms,
        to_unix_ms: view.to_unix_ms,
        uptime: view.uptime.clone(),
        uptime_windows: view.uptime_windows.clone(),
        days: view.days.clone(),
        ..served.clone()
    };
    assert_eq!(same_moment, view, "only the reading time (and what it counts) differs");
    assert_eq!(served.days.last().unwrap().uptime, Some(1.0), "today, without downtime");

    // Refusals: the same causes, in each one's terms.
    let unknown =
        pb::EndpointHistoryRequest { endpoint: "nope".into(), window: "24h".into(), consistent: false };
    let status = client.endpoint_history(authorized(unknown)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("\"nope\""), "{}", status.message());
    let (status, _, body) = get(http, "/api/endpoints/nope/history");
    assert_eq!((status, body["error"].as_str()), (404, Some("no endpoint is named \"nope\"")));

    let bad =
        pb::EndpointHistoryRequest { endpoint: "web shop".into(), window: "1y".into(), consistent: false };
    let status = client.endpoint_history(authorized(bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "window: unknown window \"1y\": expected one of 24h, 7d, 30d, 90d");
    let (status, _, body) = get(http, "/api/endpoints/web%20shop/history?window=1y");
    assert_eq!(status, 400);
    assert_eq!(body["error"], "window=1y: unknown window \"1y\": expected one of 24h, 7d, 30d, 90d");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), node).await.unwrap().unwrap().unwrap();
}
