//! Conversions between the AdminService protobuf messages
//! (`vantage_proto::pb`) and vantagectl's own types ([`crate::model`]):
//! the records and views; the specifications inside them convert with
//! `vantage-proto`'s `admin` conversions, the coordinator's own
//! (`incidents.rs`: incidents, endpoint states and deliveries, through
//! `vantage-proto`'s `incidents`).
//!
//! This is the client's edge: nothing else in the crate builds or reads a
//! protobuf message except the calls in [`crate::client`].

use vantage_proto::pb;

use crate::error::Error;
use crate::model::{
    Assignment, CheckKind, CheckReport, ClusterMember, ClusterStatus, Endpoint, Maintenance, MaintenanceSpec,
    PhasesMs, Pin, Pinned, Probe, ProbeToken, Rebalance, Region, RegionCheck, SeqRange, ShardList, ShardMove,
    ShardRow, ShardView, UncoveredShard, Unpinned, Webhook, WebhookSpec, WebhookTestReport,
};

mod incidents;

/// A required field missing from a reply.
fn missing(message: &str, field: &str) -> Error {
    Error::BadReply { reason: format!("{message}.{field} is missing") }
}

impl TryFrom<pb::Endpoint> for Endpoint {
    type Error = Error;
    fn try_from(endpoint: pb::Endpoint) -> Result<Self, Error> {
        Ok(Endpoint {
            id: endpoint.id,
            kind: CheckKind::from_name(&endpoint.kind).ok_or_else(|| Error::BadReply {
                reason: format!("Endpoint.kind {:?} is not a kind this vantagectl knows", endpoint.kind),
            })?,
            spec: endpoint.spec.ok_or_else(|| missing("Endpoint", "spec"))?.into(),
            created_at_unix_ms: endpoint.created_at_unix_ms,
            updated_at_unix_ms: endpoint.updated_at_unix_ms,
        })
    }
}

impl TryFrom<pb::EndpointReply> for Endpoint {
    type Error = Error;
    fn try_from(reply: pb::EndpointReply) -> Result<Self, Error> {
        reply.endpoint.ok_or_else(|| missing("EndpointReply", "endpoint"))?.try_into()
    }
}

impl From<pb::Region> for Region {
    fn from(region: pb::Region) -> Self {
        Region { name: region.name, created_at_unix_ms: region.created_at_unix_ms }
    }
}

/// A webhook specification for the wire, with its secret (empty: keep the
/// stored one).
pub fn webhook_spec_to_wire(spec: &WebhookSpec, secret: &str) -> pb::WebhookSpec {
    pb::WebhookSpec { secret: secret.to_string(), ..spec.into() }
}

fn bad_reply(error: vantage_proto::ConvertError) -> Error {
    Error::BadReply { reason: error.to_string() }
}

impl TryFrom<pb::Webhook> for Webhook {
    type Error = Error;
    fn try_from(webhook: pb::Webhook) -> Result<Self, Error> {
        Ok(Webhook {
            id: webhook.id,
            spec: WebhookSpec::try_from(webhook.spec.ok_or_else(|| missing("Webhook", "spec"))?)
                .map_err(bad_reply)?,
            secret_set: webhook.secret_set,
            created_at_unix_ms: webhook.created_at_unix_ms,
            generated_secret: Some(webhook.generated_secret).filter(|s| !s.is_empty()),
        })
    }
}

impl TryFrom<pb::Maintenance> for Maintenance {
    type Error = Error;
    fn try_from(window: pb::Maintenance) -> Result<Self, Error> {
        Ok(Maintenance {
            id: window.id,
            spec: MaintenanceSpec::try_from(window.spec.ok_or_else(|| missing("Maintenance", "spec"))?)
                .map_err(bad_reply)?,
            created_at_unix_ms: window.created_at_unix_ms,
        })
    }
}

impl From<pb::ClusterStatusReply> for ClusterStatus {
    fn from(reply: pb::ClusterStatusReply) -> Self {
        ClusterStatus {
            leader_id: reply.leader_id,
            term: reply.term,
            node_id: reply.node_id,
            members: reply
                .members
                .into_iter()
                .map(|m| ClusterMember {
                    id: m.id,
                    api_addr: m.api_addr,
                    raft_addr: m.raft_addr,
                    role: m.role,
                    reachable: m.reachable,
                    last_applied: m.last_applied,
                })
                .collect(),
        }
    }
}

impl From<pb::ProbeInfo> for Probe {
    fn from(p: pb::ProbeInfo) -> Self {
        Probe {
            id: p.id,
            name: p.name,
            region: p.region,
            weight: p.weight,
            drained: p.drained,
            connected: p.connected,
            version: p.version,
            connected_since_unix_ms: p.connected_since_unix_ms,
            last_seen_unix_ms: p.last_seen_unix_ms,
            endpoints: p.endpoints,
            checks_per_second: p.checks_per_second,
            scheduling_lag_p99_ms: p.scheduling_lag_p99_ms,
            results_recorded: p.results_recorded,
            results_refused: p.results_refused,
            results_duplicated: p.results_duplicated,
            processed_seqs: p
                .processed_seqs
                .into_iter()
                .map(|r| SeqRange { first: r.first, last: r.last })
                .collect(),
        }
    }
}

impl From<pb::CreateProbeTokenReply> for ProbeToken {
    fn from(r: pb::CreateProbeTokenReply) -> Self {
        ProbeToken { probe_id: r.probe_id, token: r.token, rotated: r.rotated }
    }
}

impl From<pb::ListShardsReply> for ShardList {
    fn from(r: pb::ListShardsReply) -> Self {
        ShardList {
            assignment_version: r.assignment_version,
            shards: r
                .shards
                .into_iter()
                .map(|s| ShardRow {
                    endpoint_id: s.endpoint_id,
                    endpoint: s.endpoint,
                    region: s.region,
                    probe_id: s.probe_id,
                    probe: s.probe,
                    pinned: s.pinned,
                    connected: s.connected,
                })
                .collect(),
            uncovered: r
                .uncovered
                .into_iter()
                .map(|u| UncoveredShard {
                    endpoint_id: u.endpoint_id,
                    endpoint: u.endpoint,
                    region: u.region,
                })
                .collect(),
            uncovered_regions: r.uncovered_regions,
        }
    }
}

impl From<pb::ShowShardReply> for ShardView {
    fn from(r: pb::ShowShardReply) -> Self {
        let mut assignments = Vec::new();
        let mut uncovered_regions = Vec::new();
        let mut pins = Vec::new();
        for region in r.regions {
            if region.probes.is_empty() {
                uncovered_regions.push(region.region.clone());
            }
            for p in region.probes {
                assignments.push(Assignment {
                    region: region.region.clone(),
                    probe: p.probe,
                    probe_id: p.probe_id,
                    pinned: p.pinned,
                    connected: p.connected,
                });
            }
            if region.pinned_probe_id != 0 {
                pins.push(Pin {
                    region: region.region,
                    probe: region.pinned_probe,
                    probe_id: region.pinned_probe_id,
                    problem: Some(region.pin_problem).filter(|p| !p.is_empty()),
                });
            }
        }
        ShardView {
            endpoint: r.endpoint,
            endpoint_id: r.endpoint_id,
            assignment_version: r.assignment_version,
            paused: r.paused,
            assignments,
            uncovered_regions,
            pins,
        }
    }
}

impl From<pb::PinShardReply> for Pinned {
    fn from(r: pb::PinShardReply) -> Self {
        Pinned {
            endpoint_id: r.endpoint_id,
            endpoint: r.endpoint,
            region: r.region,
            probe_id: r.probe_id,
            probe: r.probe,
            changed: r.changed,
        }
    }
}

impl From<pb::UnpinShardReply> for Unpinned {
    fn from(r: pb::UnpinShardReply) -> Self {
        Unpinned { endpoint_id: r.endpoint_id, endpoint: r.endpoint, regions: r.regions }
    }
}

impl From<pb::RebalanceReply> for Rebalance {
    fn from(r: pb::RebalanceReply) -> Self {
        Rebalance {
            dry_run: r.dry_run,
            expired_probes: r.expired_probes,
            moved: r.regions.into_iter().map(|m| (m.region, m.endpoints_moved)).collect(),
            moves: r
                .moves
                .into_iter()
                .map(|m| ShardMove {
                    endpoint_id: m.endpoint_id,
                    endpoint: m.endpoint,
                    region: m.region,
                    from: m.from,
                    to: m.to,
                })
                .collect(),
            assignment_version: r.assignment_version,
        }
    }
}

impl From<pb::CheckEndpointReply> for CheckReport {
    fn from(r: pb::CheckEndpointReply) -> Self {
        let regions: Vec<RegionCheck> = r
            .regions
            .into_iter()
            .map(|c| {
                let answered = matches!(c.outcome.as_str(), "ok" | "failed") && c.total_ms > 0.0;
                RegionCheck {
                    region: c.region,
                    probe: Some(c.probe).filter(|p| !p.is_empty()),
                    probe_id: Some(c.probe_id).filter(|&id| id != 0),
                    outcome: c.outcome,
                    error_kind: Some(c.error_kind).filter(|k| !k.is_empty()),
                    message: c.message,
                    status_code: c.status_code,
                    phases_ms: answered.then_some(PhasesMs {
                        dns: c.dns_ms,
                        connect: c.connect_ms,
                        tls: c.tls_ms,
                        ttfb: c.ttfb_ms,
                        transfer: c.transfer_ms,
                        total: c.total_ms,
                    }),
                }
            })
            .collect();
        CheckReport {
            endpoint_id: r.endpoint_id,
            endpoint: r.endpoint,
            request_id: r.request_id,
            ok: !regions.is_empty() && regions.iter().all(RegionCheck::is_ok),
            regions,
        }
    }
}

impl From<pb::TestWebhookReply> for WebhookTestReport {
    fn from(reply: pb::TestWebhookReply) -> Self {
        WebhookTestReport {
            webhook_id: reply.webhook_id,
            name: reply.name,
            url: reply.url,
            delivered: reply.delivered,
            status_code: u16::try_from(reply.status_code).ok().filter(|c| *c != 0),
            latency_ms: reply.latency_us as f64 / 1000.0,
            error: Some(reply.error).filter(|e| !e.is_empty()),
            message_id: reply.message_id,
            node_id: reply.node_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_view_lists_assignments_uncovered_regions_and_pins_with_their_problem() {
        let reply = pb::ShowShardReply {
            endpoint_id: 3,
            endpoint: "api".into(),
            assignment_version: 9,
            paused: false,
            regions: vec![
                pb::RegionShard {
                    region: "eu".into(),
                    probes: vec![pb::ShardProbe {
                        probe_id: 1,
                        probe: "eu-1".into(),
                        pinned: false,
                        connected: true,
                    }],
                    pinned_probe_id: 2,
                    pinned_probe: "eu-2".into(),
                    pin_problem: "the pinned probe is not eligible".into(),
                },
                pb::RegionShard { region: "us".into(), ..Default::default() },
            ],
        };
        let view = ShardView::from(reply);
        assert_eq!(view.assignments.len(), 1);
        assert_eq!((view.assignments[0].region.as_str(), view.assignments[0].probe.as_str()), ("eu", "eu-1"));
        assert_eq!(view.uncovered_regions, ["us"]);
        assert_eq!(view.pins.len(), 1);
        assert_eq!(view.pins[0].problem.as_deref(), Some("the pinned probe is not eligible"));
        assert_eq!(
            crate::output::shard_view_text(&view),
            "endpoint api (id 3), assignment version 9\n\
             REGION  PROBE  PINNED  CONNECTED\n\
             eu      eu-1   no      yes\n\
             us      -      -       uncovered: no live probe\n\
             pinned in eu to eu-2, not honoured now: the pinned probe is not eligible; hashing chose instead\n"
        );
    }

    #[test]
    fn a_check_row_without_an_answer_has_no_phases() {
        let reply = pb::CheckEndpointReply {
            endpoint_id: 1,
            endpoint: "web".into(),
            request_id: "chk-1-1".into(),
            regions: vec![
                pb::RegionCheck {
                    region: "eu".into(),
                    outcome: "ok".into(),
                    total_ms: 3.0,
                    ..Default::default()
                },
                pb::RegionCheck { region: "us".into(), outcome: "timed_out".into(), ..Default::default() },
            ],
        };
        let report = CheckReport::from(reply);
        assert!(!report.ok, "one region did not answer");
        assert_eq!(report.regions[0].phases_ms.map(|p| p.total), Some(3.0));
        assert_eq!(report.regions[1].phases_ms, None);
        assert_eq!(report.regions[1].probe, None);
    }

    #[test]
    fn a_reply_without_its_object_is_a_clear_error() {
        let err = Endpoint::try_from(pb::EndpointReply::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected answer from the coordinator: EndpointReply.endpoint is missing"
        );
    }
}
