//! One target's queue and its worker: batching, backpressure, flushing.
//!
//! [`TargetQueue::push`] is what the results subscriber calls: it takes a
//! short lock, appends, and returns; it never waits on I/O. The queue is
//! bounded in samples (`queue_capacity`); a record that does not fit is
//! dropped (the newest go, so what is queued keeps its order and nothing
//! already waiting is thrown away), counted in
//! `vantage_export_samples_dropped_total`, and logged once when a burst of
//! drops starts and once when it ends (the queue back under half full),
//! with the burst's count.
//!
//! One worker per target sends batches of at most `batch_size` samples,
//! one request at a time (so a series' samples reach the TSDB in order,
//! which Prometheus requires), when a batch is full, when its oldest
//! sample has waited `max_batch_delay`, or at once while a flush is
//! asked for. Within a batch records are sorted by timestamp. A batch is
//! retried by [`ExportService`] until written or refused; while it is, the
//! queue fills, and past its capacity new samples are dropped: memory
//! stays bounded by the capacity whatever the TSDB does.
//!
//! A flush ([`TargetQueue::flush`]) sends everything queued now without
//! waiting for batches to fill, and reports when the queue was seen empty.
//! Stopping ([`TargetQueue::stop`]) flushes within a deadline; what is
//! still queued then is counted as failed and logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::config::TargetSettings;
use super::encoder::{line_protocol, RemoteWriteEncoder};
use super::events::{self, SinkMetrics};
use super::model::Record;
use super::request_builder::{Protocol, RequestTemplate};
use super::service::{BatchOutcome, ExportService};

/// One target: its queue, shared by the subscriber and the worker.
pub struct TargetQueue {
    name: String,
    capacity: usize,
    batch_size: usize,
    max_batch_delay: Duration,
    queue: Mutex<Queue>,
    /// Wakes the worker: new samples, a flush, a stop.
    wake: Notify,
    /// Flushes asked for (a generation count).
    flushes_asked: AtomicU64,
    /// The last generation the worker saw the queue empty after.
    drained: watch::Sender<u64>,
    /// Set when stopping: the deadline for what is queued.
    give_up_at: watch::Sender<Option<Instant>>,
    metrics: SinkMetrics,
    stats: Stats,
}

/// A target's totals since it started (what its metrics count, readable
/// without a recorder: tests, the benchmark).
#[derive(Debug, Default)]
pub struct Stats {
    /// Samples written.
    pub sent: AtomicU64,
    /// Samples refused or abandoned.
    pub failed: AtomicU64,
    /// Samples dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Requests made (every attempt).
    pub requests: AtomicU64,
}

#[derive(Default)]
struct Queue {
    records: VecDeque<(Instant, Arc<Record>)>,
    samples: usize,
    /// Samples taken by the worker and not yet resolved.
    in_flight: usize,
    /// The drop burst under way: when it started, how many dropped.
    burst: Option<(Instant, u64)>,
}

impl std::fmt::Debug for TargetQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetQueue").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TargetQueue {
    /// An empty queue for a target with `settings`.
    pub fn new(settings: &TargetSettings) -> Arc<TargetQueue> {
        Arc::new(TargetQueue {
            name: settings.name.clone(),
            capacity: settings.queue_capacity,
            batch_size: settings.batch_size,
            max_batch_delay: settings.max_batch_delay,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            flushes_asked: AtomicU64::new(0),
            drained: watch::channel(0).0,
            give_up_at: watch::channel(None).0,
            metrics: SinkMetrics::new(&settings.name),
            stats: Stats::default(),
        })
    }

    /// The target's name (the `sink` label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The totals so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Samples queued or being sent now.
    pub fn pending_samples(&self) -> usize {
        let queue = self.lock();
        queue.samples + queue.in_flight
    }

    /// Appends `records` (never blocks on I/O); what does not fit is
    /// dropped and counted. Returns the samples dropped.
    pub fn push(&self, records: &[Arc<Record>]) -> u64 {
        if records.is_empty() {
            return 0;
        }
        let now = Instant::now();
        let (dropped, started, ended, depth) = {
            let mut queue = self.lock();
            let mut dropped = 0u64;
            let mut ended = None;
            for record in records {
                let n = record.samples();
                if queue.samples + queue.in_flight + n > self.capacity {
                    dropped += n as u64;
                    continue;
                }
                queue.samples += n;
                queue.records.push_back((now, record.clone()));
            }
            let mut started = false;
            if dropped > 0 {
                match &mut queue.burst {
                    Some((_, count)) => *count += dropped,
                    None => {
                        queue.burst = Some((now, dropped));
                        started = true;
                    }
                }
            } else if queue.burst.is_some() && (queue.samples + queue.in_flight) * 2 <= self.capacity {
                // A burst ends once the queue has drained to half: a queue
                // hovering at its capacity is one burst, not a line per
                // record that happens to fit.
                if let Some((since, count)) = queue.burst.take() {
                    ended = Some((count, now.saturating_duration_since(since)));
                }
            }
            (dropped, started, ended, queue.samples)
        };
        self.metrics.queue.set(depth as f64);
        if dropped > 0 {
            self.metrics.dropped.increment(dropped);
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if started {
            events::dropping_started(&self.name, self.capacity);
        }
        if let Some((count, lasted)) = ended {
            events::dropping_ended(&self.name, count, lasted);
        }
        // One wake per pushed batch (not per record): the worker decides
        // whether a batch is due.
        self.wake.notify_one();
        dropped
    }

    /// Asks the worker to send everything queued now (at once, before the
    /// returned future is polled); the future returns once the queue was
    /// seen empty after the request (true), or at `deadline` (false).
    pub fn flush(&self, deadline: Instant) -> impl std::future::Future<Output = bool> + Send + 'static {
        let generation = self.flushes_asked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut drained = self.drained.subscribe();
        self.wake.notify_one();
        async move {
            tokio::time::timeout_at(deadline, drained.wait_for(|seen| *seen >= generation))
                .await
                .is_ok_and(|seen| seen.is_ok())
        }
    }

    /// Starts stopping: flush, and give up what is left at `deadline`.
    pub fn stop(&self, deadline: Instant) {
        self.give_up_at.send_replace(Some(deadline));
        self.flushes_asked.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The batch due now, if any: full, old enough, or flushing.
    fn take_due(&self, flushing: bool, now: Instant) -> Result<Vec<Arc<Record>>, Option<Instant>> {
        let mut queue = self.lock();
        let Some(&(oldest, _)) = queue.records.front() else { return Err(None) };
        let due_at = oldest + self.max_batch_delay;
        if !(flushing || queue.samples >= self.batch_size || due_at <= now) {
            return Err(Some(due_at));
        }
        let mut batch = Vec::new();
        let mut taken = 0;
        while let Some(n) = queue.records.front().map(|(_, record)| record.samples()) {
            if taken + n > self.batch_size && !batch.is_empty() {
                break;
            }
            let Some((_, record)) = queue.records.pop_front() else { break };
            taken += n;
            batch.push(record);
        }
        queue.samples -= taken;
        queue.in_flight += taken;
        self.metrics.queue.set(queue.samples as f64);
        Ok(batch)
    }

    fn resolved(&self, samples: usize) {
        self.lock().in_flight -= samples;
    }

    /// Empties the queue (at the stop deadline); returns the samples.
    fn discard(&self) -> usize {
        let mut queue = self.lock();
        let samples = queue.samples;
        queue.records.clear();
        queue.samples = 0;
        self.metrics.queue.set(0.0);
        samples
    }
}

/// Runs `target`'s worker until it is stopped and drained (or its
/// deadline passed).
pub async fn run_worker(target: Arc<TargetQueue>, service: ExportService, template: RequestTemplate) {
    let mut encoder = Body::new(template.protocol);
    let mut give_up_at = target.give_up_at.subscribe();
    loop {
        let asked = target.flushes_asked.load(Ordering::SeqCst);
        let flushing = asked > *target.drained.borrow();
        let stopping = *give_up_at.borrow();
        if let Some(deadline) = stopping {
            if Instant::now() >= deadline {
                let left = target.discard();
                if left > 0 {
                    target.stats.failed.fetch_add(left as u64, Ordering::Relaxed);
                    events::abandoned(&target.name, &target.metrics, left, None);
                }
                target.drained.send_replace(asked);
                return;
            }
        }
        let mut batch = match target.take_due(flushing || stopping.is_some(), Instant::now()) {
            Ok(batch) => batch,
            Err(next_due) => {
                // Empty, or nothing due yet.
                if next_due.is_none() {
                    target.drained.send_replace(asked);
                    if stopping.is_some() {
                        return;
                    }
                }
                let sleep_until = next_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    () = target.wake.notified() => {}
                    () = tokio::time::sleep_until(sleep_until) => {}
                    _ = give_up_at.changed() => {}
                }
                continue;
            }
        };
        batch.sort_by_key(|r| r.timestamp_ms());
        let samples: usize = batch.iter().map(|r| r.samples()).sum();
        let body = encoder.encode(&batch);
        drop(batch);
        let name = target.name.clone();
        let metrics = target.metrics.clone();
        let stats = &target.stats;
        let send = service.send(&template, body, &mut give_up_at, |attempt, number| {
            stats.requests.fetch_add(1, Ordering::Relaxed);
            events::attempted(&name, &metrics, attempt, number, samples)
        });
        // An attempt in flight at the stop deadline is cut off there.
        let deadline = stopping.map(|d| d + Duration::from_millis(100));
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, send)
                .await
                .unwrap_or(BatchOutcome::Abandoned { error: None, attempts: 0 }),
            None => send.await,
        };
        target.resolved(samples);
        let counter = if matches!(outcome, BatchOutcome::Sent { .. }) { &stats.sent } else { &stats.failed };
        counter.fetch_add(samples as u64, Ordering::Relaxed);
        match outcome {
            BatchOutcome::Sent { attempts } => events::sent(&name, &metrics, samples, attempts),
            BatchOutcome::Refused { error, .. } => events::refused(&name, &metrics, samples, &error),
            BatchOutcome::Abandoned { error, .. } => {
                events::abandoned(&name, &metrics, samples, error.as_ref())
            }
        }
    }
}

/// A reusable body encoder for one protocol.
enum Body {
    RemoteWrite(Box<RemoteWriteEncoder>),
    Influx(String),
}

impl Body {
    fn new(protocol: Protocol) -> Body {
        match protocol {
            Protocol::RemoteWrite => Body::RemoteWrite(Box::default()),
            Protocol::Influx => Body::Influx(String::new()),
        }
    }

    fn encode(&mut self, batch: &[Arc<Record>]) -> bytes::Bytes {
        match self {
            Body::RemoteWrite(encoder) => encoder.encode(batch),
            Body::Influx(text) => {
                text.clear();
                line_protocol(batch, text);
                bytes::Bytes::copy_from_slice(text.as_bytes())
            }
        }
    }
}
