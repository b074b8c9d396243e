//! The coordinator's own metrics: the Prometheus recorder a binary installs
//! once per process, the text exposition `/metrics` serves from it, and the
//! catalogue of every metric the coordinator emits, described with its unit.
//!
//! Library code counts through the `metrics` macros only; without an
//! installed recorder (the in-process cluster tests run many nodes in one
//! process) those are no-ops and [`render`] answers `None`. `vantage-coordinator
//! run` and `dev` call [`install`] before anything else starts.
//!
//! Histograms are real Prometheus histograms (buckets, not summaries):
//! every `*_seconds` histogram gets [`SECONDS_BUCKETS`], so they aggregate
//! across nodes with `histogram_quantile(sum by (le) (rate(…)))`.
//!
//! Naming (STYLE rule 11): `vantage_<area>_<what>`, counters end in
//! `_total`, durations are `_seconds`, no unit suffix appended by the
//! exporter (the names carry it). Export metrics (`vantage_export_*`) are
//! described by the export sinks themselves.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The Content-Type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the buckets of every `*_seconds` histogram: 1 ms to 60 s,
/// roughly ×2.5 per step (check-now waits and webhook attempts reach tens of
/// seconds; checkpoints and commits sit in the milliseconds).
pub const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Another recorder is installed in this process already.
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
    /// The exporter refused the bucket configuration.
    #[error("configuring the Prometheus recorder: {0}")]
    Build(String),
}

/// The installed recorder's handle; set once by [`install`].
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as this process's global recorder and
/// describes every coordinator metric. Call once, from a binary, before
/// the runtime starts anything that counts.
pub fn install() -> Result<(), TelemetryError> {
    let recorder = recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| TelemetryError::AlreadyInstalled)?;
    // `set_global_recorder` succeeded, so this is the first and only set.
    let _ = HANDLE.set(handle);
    describe();
    register_zeros();
    Ok(())
}

/// Registers the counters whose label values are known in advance at zero,
/// so a scrape shows them before their first event (`rate()` then sees the
/// first increment, and a dashboard's query names a series that exists).
fn register_zeros() {
    for outcome in ["delivered", "retry", "failed"] {
        metrics::counter!("vantage_alert_deliveries_total", "outcome" => outcome).absolute(0);
    }
    for outcome in ["delivered", "retryable", "rejected"] {
        metrics::counter!("vantage_alert_attempts_total", "outcome" => outcome).absolute(0);
    }
    for name in [
        "vantage_mesh_assignments_total",
        "vantage_mesh_streams_refused_total",
        "vantage_mesh_results_accepted_total",
        "vantage_mesh_results_duplicate_total",
        "vantage_mesh_checkpoints_total",
        "vantage_mesh_checkpoint_failures_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    // The reasons of `mesh::results::RejectReason` (wire names).
    for reason in
        ["unassigned_endpoint", "malformed_timings", "malformed_result", "started_in_future", "too_old"]
    {
        metrics::counter!("vantage_mesh_results_rejected_total", "reason" => reason).absolute(0);
    }
    for to in ["up", "degraded", "down", "unknown", "flapping", "maintenance", "paused"] {
        metrics::counter!("vantage_agreement_transitions_total", "to" => to).absolute(0);
    }
    // A registered histogram renders with empty buckets until its first sample.
    let _registered = metrics::histogram!("vantage_alert_attempt_duration_seconds", "outcome" => "delivered");
}

/// A recorder configured as [`install`] does, not installed: for tests and
/// benchmarks that use a local recorder (`metrics::with_local_recorder`).
pub fn recorder() -> Result<metrics_exporter_prometheus::PrometheusRecorder, TelemetryError> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(|e| TelemetryError::Build(e.to_string()))?
        .build_recorder())
}

/// The process's metrics in the Prometheus text format; `None` when no
/// recorder was installed (a library embedding, the in-process tests).
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// Drains recorded histogram samples into their buckets. Rendering does it
/// too, but a node nobody scrapes must not keep samples without bound, so
/// the gauge sampler calls this on its tick.
pub fn run_upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// Every coordinator metric, with its unit and help text: the one list to
/// read for what `/metrics` shows (export's are the export sinks').
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};

    // ---- Raft (sampled from openraft's metrics channel, `gauges.rs`)
    describe_gauge!("vantage_raft_term", Unit::Count, "The current Raft term this node knows.");
    describe_gauge!("vantage_raft_is_leader", "1 when this node is the Raft leader, else 0.");
    describe_gauge!(
        "vantage_raft_leader_id",
        "The node id of the leader this node knows; 0 while it knows none."
    );
    describe_gauge!(
        "vantage_raft_state",
        "1 for this node's Raft role (state=leader|follower|candidate|learner|shutdown), 0 for the others."
    );
    describe_gauge!(
        "vantage_raft_last_log_index",
        Unit::Count,
        "The index of the last entry in this node's log."
    );
    describe_gauge!(
        "vantage_raft_committed_index",
        Unit::Count,
        "The highest log index this node knows committed (as its log store saved it)."
    );
    describe_gauge!(
        "vantage_raft_applied_index",
        Unit::Count,
        "The last log index applied to the state machine."
    );
    describe_gauge!(
        "vantage_raft_snapshot_index",
        Unit::Count,
        "The last log index the current snapshot includes; 0 without a snapshot."
    );
    describe_gauge!(
        "vantage_raft_snapshot_age_seconds",
        Unit::Seconds,
        "Seconds since the current snapshot was written; NaN without a snapshot."
    );
    describe_gauge!("vantage_raft_members", Unit::Count, "Voters in the membership this node applies.");

    // ---- mesh (probe streams on the leader)
    describe_gauge!(
        "vantage_mesh_probes_connected",
        Unit::Count,
        "Probes with an open stream to this node, per region (only the leader holds streams)."
    );
    describe_gauge!("vantage_mesh_probes_registered", Unit::Count, "Registered probes, per region.");
    describe_counter!("vantage_mesh_assignments_total", Unit::Count, "Assignments computed and published.");
    describe_counter!("vantage_mesh_streams_refused_total", Unit::Count, "Probe streams refused at Hello.");
    describe_counter!(
        "vantage_mesh_batches_rejected_total",
        Unit::Count,
        "Result batches refused whole, by reason."
    );
    describe_counter!(
        "vantage_mesh_results_accepted_total",
        Unit::Count,
        "Probe results ingested (validated, new, handed to the consumers)."
    );
    describe_counter!(
        "vantage_mesh_results_duplicate_total",
        Unit::Count,
        "Probe results already ingested (resends), acknowledged and dropped."
    );
    describe_counter!(
        "vantage_mesh_results_rejected_total",
        Unit::Count,
        "Probe results refused, by reason."
    );
    describe_counter!(
        "vantage_mesh_checkpoints_total",
        Unit::Count,
        "Ingest checkpoints committed through Raft."
    );
    describe_counter!(
        "vantage_mesh_checkpoint_failures_total",
        Unit::Count,
        "Ingest checkpoints that failed to commit."
    );
    describe_histogram!(
        "vantage_mesh_checkpoint_seconds",
        Unit::Seconds,
        "Time to commit one ingest checkpoint."
    );
    describe_counter!(
        "vantage_results_delivered_total",
        Unit::Count,
        "Accepted results handed to each consumer (consumer label)."
    );

    // ---- agreement
    describe_gauge!(
        "vantage_agreement_endpoints",
        Unit::Count,
        "Endpoints per agreed state in this node's replicated state."
    );
    describe_counter!(
        "vantage_agreement_transitions_total",
        Unit::Count,
        "Agreed-state transitions committed by this node as leader, by the state entered (to)."
    );

    // ---- alerts (the webhook outbox)
    describe_gauge!(
        "vantage_alert_deliveries_pending",
        Unit::Count,
        "Outbox deliveries not yet delivered or failed, in this node's replicated state."
    );
    describe_counter!(
        "vantage_alert_deliveries_total",
        Unit::Count,
        "Outbox attempts by what was recorded (outcome=delivered|retry|failed)."
    );
    describe_counter!(
        "vantage_alert_attempts_total",
        Unit::Count,
        "Webhook POSTs sent for outbox deliveries, by what the receiver did (outcome=delivered|retryable|rejected)."
    );
    describe_histogram!(
        "vantage_alert_attempt_duration_seconds",
        Unit::Seconds,
        "One webhook attempt's latency, by what the receiver did."
    );
    describe_counter!(
        "vantage_alert_reposts_total",
        Unit::Count,
        "Alertmanager re-posts of open incidents, by outcome."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_recorder_renders_histograms_with_buckets_and_help() {
        let recorder = recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            metrics::histogram!("vantage_mesh_checkpoint_seconds").record(0.003);
            metrics::counter!("vantage_alert_attempts_total", "outcome" => "delivered").increment(2);
        });
        let text = handle.render();
        assert!(text.contains("# TYPE vantage_mesh_checkpoint_seconds histogram"), "{text}");
        assert!(text.contains("vantage_mesh_checkpoint_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("vantage_mesh_checkpoint_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("# HELP vantage_alert_attempts_total Webhook POSTs"), "{text}");
        assert!(text.contains("vantage_alert_attempts_total{outcome=\"delivered\"} 2"), "{text}");
    }

    #[test]
    fn without_an_installed_recorder_nothing_renders() {
        // This test binary never calls `install`.
        assert!(render().is_none());
        run_upkeep();
    }
}
