//! The exporter's named events: each logs (structured) and counts, so a
//! log line and its metric never drift apart. Every metric has the label
//! `sink` (the target's name):
//!
//! - `vantage_export_samples_sent_total`: samples the target accepted (2xx);
//! - `vantage_export_samples_failed_total`: samples refused for good (a 4xx
//!   other than 408/429) or abandoned at shutdown;
//! - `vantage_export_samples_dropped_total`: samples not queued because the
//!   queue was full (the newest are dropped);
//! - `vantage_export_queue_samples`: samples queued now (gauge);
//! - `vantage_export_send_duration_seconds`: one request attempt, start to
//!   answer (histogram);
//! - `vantage_export_requests_total{outcome}`: attempts by outcome
//!   (`delivered`, `retryable`, `rejected`).

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use crate::sinks::http::{Attempt, SendError};

/// One target's metric handles, registered once.
#[derive(Clone)]
pub(super) struct SinkMetrics {
    pub sent: Counter,
    pub failed: Counter,
    pub dropped: Counter,
    pub queue: Gauge,
    latency: Histogram,
    delivered: Counter,
    retryable: Counter,
    rejected: Counter,
}

impl SinkMetrics {
    pub fn new(sink: &str) -> SinkMetrics {
        let name = sink.to_string();
        let requests = |outcome: &'static str| metrics::counter!("vantage_export_requests_total", "sink" => name.clone(), "outcome" => outcome);
        SinkMetrics {
            sent: metrics::counter!("vantage_export_samples_sent_total", "sink" => name.clone()),
            failed: metrics::counter!("vantage_export_samples_failed_total", "sink" => name.clone()),
            dropped: metrics::counter!("vantage_export_samples_dropped_total", "sink" => name.clone()),
            queue: metrics::gauge!("vantage_export_queue_samples", "sink" => name.clone()),
            latency: metrics::histogram!("vantage_export_send_duration_seconds", "sink" => name.clone()),
            delivered: requests("delivered"),
            retryable: requests("retryable"),
            rejected: requests("rejected"),
        }
    }
}

/// One request attempt ended.
pub(super) fn attempted(sink: &str, metrics: &SinkMetrics, attempt: &Attempt, number: u32, samples: usize) {
    metrics.latency.record(attempt.latency.as_secs_f64());
    match attempt.outcome.as_str() {
        "delivered" => metrics.delivered.increment(1),
        "retryable" => metrics.retryable.increment(1),
        _ => metrics.rejected.increment(1),
    }
    if let crate::sinks::http::AttemptOutcome::Retryable { error, .. } = &attempt.outcome {
        // The first failure of a batch and every tenth after it: an outage
        // of the TSDB is visible without a line per retry.
        if number == 1 || number % 10 == 0 {
            tracing::warn!(sink, attempt = number, samples, status = attempt.status, %error,
                "export request failed; retrying");
        } else {
            tracing::debug!(sink, attempt = number, samples, status = attempt.status, %error,
                "export request failed; retrying");
        }
    }
}

/// A batch was written.
pub(super) fn sent(sink: &str, metrics: &SinkMetrics, samples: usize, attempts: u32) {
    metrics.sent.increment(samples as u64);
    if attempts > 1 {
        tracing::info!(sink, samples, attempts, "export batch written after retries");
    } else {
        tracing::trace!(sink, samples, "export batch written");
    }
}

/// A batch was refused for good.
pub(super) fn refused(sink: &str, metrics: &SinkMetrics, samples: usize, error: &SendError) {
    metrics.failed.increment(samples as u64);
    tracing::warn!(sink, samples, %error, "export batch refused by the target; not retried");
}

/// A batch (or what was still queued) was given up at shutdown.
pub(super) fn abandoned(sink: &str, metrics: &SinkMetrics, samples: usize, error: Option<&SendError>) {
    metrics.failed.increment(samples as u64);
    match error {
        Some(error) => {
            tracing::warn!(sink, samples, %error, "export samples abandoned: the flush deadline passed")
        }
        None => tracing::warn!(sink, samples, "export samples abandoned: the flush deadline passed"),
    }
}

/// The queue was full and the first samples of a burst were dropped.
pub(super) fn dropping_started(sink: &str, capacity: usize) {
    tracing::warn!(sink, capacity, "export queue full: dropping the newest samples until it drains");
}

/// A burst of drops ended (the queue took samples again).
pub(super) fn dropping_ended(sink: &str, dropped: u64, lasted: Duration) {
    tracing::warn!(
        sink,
        dropped,
        lasted_ms = lasted.as_millis() as u64,
        "export queue accepting samples again"
    );
}

/// A flush ended.
pub(super) fn flushed(reason: &str, samples: usize, elapsed: Duration, complete: bool) {
    let elapsed_ms = elapsed.as_millis() as u64;
    if complete {
        tracing::info!(reason, samples, elapsed_ms, "export queues flushed");
    } else {
        tracing::warn!(
            reason,
            samples_left = samples,
            elapsed_ms,
            "export queues not flushed within the bound"
        );
    }
}
