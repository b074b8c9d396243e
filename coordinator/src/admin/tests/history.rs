//! EndpointHistory over the in-memory cluster: the endpoint resolved by id
//! or name and passed by name, the window by name, "now" from the API's
//! clock, and every refusal with its gRPC code.

use vantage_core::agreement::State;
use vantage_core::clock::FixedWallClock;

use super::*;
use crate::state::{EndpointId, TransitionRecord};

const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

fn history(endpoint: &str, window: &str) -> GrpcRequest<pb::EndpointHistoryRequest> {
    req(pb::EndpointHistoryRequest { endpoint: endpoint.into(), window: window.into(), consistent: false })
}

async fn transition(cluster: &MemoryCluster, key: &str, from: State, to: State, at: u64) {
    let command = Command::RecordTransition(TransitionRecord {
        endpoint: EndpointId(1),
        from,
        to,
        at: UnixMillis(at),
        alert: true,
        evidence: vec![],
    });
    let request = Request { idempotency_key: IdempotencyKey(key.into()), issued_at: UnixMillis(T0), command };
    cluster.write(request).await.unwrap().into_result().unwrap();
}

/// Api added at T0 with a 10-minute outage an hour later, read a day
/// after it was added.
async fn fixture() -> (AdminApi<MemoryCluster>, Arc<MemoryCluster>) {
    let (api, cluster) = api();
    api.add_endpoint(req(add("api", "e1"))).await.unwrap();
    transition(&cluster, "t1", State::Unknown, State::Down, T0 + HOUR).await;
    transition(&cluster, "t2", State::Down, State::Up, T0 + HOUR + 600_000).await;
    let later = FixedWallClock(SystemTime::UNIX_EPOCH + Duration::from_millis(T0 + 24 * HOUR));
    let auth = crate::auth::AdminAuth::new(crate::auth::token_hash("secret"));
    (AdminApi::new(cluster.clone(), Arc::new(auth), Arc::new(later)), cluster)
}

#[tokio::test]
async fn the_history_is_read_by_name_over_the_window_at_the_clocks_now() {
    let (api, cluster) = fixture().await;
    let reply = api.endpoint_history(history("1", "7d")).await.unwrap().into_inner();
    let now = UnixMillis(T0 + 24 * HOUR);
    assert_eq!(*cluster.history_calls.lock().unwrap(), [("api".to_string(), Window::Week, now)]);
    assert_eq!(
        (reply.endpoint.as_str(), reply.window.as_str(), reply.resolution.as_str()),
        ("api", "7d", "hour")
    );
    assert_eq!(reply.to_unix_ms, (T0 + 24 * HOUR) as i64);
    let uptime = reply.uptime.unwrap();
    assert_eq!((uptime.counted_ms, uptime.downtime_ms), (24 * HOUR, 600_000), "monitored since it was added");
    assert_eq!(reply.days.len(), 7);
    // What the wire carries is the node's view, unchanged.
    let view = cluster.endpoint_history("api", Window::Week, now).unwrap();
    assert_eq!(EndpointHistory::try_from(&reply).unwrap(), view);

    let reply = api.endpoint_history(history("api", "")).await.unwrap().into_inner();
    assert_eq!(reply.window, "24h", "no window is 24h");
}

#[tokio::test]
async fn bad_windows_and_unknown_endpoints_are_refused_before_reading() {
    let (api, cluster) = fixture().await;
    let status = api.endpoint_history(history("api", "1y")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "window: unknown window \"1y\": expected one of 24h, 7d, 30d, 90d");
    let status = api.endpoint_history(history("nope", "24h")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no endpoint named \"nope\" (list them with: vantagectl endpoint list)");
    let status = api.endpoint_history(history(" ", "24h")).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "endpoint: missing; name an endpoint by id or name")
    );
    assert!(cluster.history_calls.lock().unwrap().is_empty(), "nothing was read");
    let status =
        api.endpoint_history(GrpcRequest::new(pb::EndpointHistoryRequest::default())).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn the_nodes_history_errors_keep_their_message_and_get_their_code() {
    let (api, cluster) = fixture().await;
    *cluster.fail_history.lock().unwrap() =
        Some(HistoryError::Storage("history.redb: checksum mismatch".into()));
    let status = api.endpoint_history(history("api", "90d")).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "cannot read history: history.redb: checksum mismatch");
    // Removed between the name's resolution and the read.
    *cluster.fail_history.lock().unwrap() = Some(HistoryError::UnknownEndpoint("api".into()));
    let status = api.endpoint_history(history("api", "90d")).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::NotFound, "no endpoint is named \"api\""));
}
