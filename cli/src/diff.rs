//! The diff between what a document wants ([`Desired`]) and what the mesh
//! has ([`LiveState`]): a pure function from the two (and the time) to an
//! ordered list of changes. `apply` prints the list, then sends it.
//!
//! Objects are matched by name (regions, endpoints, webhooks) and
//! maintenance windows by (start, end, reason). The order is the order of
//! execution: regions are added first (endpoints use them), then endpoints,
//! webhooks and maintenance windows (which name endpoints); removals come
//! last and in reverse, and only with `--prune`.
//!
//! Webhook secrets cannot be read back, so they are never compared: a
//! webhook whose only difference could be its secret shows no change and
//! is left alone (set a new secret with `vantagectl webhook update NAME
//! --secret-file FILE`). A webhook that differs otherwise is updated in
//! place (it keeps its id) and gets the file's secret with the update.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::document::{Desired, DesiredMaintenance, SecretSource};
use crate::model::{Endpoint, EndpointSpec, Expectations, Labels, LiveState, Maintenance, WebhookSpec};
use crate::timefmt::{format_ms, format_rfc3339_ms};

/// What `apply` will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, in execution order.
    pub changes: Vec<Change>,
    /// Objects the file does not mention that stay because `--prune` is
    /// off, e.g. `endpoint old`.
    pub kept: Vec<String>,
    /// Things in the file left alone, with why (e.g. a window that is
    /// already over).
    pub skipped: Vec<String>,
}

/// One change to the mesh.
// A plan holds a handful of changes, so the size of the update variants
// (two specifications) costs nothing worth boxing them for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add a region.
    AddRegion {
        /// Its name.
        name: String,
    },
    /// Add an endpoint.
    AddEndpoint {
        /// Its specification.
        spec: EndpointSpec,
    },
    /// Replace an endpoint's specification.
    UpdateEndpoint {
        /// The endpoint.
        id: u64,
        /// Its specification now.
        from: EndpointSpec,
        /// Its specification after.
        to: EndpointSpec,
    },
    /// Add a webhook.
    AddWebhook {
        /// Its specification.
        spec: WebhookSpec,
        /// Its secret.
        secret: SecretSource,
    },
    /// Update a webhook in place: it keeps its id and gets the file's
    /// specification and secret.
    UpdateWebhook {
        /// The webhook.
        id: u64,
        /// Its specification now.
        from: WebhookSpec,
        /// Its specification after.
        to: WebhookSpec,
        /// The secret sent with the update.
        secret: SecretSource,
    },
    /// Add a maintenance window.
    AddMaintenance {
        /// The window; endpoints by name.
        window: DesiredMaintenance,
    },
    /// Replace a window with the same start, end and reason but other
    /// coverage: remove it, then add the new one.
    ReplaceMaintenance {
        /// The window now.
        id: u64,
        /// It now, endpoints by name.
        from: DesiredMaintenance,
        /// It after.
        to: DesiredMaintenance,
    },
    /// Remove a maintenance window.
    RemoveMaintenance {
        /// The window.
        id: u64,
        /// It, endpoints by name.
        window: DesiredMaintenance,
    },
    /// Remove a webhook.
    RemoveWebhook {
        /// The webhook.
        id: u64,
        /// Its name.
        name: String,
    },
    /// Remove an endpoint.
    RemoveEndpoint {
        /// The endpoint.
        id: u64,
        /// Its name.
        name: String,
    },
    /// Remove a region.
    RemoveRegion {
        /// Its name.
        name: String,
    },
}

impl Change {
    /// `add`, `update`, `replace` or `remove`.
    pub fn op(&self) -> &'static str {
        match self {
            Change::AddRegion { .. }
            | Change::AddEndpoint { .. }
            | Change::AddWebhook { .. }
            | Change::AddMaintenance { .. } => "add",
            Change::UpdateEndpoint { .. } | Change::UpdateWebhook { .. } => "update",
            Change::ReplaceMaintenance { .. } => "replace",
            Change::RemoveMaintenance { .. }
            | Change::RemoveWebhook { .. }
            | Change::RemoveEndpoint { .. }
            | Change::RemoveRegion { .. } => "remove",
        }
    }

    /// `region`, `endpoint`, `webhook` or `maintenance`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::AddRegion { .. } | Change::RemoveRegion { .. } => "region",
            Change::AddEndpoint { .. } | Change::UpdateEndpoint { .. } | Change::RemoveEndpoint { .. } => {
                "endpoint"
            }
            Change::AddWebhook { .. } | Change::UpdateWebhook { .. } | Change::RemoveWebhook { .. } => {
                "webhook"
            }
            Change::AddMaintenance { .. }
            | Change::ReplaceMaintenance { .. }
            | Change::RemoveMaintenance { .. } => "maintenance",
        }
    }

    /// The object's name (a window's is its time range and reason).
    pub fn name(&self) -> String {
        match self {
            Change::AddRegion { name } | Change::RemoveRegion { name } => name.clone(),
            Change::AddEndpoint { spec } => spec.name.clone(),
            Change::UpdateEndpoint { to, .. } => to.name.clone(),
            Change::AddWebhook { spec, .. } => spec.name.clone(),
            Change::UpdateWebhook { to, .. } => to.name.clone(),
            Change::RemoveWebhook { name, .. } | Change::RemoveEndpoint { name, .. } => name.clone(),
            Change::AddMaintenance { window } | Change::RemoveMaintenance { window, .. } => {
                window_name(window)
            }
            Change::ReplaceMaintenance { to, .. } => window_name(to),
        }
    }
}

/// `+ endpoint api (…)`, `~ endpoint api: interval 60s -> 30s`, `- region
/// old`.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddRegion { name } => write!(f, "+ region {name}"),
            Change::AddEndpoint { spec } => {
                write!(f, "+ endpoint {} ({}, every {})", spec.name, spec.url, format_ms(spec.interval_ms))
            }
            Change::UpdateEndpoint { from, to, .. } => {
                write!(f, "~ endpoint {}: {}", to.name, endpoint_changes(from, to).join(", "))
            }
            Change::AddWebhook { spec, .. } => {
                write!(f, "+ webhook {} ({}, {})", spec.name, spec.url, spec.format)
            }
            Change::UpdateWebhook { from, to, .. } => {
                write!(f, "~ webhook {}: {}", to.name, webhook_changes(from, to).join(", "))
            }
            Change::AddMaintenance { window } => write!(f, "+ maintenance {}", window_name(window)),
            Change::ReplaceMaintenance { id, from, to } => write!(
                f,
                "~ maintenance {id} {}: {} (replaced: removed, then added)",
                window_name(to),
                maintenance_changes(from, to).join(", ")
            ),
            Change::RemoveMaintenance { id, window } => {
                write!(f, "- maintenance {id} {}", window_name(window))
            }
            Change::RemoveWebhook { name, .. } => write!(f, "- webhook {name}"),
            Change::RemoveEndpoint { name, .. } => write!(f, "- endpoint {name}"),
            Change::RemoveRegion { name } => write!(f, "- region {name}"),
        }
    }
}

/// Computes what to change so the mesh matches `desired`. `now_ms` decides
/// which windows are already over (the coordinator refuses to add those).
/// Fails when the file refers to something that will not exist.
pub fn plan(desired: &Desired, live: &LiveState, prune: bool, now_ms: i64) -> Result<Plan, String> {
    let mut plan = Plan::default();
    let mut removals = Vec::new();

    // Regions.
    let live_regions: BTreeSet<String> = live.regions.iter().map(|r| r.name.clone()).collect();
    let available_regions = match &desired.regions {
        Some(want) => {
            for name in want.difference(&live_regions) {
                plan.changes.push(Change::AddRegion { name: name.clone() });
            }
            let extra: Vec<&String> = live_regions.difference(want).collect();
            for name in &extra {
                if prune {
                    removals.push(Change::RemoveRegion { name: (*name).clone() });
                } else {
                    plan.kept.push(format!("region {name}"));
                }
            }
            if prune {
                want.clone()
            } else {
                want.union(&live_regions).cloned().collect()
            }
        }
        None => live_regions,
    };

    // Endpoints.
    let live_endpoints: BTreeMap<&str, &Endpoint> =
        live.endpoints.iter().map(|e| (e.spec.name.as_str(), e)).collect();
    let mut removed_endpoints = BTreeSet::new();
    if let Some(want) = &desired.endpoints {
        for wanted in want {
            if let Some(region) = wanted.spec.regions.iter().find(|r| !available_regions.contains(*r)) {
                return Err(format!(
                    "endpoint {}: region {region:?} is neither in the file's regions nor in the mesh (add it under \
                     regions:)",
                    wanted.spec.name
                ));
            }
            match live_endpoints.get(wanted.spec.name.as_str()) {
                Some(current) => {
                    let mut to = wanted.spec.clone();
                    if !wanted.paused_given {
                        to.paused = current.spec.paused;
                    }
                    if to != current.spec {
                        plan.changes.push(Change::UpdateEndpoint {
                            id: current.id,
                            from: current.spec.clone(),
                            to,
                        });
                    }
                }
                None => plan.changes.push(Change::AddEndpoint { spec: wanted.spec.clone() }),
            }
        }
        let wanted_names: BTreeSet<&str> = want.iter().map(|w| w.spec.name.as_str()).collect();
        for endpoint in &live.endpoints {
            if !wanted_names.contains(endpoint.spec.name.as_str()) {
                if prune {
                    removed_endpoints.insert(endpoint.id);
                    removals
                        .push(Change::RemoveEndpoint { id: endpoint.id, name: endpoint.spec.name.clone() });
                } else {
                    plan.kept.push(format!("endpoint {}", endpoint.spec.name));
                }
            }
        }
    }

    // Webhooks.
    if let Some(want) = &desired.webhooks {
        let live_webhooks: BTreeMap<&str, _> =
            live.webhooks.iter().map(|w| (w.spec.name.as_str(), w)).collect();
        for wanted in want {
            match live_webhooks.get(wanted.spec.name.as_str()) {
                // The secret is not compared: it cannot be read back.
                Some(current) if current.spec == wanted.spec => {}
                Some(current) => plan.changes.push(Change::UpdateWebhook {
                    id: current.id,
                    from: current.spec.clone(),
                    to: wanted.spec.clone(),
                    secret: wanted.secret.clone(),
                }),
                None => plan
                    .changes
                    .push(Change::AddWebhook { spec: wanted.spec.clone(), secret: wanted.secret.clone() }),
            }
        }
        let wanted_names: BTreeSet<&str> = want.iter().map(|w| w.spec.name.as_str()).collect();
        for webhook in &live.webhooks {
            if !wanted_names.contains(webhook.spec.name.as_str()) {
                if prune {
                    removals.push(Change::RemoveWebhook { id: webhook.id, name: webhook.spec.name.clone() });
                } else {
                    plan.kept.push(format!("webhook {}", webhook.spec.name));
                }
            }
        }
    }

    // Maintenance windows, endpoints by name on both sides.
    if let Some(want) = &desired.maintenance {
        let id_names: BTreeMap<u64, &str> =
            live.endpoints.iter().map(|e| (e.id, e.spec.name.as_str())).collect();
        let file_names: BTreeSet<&str> =
            desired.endpoints.iter().flatten().map(|e| e.spec.name.as_str()).collect();
        let mut unmatched: Vec<(&Maintenance, DesiredMaintenance)> =
            live.maintenance.iter().map(|m| (m, named_window(m, &id_names))).collect();
        for (i, wanted) in want.iter().enumerate() {
            let wanted =
                resolve_window_refs(i, wanted, &id_names, &file_names, &live_endpoints, &removed_endpoints)?;
            let key = window_key(&wanted);
            match unmatched.iter().position(|(_, current)| window_key(current) == key) {
                Some(at) => {
                    let (current, named) = unmatched.remove(at);
                    if named != wanted {
                        plan.changes.push(Change::ReplaceMaintenance {
                            id: current.id,
                            from: named,
                            to: wanted,
                        });
                    }
                }
                None if wanted.ends_at_unix_ms <= now_ms => {
                    plan.skipped.push(format!("maintenance {} (already over)", window_name(&wanted)));
                }
                None => plan.changes.push(Change::AddMaintenance { window: wanted }),
            }
        }
        for (current, named) in unmatched {
            if prune {
                removals.push(Change::RemoveMaintenance { id: current.id, window: named });
            } else {
                plan.kept.push(format!("maintenance {} {}", current.id, window_name(&named)));
            }
        }
    }

    // Removals last, dependents before what they depend on.
    removals.sort_by_key(|change| match change {
        Change::RemoveMaintenance { .. } => 0,
        Change::RemoveWebhook { .. } => 1,
        Change::RemoveEndpoint { .. } => 2,
        _ => 3,
    });
    plan.changes.extend(removals);
    Ok(plan)
}

/// A live window with its endpoints named (`#ID` when the id is unknown).
fn named_window(window: &Maintenance, id_names: &BTreeMap<u64, &str>) -> DesiredMaintenance {
    DesiredMaintenance {
        starts_at_unix_ms: window.spec.starts_at.as_i64(),
        ends_at_unix_ms: window.spec.ends_at.as_i64(),
        endpoints: window
            .spec
            .endpoints
            .iter()
            .map(|id| id_names.get(&id.0).map_or_else(|| format!("#{id}"), |name| (*name).to_string()))
            .collect(),
        labels: window.spec.labels.clone(),
        reason: window.spec.reason.clone(),
    }
}

/// Turns the file's endpoint references (names, or ids as digits) into
/// names, checking each will exist.
fn resolve_window_refs(
    index: usize,
    window: &DesiredMaintenance,
    id_names: &BTreeMap<u64, &str>,
    file_names: &BTreeSet<&str>,
    live_endpoints: &BTreeMap<&str, &Endpoint>,
    removed: &BTreeSet<u64>,
) -> Result<DesiredMaintenance, String> {
    let mut names = BTreeSet::new();
    for reference in &window.endpoints {
        let name = match reference.parse::<u64>() {
            Ok(id) => match id_names.get(&id) {
                Some(name) if !removed.contains(&id) => (*name).to_string(),
                _ => return Err(format!("maintenance[{index}]: no endpoint has id {id}")),
            },
            Err(_) => reference.clone(),
        };
        let exists = file_names.contains(name.as_str())
            || live_endpoints.get(name.as_str()).is_some_and(|e| !removed.contains(&e.id));
        if !exists {
            return Err(format!(
                "maintenance[{index}]: endpoint {name:?} is neither in the file nor in the mesh"
            ));
        }
        names.insert(name);
    }
    Ok(DesiredMaintenance { endpoints: names, ..window.clone() })
}

fn window_key(window: &DesiredMaintenance) -> (i64, i64, &str) {
    (window.starts_at_unix_ms, window.ends_at_unix_ms, window.reason.as_str())
}

fn window_name(window: &DesiredMaintenance) -> String {
    let mut name = format!(
        "{}..{}",
        format_rfc3339_ms(window.starts_at_unix_ms),
        format_rfc3339_ms(window.ends_at_unix_ms)
    );
    if !window.reason.is_empty() {
        name.push_str(&format!(" {:?}", window.reason));
    }
    name
}

/// `field old -> new` for each field that differs.
pub fn endpoint_changes(from: &EndpointSpec, to: &EndpointSpec) -> Vec<String> {
    let mut changes = Vec::new();
    let mut field = |name: &str, old: String, new: String| {
        if old != new {
            changes.push(format!("{name} {old} -> {new}"));
        }
    };
    field("url", from.url.clone(), to.url.clone());
    field("interval", format_ms(from.interval_ms), format_ms(to.interval_ms));
    field("timeout", format_ms(from.timeout_ms), format_ms(to.timeout_ms));
    field("regions", set_text(&from.regions, "all"), set_text(&to.regions, "all"));
    field("public", from.public.to_string(), to.public.to_string());
    field("allow_private", from.allow_private.to_string(), to.allow_private.to_string());
    field("labels", labels_text(&from.labels), labels_text(&to.labels));
    field("paused", from.paused.to_string(), to.paused.to_string());
    field("retries", from.retries.to_string(), to.retries.to_string());
    let quorum = |q: Option<u32>| q.map_or_else(|| "majority".to_string(), |q| q.to_string());
    field("quorum", quorum(from.quorum), quorum(to.quorum));
    field("recovery_rounds", from.recovery_rounds.to_string(), to.recovery_rounds.to_string());
    let at_once =
        |d: Option<std::time::Duration>| d.map_or_else(|| "none".into(), crate::timefmt::format_duration);
    field("min_failure", at_once(from.min_failure), at_once(to.min_failure));
    expect_changes(&from.expect, &to.expect, &mut field);
    changes
}

fn expect_changes(from: &Expectations, to: &Expectations, field: &mut impl FnMut(&str, String, String)) {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "default".into());
    let opt_ms =
        |v: Option<std::time::Duration>| v.map_or_else(|| "none".into(), crate::timefmt::format_duration);
    field("expect.status", opt(&from.status), opt(&to.status));
    field("expect.body_contains", list_text(&from.body_contains), list_text(&to.body_contains));
    field("expect.body_matches", list_text(&from.body_matches), list_text(&to.body_matches));
    field("expect.json", list_text(&from.json), list_text(&to.json));
    field("expect.headers", list_text(&from.headers), list_text(&to.headers));
    field("expect.max_total", opt_ms(from.max_total), opt_ms(to.max_total));
    field("expect.max_ttfb", opt_ms(from.max_ttfb), opt_ms(to.max_ttfb));
    let days = |v: Option<i64>| v.map_or_else(|| "none".into(), |d| d.to_string());
    field("expect.min_cert_days", days(from.min_cert_days), days(to.min_cert_days));
}

/// `field old -> new` for each field that differs (the secret, which
/// cannot be read back, is not among them).
pub fn webhook_changes(from: &WebhookSpec, to: &WebhookSpec) -> Vec<String> {
    let mut changes = Vec::new();
    let mut field = |name: &str, old: String, new: String| {
        if old != new {
            changes.push(format!("{name} {old} -> {new}"));
        }
    };
    field("url", from.url.clone(), to.url.clone());
    field("format", from.format.to_string(), to.format.to_string());
    field("events", set_text(&from.events, "all"), set_text(&to.events, "all"));
    field("labels", labels_text(&from.labels), labels_text(&to.labels));
    field("allow_private", from.allow_private.to_string(), to.allow_private.to_string());
    changes
}

fn maintenance_changes(from: &DesiredMaintenance, to: &DesiredMaintenance) -> Vec<String> {
    let mut changes = Vec::new();
    if from.endpoints != to.endpoints {
        changes.push(format!(
            "endpoints {} -> {}",
            set_text(&from.endpoints, "[]"),
            set_text(&to.endpoints, "[]")
        ));
    }
    if from.labels != to.labels {
        changes.push(format!("labels {} -> {}", labels_text(&from.labels), labels_text(&to.labels)));
    }
    changes
}

fn set_text<T: std::fmt::Display>(set: &BTreeSet<T>, empty: &str) -> String {
    if set.is_empty() {
        empty.to_string()
    } else {
        format!("[{}]", set.iter().map(T::to_string).collect::<Vec<_>>().join(","))
    }
}

fn list_text(list: &[String]) -> String {
    format!("[{}]", list.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(","))
}

fn labels_text(labels: &Labels) -> String {
    format!("{{{}}}", labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;
    use crate::model::{CheckKind, WebhookFormat};
    use crate::model::{MaintenanceSpec, Region, Webhook};
    use vantage_core::ids::EndpointId;
    use vantage_core::time::UnixMillis;

    const NOW: i64 = 1_790_000_000_000; // 2026-09-21

    fn desired(yaml: &str) -> Desired {
        parse("t.yaml", yaml).unwrap().into_desired("t.yaml").unwrap()
    }

    fn live_endpoint(id: u64, name: &str, f: impl FnOnce(&mut EndpointSpec)) -> Endpoint {
        let mut spec = EndpointSpec::new(name, format!("https://{name}.example.com/"));
        f(&mut spec);
        Endpoint { id, kind: CheckKind::Https, spec, created_at_unix_ms: 0, updated_at_unix_ms: 0 }
    }

    fn live() -> LiveState {
        LiveState {
            regions: vec![
                Region { name: "eu-west".into(), created_at_unix_ms: 0 },
                Region { name: "old".into(), created_at_unix_ms: 0 },
            ],
            endpoints: vec![
                live_endpoint(1, "api", |s| s.regions = ["eu-west".to_string()].into()),
                live_endpoint(2, "legacy", |s| s.paused = true),
            ],
            webhooks: vec![Webhook {
                id: 1,
                spec: WebhookSpec {
                    name: "oncall".into(),
                    url: "https://hooks.example.com/x".into(),
                    secret: Default::default(),
                    format: WebhookFormat::Standard,
                    events: BTreeSet::new(),
                    labels: Labels::new(),
                    allow_private: false,
                },
                secret_set: true,
                created_at_unix_ms: 0,
                generated_secret: None,
            }],
            maintenance: vec![Maintenance {
                id: 4,
                spec: MaintenanceSpec {
                    starts_at: UnixMillis(1_796_090_400_000),
                    ends_at: UnixMillis(1_796_094_000_000),
                    endpoints: [EndpointId(1)].into(),
                    labels: Labels::new(),
                    reason: "db upgrade".into(),
                },
                created_at_unix_ms: 0,
            }],
        }
    }

    /// The file that matches [`live`] exactly, less the `old` region and
    /// the `legacy` endpoint.
    const MATCHING: &str = "\
regions: [eu-west]
endpoints:
  - {name: api, url: \"https://api.example.com/\", regions: [eu-west]}
webhooks:
  - {name: oncall, url: \"https://hooks.example.com/x\", secret_env: ONCALL_SECRET}
maintenance:
  - {start: 2026-12-01T02:00:00Z, end: 2026-12-01T03:00:00Z, reason: db upgrade, endpoints: [api]}
";

    fn lines(plan: &Plan) -> Vec<String> {
        plan.changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn diff_table() {
        // (what, file, prune, expected diff lines, expected kept)
        type Case = (&'static str, String, bool, Vec<&'static str>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            ("matching file, no prune: nothing to do", MATCHING.into(), false, vec![], vec![
                "region old",
                "endpoint legacy",
            ]),
            ("matching file with prune: removals only, last", MATCHING.into(), true, vec![
                "- endpoint legacy",
                "- region old",
            ], vec![]),
            (
                "changed interval and a new endpoint and region",
                MATCHING.replace("regions: [eu-west]\n", "regions: [eu-west, us-east]\n").replace(
                    "regions: [eu-west]}",
                    "regions: [eu-west], interval: 30s}\n  - {name: web, url: \"https://web.example.com/\", regions: [us-east]}",
                ),
                false,
                vec![
                    "+ region us-east",
                    "~ endpoint api: interval 1m -> 30s",
                    "+ endpoint web (https://web.example.com/, every 1m)",
                ],
                vec!["region old", "endpoint legacy"],
            ),
            (
                "omitted sections are not managed, even with prune",
                "endpoints:\n  - {name: api, url: \"https://api.example.com/\", regions: [eu-west]}\n  - {name: legacy, url: \"https://legacy.example.com/\"}\n".into(),
                true,
                vec![],
                vec![],
            ),
            (
                "paused stays as it is unless the file says",
                MATCHING.replace("regions: [eu-west]}", "regions: [eu-west], paused: true}"),
                false,
                vec!["~ endpoint api: paused false -> true"],
                vec!["region old", "endpoint legacy"],
            ),
            (
                "a changed webhook is updated in place",
                MATCHING.replace(
                    "url: \"https://hooks.example.com/x\", secret_env: ONCALL_SECRET}",
                    "url: \"https://hooks.example.com/y\", secret_env: ONCALL_SECRET, format: slack, events: [degraded]}",
                ),
                false,
                vec!["~ webhook oncall: url https://hooks.example.com/x -> https://hooks.example.com/y, format standard -> slack, events all -> [degraded]"],
                vec!["region old", "endpoint legacy"],
            ),
            (
                "a webhook whose only difference could be its secret is left alone",
                MATCHING.replace("secret_env: ONCALL_SECRET}", "secret: \"another-secret-0123\"}"),
                false,
                vec![],
                vec!["region old", "endpoint legacy"],
            ),
            (
                "a window with other endpoints is replaced; an ended one is skipped; labels and expectations diff",
                MATCHING
                    .replace("endpoints: [api]}", "endpoints: []}")
                    .replace("regions: [eu-west]}", "regions: [eu-west], labels: {team: core}, expect: {status: 200}}")
                    + "  - {start: 2020-01-01T00:00:00Z, end: 2020-01-01T01:00:00Z}\n",
                false,
                vec![
                    "~ endpoint api: labels {} -> {team=core}, expect.status default -> 200",
                    "~ maintenance 4 2026-12-01T02:00:00Z..2026-12-01T03:00:00Z \"db upgrade\": endpoints [api] -> [] (replaced: removed, then added)",
                ],
                vec!["region old", "endpoint legacy"],
            ),
            (
                "everything removed with prune, in dependency order",
                "regions: []\nendpoints: []\nwebhooks: []\nmaintenance: []\n".into(),
                true,
                vec![
                    "- maintenance 4 2026-12-01T02:00:00Z..2026-12-01T03:00:00Z \"db upgrade\"",
                    "- webhook oncall",
                    "- endpoint api",
                    "- endpoint legacy",
                    "- region eu-west",
                    "- region old",
                ],
                vec![],
            ),
        ];
        for (what, file, prune, want, kept) in cases {
            let plan = plan(&desired(&file), &live(), prune, NOW).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(lines(&plan), want, "{what}");
            assert_eq!(plan.kept, kept, "{what}");
        }
    }

    #[test]
    fn an_ended_window_not_in_the_mesh_is_skipped_with_a_note() {
        let file =
            "maintenance:\n  - {start: 2020-01-01T00:00:00Z, end: 2020-01-01T01:00:00Z, reason: past}\n";
        let plan = plan(&desired(file), &LiveState::default(), false, NOW).unwrap();
        assert!(plan.changes.is_empty());
        assert_eq!(
            plan.skipped,
            vec!["maintenance 2020-01-01T00:00:00Z..2020-01-01T01:00:00Z \"past\" (already over)"]
        );
    }

    #[test]
    fn references_that_will_not_exist_are_refused() {
        for (file, prune, want) in [
            ("endpoints:\n  - {name: a, url: \"https://a/\", regions: [mars]}\n", false, "endpoint a: region \"mars\""),
            ("regions: []\nendpoints:\n  - {name: a, url: \"https://a/\", regions: [eu-west]}\n", true, "region \"eu-west\""),
            ("maintenance:\n  - {start: 2026-12-01T02:00:00Z, end: 2026-12-01T03:00:00Z, endpoints: [nope]}\n", false, "endpoint \"nope\" is neither"),
            ("maintenance:\n  - {start: 2026-12-01T02:00:00Z, end: 2026-12-01T03:00:00Z, endpoints: [\"99\"]}\n", false, "no endpoint has id 99"),
            (
                "endpoints: []\nmaintenance:\n  - {start: 2026-12-01T02:00:00Z, end: 2026-12-01T03:00:00Z, endpoints: [api]}\n",
                true,
                "endpoint \"api\" is neither",
            ),
        ] {
            let err = plan(&desired(file), &live(), prune, NOW).unwrap_err();
            assert!(err.contains(want), "{file}: {err}");
        }
    }

    #[test]
    fn window_refs_by_id_match_the_live_window() {
        let file = "maintenance:\n  - {start: 2026-12-01T02:00:00Z, end: 2026-12-01T03:00:00Z, reason: db upgrade, endpoints: [\"1\"]}\n";
        assert!(plan(&desired(file), &live(), false, NOW).unwrap().changes.is_empty());
    }

    #[test]
    fn change_metadata() {
        let add = Change::AddEndpoint { spec: EndpointSpec::new("api", "https://x/") };
        assert_eq!((add.op(), add.kind(), add.name().as_str()), ("add", "endpoint", "api"));
        let hook = live().webhooks[0].spec.clone();
        let update = Change::UpdateWebhook {
            id: 1,
            from: hook.clone(),
            to: WebhookSpec { url: "https://hooks.example.com/y".into(), ..hook },
            secret: SecretSource::Env("ONCALL_SECRET".into()),
        };
        assert_eq!((update.op(), update.kind(), update.name().as_str()), ("update", "webhook", "oncall"));
    }
}
