//! The probe agent's metrics: the recorder `vantage-probe run` installs
//! once per process, the catalogue of every agent metric with its unit,
//! the agent's named events (each one counts; the agent logs beside them),
//! and [`AgentGauges`], the agent's levels.
//!
//! Without an installed recorder every macro is a no-op (the agent tests,
//! dev mode's in-process probes before the coordinator installs its own).
//! Several agents may share one process (dev mode runs three): their
//! counters add up, and [`AgentGauges`] moves the shared gauges by each
//! agent's own changes (and takes its share back when dropped), so the
//! gauges add up too instead of showing whichever agent wrote last.
//!
//! Metrics (`vantage_probe_*`):
//! - `checks_total{trigger="slot|check_now"}`: checks run;
//! - `slots_skipped_total`: grid slots skipped because the previous check
//!   of the endpoint was still running;
//! - `scheduling_lag_seconds`: histogram of actual minus planned start of
//!   grid checks that ran;
//! - `results_sent_total`, `results_acked_total`: results sent to a
//!   coordinator (resends included) and acknowledged by one;
//! - `spool_records`: results kept, not yet acknowledged;
//! - `spool_dropped_total`: results dropped unacknowledged (spool bound);
//! - `stream_connected`: 1 while a session with a coordinator is welcomed;
//! - `endpoints_assigned`: endpoints in the running assignment;
//! - `unhealthy`: 1 while the canaries fail.

use std::sync::OnceLock;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The Content-Type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Buckets of the scheduling lag histogram, in seconds: lag is normally
/// well under a millisecond and matters from tens of milliseconds on (the
/// agreement deadline is a slot plus the check's timeout).
pub const LAG_BUCKETS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// Another recorder is installed in this process already.
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
    /// The exporter refused the bucket configuration.
    #[error("configuring the Prometheus recorder: {0}")]
    Build(String),
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as this process's global recorder and
/// describes the agent's metrics. Call once, from the binary.
pub fn install() -> Result<(), TelemetryError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LAG_BUCKETS)
        .map_err(|e| TelemetryError::Build(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| TelemetryError::AlreadyInstalled)?;
    let _ = HANDLE.set(handle);
    describe();
    Ok(())
}

/// The metrics in the text format; `None` when no recorder was installed
/// by [`install`].
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

/// Drains recorded histogram samples into their buckets, so a probe that
/// nobody scrapes keeps no samples without bound.
pub fn run_upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// Describes every agent metric (with the installed recorder) and
/// registers them at zero, so a scrape shows each from the start. Dev mode
/// calls it after installing the coordinator's recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("vantage_probe_checks_total", Unit::Count, "Checks run, by trigger (slot|check_now).");
    describe_counter!(
        "vantage_probe_slots_skipped_total",
        Unit::Count,
        "Grid slots skipped because the endpoint's previous check was still running."
    );
    describe_histogram!(
        "vantage_probe_scheduling_lag_seconds",
        Unit::Seconds,
        "Actual minus planned start of grid checks that ran."
    );
    describe_counter!(
        "vantage_probe_results_sent_total",
        Unit::Count,
        "Results sent to a coordinator, resends included."
    );
    describe_counter!(
        "vantage_probe_results_acked_total",
        Unit::Count,
        "Results a coordinator acknowledged (removed from the spool)."
    );
    describe_gauge!("vantage_probe_spool_records", Unit::Count, "Results kept and not yet acknowledged.");
    describe_counter!(
        "vantage_probe_spool_dropped_total",
        Unit::Count,
        "Results dropped unacknowledged (the spool's size bound, or undecodable on recovery)."
    );
    describe_gauge!(
        "vantage_probe_stream_connected",
        "1 while the agent has a welcomed session with a coordinator, else 0."
    );
    describe_gauge!("vantage_probe_endpoints_assigned", Unit::Count, "Endpoints in the running assignment.");
    describe_gauge!("vantage_probe_unhealthy", "1 while more than half of the canaries fail, else 0.");

    for trigger in ["slot", "check_now"] {
        metrics::counter!("vantage_probe_checks_total", "trigger" => trigger).absolute(0);
    }
    for name in [
        "vantage_probe_slots_skipped_total",
        "vantage_probe_results_sent_total",
        "vantage_probe_results_acked_total",
        "vantage_probe_spool_dropped_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for name in [
        "vantage_probe_spool_records",
        "vantage_probe_stream_connected",
        "vantage_probe_endpoints_assigned",
        "vantage_probe_unhealthy",
    ] {
        metrics::gauge!(name).increment(0.0);
    }
    // A registered histogram renders with empty buckets until its first sample.
    let _registered = metrics::histogram!("vantage_probe_scheduling_lag_seconds");
}

/// A check ran (`lag`: for grid checks, the scheduling lag).
pub fn check_ran(check_now: bool, lag: std::time::Duration) {
    if check_now {
        metrics::counter!("vantage_probe_checks_total", "trigger" => "check_now").increment(1);
    } else {
        metrics::counter!("vantage_probe_checks_total", "trigger" => "slot").increment(1);
        metrics::histogram!("vantage_probe_scheduling_lag_seconds").record(lag.as_secs_f64());
    }
}

/// A grid slot was skipped.
pub fn slot_skipped() {
    metrics::counter!("vantage_probe_slots_skipped_total").increment(1);
}

/// `count` results went out in one batch.
pub fn results_sent(count: usize) {
    metrics::counter!("vantage_probe_results_sent_total").increment(count as u64);
}

/// One agent's contribution to the process's gauges, moved by deltas (see
/// the module docs) and withdrawn on drop.
#[derive(Debug, Default)]
pub struct AgentGauges {
    spool_records: u64,
    spool_dropped: u64,
    connected: bool,
    endpoints: u64,
    unhealthy: bool,
}

impl AgentGauges {
    /// The spool's levels now: records kept, dropped so far (by this spool).
    pub fn spool(&mut self, records: u64, dropped_total: u64) {
        move_gauge("vantage_probe_spool_records", self.spool_records as f64, records as f64);
        self.spool_records = records;
        if dropped_total > self.spool_dropped {
            metrics::counter!("vantage_probe_spool_dropped_total")
                .increment(dropped_total - self.spool_dropped);
            self.spool_dropped = dropped_total;
        }
    }

    /// `count` results were acknowledged.
    pub fn acked(&mut self, count: u64) {
        metrics::counter!("vantage_probe_results_acked_total").increment(count);
    }

    /// Whether a welcomed session is up.
    pub fn connected(&mut self, connected: bool) {
        move_gauge(
            "vantage_probe_stream_connected",
            f64::from(u8::from(self.connected)),
            f64::from(u8::from(connected)),
        );
        self.connected = connected;
    }

    /// How many endpoints the running assignment has.
    pub fn endpoints(&mut self, endpoints: u64) {
        move_gauge("vantage_probe_endpoints_assigned", self.endpoints as f64, endpoints as f64);
        self.endpoints = endpoints;
    }

    /// Whether the canaries fail.
    pub fn unhealthy(&mut self, unhealthy: bool) {
        move_gauge(
            "vantage_probe_unhealthy",
            f64::from(u8::from(self.unhealthy)),
            f64::from(u8::from(unhealthy)),
        );
        self.unhealthy = unhealthy;
    }
}

impl Drop for AgentGauges {
    fn drop(&mut self) {
        self.spool(0, self.spool_dropped);
        self.connected(false);
        self.endpoints(0);
        self.unhealthy(false);
    }
}

fn move_gauge(name: &'static str, from: f64, to: f64) {
    if to != from {
        metrics::gauge!(name).increment(to - from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_agents_gauges_add_up_and_a_dropped_agent_takes_its_share_back() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let while_a_runs = metrics::with_local_recorder(&recorder, || {
            let mut a = AgentGauges::default();
            let mut b = AgentGauges::default();
            a.spool(5, 0);
            b.spool(3, 2);
            a.connected(true);
            b.connected(true);
            a.spool(1, 0);
            drop(b);
            let text = handle.render();
            drop(a);
            text
        });
        assert!(while_a_runs.contains("vantage_probe_spool_records 1\n"), "{while_a_runs}");
        assert!(while_a_runs.contains("vantage_probe_stream_connected 1\n"), "{while_a_runs}");
        assert!(while_a_runs.contains("vantage_probe_spool_dropped_total 2\n"), "{while_a_runs}");
        let after = handle.render();
        assert!(after.contains("vantage_probe_spool_records 0\n"), "{after}");
        assert!(after.contains("vantage_probe_stream_connected 0\n"), "{after}");
    }

    #[test]
    fn lag_is_a_histogram_with_buckets_and_check_nows_have_none() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LAG_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            check_ran(false, std::time::Duration::from_millis(3));
            check_ran(true, std::time::Duration::from_secs(9));
        });
        let text = handle.render();
        assert!(text.contains("vantage_probe_scheduling_lag_seconds_bucket{le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("vantage_probe_scheduling_lag_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("vantage_probe_scheduling_lag_seconds_count 1"), "{text}");
        assert!(text.contains("vantage_probe_checks_total{trigger=\"check_now\"} 1"), "{text}");
    }
}
