//! Webhook bodies and their signatures, pure functions of an [`Alert`].
//!
//! # Signatures
//!
//! Standard Webhooks (<https://www.standardwebhooks.com/>):
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! so receivers verify deliveries with any Standard Webhooks library. Every
//! format is signed, Slack's and Alertmanager's included (they ignore it).
//!
//! # `standard`: the JSON schema
//!
//! One object; times are RFC 3339 UTC with milliseconds; fields are always
//! present unless marked optional.
//!
//! ```json
//! {
//!   "type": "outage_opened",
//!   "timestamp": "2026-12-06T21:34:50.000Z",
//!   "summary": "api is down in 2 of 3 regions (eu, us)",
//!   "incident": {
//!     "id": 12, "kind": "outage",
//!     "opened_at": "2026-12-06T21:34:50.000Z", "resolved_at": null
//!   },
//!   "endpoint": {
//!     "id": 3, "name": "api", "url": "https://api.example.com/health",
//!     "labels": {"team": "core"}
//!   },
//!   "state": "down",
//!   "evidence": [
//!     {"region": "eu", "verdict": "down", "reason": "timeout", "probes": [
//!       {"probe_id": 4, "verdict": "down", "reason": "timeout",
//!        "message": "no response within 10s", "status_code": null,
//!        "total_ms": 10000.0, "ttfb_ms": 0.0,
//!        "started_at": "2026-12-06T21:34:40.002Z"}]},
//!     {"region": "ap", "verdict": "up", "reason": null, "probes": [...]}
//!   ],
//!   "links": {"coordinator": "https://vantage.example.com",
//!             "incidents": "https://vantage.example.com/api/incidents"}
//! }
//! ```
//!
//! - `type`: `outage_opened`, `outage_resolved`, `degraded`, `flapping`, or
//!   `test` (sent by `vantagectl webhook test`; `incident`, `endpoint` and
//!   `state` are then `null` and `evidence` is empty).
//! - `timestamp`: when the event happened (the agreement round that decided
//!   it), the same in every attempt. `webhook-timestamp` is the attempt's.
//! - `summary`: one sentence for people.
//! - `incident.kind`: `outage`, `degraded` or `flapping`; `resolved_at` is
//!   set in `outage_resolved`.
//! - `state`: the endpoint's state after the transition (`up`, `degraded`,
//!   `down`, `unknown`, `flapping`, `maintenance`, `paused`); `null` when
//!   not known.
//! - `evidence`: per region, its verdict (`up`, `down`, `unknown`), the
//!   reason (the error kind when down, why for unknown, `null` when up) and
//!   each probe's view: status code (`null` without an HTTP answer), error
//!   message (`null` when up), total and time to first byte in
//!   milliseconds, and when the check started (`null` without a result).
//!   For `outage_resolved` it is the evidence that resolved the outage,
//!   otherwise the evidence that opened the incident.
//! - `links` (optional): present when the coordinator's public URL is
//!   configured.
//!
//! Receivers de-duplicate by the `webhook-id` header: every attempt for one
//! transition and webhook carries the same one.
//!
//! # `slack`
//!
//! An incoming-webhook message: `text` (the notification line) and Block
//! Kit `blocks`: a header, the summary with the endpoint and incident, one
//! field per region (at most 10), and a context line with the
//! `webhook-id`.
//!
//! # `alertmanager`
//!
//! The body of Alertmanager's `POST /api/v2/alerts`: an array of alerts,
//! each with `labels` (`alertname` = `VantageOutage`, `VantageDegraded`,
//! `VantageFlapping` or `VantageTest`; `endpoint`, `kind`, `severity`
//! (`critical` for outages, `warning` otherwise), `incident`, then the
//! endpoint's labels with characters Alertmanager refuses turned into
//! `_`), `annotations` (`summary`, `description` with one line per region,
//! `endpoint_url`), `startsAt` (the incident's opening), `endsAt` (its
//! resolution; a test ends 5 minutes after it starts) and `generatorURL`
//! (when the coordinator's public URL is configured).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use vantage_core::agreement::{ProbeEvidence, RegionEvidence, UnknownReason, Verdict};
use vantage_core::time::from_unix_micros;
use vantage_core::webhook::{AlertEvent, WebhookFormat};

pub use super::alert::{Alert, EndpointInfo, EventType, IncidentInfo};
use crate::state::IncidentKind;

/// The prefix of a Standard Webhooks secret whose key is base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningKeyError {
    /// `whsec_…` with a part that is not base64.
    #[error("webhook secret starts with whsec_ but the rest is not base64: {reason} (use whsec_ followed by base64, or a secret without the prefix)")]
    NotBase64 {
        /// What the decoder said.
        reason: String,
    },
}

/// Random bytes in a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// A new secret in the Standard Webhooks form: `whsec_` and the base64 of
/// 32 random bytes (the form the reference libraries generate, so their
/// verifiers take it as it is).
pub fn generate_secret() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The HMAC key of a webhook secret: the base64-decoded part after
/// `whsec_` (the form Standard Webhooks libraries generate and expect), or
/// the secret's own bytes when it has no prefix.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, SigningKeyError> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => {
            STANDARD.decode(encoded).map_err(|e| SigningKeyError::NotBase64 { reason: e.to_string() })
        }
        None => Ok(secret.as_bytes().to_vec()),
    }
}

/// The `webhook-signature` value of one delivery: `v1,` and the base64
/// HMAC-SHA256 of `{msg_id}.{timestamp}.{body}` under `key`.
pub fn signature(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(msg_id.as_bytes());
    context.update(b".");
    context.update(timestamp_secs.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// The body of `alert` in `format`.
pub fn encode(format: WebhookFormat, alert: &Alert) -> Vec<u8> {
    let value = match format {
        WebhookFormat::Standard => standard(alert),
        WebhookFormat::Slack => slack(alert),
        WebhookFormat::Alertmanager => Value::Array(vec![alertmanager_alert(alert)]),
    };
    // Plain JSON values always serialize.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The `standard` body (schema in the module docs).
pub fn standard(alert: &Alert) -> Value {
    let mut body = Map::new();
    body.insert("type".into(), json!(alert.event.as_str()));
    body.insert("timestamp".into(), json!(rfc3339(alert.timestamp)));
    body.insert("summary".into(), json!(summary(alert)));
    body.insert(
        "incident".into(),
        alert.incident.as_ref().map_or(Value::Null, |i| {
            json!({
                "id": i.id,
                "kind": i.kind.as_str(),
                "opened_at": rfc3339(i.opened_at),
                "resolved_at": i.resolved_at.map(rfc3339),
            })
        }),
    );
    body.insert(
        "endpoint".into(),
        alert
            .endpoint
            .as_ref()
            .map_or(Value::Null, |e| json!({"id": e.id, "name": e.name, "url": e.url, "labels": e.labels})),
    );
    body.insert("state".into(), alert.state.map_or(Value::Null, |s| json!(s.as_str())));
    body.insert("evidence".into(), Value::Array(alert.evidence.iter().map(region_json).collect()));
    if let Some(base) = &alert.base_url {
        let base = base.trim_end_matches('/');
        body.insert(
            "links".into(),
            json!({"coordinator": base, "incidents": format!("{base}/api/incidents")}),
        );
    }
    Value::Object(body)
}

/// The `slack` body: an incoming-webhook message.
pub fn slack(alert: &Alert) -> Value {
    let (emoji, title) = match alert.event {
        EventType::Alert(AlertEvent::OutageOpened) => (":red_circle:", "Outage"),
        EventType::Alert(AlertEvent::OutageResolved) => (":large_green_circle:", "Resolved"),
        EventType::Alert(AlertEvent::Degraded) => (":large_yellow_circle:", "Degraded"),
        EventType::Alert(AlertEvent::Flapping) => (":large_orange_circle:", "Flapping"),
        EventType::Test => (":white_check_mark:", "Test"),
    };
    let summary = summary(alert);
    let header = clip(&format!("{emoji} {title}: {}", alert.endpoint_name()), 150);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": header, "emoji": true},
    })];
    let mut text = slack_escape(&summary);
    if let Some(endpoint) = alert.endpoint.as_ref().filter(|e| !e.url.is_empty()) {
        let _ = write!(
            text,
            "\nEndpoint *{}*: {}",
            slack_escape(&endpoint.name),
            slack_link(&endpoint.url, &endpoint.url)
        );
    }
    if let Some(incident) = &alert.incident {
        let _ = write!(
            text,
            "\nIncident {} ({}) opened {}",
            incident.id,
            incident.kind.as_str(),
            rfc3339(incident.opened_at)
        );
        if let Some(resolved) = incident.resolved_at {
            let _ = write!(
                text,
                ", resolved {} after {}",
                rfc3339(resolved),
                lasted(incident.opened_at, resolved)
            );
        }
    }
    if let Some(base) = &alert.base_url {
        let _ = write!(text, "\n{}", slack_link(base, "Open Vantage"));
    }
    blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&text, 3000)}}));
    if !alert.evidence.is_empty() {
        const MAX_FIELDS: usize = 10;
        let mut fields: Vec<Value> = alert
            .evidence
            .iter()
            .take(if alert.evidence.len() > MAX_FIELDS { MAX_FIELDS - 1 } else { MAX_FIELDS })
            .map(|r| {
                let line = format!("*{}*\n{}", slack_escape(&r.region), slack_escape(&region_detail(r)));
                json!({"type": "mrkdwn", "text": clip(&line, 2000)})
            })
            .collect();
        if alert.evidence.len() > MAX_FIELDS {
            let more = alert.evidence.len() - (MAX_FIELDS - 1);
            fields.push(json!({"type": "mrkdwn", "text": format!("and {more} more regions")}));
        }
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let context = format!("Vantage · {} · webhook-id {}", rfc3339(alert.timestamp), alert.message_id);
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    json!({"text": format!("{emoji} {}", slack_escape(&summary)), "blocks": blocks})
}

/// How long an Alertmanager test alert stays active.
pub const TEST_ALERT_DURATION: Duration = Duration::from_secs(300);

/// One alert of an Alertmanager `POST /api/v2/alerts` body. The labels
/// of an incident's alert are the same in every post, so its re-posts and
/// its resolution update the one alert.
pub fn alertmanager_alert(alert: &Alert) -> Value {
    let mut labels = Map::new();
    if let Some(endpoint) = &alert.endpoint {
        for (key, value) in &endpoint.labels {
            if !value.is_empty() {
                labels.insert(alertmanager_label_name(key), json!(value));
            }
        }
    }
    let (alertname, severity) = match (alert.event, alert.incident.as_ref().map(|i| i.kind)) {
        (EventType::Test, _) => ("VantageTest", "none"),
        (_, Some(IncidentKind::Outage)) => ("VantageOutage", "critical"),
        (_, Some(IncidentKind::Degraded)) => ("VantageDegraded", "warning"),
        (_, Some(IncidentKind::Flapping)) => ("VantageFlapping", "warning"),
        (EventType::Alert(event), None) => match super::alert::kind_of(event) {
            IncidentKind::Outage => ("VantageOutage", "critical"),
            IncidentKind::Degraded => ("VantageDegraded", "warning"),
            IncidentKind::Flapping => ("VantageFlapping", "warning"),
        },
    };
    labels.insert("alertname".into(), json!(alertname));
    labels.insert("severity".into(), json!(severity));
    if let Some(endpoint) = &alert.endpoint {
        labels.insert("endpoint".into(), json!(endpoint.name));
    }
    if let Some(incident) = &alert.incident {
        labels.insert("kind".into(), json!(incident.kind.as_str()));
        labels.insert("incident".into(), json!(incident.id.to_string()));
    }
    let mut annotations = Map::new();
    annotations.insert("summary".into(), json!(summary(alert)));
    let description: Vec<String> =
        alert.evidence.iter().map(|r| format!("{}: {}", r.region, region_detail(r))).collect();
    annotations.insert(
        "description".into(),
        json!(if description.is_empty() { summary(alert) } else { description.join("\n") }),
    );
    if let Some(endpoint) = alert.endpoint.as_ref().filter(|e| !e.url.is_empty()) {
        annotations.insert("endpoint_url".into(), json!(endpoint.url));
    }
    let starts_at = alert.incident.as_ref().map_or(alert.timestamp, |i| i.opened_at);
    let ends_at = match (alert.event, &alert.incident) {
        (EventType::Test, _) => Some(alert.timestamp + TEST_ALERT_DURATION),
        (_, Some(incident)) => incident.resolved_at,
        (_, None) => None,
    };
    let mut body = Map::new();
    body.insert("labels".into(), Value::Object(labels));
    body.insert("annotations".into(), Value::Object(annotations));
    body.insert("startsAt".into(), json!(rfc3339(starts_at)));
    if let Some(ends_at) = ends_at {
        body.insert("endsAt".into(), json!(rfc3339(ends_at)));
    }
    if let Some(base) = &alert.base_url {
        body.insert("generatorURL".into(), json!(format!("{}/api/incidents", base.trim_end_matches('/'))));
    }
    Value::Object(body)
}

/// One sentence saying what happened.
pub fn summary(alert: &Alert) -> String {
    let name = alert.endpoint_name();
    let (down, all, regions) = alert.down_regions();
    let where_down = if regions.is_empty() {
        String::new()
    } else {
        format!(" in {down} of {all} regions ({})", regions.join(", "))
    };
    match alert.event {
        EventType::Test => "test event from Vantage: this webhook receives and verifies alerts".to_string(),
        EventType::Alert(AlertEvent::OutageOpened) => format!("{name} is down{where_down}"),
        EventType::Alert(AlertEvent::OutageResolved) => {
            let lasted = alert
                .incident
                .as_ref()
                .and_then(|i| i.resolved_at.map(|r| lasted(i.opened_at, r)))
                .map_or(String::new(), |d| format!(" after {d}"));
            let now = alert.state.map_or(String::new(), |s| format!("; it is {} now", s.as_str()));
            format!("{name} recovered: the outage ended{lasted}{now}")
        }
        EventType::Alert(AlertEvent::Degraded) => {
            format!("{name} is degraded: down{where_down}, fewer than the quorum")
        }
        EventType::Alert(AlertEvent::Flapping) => {
            format!("{name} is flapping: its state keeps changing, so it is alerted once until it settles")
        }
    }
}

/// `2026-12-06T21:34:50.000Z`.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn region_json(region: &RegionEvidence) -> Value {
    let (verdict, reason) = verdict_parts(region.verdict);
    json!({
        "region": region.region,
        "verdict": verdict,
        "reason": reason,
        "probes": region.probes.iter().map(probe_json).collect::<Vec<_>>(),
    })
}

fn probe_json(probe: &ProbeEvidence) -> Value {
    let (verdict, reason) = verdict_parts(probe.verdict);
    json!({
        "probe_id": probe.probe_id,
        "verdict": verdict,
        "reason": reason,
        "message": probe.message,
        "status_code": probe.status_code,
        "total_ms": probe.total_us as f64 / 1000.0,
        "ttfb_ms": probe.ttfb_us as f64 / 1000.0,
        "started_at": started_at(probe),
    })
}

/// When the probe's check started; `None` without a result.
fn started_at(probe: &ProbeEvidence) -> Option<String> {
    (probe.started_at_unix_us != 0).then(|| rfc3339(from_unix_micros(probe.started_at_unix_us)))
}

/// A verdict's name and its reason (`None` for Up).
fn verdict_parts(verdict: Verdict) -> (&'static str, Option<&'static str>) {
    match verdict {
        Verdict::Up => ("up", None),
        Verdict::Down(kind) => ("down", Some(kind.as_str())),
        Verdict::Unknown(reason) => ("unknown", Some(unknown_reason(reason))),
    }
}

fn unknown_reason(reason: UnknownReason) -> &'static str {
    match reason {
        UnknownReason::NoProbe => "no_probe",
        UnknownReason::Disconnected => "disconnected",
        UnknownReason::Stale => "stale",
        UnknownReason::ProbeUnhealthy => "probe_unhealthy",
    }
}

/// `down (timeout: no response within 10s, 10000 ms)`, `up (HTTP 200,
/// 120 ms)`, `unknown (stale)`: a region's verdict and its first telling
/// probe.
fn region_detail(region: &RegionEvidence) -> String {
    let (verdict, reason) = verdict_parts(region.verdict);
    let probe = region.probes.iter().find(|p| p.verdict == region.verdict).or_else(|| region.probes.first());
    let mut parts = Vec::new();
    match region.verdict {
        Verdict::Down(kind) => parts.push(match probe.and_then(|p| p.message.as_deref()) {
            Some(message) => format!("{}: {message}", kind.as_str()),
            None => kind.as_str().to_string(),
        }),
        Verdict::Unknown(_) => parts.extend(reason.map(str::to_string)),
        Verdict::Up => {}
    }
    if let Some(p) = probe.filter(|p| p.started_at_unix_us != 0) {
        if let Some(code) = p.status_code {
            parts.push(format!("HTTP {code}"));
        }
        parts.push(format!("{:.0} ms", p.total_us as f64 / 1000.0));
    }
    if parts.is_empty() {
        verdict.to_string()
    } else {
        format!("{verdict} ({})", parts.join(", "))
    }
}

/// `1h2m`, `3m10s`, `42s`: how long an incident lasted.
fn lasted(from: SystemTime, to: SystemTime) -> String {
    let secs = to.duration_since(from).unwrap_or_default().as_secs();
    vantage_core::time::format_duration(Duration::from_secs(secs))
}

/// Alertmanager label names are `[a-zA-Z_][a-zA-Z0-9_]*`: other
/// characters become `_`, a leading digit gets a `_` before it.
pub fn alertmanager_label_name(key: &str) -> String {
    let mut name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Slack's mrkdwn control characters, escaped as Slack asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `<url|label>`, with the characters that would end it escaped.
fn slack_link(url: &str, label: &str) -> String {
    format!("<{}|{}>", slack_escape(url).replace('|', "%7C"), slack_escape(label).replace('|', "/"))
}

/// At most `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::UNIX_EPOCH;
    use vantage_core::result::ErrorKind;

    const T0: u64 = 1_796_090_400_000; // 2026-12-01T02:00:00Z

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn probe(
        id: u64,
        verdict: Verdict,
        message: Option<&str>,
        status: Option<u16>,
        total_us: u64,
    ) -> ProbeEvidence {
        ProbeEvidence {
            probe_id: id,
            verdict,
            message: message.map(str::to_string),
            status_code: status,
            total_us,
            ttfb_us: total_us / 2,
            started_at_unix_us: (T0 as i64 - 10_000) * 1000,
        }
    }

    fn outage() -> Alert {
        let down = Verdict::Down(ErrorKind::Timeout);
        Alert {
            event: EventType::Alert(AlertEvent::OutageOpened),
            message_id: "msg_vantage_12_40".into(),
            timestamp: at(T0),
            state: Some(vantage_core::agreement::State::Down),
            incident: Some(IncidentInfo {
                id: 12,
                kind: IncidentKind::Outage,
                opened_at: at(T0),
                resolved_at: None,
            }),
            endpoint: Some(EndpointInfo {
                id: 3,
                name: "api".into(),
                url: "https://api.example.com/health".into(),
                labels: [
                    ("team".to_string(), "core".to_string()),
                    ("k8s.io/app".to_string(), "web".to_string()),
                ]
                .into(),
            }),
            evidence: vec![
                RegionEvidence {
                    region: "eu".into(),
                    verdict: down,
                    probes: vec![probe(4, down, Some("no response within 10s"), None, 10_000_000)],
                },
                RegionEvidence {
                    region: "us".into(),
                    verdict: Verdict::Down(ErrorKind::HttpStatus),
                    probes: vec![probe(
                        5,
                        Verdict::Down(ErrorKind::HttpStatus),
                        Some("status 503"),
                        Some(503),
                        120_500,
                    )],
                },
                RegionEvidence {
                    region: "ap".into(),
                    verdict: Verdict::Up,
                    probes: vec![probe(6, Verdict::Up, None, Some(200), 80_000)],
                },
                RegionEvidence {
                    region: "sa".into(),
                    verdict: Verdict::Unknown(UnknownReason::Stale),
                    probes: Vec::new(),
                },
            ],
            base_url: Some("https://vantage.example.com/".into()),
        }
    }

    fn resolved() -> Alert {
        let mut alert = outage();
        alert.event = EventType::Alert(AlertEvent::OutageResolved);
        alert.state = Some(vantage_core::agreement::State::Up);
        alert.incident.as_mut().unwrap().resolved_at = Some(at(T0 + 190_000));
        alert.evidence.truncate(1);
        alert.evidence[0].verdict = Verdict::Up;
        alert.evidence[0].probes = vec![probe(4, Verdict::Up, None, Some(200), 90_000)];
        alert.base_url = None;
        alert
    }

    #[test]
    fn the_standard_body_has_the_documented_shape() {
        let body: Value = serde_json::from_slice(&encode(WebhookFormat::Standard, &outage())).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "outage_opened",
                "timestamp": "2026-12-01T02:00:00.000Z",
                "summary": "api is down in 2 of 4 regions (eu, us)",
                "incident": {"id": 12, "kind": "outage", "opened_at": "2026-12-01T02:00:00.000Z", "resolved_at": null},
                "endpoint": {"id": 3, "name": "api", "url": "https://api.example.com/health",
                             "labels": {"k8s.io/app": "web", "team": "core"}},
                "state": "down",
                "evidence": [
                    {"region": "eu", "verdict": "down", "reason": "timeout", "probes": [
                        {"probe_id": 4, "verdict": "down", "reason": "timeout", "message": "no response within 10s",
                         "status_code": null, "total_ms": 10000.0, "ttfb_ms": 5000.0,
                         "started_at": "2026-12-01T01:59:50.000Z"}]},
                    {"region": "us", "verdict": "down", "reason": "http_status", "probes": [
                        {"probe_id": 5, "verdict": "down", "reason": "http_status", "message": "status 503",
                         "status_code": 503, "total_ms": 120.5, "ttfb_ms": 60.25,
                         "started_at": "2026-12-01T01:59:50.000Z"}]},
                    {"region": "ap", "verdict": "up", "reason": null, "probes": [
                        {"probe_id": 6, "verdict": "up", "reason": null, "message": null,
                         "status_code": 200, "total_ms": 80.0, "ttfb_ms": 40.0,
                         "started_at": "2026-12-01T01:59:50.000Z"}]},
                    {"region": "sa", "verdict": "unknown", "reason": "stale", "probes": []}
                ],
                "links": {"coordinator": "https://vantage.example.com",
                          "incidents": "https://vantage.example.com/api/incidents"}
            })
        );
        let body = standard(&resolved());
        assert_eq!(body["type"], "outage_resolved");
        assert_eq!(body["incident"]["resolved_at"], "2026-12-01T02:03:10.000Z");
        assert_eq!(body["state"], "up");
        assert_eq!(body["summary"], "api recovered: the outage ended after 3m10s; it is up now");
        assert!(body.get("links").is_none(), "no links without a configured base");
    }

    #[test]
    fn a_test_event_has_no_incident_or_endpoint() {
        let body = standard(&Alert::test("msg_vantage_test_1".into(), at(T0), None));
        assert_eq!(
            body,
            json!({
                "type": "test",
                "timestamp": "2026-12-01T02:00:00.000Z",
                "summary": "test event from Vantage: this webhook receives and verifies alerts",
                "incident": null,
                "endpoint": null,
                "state": null,
                "evidence": []
            })
        );
    }

    #[test]
    fn the_slack_body_is_an_incoming_webhook_message() {
        let body = slack(&outage());
        assert_eq!(body["text"], ":red_circle: api is down in 2 of 4 regions (eu, us)");
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(
            blocks[0],
            json!({"type": "header", "text": {"type": "plain_text", "text": ":red_circle: Outage: api", "emoji": true}})
        );
        assert_eq!(
            blocks[1],
            json!({"type": "section", "text": {"type": "mrkdwn", "text":
                "api is down in 2 of 4 regions (eu, us)\n\
                 Endpoint *api*: <https://api.example.com/health|https://api.example.com/health>\n\
                 Incident 12 (outage) opened 2026-12-01T02:00:00.000Z\n\
                 <https://vantage.example.com/|Open Vantage>"}})
        );
        assert_eq!(
            blocks[2]["fields"],
            json!([
                {"type": "mrkdwn", "text": "*eu*\ndown (timeout: no response within 10s, 10000 ms)"},
                {"type": "mrkdwn", "text": "*us*\ndown (http_status: status 503, HTTP 503, 120 ms)"},
                {"type": "mrkdwn", "text": "*ap*\nup (HTTP 200, 80 ms)"},
                {"type": "mrkdwn", "text": "*sa*\nunknown (stale)"}
            ])
        );
        assert_eq!(
            blocks[3],
            json!({"type": "context", "elements": [{"type": "mrkdwn",
                "text": "Vantage · 2026-12-01T02:00:00.000Z · webhook-id msg_vantage_12_40"}]})
        );
        let resolved = slack(&resolved());
        assert_eq!(resolved["blocks"][0]["text"]["text"], ":large_green_circle: Resolved: api");
        assert!(resolved["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .ends_with(", resolved 2026-12-01T02:03:10.000Z after 3m10s"));
    }

    #[test]
    fn slack_text_is_escaped_and_clipped() {
        let mut alert = outage();
        alert.endpoint.as_mut().unwrap().name = "<a&b>".repeat(40);
        alert.evidence = (0..12)
            .map(|i| RegionEvidence { region: format!("r{i}"), verdict: Verdict::Up, probes: Vec::new() })
            .collect();
        let body = slack(&alert);
        let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), 150);
        assert!(header.ends_with('…'));
        let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("&lt;a&amp;b&gt;") && !section.contains("<a&b>"), "{section}");
        let fields = body["blocks"][2]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 10, "Slack takes at most 10 fields");
        assert_eq!(fields[9]["text"], "and 3 more regions");
    }

    #[test]
    fn the_alertmanager_body_is_an_api_v2_alert_list() {
        let body: Value = serde_json::from_slice(&encode(WebhookFormat::Alertmanager, &outage())).unwrap();
        assert_eq!(
            body,
            json!([{
                "labels": {"alertname": "VantageOutage", "severity": "critical", "endpoint": "api",
                           "kind": "outage", "incident": "12", "team": "core", "k8s_io_app": "web"},
                "annotations": {
                    "summary": "api is down in 2 of 4 regions (eu, us)",
                    "description": "eu: down (timeout: no response within 10s, 10000 ms)\n\
                                    us: down (http_status: status 503, HTTP 503, 120 ms)\n\
                                    ap: up (HTTP 200, 80 ms)\n\
                                    sa: unknown (stale)",
                    "endpoint_url": "https://api.example.com/health"
                },
                "startsAt": "2026-12-01T02:00:00.000Z",
                "generatorURL": "https://vantage.example.com/api/incidents"
            }])
        );
        let resolved = alertmanager_alert(&resolved());
        assert_eq!(resolved["labels"], body[0]["labels"], "the same alert, so the resolution ends it");
        assert_eq!(resolved["startsAt"], "2026-12-01T02:00:00.000Z");
        assert_eq!(resolved["endsAt"], "2026-12-01T02:03:10.000Z");
        assert!(resolved.get("generatorURL").is_none());
        let test = alertmanager_alert(&Alert::test("m".into(), at(T0), None));
        assert_eq!(test["labels"], json!({"alertname": "VantageTest", "severity": "none"}));
        assert_eq!(test["endsAt"], "2026-12-01T02:05:00.000Z", "a test alert ends by itself");
        assert_eq!(alertmanager_label_name("9lives"), "_9lives");
        assert_eq!(alertmanager_label_name("a.b-c/d"), "a_b_c_d");
    }

    #[test]
    fn generated_secrets_are_standard_webhooks_secrets() {
        let secret = generate_secret().unwrap();
        assert!(secret.starts_with("whsec_"), "{secret}");
        assert_eq!(signing_key(&secret).unwrap().len(), GENERATED_SECRET_BYTES);
        assert!(
            vantage_core::webhook::WebhookSecret(secret.clone()).validate().is_ok(),
            "the rules accept it"
        );
        assert_ne!(generate_secret().unwrap(), secret);
    }

    /// The vector of the reference implementation's own test
    /// (`standardwebhooks` 1.0.0 on PyPI, `tests/test_webhooks.py`,
    /// `test_sign_function`).
    #[test]
    fn the_reference_vector_signs_alike() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn keys_come_from_the_prefix_form_or_the_bytes() {
        assert_eq!(signing_key("whsec_AAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(signing_key("0123456789abcdef").unwrap(), b"0123456789abcdef");
        let err = signing_key("whsec_***").unwrap_err().to_string();
        assert!(err.contains("not base64"), "{err}");
        let key = signing_key("0123456789abcdef").unwrap();
        assert_ne!(signature(&key, "a", 1, b"x"), signature(&key, "b", 1, b"x"), "the id is signed");
        assert_ne!(signature(&key, "a", 1, b"x"), signature(&key, "a", 2, b"x"), "the time is signed");
    }
}
