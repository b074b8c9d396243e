//! The API listener's limits, seen by a raw gRPC client (vantagectl
//! validates before sending, so it never gets this far).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vantage_coordinator::auth::AdminAuth;
use vantage_coordinator::config::Config;
use vantage_proto::pb;
use vantage_proto::pb::admin_service_client::AdminServiceClient;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_gets_a_clear_status_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (api, raft, http) = (free_port(), free_port(), free_port());
    let loopback = |port| ([127, 0, 0, 1], port).into();
    let config = Config::single_node(dir.path().join("data"), loopback(api), loopback(raft), loopback(http));
    config.validate().unwrap();
    let token = "test-admin-token-0123456789";
    let auth = AdminAuth::new(vantage_coordinator::auth::token_hash(token));
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(vantage_coordinator::app::run(config, None, auth, shutdown.clone()));

    let url = format!("http://127.0.0.1:{api}");
    let mut client = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await {
            break AdminServiceClient::new(channel).max_encoding_message_size(8 << 20);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let spec = pb::EndpointSpec {
        name: "x".repeat(2 << 20),
        url: "https://example.com/".into(),
        interval_ms: 60_000,
        timeout_ms: 10_000,
        ..Default::default()
    };
    let request = pb::AddEndpointRequest {
        mutation: Some(pb::Mutation { idempotency_key: "big-1".into() }),
        spec: Some(spec),
    };
    let status = client.add_endpoint(authorized(request, token)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{}", status.message());

    // Nothing changed, and the server still answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        match client.list_endpoints(authorized(pb::ListRequest { consistent: true }, token)).await {
            Ok(list) => break list.into_inner(),
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("list failed: {e:?}"),
        }
    };
    assert!(list.endpoints.is_empty());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), node).await.unwrap().unwrap().unwrap();
}

fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
