//! Replies of the incident calls → [`crate::model`]'s incidents, endpoint
//! states and deliveries. Verdicts and states convert with
//! `vantage-proto`'s `incidents` conversions; a name this vantagectl does
//! not know is a bad reply, never a guess.

use vantage_proto::incidents::{parse_state, verdict_from_wire};
use vantage_proto::pb;

use super::bad_reply;
use crate::error::Error;
use crate::model::{
    AgreementRules, AlertEvent, Delivery, DeliveryStatus, EndpointStatus, Incident, IncidentSummary,
    ProbeVerdict, RegionVerdict, VerdictJson,
};

/// `""` (a removed object's name) as none.
fn name(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

/// `0` (no time) as none.
fn time(ms: i64) -> Option<i64> {
    Some(ms).filter(|&ms| ms != 0)
}

impl From<pb::Incident> for IncidentSummary {
    fn from(i: pb::Incident) -> Self {
        IncidentSummary {
            id: i.id,
            endpoint_id: i.endpoint_id,
            endpoint: name(i.endpoint),
            kind: i.kind,
            open: i.resolved_at_unix_ms == 0,
            opened_at_unix_ms: i.opened_at_unix_ms,
            resolved_at_unix_ms: time(i.resolved_at_unix_ms),
            regions_down: i.regions_down,
        }
    }
}

impl TryFrom<pb::Incident> for Incident {
    type Error = Error;
    fn try_from(mut i: pb::Incident) -> Result<Self, Error> {
        let opened_evidence = regions(&i.opened_evidence)?;
        let resolved_evidence = regions(&i.resolved_evidence)?;
        (i.opened_evidence, i.resolved_evidence) = (Vec::new(), Vec::new());
        Ok(Incident { summary: i.into(), opened_evidence, resolved_evidence })
    }
}

fn regions(evidence: &[pb::RegionEvidence]) -> Result<Vec<RegionVerdict>, Error> {
    evidence.iter().map(RegionVerdict::try_from).collect()
}

impl TryFrom<&pb::RegionEvidence> for RegionVerdict {
    type Error = Error;
    fn try_from(r: &pb::RegionEvidence) -> Result<Self, Error> {
        Ok(RegionVerdict {
            region: r.region.clone(),
            verdict: VerdictJson(
                verdict_from_wire("RegionEvidence", &r.verdict, &r.reason).map_err(bad_reply)?,
            ),
            probes: r.probes.iter().map(ProbeVerdict::try_from).collect::<Result<_, _>>()?,
        })
    }
}

impl TryFrom<&pb::ProbeEvidence> for ProbeVerdict {
    type Error = Error;
    fn try_from(p: &pb::ProbeEvidence) -> Result<Self, Error> {
        let evidence = vantage_core::agreement::ProbeEvidence::try_from(p).map_err(bad_reply)?;
        Ok(ProbeVerdict {
            probe_id: p.probe_id,
            probe: name(p.probe.clone()),
            verdict: VerdictJson(evidence.verdict),
            message: evidence.message,
            status_code: evidence.status_code,
            total_us: evidence.total_us,
            ttfb_us: evidence.ttfb_us,
            started_at_unix_us: Some(evidence.started_at_unix_us).filter(|&us| us != 0),
        })
    }
}

impl TryFrom<pb::EndpointAgreement> for EndpointStatus {
    type Error = Error;
    fn try_from(e: pb::EndpointAgreement) -> Result<Self, Error> {
        let rules = e.rules.ok_or_else(|| super::missing("EndpointAgreement", "rules"))?;
        Ok(EndpointStatus {
            endpoint_id: e.endpoint_id,
            endpoint: e.endpoint,
            state: parse_state("EndpointAgreement", "state", &e.state).map_err(bad_reply)?,
            since_unix_ms: time(e.since_unix_ms),
            rules: AgreementRules {
                regions: rules.regions,
                quorum: rules.quorum,
                quorum_set: rules.quorum_set,
                recovery_rounds: rules.recovery_rounds,
                min_failure_ms: rules.min_failure_ms,
            },
            regions: regions(&e.regions)?,
            open_incidents: e.open_incidents.into_iter().map(IncidentSummary::from).collect(),
        })
    }
}

impl TryFrom<pb::Delivery> for Delivery {
    type Error = Error;
    fn try_from(d: pb::Delivery) -> Result<Self, Error> {
        let invalid = |field: &str, value: &str| Error::BadReply {
            reason: format!("Delivery.{field} {value:?} is not one this vantagectl knows"),
        };
        let status = match d.status.as_str() {
            "pending" => DeliveryStatus::Pending,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            other => return Err(invalid("status", other)),
        };
        Ok(Delivery {
            id: d.id,
            message_id: d.message_id,
            webhook_id: d.webhook_id,
            webhook: name(d.webhook),
            endpoint_id: d.endpoint_id,
            endpoint: name(d.endpoint),
            incident_id: d.incident_id,
            event: AlertEvent::parse(&d.event).map_err(|_| invalid("event", &d.event))?,
            status,
            attempts: d.attempts,
            last_error: name(d.last_error),
            created_at_unix_ms: d.created_at_unix_ms,
            next_attempt_at_unix_ms: time(d.next_attempt_at_unix_ms),
            finished_at_unix_ms: time(d.finished_at_unix_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_objects_and_absent_times_become_null() {
        let wire = pb::Delivery {
            id: 4,
            status: "failed".into(),
            event: "outage_resolved".into(),
            finished_at_unix_ms: 9,
            ..Default::default()
        };
        let delivery = Delivery::try_from(wire.clone()).unwrap();
        assert_eq!((delivery.webhook, delivery.endpoint, delivery.last_error), (None, None, None));
        assert_eq!((delivery.next_attempt_at_unix_ms, delivery.finished_at_unix_ms), (None, Some(9)));
        let unknown = Delivery::try_from(pb::Delivery { status: "lost".into(), ..wire }).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unexpected answer from the coordinator: Delivery.status \"lost\" is not one this vantagectl knows"
        );
    }

    #[test]
    fn an_unknown_verdict_or_state_is_a_bad_reply() {
        let region =
            pb::RegionEvidence { region: "eu".into(), verdict: "sideways".into(), ..Default::default() };
        let err = RegionVerdict::try_from(&region).unwrap_err();
        assert!(err.to_string().contains("unknown verdict \"sideways\""), "{err}");
        let status = pb::EndpointAgreement {
            state: "melting".into(),
            rules: Some(pb::AgreementRules::default()),
            ..Default::default()
        };
        assert!(EndpointStatus::try_from(status).unwrap_err().to_string().contains("unknown state"));
        let no_rules = pb::EndpointAgreement { state: "up".into(), ..Default::default() };
        assert!(EndpointStatus::try_from(no_rules).unwrap_err().to_string().contains("rules is missing"));
    }
}
