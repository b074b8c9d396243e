//! Tables and detail views of incidents, endpoint states and alert
//! deliveries. Times are RFC 3339 (UTC), durations compact (`12m30s`, whole
//! seconds); `now` is passed in for "for how long", so these stay pure.
//! Evidence names probes, never their addresses.

use super::{key_values, list_or};
use crate::model::{
    Delivery, DeliveryStatus, EndpointStatus, Incident, IncidentSummary, RegionVerdict, Verdict,
};
use crate::table::Table;
use crate::timefmt::{format_ms, format_rfc3339_ms};

/// `incident list`: one row per incident.
pub fn incidents_table(incidents: &[IncidentSummary], now_ms: i64) -> Table {
    let mut table =
        Table::new(["ID", "ENDPOINT", "KIND", "STATUS", "OPENED", "RESOLVED", "DURATION", "REGIONS DOWN"]);
    for i in incidents {
        table.row([
            i.id.to_string(),
            endpoint_label(i.endpoint.as_deref(), i.endpoint_id),
            i.kind.clone(),
            if i.open { "open" } else { "resolved" }.to_string(),
            format_rfc3339_ms(i.opened_at_unix_ms),
            i.resolved_at_unix_ms.map_or_else(|| "-".to_string(), format_rfc3339_ms),
            duration(i.resolved_at_unix_ms.unwrap_or(now_ms) - i.opened_at_unix_ms),
            list_or(i.regions_down.iter(), "-"),
        ]);
    }
    table
}

/// `incident show`: the incident, then the evidence that opened it and the
/// evidence that resolved it, each as a table of probes.
pub fn incident_text(incident: &Incident, now_ms: i64) -> String {
    let i = &incident.summary;
    let status = match i.resolved_at_unix_ms {
        None => format!("open for {}", duration(now_ms - i.opened_at_unix_ms)),
        Some(at) => format!("resolved after {}", duration(at - i.opened_at_unix_ms)),
    };
    let mut out = key_values(&[
        ("id", i.id.to_string()),
        (
            "endpoint",
            format!("{} (id {})", endpoint_label(i.endpoint.as_deref(), i.endpoint_id), i.endpoint_id),
        ),
        ("kind", i.kind.clone()),
        ("status", status),
        ("opened", format_rfc3339_ms(i.opened_at_unix_ms)),
        ("resolved", i.resolved_at_unix_ms.map_or_else(|| "-".to_string(), format_rfc3339_ms)),
        ("regions down", list_or(i.regions_down.iter(), "none")),
    ]);
    out.push_str(&evidence_section("when it opened", &incident.opened_evidence));
    if i.resolved_at_unix_ms.is_some() {
        out.push_str(&evidence_section("when it resolved", &incident.resolved_evidence));
    }
    out
}

/// `endpoint status NAME`: state, rules, open incidents, then the verdicts
/// recorded with the last change of state.
pub fn endpoint_status_text(status: &EndpointStatus, now_ms: i64) -> String {
    let state = match status.since_unix_ms {
        None => format!("{} (never decided)", status.state.as_str()),
        Some(since) => format!(
            "{} since {} ({} ago)",
            status.state.as_str(),
            format_rfc3339_ms(since),
            duration(now_ms - since)
        ),
    };
    let r = &status.rules;
    let quorum = format!(
        "{} of {} region(s) down for an outage ({})",
        r.quorum,
        r.regions,
        if r.quorum_set { "set on the endpoint" } else { "default: a majority, at least 2" }
    );
    let min_failure =
        if r.min_failure_ms == 0 { "none: opens at once".to_string() } else { format_ms(r.min_failure_ms) };
    let open: Vec<String> = status
        .open_incidents
        .iter()
        .map(|i| format!("#{} {} since {}", i.id, i.kind, format_rfc3339_ms(i.opened_at_unix_ms)))
        .collect();
    let mut out = key_values(&[
        ("endpoint", format!("{} (id {})", status.endpoint, status.endpoint_id)),
        ("state", state),
        ("quorum", quorum),
        ("recovery", format!("after {} round(s) below the quorum", r.recovery_rounds)),
        ("min failure", min_failure),
        ("open incidents", if open.is_empty() { "none".to_string() } else { open.join("; ") }),
    ]);
    match status.since_unix_ms {
        Some(since) if !status.regions.is_empty() => out.push_str(&evidence_section(
            &format!("verdicts at the last change ({})", format_rfc3339_ms(since)),
            &status.regions,
        )),
        _ => out.push_str("\nno verdicts recorded yet\n"),
    }
    out
}

/// `endpoint status`: one row per endpoint.
pub fn endpoint_states_table(statuses: &[EndpointStatus], now_ms: i64) -> Table {
    let mut table = Table::new(["ID", "ENDPOINT", "STATE", "SINCE", "FOR", "QUORUM", "DOWN IN", "OPEN"]);
    for s in statuses {
        let down = s.regions.iter().filter(|r| matches!(r.verdict.0, Verdict::Down(_))).map(|r| &r.region);
        let open = s.open_incidents.iter().map(|i| format!("#{} {}", i.id, i.kind));
        table.row([
            s.endpoint_id.to_string(),
            s.endpoint.clone(),
            s.state.as_str().to_string(),
            s.since_unix_ms.map_or_else(|| "-".to_string(), format_rfc3339_ms),
            s.since_unix_ms.map_or_else(|| "-".to_string(), |since| duration(now_ms - since)),
            format!("{}/{}", s.rules.quorum, s.rules.regions),
            list_or(down, "-"),
            list_or(open, "-"),
        ]);
    }
    table
}

/// `alert list`: one row per delivery.
pub fn deliveries_table(deliveries: &[Delivery]) -> Table {
    let mut table = Table::new([
        "ID",
        "WEBHOOK",
        "ENDPOINT",
        "EVENT",
        "INCIDENT",
        "STATUS",
        "ATTEMPTS",
        "CREATED",
        "NEXT/DONE AT",
        "LAST ERROR",
    ]);
    for d in deliveries {
        let when = match d.status {
            DeliveryStatus::Pending => d.next_attempt_at_unix_ms,
            DeliveryStatus::Delivered | DeliveryStatus::Failed => d.finished_at_unix_ms,
        };
        table.row([
            d.id.to_string(),
            d.webhook.clone().unwrap_or_else(|| format!("#{}", d.webhook_id)),
            endpoint_label(d.endpoint.as_deref(), d.endpoint_id),
            d.event.as_str().to_string(),
            d.incident_id.to_string(),
            d.status.as_str().to_string(),
            d.attempts.to_string(),
            format_rfc3339_ms(d.created_at_unix_ms),
            when.map_or_else(|| "-".to_string(), format_rfc3339_ms),
            d.last_error.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    table
}

/// A verdict in words: `up`, `down (timeout)`, `unknown (stale)`.
pub fn verdict_text(verdict: Verdict) -> String {
    let (name, reason) = vantage_proto::incidents::verdict_to_wire(verdict);
    if reason.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({reason})")
    }
}

/// A blank line, `TITLE: eu down (timeout), us up`, and one row per probe.
fn evidence_section(title: &str, regions: &[RegionVerdict]) -> String {
    if regions.is_empty() {
        return format!("\n{title}: no evidence recorded\n");
    }
    let summary: Vec<String> =
        regions.iter().map(|r| format!("{} {}", r.region, verdict_text(r.verdict.0))).collect();
    format!("\n{title}: {}\n{}", summary.join(", "), evidence_table(regions).render())
}

/// REGION VERDICT PROBE STATUS MS STARTED MESSAGE: one row per probe (a
/// region without probes gets one row with its own verdict).
pub fn evidence_table(regions: &[RegionVerdict]) -> Table {
    let mut table = Table::new(["REGION", "VERDICT", "PROBE", "STATUS", "MS", "STARTED", "MESSAGE"]);
    let dash = || "-".to_string();
    for r in regions {
        if r.probes.is_empty() {
            table.row([r.region.clone(), verdict_text(r.verdict.0), dash(), dash(), dash(), dash(), dash()]);
        }
        for p in &r.probes {
            table.row([
                r.region.clone(),
                verdict_text(p.verdict.0),
                p.probe.clone().unwrap_or_else(|| format!("#{}", p.probe_id)),
                p.status_code.map_or_else(dash, |c| c.to_string()),
                p.started_at_unix_us.map_or_else(dash, |_| format!("{:.1}", p.total_us as f64 / 1000.0)),
                p.started_at_unix_us.map_or_else(dash, |us| format_rfc3339_ms(us.div_euclid(1000))),
                p.message.clone().unwrap_or_else(dash),
            ]);
        }
    }
    table
}

/// An endpoint's name, or `#ID` when it has been removed.
fn endpoint_label(name: Option<&str>, id: u64) -> String {
    name.map_or_else(|| format!("#{id}"), str::to_string)
}

/// A span in whole seconds, compact (`12m30s`); negative spans (clock
/// skew) are `0s`.
fn duration(ms: i64) -> String {
    let seconds = u64::try_from(ms).unwrap_or(0) / 1000;
    format_ms(seconds * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgreementRules, AlertEvent, ProbeVerdict, State, VerdictJson};
    use vantage_core::agreement::UnknownReason;
    use vantage_core::result::ErrorKind;

    const T: i64 = 1_796_090_400_000; // 2026-12-01T02:00:00Z

    fn probe(id: u64, name: Option<&str>, verdict: Verdict) -> ProbeVerdict {
        ProbeVerdict {
            probe_id: id,
            probe: name.map(str::to_string),
            verdict: VerdictJson(verdict),
            message: matches!(verdict, Verdict::Down(_)).then(|| "no answer within 5s".to_string()),
            status_code: matches!(verdict, Verdict::Up).then_some(200),
            total_us: 5_000_400,
            ttfb_us: 0,
            started_at_unix_us: Some(T * 1_000 - 4_000_000),
        }
    }

    fn evidence() -> Vec<RegionVerdict> {
        let down = Verdict::Down(ErrorKind::Timeout);
        vec![
            RegionVerdict {
                region: "eu".into(),
                verdict: VerdictJson(down),
                probes: vec![probe(1, Some("eu-1"), down)],
            },
            RegionVerdict {
                region: "us".into(),
                verdict: VerdictJson(Verdict::Up),
                probes: vec![probe(2, None, Verdict::Up)],
            },
            RegionVerdict {
                region: "ap".into(),
                verdict: VerdictJson(Verdict::Unknown(UnknownReason::NoProbe)),
                probes: vec![],
            },
        ]
    }

    fn summary(open: bool) -> IncidentSummary {
        IncidentSummary {
            id: 7,
            endpoint_id: 1,
            endpoint: Some("api".into()),
            kind: "outage".into(),
            open,
            opened_at_unix_ms: T,
            resolved_at_unix_ms: (!open).then_some(T + 750_500),
            regions_down: vec!["eu".into(), "us".into()],
        }
    }

    #[test]
    fn evidence_rows_name_probes_and_say_each_verdict() {
        assert_eq!(
            evidence_table(&evidence()).render(),
            "REGION  VERDICT             PROBE  STATUS  MS      STARTED               MESSAGE\n\
             eu      down (timeout)      eu-1   -       5000.4  2026-12-01T01:59:56Z  no answer within 5s\n\
             us      up                  #2     200     5000.4  2026-12-01T01:59:56Z  -\n\
             ap      unknown (no_probe)  -      -       -       -                     -\n"
        );
    }

    #[test]
    fn incidents_rows_say_open_or_resolved_and_how_long() {
        let now = T + 3_600_000;
        assert_eq!(
            incidents_table(&[summary(true), IncidentSummary { endpoint: None, ..summary(false) }], now).render(),
            "ID  ENDPOINT  KIND    STATUS    OPENED                RESOLVED                  DURATION  REGIONS DOWN\n\
             7   api       outage  open      2026-12-01T02:00:00Z  -                         1h        eu,us\n\
             7   #1        outage  resolved  2026-12-01T02:00:00Z  2026-12-01T02:12:30.500Z  12m30s    eu,us\n"
        );
    }

    #[test]
    fn an_incident_shows_its_fields_then_each_evidence() {
        let incident =
            Incident { summary: summary(false), opened_evidence: evidence(), resolved_evidence: Vec::new() };
        let text = incident_text(&incident, T);
        assert!(
            text.starts_with("id:           7\nendpoint:     api (id 1)\nkind:         outage\n"),
            "{text}"
        );
        assert!(text.contains("status:       resolved after 12m30s\n"), "{text}");
        assert!(
            text.contains("\nwhen it opened: eu down (timeout), us up, ap unknown (no_probe)\nREGION  "),
            "{text}"
        );
        assert!(text.ends_with("\nwhen it resolved: no evidence recorded\n"), "{text}");
        let open =
            Incident { summary: summary(true), opened_evidence: evidence(), resolved_evidence: Vec::new() };
        let text = incident_text(&open, T + 90_000);
        assert!(text.contains("status:       open for 1m30s\n"), "{text}");
        assert!(!text.contains("when it resolved"), "{text}");
    }

    fn status(since: Option<i64>) -> EndpointStatus {
        EndpointStatus {
            endpoint_id: 1,
            endpoint: "api".into(),
            state: if since.is_some() { State::Down } else { State::Unknown },
            since_unix_ms: since,
            rules: AgreementRules {
                regions: 3,
                quorum: 2,
                quorum_set: false,
                recovery_rounds: 2,
                min_failure_ms: 0,
            },
            regions: if since.is_some() { evidence() } else { Vec::new() },
            open_incidents: if since.is_some() { vec![summary(true)] } else { Vec::new() },
        }
    }

    #[test]
    fn endpoint_status_says_state_rules_and_verdicts() {
        let text = endpoint_status_text(&status(Some(T)), T + 120_000);
        assert!(
            text.starts_with(
                "endpoint:       api (id 1)\nstate:          down since 2026-12-01T02:00:00Z (2m ago)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "quorum:         2 of 3 region(s) down for an outage (default: a majority, at least 2)\n"
            ),
            "{text}"
        );
        assert!(text.contains("open incidents: #7 outage since 2026-12-01T02:00:00Z\n"), "{text}");
        assert!(
            text.contains("\nverdicts at the last change (2026-12-01T02:00:00Z): eu down (timeout), us up"),
            "{text}"
        );
        let never = endpoint_status_text(&status(None), T);
        assert!(never.contains("state:          unknown (never decided)\n"), "{never}");
        assert!(never.ends_with("\nno verdicts recorded yet\n"), "{never}");
        assert_eq!(
            endpoint_states_table(
                &[status(Some(T)), EndpointStatus { endpoint_id: 2, endpoint: "db".into(), ..status(None) }],
                T + 60_000
            )
            .render(),
            "ID  ENDPOINT  STATE    SINCE                 FOR  QUORUM  DOWN IN  OPEN\n\
             1   api       down     2026-12-01T02:00:00Z  1m   2/3     eu       #7 outage\n\
             2   db        unknown  -                     -    2/3     -        -\n"
        );
    }

    #[test]
    fn delivery_rows_show_attempts_errors_and_when() {
        let delivery = Delivery {
            id: 3,
            message_id: "msg_vantage_7_3".into(),
            webhook_id: 1,
            webhook: Some("oncall".into()),
            endpoint_id: 1,
            endpoint: Some("api".into()),
            incident_id: 7,
            event: AlertEvent::OutageOpened,
            status: DeliveryStatus::Pending,
            attempts: 2,
            last_error: Some("HTTP 500".into()),
            created_at_unix_ms: T,
            next_attempt_at_unix_ms: Some(T + 4_000),
            finished_at_unix_ms: None,
        };
        let delivered = Delivery {
            id: 1,
            webhook: None,
            status: DeliveryStatus::Delivered,
            attempts: 1,
            last_error: None,
            next_attempt_at_unix_ms: None,
            finished_at_unix_ms: Some(T + 1_000),
            ..delivery.clone()
        };
        assert_eq!(
            deliveries_table(&[delivery, delivered]).render(),
            "ID  WEBHOOK  ENDPOINT  EVENT          INCIDENT  STATUS     ATTEMPTS  CREATED               NEXT/DONE AT          LAST ERROR\n\
             3   oncall   api       outage_opened  7         pending    2         2026-12-01T02:00:00Z  2026-12-01T02:00:04Z  HTTP 500\n\
             1   #1       api       outage_opened  7         delivered  1         2026-12-01T02:00:00Z  2026-12-01T02:00:01Z  -\n"
        );
    }
}
