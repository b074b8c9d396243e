//! Conversions for agreement's decisions: endpoint states, region and
//! probe verdicts with their evidence, and agreement rules, between the
//! AdminService messages (`Incident`, `EndpointAgreement`, `Delivery` and
//! their parts) and `vantage-core`'s [`agreement`](vantage_core::agreement)
//! types. The records around them (ids, names, times) are assembled by the
//! coordinator from its state and read back by vantagectl.
//!
//! States, verdicts and reasons travel as their names, the ones
//! `vantage-core` gives them in JSON (`down`, `timeout`, `stale`), so the
//! wire, `--json` and the replicated form agree. A name this build does not
//! know (a newer server's) is refused with the field named, never misread.

use std::time::Duration;

use vantage_core::agreement::{ProbeEvidence, RegionEvidence, Rules, State, UnknownReason, Verdict};
use vantage_core::result::ErrorKind;

use crate::{pb, ConvertError};

/// Every endpoint state, in documentation order.
pub const STATES: [State; 7] = [
    State::Up,
    State::Degraded,
    State::Down,
    State::Unknown,
    State::Flapping,
    State::Maintenance,
    State::Paused,
];

/// Every reason a region or probe has no verdict.
const UNKNOWN_REASONS: [UnknownReason; 4] = [
    UnknownReason::NoProbe,
    UnknownReason::Disconnected,
    UnknownReason::Stale,
    UnknownReason::ProbeUnhealthy,
];

/// The state named `name` (as [`State::as_str`] writes it), in `field` of
/// `message`.
pub fn parse_state(message: &'static str, field: &'static str, name: &str) -> Result<State, ConvertError> {
    STATES.iter().copied().find(|s| s.as_str() == name).ok_or_else(|| ConvertError::Invalid {
        message,
        field,
        reason: format!("unknown state {name:?}"),
    })
}

/// The name of an unknown verdict's reason (`stale`, `disconnected`, …).
pub fn unknown_reason_name(reason: UnknownReason) -> &'static str {
    match reason {
        UnknownReason::NoProbe => "no_probe",
        UnknownReason::Disconnected => "disconnected",
        UnknownReason::Stale => "stale",
        UnknownReason::ProbeUnhealthy => "probe_unhealthy",
    }
}

/// A verdict as its wire pair: (`up` | `down` | `unknown`, reason), the
/// reason an error kind for `down`, an unknown reason for `unknown`, empty
/// for `up`.
pub fn verdict_to_wire(verdict: Verdict) -> (&'static str, &'static str) {
    match verdict {
        Verdict::Up => ("up", ""),
        Verdict::Down(kind) => ("down", kind.as_str()),
        Verdict::Unknown(reason) => ("unknown", unknown_reason_name(reason)),
    }
}

/// The verdict a wire pair names, in `message`.
pub fn verdict_from_wire(
    message: &'static str,
    verdict: &str,
    reason: &str,
) -> Result<Verdict, ConvertError> {
    let invalid = |field, reason: String| ConvertError::Invalid { message, field, reason };
    match verdict {
        "up" => Ok(Verdict::Up),
        "down" => crate::check::ERROR_KINDS
            .iter()
            .map(|(kind, _)| *kind)
            .find(|kind: &ErrorKind| kind.as_str() == reason)
            .map(Verdict::Down)
            .ok_or_else(|| invalid("reason", format!("unknown error kind {reason:?}"))),
        "unknown" => UNKNOWN_REASONS
            .iter()
            .copied()
            .find(|r| unknown_reason_name(*r) == reason)
            .map(Verdict::Unknown)
            .ok_or_else(|| invalid("reason", format!("unknown reason {reason:?}"))),
        other => Err(invalid("verdict", format!("unknown verdict {other:?}"))),
    }
}

/// One probe's evidence for the wire, with the probe's name (`""` when it
/// is no longer registered).
pub fn probe_evidence_to_pb(evidence: &ProbeEvidence, probe_name: String) -> pb::ProbeEvidence {
    let (verdict, reason) = verdict_to_wire(evidence.verdict);
    pb::ProbeEvidence {
        probe_id: evidence.probe_id,
        probe: probe_name,
        verdict: verdict.to_string(),
        reason: reason.to_string(),
        message: evidence.message.clone().unwrap_or_default(),
        status_code: evidence.status_code.map(u32::from),
        total_us: evidence.total_us,
        ttfb_us: evidence.ttfb_us,
        started_at_unix_us: evidence.started_at_unix_us,
    }
}

impl TryFrom<&pb::ProbeEvidence> for ProbeEvidence {
    type Error = ConvertError;
    /// The probe's name is not part of the core type; read it from the
    /// message. An empty message is none.
    fn try_from(e: &pb::ProbeEvidence) -> Result<Self, ConvertError> {
        const MSG: &str = "ProbeEvidence";
        let status_code = e
            .status_code
            .map(|code| {
                u16::try_from(code).map_err(|_| ConvertError::Invalid {
                    message: MSG,
                    field: "status_code",
                    reason: format!("{code} is not an HTTP status"),
                })
            })
            .transpose()?;
        Ok(ProbeEvidence {
            probe_id: e.probe_id,
            verdict: verdict_from_wire(MSG, &e.verdict, &e.reason)?,
            message: Some(e.message.clone()).filter(|m| !m.is_empty()),
            status_code,
            total_us: e.total_us,
            ttfb_us: e.ttfb_us,
            started_at_unix_us: e.started_at_unix_us,
        })
    }
}

/// One region's evidence for the wire; `probe_name` names each probe by
/// id (`""` when it is no longer registered).
pub fn region_evidence_to_pb(
    evidence: &RegionEvidence,
    probe_name: &dyn Fn(u64) -> String,
) -> pb::RegionEvidence {
    let (verdict, reason) = verdict_to_wire(evidence.verdict);
    pb::RegionEvidence {
        region: evidence.region.clone(),
        verdict: verdict.to_string(),
        reason: reason.to_string(),
        probes: evidence.probes.iter().map(|p| probe_evidence_to_pb(p, probe_name(p.probe_id))).collect(),
    }
}

impl TryFrom<&pb::RegionEvidence> for RegionEvidence {
    type Error = ConvertError;
    fn try_from(e: &pb::RegionEvidence) -> Result<Self, ConvertError> {
        Ok(RegionEvidence {
            region: e.region.clone(),
            verdict: verdict_from_wire("RegionEvidence", &e.verdict, &e.reason)?,
            probes: e.probes.iter().map(ProbeEvidence::try_from).collect::<Result<_, _>>()?,
        })
    }
}

/// An endpoint's rules for the wire: checked from `regions` regions,
/// `quorum_set` when the endpoint chose its quorum itself.
pub fn rules_to_pb(rules: &Rules, regions: usize, quorum_set: bool) -> pb::AgreementRules {
    pb::AgreementRules {
        regions: u32::try_from(regions).unwrap_or(u32::MAX),
        quorum: u32::try_from(rules.quorum).unwrap_or(u32::MAX),
        quorum_set,
        recovery_rounds: rules.recovery_rounds,
        min_failure_ms: u64::try_from(rules.min_failure.as_millis()).unwrap_or(u64::MAX),
    }
}

impl From<&pb::AgreementRules> for Rules {
    fn from(r: &pb::AgreementRules) -> Self {
        Rules {
            quorum: r.quorum as usize,
            recovery_rounds: r.recovery_rounds,
            min_failure: Duration::from_millis(r.min_failure_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(probe_id: u64, verdict: Verdict) -> ProbeEvidence {
        ProbeEvidence {
            probe_id,
            verdict,
            message: matches!(verdict, Verdict::Down(_)).then(|| "connection refused".to_string()),
            status_code: None,
            total_us: 1_500,
            ttfb_us: 0,
            started_at_unix_us: 1_800_000_000_000_000,
        }
    }

    #[test]
    fn every_verdict_round_trips_through_its_names() {
        let mut verdicts = vec![Verdict::Up];
        verdicts.extend(crate::check::ERROR_KINDS.iter().map(|(kind, _)| Verdict::Down(*kind)));
        verdicts.extend(UNKNOWN_REASONS.iter().map(|reason| Verdict::Unknown(*reason)));
        for verdict in verdicts {
            let (name, reason) = verdict_to_wire(verdict);
            assert_eq!(verdict_from_wire("T", name, reason).unwrap(), verdict, "{name} {reason}");
            // The names are the JSON names of vantage-core.
            let json = serde_json::to_value(verdict).unwrap();
            assert_eq!(json["verdict"], name);
            if !reason.is_empty() {
                assert_eq!(json["reason"], reason);
            }
        }
    }

    #[test]
    fn region_evidence_round_trips_with_probe_names_on_the_wire_only() {
        let mut down = probe(3, Verdict::Down(ErrorKind::ConnectRefused));
        down.status_code = Some(503);
        let evidence = RegionEvidence {
            region: "eu-west".into(),
            verdict: Verdict::Down(ErrorKind::ConnectRefused),
            probes: vec![down, probe(9, Verdict::Unknown(UnknownReason::Disconnected))],
        };
        let names = |id: u64| if id == 3 { "eu-1".to_string() } else { String::new() };
        let wire = region_evidence_to_pb(&evidence, &names);
        assert_eq!((wire.verdict.as_str(), wire.reason.as_str()), ("down", "connect_refused"));
        assert_eq!(wire.probes[0].probe, "eu-1");
        assert_eq!(wire.probes[0].status_code, Some(503));
        assert_eq!(wire.probes[0].message, "connection refused");
        assert_eq!((wire.probes[1].probe.as_str(), wire.probes[1].reason.as_str()), ("", "disconnected"));
        assert_eq!(wire.probes[1].message, "", "no message is an empty one");
        assert_eq!(RegionEvidence::try_from(&wire).unwrap(), evidence);
    }

    #[test]
    fn unknown_names_are_refused_with_the_field_named() {
        let wire =
            pb::RegionEvidence { region: "eu".into(), verdict: "sideways".into(), ..Default::default() };
        let err = RegionEvidence::try_from(&wire).unwrap_err();
        assert_eq!(err.to_string(), "RegionEvidence: field verdict is invalid: unknown verdict \"sideways\"");
        let wire =
            pb::ProbeEvidence { verdict: "down".into(), reason: "gremlins".into(), ..Default::default() };
        let err = ProbeEvidence::try_from(&wire).unwrap_err();
        assert_eq!(err.field(), "reason");
        let wire =
            pb::ProbeEvidence { verdict: "up".into(), status_code: Some(70_000), ..Default::default() };
        assert_eq!(ProbeEvidence::try_from(&wire).unwrap_err().field(), "status_code");
        assert_eq!(parse_state("T", "state", "down").unwrap(), State::Down);
        assert_eq!(parse_state("T", "state", "sinking").unwrap_err().field(), "state");
        for state in STATES {
            assert_eq!(parse_state("T", "state", state.as_str()).unwrap(), state);
        }
    }

    #[test]
    fn rules_round_trip() {
        let rules = Rules { quorum: 2, recovery_rounds: 3, min_failure: Duration::from_secs(60) };
        let wire = rules_to_pb(&rules, 3, true);
        assert_eq!(
            wire,
            pb::AgreementRules {
                regions: 3,
                quorum: 2,
                quorum_set: true,
                recovery_rounds: 3,
                min_failure_ms: 60_000
            }
        );
        assert_eq!(Rules::from(&wire), rules);
    }
}
