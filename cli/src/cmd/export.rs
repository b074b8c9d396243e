//! `vantagectl export`: the mesh's configuration as a document for
//! `apply` (consistent reads). Applying the output to the same mesh
//! changes nothing.
//!
//! Webhook secrets cannot be read back; each webhook is exported with
//! `secret_env: WEBHOOK_<NAME>_SECRET`, a variable that must hold the
//! secret when `apply` adds or updates that webhook.

use std::collections::BTreeMap;
use std::io::Write;

use crate::cmd::Context;
use crate::document::{Document, Dur, EndpointDoc, MaintenanceDoc, Timestamp, WebhookDoc};
use crate::error::Error;
use crate::model::LiveState;
use crate::timefmt::{format_rfc3339_ms, unix_ms};

/// Runs `export`.
pub async fn run(ctx: &Context<'_>, out: &mut dyn Write) -> Result<(), Error> {
    let live = ctx.client.live_state(true).await?;
    let document = document_from_live(&live);
    if ctx.json {
        return crate::output::write_json(out, &document);
    }
    out.write_all(render(&document, &ctx.server, unix_ms(ctx.clock.now()))?.as_bytes())?;
    Ok(())
}

/// The document describing `live`: every section present (so `apply
/// --prune` of it manages everything), objects in id order.
pub fn document_from_live(live: &LiveState) -> Document {
    let mut regions: Vec<String> = live.regions.iter().map(|r| r.name.clone()).collect();
    regions.sort();

    let mut endpoints = live.endpoints.clone();
    endpoints.sort_by_key(|e| e.id);
    let names: BTreeMap<u64, String> = endpoints.iter().map(|e| (e.id, e.spec.name.clone())).collect();
    let endpoints = endpoints
        .into_iter()
        .map(|e| {
            let s = e.spec;
            EndpointDoc {
                name: s.name,
                url: s.url,
                interval: Some(Dur(std::time::Duration::from_millis(s.interval_ms))),
                timeout: Some(Dur(std::time::Duration::from_millis(s.timeout_ms))),
                regions: s.regions.into_iter().collect(),
                public: s.public,
                allow_private: s.allow_private,
                labels: s.labels,
                paused: s.paused.then_some(true),
                retries: (s.retries != vantage_core::endpoint::DEFAULT_RETRIES).then_some(s.retries),
                quorum: s.quorum,
                recovery_rounds: (s.recovery_rounds != vantage_core::agreement::DEFAULT_RECOVERY_ROUNDS)
                    .then_some(s.recovery_rounds),
                min_failure: s.min_failure.map(Dur),
                expect: s.expect,
            }
        })
        .collect();

    let mut webhooks = live.webhooks.clone();
    webhooks.sort_by_key(|w| w.id);
    let webhooks = webhooks
        .into_iter()
        .map(|w| WebhookDoc {
            secret: None,
            secret_env: Some(secret_env_name(&w.spec.name)),
            format: w.spec.format,
            events: w.spec.events.iter().copied().collect(),
            name: w.spec.name,
            url: w.spec.url,
            labels: w.spec.labels,
            allow_private: w.spec.allow_private,
        })
        .collect();

    let mut windows = live.maintenance.clone();
    windows.sort_by_key(|m| m.id);
    let maintenance = windows
        .into_iter()
        .map(|m| MaintenanceDoc {
            start: Timestamp(m.spec.starts_at.as_i64()),
            end: Timestamp(m.spec.ends_at.as_i64()),
            reason: m.spec.reason,
            // An id without a live endpoint stays an id (digits), which
            // apply reads as an id again.
            endpoints: m
                .spec
                .endpoints
                .iter()
                .map(|id| names.get(&id.0).cloned().unwrap_or_else(|| id.to_string()))
                .collect(),
            labels: m.spec.labels,
        })
        .collect();

    Document {
        regions: Some(regions),
        endpoints: Some(endpoints),
        webhooks: Some(webhooks),
        maintenance: Some(maintenance),
    }
}

/// The document as YAML, under a comment saying where it came from and,
/// when there are webhooks, which variables must hold their secrets.
pub fn render(document: &Document, server: &str, now_ms: i64) -> Result<String, Error> {
    let yaml = serde_yaml::to_string(document)
        .map_err(|e| Error::BadReply { reason: format!("cannot encode the document as YAML: {e}") })?;
    let mut text = format!(
        "# Vantage mesh configuration exported from {server} at {}.\n\
         # Apply it with: vantagectl apply -f FILE [--dry-run] [--prune]\n",
        format_rfc3339_ms(now_ms)
    );
    let webhooks = document.webhooks.as_deref().unwrap_or_default();
    if !webhooks.is_empty() {
        text.push_str(
            "# Webhook secrets cannot be read back from the coordinator: each webhook\n\
             # names an environment variable that must hold its secret when apply\n\
             # adds or updates it:",
        );
        for webhook in webhooks {
            text.push_str(&format!(" {}", webhook.secret_env.as_deref().unwrap_or_default()));
        }
        text.push('\n');
    }
    text.push_str(&yaml);
    Ok(text)
}

/// `WEBHOOK_<NAME>_SECRET`, the name upper-cased with anything but ASCII
/// letters and digits as `_`.
pub fn secret_env_name(webhook: &str) -> String {
    let name: String = webhook
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect();
    format!("WEBHOOK_{name}_SECRET")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::diff::plan;
    use crate::document::parse;
    use crate::model::{AlertEvent, CheckKind, WebhookFormat};
    use crate::model::{
        Endpoint, EndpointSpec, Labels, Maintenance, MaintenanceSpec, Region, Webhook, WebhookSpec,
    };
    use vantage_core::ids::EndpointId;
    use vantage_core::time::UnixMillis;

    fn live() -> LiveState {
        let mut api = EndpointSpec::new("api", "https://api.example.com/health");
        api.interval_ms = 30_000;
        api.timeout_ms = 5_000;
        api.regions = ["eu-west".to_string()].into();
        api.public = true;
        api.paused = true;
        api.labels.insert("team".into(), "core".into());
        api.expect.status = Some("200-299".into());
        api.expect.body_contains = vec!["ok".into()];
        api.expect.max_ttfb = Some(std::time::Duration::from_millis(800));
        LiveState {
            regions: vec![Region { name: "eu-west".into(), created_at_unix_ms: 0 }],
            endpoints: vec![Endpoint {
                id: 3,
                kind: CheckKind::Https,
                spec: api,
                created_at_unix_ms: 0,
                updated_at_unix_ms: 0,
            }],
            webhooks: vec![Webhook {
                id: 1,
                spec: WebhookSpec {
                    name: "on-call".into(),
                    url: "https://hooks.example.com/x".into(),
                    secret: Default::default(),
                    format: WebhookFormat::Slack,
                    events: BTreeSet::from([AlertEvent::Degraded]),
                    labels: Labels::new(),
                    allow_private: false,
                },
                secret_set: true,
                created_at_unix_ms: 0,
                generated_secret: None,
            }],
            maintenance: vec![Maintenance {
                id: 2,
                spec: MaintenanceSpec {
                    starts_at: UnixMillis(1_796_090_400_000),
                    ends_at: UnixMillis(1_796_094_000_000),
                    endpoints: [EndpointId(3)].into(),
                    labels: Labels::new(),
                    reason: "db upgrade".into(),
                },
                created_at_unix_ms: 0,
            }],
        }
    }

    #[test]
    fn export_renders_the_documented_shape() {
        let text = render(&document_from_live(&live()), "http://127.0.0.1:7400", 0).unwrap();
        let want = "\
# Vantage mesh configuration exported from http://127.0.0.1:7400 at 1970-01-01T00:00:00Z.
# Apply it with: vantagectl apply -f FILE [--dry-run] [--prune]
# Webhook secrets cannot be read back from the coordinator: each webhook
# names an environment variable that must hold its secret when apply
# adds or updates it: WEBHOOK_ON_CALL_SECRET
regions:
- eu-west
endpoints:
- name: api
  url: https://api.example.com/health
  interval: 30s
  timeout: 5s
  regions:
  - eu-west
  public: true
  labels:
    team: core
  paused: true
  expect:
    status: 200-299
    body_contains:
    - ok
    max_ttfb: 800ms
webhooks:
- name: on-call
  url: https://hooks.example.com/x
  secret_env: WEBHOOK_ON_CALL_SECRET
  format: slack
  events:
  - degraded
maintenance:
- start: 2026-12-01T02:00:00Z
  end: 2026-12-01T03:00:00Z
  reason: db upgrade
  endpoints:
  - api
";
        assert_eq!(text, want);
    }

    #[test]
    fn an_exported_document_applies_as_no_changes() {
        let live = live();
        let text = render(&document_from_live(&live), "http://x", 0).unwrap();
        let desired = parse("export.yaml", &text).unwrap().into_desired("export.yaml").unwrap();
        let plan = plan(&desired, &live, true, 0).unwrap();
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    }
}
