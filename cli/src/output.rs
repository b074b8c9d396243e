//! How objects are shown: aligned tables and detail views for humans, and
//! JSON for scripts (the [`crate::model`] types serialized as they are).
//! [`incidents`]: incidents with their evidence, endpoint states, alert
//! deliveries; [`history`]: an endpoint's uptime, day bars and latency.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::error::Error;
use crate::model::{
    CheckReport, ClusterStatus, Endpoint, Expectations, Labels, Maintenance, Probe, Rebalance, Region,
    ShardList, ShardView, Webhook,
};
use crate::table::Table;
use crate::timefmt::{format_ms, format_rfc3339_ms};

pub mod history;
pub mod incidents;

/// Writes `value` as pretty JSON and a newline.
pub fn write_json<T: Serialize + ?Sized>(out: &mut dyn Write, value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::BadReply { reason: format!("cannot encode JSON: {e}") })?;
    writeln!(out, "{text}")?;
    Ok(())
}

/// Endpoints as a table: one row each.
pub fn endpoints_table(endpoints: &[Endpoint]) -> Table {
    let mut table =
        Table::new(["ID", "NAME", "KIND", "URL", "INTERVAL", "TIMEOUT", "REGIONS", "FLAGS", "LABELS"]);
    for e in endpoints {
        let s = &e.spec;
        let mut flags = Vec::new();
        if s.paused {
            flags.push("paused");
        }
        if s.public {
            flags.push("public");
        }
        if s.allow_private {
            flags.push("allow-private");
        }
        table.row([
            e.id.to_string(),
            s.name.clone(),
            e.kind.to_string(),
            s.url.clone(),
            format_ms(s.interval_ms),
            format_ms(s.timeout_ms),
            list_or(s.regions.iter(), "all"),
            list_or(flags.iter(), "-"),
            labels_text(&s.labels),
        ]);
    }
    table
}

/// One endpoint in detail, `key: value` lines.
pub fn endpoint_details(e: &Endpoint) -> String {
    let s = &e.spec;
    let mut lines: Vec<(&str, String)> = vec![
        ("id", e.id.to_string()),
        ("name", s.name.clone()),
        ("kind", e.kind.to_string()),
        ("url", s.url.clone()),
        ("interval", format_ms(s.interval_ms)),
        ("timeout", format_ms(s.timeout_ms)),
        ("regions", list_or(s.regions.iter(), "all")),
        ("public", yes_no(s.public)),
        ("allow private", yes_no(s.allow_private)),
        ("paused", yes_no(s.paused)),
        ("retries", s.retries.to_string()),
        ("quorum", s.quorum.map_or_else(|| "majority".to_string(), |q| q.to_string())),
        ("recover after", format!("{} rounds", s.recovery_rounds)),
        ("min failure", s.min_failure.map_or_else(|| "none".to_string(), crate::timefmt::format_duration)),
        ("labels", labels_text(&s.labels)),
    ];
    lines.extend(expectation_lines(&s.expect));
    lines.push(("created", format_rfc3339_ms(e.created_at_unix_ms)));
    lines.push(("updated", format_rfc3339_ms(e.updated_at_unix_ms)));
    key_values(&lines)
}

/// Expectations as `expect …` lines; none when only the defaults apply.
fn expectation_lines(expect: &Expectations) -> Vec<(&'static str, String)> {
    let mut lines = vec![("expect status", expect.status.clone().unwrap_or_else(|| "200-399".into()))];
    for text in &expect.body_contains {
        lines.push(("expect body", format!("{text:?}")));
    }
    for text in &expect.body_matches {
        lines.push(("expect regex", format!("{text:?}")));
    }
    for text in &expect.json {
        lines.push(("expect json", text.clone()));
    }
    for text in &expect.headers {
        lines.push(("expect header", text.clone()));
    }
    if let Some(limit) = expect.max_total {
        lines.push(("max total", crate::timefmt::format_duration(limit)));
    }
    if let Some(limit) = expect.max_ttfb {
        lines.push(("max ttfb", crate::timefmt::format_duration(limit)));
    }
    if let Some(days) = expect.min_cert_days {
        lines.push(("min cert days", days.to_string()));
    }
    lines
}

/// Regions as a table.
pub fn regions_table(regions: &[Region]) -> Table {
    let mut table = Table::new(["NAME", "CREATED"]);
    for r in regions {
        table.row([r.name.clone(), format_rfc3339_ms(r.created_at_unix_ms)]);
    }
    table
}

/// Probes as a table: one row each. Times are RFC 3339; `-` for never.
pub fn probes_table(probes: &[Probe]) -> Table {
    let mut table = Table::new([
        "ID",
        "NAME",
        "REGION",
        "WEIGHT",
        "STATE",
        "VERSION",
        "CONNECTED SINCE",
        "ENDPOINTS",
        "CHECKS/S",
        "LAG P99",
        "RESULTS",
        "LAST SEEN",
    ]);
    let at = |ms: i64| if ms > 0 { format_rfc3339_ms(ms) } else { "-".to_string() };
    for p in probes {
        let state = match (p.connected, p.drained) {
            (true, false) => "connected",
            (true, true) => "connected, drained",
            (false, false) => "disconnected",
            (false, true) => "disconnected, drained",
        };
        let version = if p.version.is_empty() { "-".to_string() } else { p.version.clone() };
        table.row([
            p.id.to_string(),
            p.name.clone(),
            p.region.clone(),
            p.weight.to_string(),
            state.to_string(),
            version,
            at(p.connected_since_unix_ms),
            p.endpoints.to_string(),
            format!("{:.1}", p.checks_per_second),
            format!("{:.1}ms", p.scheduling_lag_p99_ms),
            p.results_recorded.to_string(),
            at(p.last_seen_unix_ms),
        ]);
    }
    table
}

/// `shard list`: one row per endpoint, region and probe, then the endpoint
/// regions nobody checks.
pub fn shards_text(list: &ShardList) -> String {
    let mut table = Table::new(["ENDPOINT", "REGION", "PROBE", "PINNED", "CONNECTED"]);
    for s in &list.shards {
        table.row([
            format!("{} ({})", s.endpoint, s.endpoint_id),
            s.region.clone(),
            s.probe.clone(),
            yes_no(s.pinned),
            yes_no(s.connected),
        ]);
    }
    let mut out =
        if table.is_empty() { "no endpoint is assigned to a probe\n".to_string() } else { table.render() };
    for u in &list.uncovered {
        out.push_str(&format!(
            "uncovered: {} ({}) in {}: no live probe checks it there\n",
            u.endpoint, u.endpoint_id, u.region
        ));
    }
    if !list.uncovered_regions.is_empty() {
        out.push_str(&format!("regions without a live probe: {}\n", list.uncovered_regions.join(", ")));
    }
    out
}

/// `shard show`: the endpoint, then one row per region and probe.
pub fn shard_view_text(view: &ShardView) -> String {
    let mut out = format!(
        "endpoint {} (id {}), assignment version {}\n",
        view.endpoint, view.endpoint_id, view.assignment_version
    );
    if view.paused {
        out.push_str("paused: no probe checks it (resume it with: vantagectl endpoint resume ");
        out.push_str(&view.endpoint);
        out.push_str(")\n");
        return out;
    }
    let mut table = Table::new(["REGION", "PROBE", "PINNED", "CONNECTED"]);
    for a in &view.assignments {
        table.row([a.region.clone(), a.probe.clone(), yes_no(a.pinned), yes_no(a.connected)]);
    }
    for region in &view.uncovered_regions {
        table.row([region.clone(), "-".into(), "-".into(), "uncovered: no live probe".into()]);
    }
    out.push_str(&table.render());
    for pin in &view.pins {
        match &pin.problem {
            None => out.push_str(&format!("pinned in {} to {}\n", pin.region, pin.probe)),
            Some(problem) => out.push_str(&format!(
                "pinned in {} to {}, not honoured now: {problem}; hashing chose instead\n",
                pin.region, pin.probe
            )),
        }
    }
    out
}

/// `shard rebalance`: what moved (or would), per region, then each move.
pub fn rebalance_text(r: &Rebalance) -> String {
    let verb = if r.dry_run { "would move" } else { "moved" };
    let mut out = String::new();
    if !r.expired_probes.is_empty() {
        let ended = if r.dry_run { "would end" } else { "ended" };
        out.push_str(&format!("{ended} the grace period of: {}\n", r.expired_probes.join(", ")));
    }
    if r.moves.is_empty() {
        out.push_str(if r.dry_run { "nothing would move\n" } else { "nothing moved\n" });
        return out;
    }
    for (region, n) in &r.moved {
        out.push_str(&format!("{region}: {verb} {n} endpoint(s)\n"));
    }
    let mut table = Table::new(["ENDPOINT", "REGION", "FROM", "TO"]);
    for m in &r.moves {
        table.row([
            format!("{} ({})", m.endpoint, m.endpoint_id),
            m.region.clone(),
            list_or(m.from.iter(), "-"),
            list_or(m.to.iter(), "uncovered"),
        ]);
    }
    out.push_str(&table.render());
    if !r.dry_run {
        out.push_str(&format!("assignment version {}\n", r.assignment_version));
    }
    out
}

/// `check`: one row per region, phases in milliseconds, then a summary.
pub fn check_text(report: &CheckReport) -> String {
    let mut table =
        Table::new(["REGION", "PROBE", "RESULT", "DNS", "CONNECT", "TLS", "TTFB", "TRANSFER", "TOTAL"]);
    for r in &report.regions {
        let result = match (r.outcome.as_str(), &r.error_kind, r.status_code) {
            ("ok", _, Some(code)) => format!("ok ({code})"),
            ("ok", _, None) => "ok".to_string(),
            ("failed", Some(kind), _) => format!("{kind}: {}", r.message),
            ("failed", None, _) => format!("failed: {}", r.message),
            ("timed_out", ..) => "no answer in time".to_string(),
            (other, ..) => other.replace('_', " "),
        };
        let ms = |f: fn(&crate::model::PhasesMs) -> f64| {
            r.phases_ms.as_ref().map_or("-".to_string(), |p| format!("{:.1}", f(p)))
        };
        table.row([
            r.region.clone(),
            r.probe.clone().unwrap_or_else(|| "-".into()),
            result,
            ms(|p| p.dns),
            ms(|p| p.connect),
            ms(|p| p.tls),
            ms(|p| p.ttfb),
            ms(|p| p.transfer),
            ms(|p| p.total),
        ]);
    }
    let passed = report.regions.iter().filter(|r| r.is_ok()).count();
    format!(
        "{}{passed} of {} region(s) ok for {} (phases in ms)\n",
        table.render(),
        report.regions.len(),
        report.endpoint
    )
}

/// Webhooks as a table (secrets are never readable; only whether one is
/// set).
pub fn webhooks_table(webhooks: &[Webhook]) -> Table {
    let mut table = Table::new(["ID", "NAME", "URL", "FORMAT", "EVENTS", "LABELS", "SECRET"]);
    for w in webhooks {
        table.row([
            w.id.to_string(),
            w.spec.name.clone(),
            w.spec.url.clone(),
            w.spec.format.to_string(),
            list_or(w.spec.events.iter(), "all"),
            labels_text(&w.spec.labels),
            if w.secret_set { "set" } else { "missing" }.to_string(),
        ]);
    }
    table
}

/// Maintenance windows as a table; `names` maps endpoint ids to names.
pub fn maintenance_table(windows: &[Maintenance], names: &BTreeMap<u64, String>) -> Table {
    let mut table = Table::new(["ID", "START", "END", "COVERS", "REASON"]);
    for w in windows {
        table.row([
            w.id.to_string(),
            format_rfc3339_ms(w.spec.starts_at.as_i64()),
            format_rfc3339_ms(w.spec.ends_at.as_i64()),
            coverage(&w.spec.endpoints.iter().map(|id| id.0).collect::<Vec<_>>(), &w.spec.labels, names),
            w.spec.reason.clone(),
        ]);
    }
    table
}

/// What a window covers: endpoint names, labels, or everything.
fn coverage(endpoints: &[u64], labels: &Labels, names: &BTreeMap<u64, String>) -> String {
    if endpoints.is_empty() && labels.is_empty() {
        return "every endpoint".into();
    }
    let mut parts: Vec<String> =
        endpoints.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| format!("#{id}"))).collect();
    parts.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    parts.join(",")
}

/// The cluster status: a summary line and one row per member.
pub fn cluster_status_text(status: &ClusterStatus) -> String {
    let leader = status.leader_id.map_or_else(|| "none (no quorum?)".to_string(), |id| id.to_string());
    let mut text = format!("leader: {leader}  term: {}  answered by: node {}\n", status.term, status.node_id);
    let mut table = Table::new(["ID", "ROLE", "API", "RAFT", "REACHABLE", "APPLIED"]);
    for m in &status.members {
        table.row([
            m.id.to_string(),
            m.role.clone(),
            m.api_addr.clone(),
            m.raft_addr.clone(),
            yes_no(m.reachable),
            m.last_applied.to_string(),
        ]);
    }
    text.push_str(&table.render());
    text
}

/// `k=v,k2=v2`, or `-` for none.
pub fn labels_text(labels: &Labels) -> String {
    list_or(labels.iter().map(|(k, v)| format!("{k}={v}")), "-")
}

fn list_or<I, S>(items: I, empty: &str) -> String
where
    I: Iterator<Item = S>,
    S: ToString,
{
    let items: Vec<String> = items.map(|s| s.to_string()).collect();
    if items.is_empty() {
        empty.to_string()
    } else {
        items.join(",")
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

fn key_values(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines.iter().map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:"), width = width)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CheckKind;
    use crate::model::{ClusterMember, EndpointSpec, MaintenanceSpec};
    use vantage_core::ids::EndpointId;
    use vantage_core::time::UnixMillis;

    fn endpoint() -> Endpoint {
        let mut spec = EndpointSpec::new("api", "https://api.example.com/health");
        spec.interval_ms = 30_000;
        spec.timeout_ms = 5_000;
        spec.public = true;
        spec.labels.insert("team".into(), "core".into());
        Endpoint { id: 3, kind: CheckKind::Https, spec, created_at_unix_ms: 0, updated_at_unix_ms: 1_000 }
    }

    #[test]
    fn endpoint_rows_show_every_setting() {
        assert_eq!(
            endpoints_table(&[endpoint()]).render(),
            "ID  NAME  KIND   URL                             INTERVAL  TIMEOUT  REGIONS  FLAGS   LABELS\n\
             3   api   https  https://api.example.com/health  30s       5s       all      public  team=core\n"
        );
    }

    #[test]
    fn endpoint_json_has_id_name_url_and_the_spec_flat() {
        let json = serde_json::to_value(endpoint()).unwrap();
        assert_eq!(json["id"], 3);
        assert_eq!(json["name"], "api");
        assert_eq!(json["url"], "https://api.example.com/health");
        assert_eq!(json["interval_ms"], 30_000);
        assert_eq!(json["labels"]["team"], "core");
        assert_eq!(json["expect"]["status"], serde_json::Value::Null);
    }

    #[test]
    fn endpoint_details_are_aligned() {
        let text = endpoint_details(&endpoint());
        assert!(text.starts_with("id:            3\nname:          api\n"), "{text}");
        assert!(text.contains("expect status: 200-399\n"), "{text}");
    }

    #[test]
    fn cluster_status_json_has_the_documented_shape() {
        let status = ClusterStatus {
            leader_id: None,
            term: 7,
            node_id: 2,
            members: vec![ClusterMember {
                id: 1,
                api_addr: "127.0.0.1:7400".into(),
                raft_addr: "127.0.0.1:7401".into(),
                role: "follower".into(),
                reachable: false,
                last_applied: 42,
            }],
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"leader_id": null, "term": 7, "node_id": 2, "members": [{
                "id": 1, "api_addr": "127.0.0.1:7400", "raft_addr": "127.0.0.1:7401",
                "role": "follower", "reachable": false, "last_applied": 42}]})
        );
        let text = cluster_status_text(&status);
        assert!(text.starts_with("leader: none (no quorum?)  term: 7  answered by: node 2\n"), "{text}");
        assert!(text.contains("1   follower  127.0.0.1:7400  127.0.0.1:7401  no         42\n"), "{text}");
    }

    #[test]
    fn maintenance_rows_name_what_they_cover() {
        let window = Maintenance {
            id: 1,
            spec: MaintenanceSpec {
                starts_at: UnixMillis(1_796_090_400_000),
                ends_at: UnixMillis(1_796_094_000_000),
                endpoints: [EndpointId(3), EndpointId(9)].into(),
                labels: Labels::new(),
                reason: "db upgrade".into(),
            },
            created_at_unix_ms: 0,
        };
        let names = BTreeMap::from([(3, "api".to_string())]);
        assert_eq!(
            maintenance_table(&[window], &names).render(),
            "ID  START                 END                   COVERS  REASON\n\
             1   2026-12-01T02:00:00Z  2026-12-01T03:00:00Z  api,#9  db upgrade\n"
        );
    }
}
