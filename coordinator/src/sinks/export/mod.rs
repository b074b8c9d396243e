//! TSDB export: every measurement to Prometheus remote-write receivers
//! and InfluxDB, from the leader. Split by concern (see [`crate::sinks`]):
//!
//! - [`config`]: `[export]`, `[[export.remote_write]]`, `[[export.influx]]`
//!   (every key documented there and in `deploy/coordinator.toml`);
//! - [`model`]: what a result and an agreed state become ([`Record`]: the
//!   series, their labels, the label rules);
//! - [`encoder`]: remote-write protobuf + snappy, line protocol;
//! - [`request_builder`]: the POST of a batch per target (headers, auth);
//! - [`service`]: one batch until written or refused (retries, timeouts);
//! - [`sink`]: each target's bounded queue and its worker (batching,
//!   backpressure, flushing);
//! - `events`: logs and `vantage_export_*` metrics, one function each.
//!
//! The [`Exporter`] subscribes to the results fan-out ([`ExportResults`],
//! whose `accept` only converts and enqueues), samples the agreed state on
//! the leader every `state_interval_ms`, and flushes every queue when
//! shutdown starts (SIGTERM) and when this node hands leadership over.
//!
//! Results reach only the leader, so only the leader exports them; the
//! state sampler checks [`ExportSource::leading`] (the node's
//! `leading_term`) before each sample. Samples are idempotent (a series'
//! value at a timestamp is the same whoever writes it), so a new leader
//! exporting results a probe resent, or the same state instant, writes
//! nothing twice.

pub mod config;
pub mod encoder;
mod events;
pub mod model;
pub mod request_builder;
pub mod service;
pub mod sink;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vantage_core::agreement::{State, Verdict};
use vantage_core::spec::CheckKind;
use vantage_core::validate::Labels;

pub use self::config::ExportConfig;
pub use self::model::Record;
use self::model::{unix_ms, CheckRecord, LabelSet, StateRecord};
use self::request_builder::RequestTemplate;
use self::service::ExportService;
use self::sink::TargetQueue;
use crate::results::{AcceptedResult, ResultSink};
use crate::state::{EndpointId, MeshState, ProbeId};

/// Where the exporter reads names, labels and agreed states, and whether
/// this node leads. Implemented for [`crate::node::ClusterNode`].
pub trait ExportSource: Send + Sync + 'static {
    /// Runs `f` on this node's applied state.
    fn read(&self, f: &mut dyn FnMut(&MeshState));
    /// Whether this node leads and has applied its term's first entry.
    fn leading(&self) -> bool;
    /// Counts leadership transfers this node started, if it can.
    fn transfers(&self) -> Option<watch::Receiver<u64>>;
}

impl ExportSource for crate::node::ClusterNode {
    fn read(&self, f: &mut dyn FnMut(&MeshState)) {
        self.read_local(|applied| f(&applied.mesh));
    }

    fn leading(&self) -> bool {
        self.leading_term().is_some()
    }

    fn transfers(&self) -> Option<watch::Receiver<u64>> {
        Some(self.leadership_transfers())
    }
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `[export]` is invalid.
    #[error("{key}: {problem}")]
    Config {
        /// The key.
        key: String,
        /// What is wrong.
        problem: config::ExportProblem,
    },
    /// A target's requests cannot be built.
    #[error("export target {name}: {source}")]
    Request {
        /// The target.
        name: String,
        /// Why.
        #[source]
        source: request_builder::RequestError,
    },
    /// A target's TLS settings are unusable.
    #[error("export target {name}: {source}")]
    Client {
        /// The target.
        name: String,
        /// Why.
        #[source]
        source: crate::sinks::http::ClientError,
    },
}

/// The running exporter.
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
}

struct Shared {
    targets: Vec<Arc<TargetQueue>>,
    results: Arc<ExportResults>,
    flush_timeout: Duration,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.shared.targets.iter().map(|t| t.name()).collect();
        f.debug_struct("Exporter").field("targets", &names).finish()
    }
}

impl Exporter {
    /// Starts a worker per target, the state sampler and the flush
    /// supervisor; `None` when no target is configured. Cancelling
    /// `shutdown` flushes every queue within `flush_timeout_ms`, then
    /// stops; [`Exporter::stopped`] returns after that.
    pub fn start(
        config: &ExportConfig,
        source: Arc<dyn ExportSource>,
        shutdown: CancellationToken,
    ) -> Result<Option<Exporter>, ExportError> {
        if config.is_empty() {
            return Ok(None);
        }
        config.validate().map_err(|(key, problem)| ExportError::Config { key, problem })?;
        let tasks = TaskTracker::new();
        let mut targets = Vec::new();
        let mut start = |settings: config::TargetSettings, template: RequestTemplate| {
            let name = settings.name.clone();
            let roots = match &settings.ca_file {
                Some(path) => config::read_ca_file(path).map_err(|reason| ExportError::Config {
                    key: format!("export target {name} ca_file"),
                    problem: config::ExportProblem::BadCaFile { path: path.clone(), reason },
                })?,
                None => Vec::new(),
            };
            let service = ExportService::new(settings.timeout, roots)
                .map_err(|source| ExportError::Client { name: name.clone(), source })?;
            let queue = TargetQueue::new(&settings);
            tracing::info!(sink = %name, protocol = template.protocol.as_str(), url = %template.uri(),
                queue_capacity = settings.queue_capacity, batch_size = settings.batch_size, "export target");
            tasks.spawn(sink::run_worker(queue.clone(), service, template));
            targets.push(queue);
            Ok::<(), ExportError>(())
        };
        for target in &config.remote_write {
            let settings = target.settings();
            let template = RequestTemplate::remote_write(target)
                .map_err(|source| ExportError::Request { name: settings.name.clone(), source })?;
            start(settings, template)?;
        }
        for target in &config.influx {
            let settings = target.settings();
            let api = target.api().map_err(|(key, problem)| ExportError::Config { key, problem })?;
            let template = RequestTemplate::influx(target, &api)
                .map_err(|source| ExportError::Request { name: settings.name.clone(), source })?;
            start(settings, template)?;
        }
        let results = Arc::new(ExportResults::new(source.clone(), targets.clone()));
        let shared = Arc::new(Shared { targets, results, flush_timeout: config.flush_timeout(), tasks });
        let exporter = Exporter { shared: shared.clone() };
        shared.tasks.spawn(sample_states(
            exporter.clone(),
            source.clone(),
            config.state_interval(),
            shutdown.clone(),
        ));
        shared.tasks.spawn(supervise(exporter.clone(), source, shutdown));
        shared.tasks.close();
        Ok(Some(exporter))
    }

    /// The results subscriber to add to the fan-out.
    pub fn results_sink(&self) -> Arc<dyn ResultSink> {
        self.shared.results.clone()
    }

    /// The targets' queues.
    pub fn targets(&self) -> &[Arc<TargetQueue>] {
        &self.shared.targets
    }

    /// The flush bound.
    pub fn flush_timeout(&self) -> Duration {
        self.shared.flush_timeout
    }

    /// Sends everything queued now on every target, waiting up to the
    /// flush bound; returns whether every queue drained. `reason` is
    /// logged.
    pub async fn flush(&self, reason: &str) -> bool {
        let started = Instant::now();
        let deadline = started + self.shared.flush_timeout;
        let queued: usize = self.shared.targets.iter().map(|t| t.pending_samples()).sum();
        // Every target is asked first, so they drain side by side.
        let flushes: Vec<_> = self.shared.targets.iter().map(|t| t.flush(deadline)).collect();
        let mut complete = true;
        for flush in flushes {
            complete &= flush.await;
        }
        let left: usize = self.shared.targets.iter().map(|t| t.pending_samples()).sum();
        events::flushed(reason, if complete { queued } else { left }, started.elapsed(), complete);
        complete
    }

    /// Returns once every worker has stopped (after shutdown and its
    /// flush).
    pub async fn stopped(&self) {
        self.shared.tasks.wait().await;
    }

    fn push(&self, records: &[Arc<Record>]) {
        for target in &self.shared.targets {
            target.push(records);
        }
    }
}

/// Flushes on a leadership transfer; on shutdown, stops every worker with
/// the flush bound as its deadline.
async fn supervise(exporter: Exporter, source: Arc<dyn ExportSource>, shutdown: CancellationToken) {
    let mut transfers = source.transfers();
    loop {
        let transfer = async {
            match &mut transfers {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = transfer => {
                if changed {
                    // Runs while the transfer waits out the leader lease
                    // (about election_timeout_max), so it costs the
                    // transfer nothing.
                    exporter.flush("leadership transfer").await;
                } else {
                    transfers = None;
                }
            }
        }
    }
    let started = Instant::now();
    let deadline = started + exporter.shared.flush_timeout;
    let queued: usize = exporter.shared.targets.iter().map(|t| t.pending_samples()).sum();
    for target in &exporter.shared.targets {
        target.stop(deadline);
    }
    // The workers are in the same tracker; wait for their queues here to log.
    for target in &exporter.shared.targets {
        let _ = tokio::time::timeout_at(deadline + Duration::from_millis(200), async {
            while target.pending_samples() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    let left: usize = exporter.shared.targets.iter().map(|t| t.pending_samples()).sum();
    events::flushed("shutdown", if left == 0 { queued } else { left }, started.elapsed(), left == 0);
}

/// Every `interval`, on the grid `k × interval`, while this node leads:
/// each endpoint's agreed state and regions down.
async fn sample_states(
    exporter: Exporter,
    source: Arc<dyn ExportSource>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    loop {
        let now_ms = unix_ms(SystemTime::now());
        let next_ms = (now_ms.div_euclid(interval_ms) + 1) * interval_ms;
        let wait = Duration::from_millis(u64::try_from(next_ms - now_ms).unwrap_or(0));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if !source.leading() {
            continue;
        }
        let mut records = Vec::new();
        source.read(&mut |mesh| records = state_records(mesh, next_ms));
        exporter.push(&records);
    }
}

/// The agreed-state records of every endpoint at `timestamp_ms`.
pub fn state_records(mesh: &MeshState, timestamp_ms: i64) -> Vec<Arc<Record>> {
    mesh.endpoints()
        .values()
        .map(|endpoint| {
            let agreed = mesh.agreement().get(&endpoint.id);
            let undecided = if endpoint.spec.paused { State::Paused } else { State::Unknown };
            let regions_down = agreed.map_or(0, |a| {
                a.evidence.iter().filter(|r| matches!(r.verdict, Verdict::Down(_))).count() as u32
            });
            Arc::new(Record::State(StateRecord {
                labels: Arc::new(LabelSet::of_endpoint(&endpoint.spec.name)),
                timestamp_ms,
                state: agreed.map_or(undecided, |a| a.state),
                regions_down,
            }))
        })
        .collect()
}

/// The results subscriber: converts each result into a [`Record`] (names
/// and labels from the applied state) and enqueues it on every target.
/// Never blocks on I/O.
pub struct ExportResults {
    source: Arc<dyn ExportSource>,
    targets: Vec<Arc<TargetQueue>>,
    labels: Mutex<HashMap<(u64, u64), CachedLabels>>,
}

/// A result's label set, kept while the endpoint and probe read the same.
struct CachedLabels {
    endpoint: String,
    endpoint_labels: Labels,
    probe: String,
    region: String,
    kind: CheckKind,
    set: Arc<LabelSet>,
}

/// Label sets cached at most (endpoint × probe pairs); past it the cache
/// starts over, so removed endpoints do not pile up.
const MAX_CACHED_LABEL_SETS: usize = 200_000;

impl ExportResults {
    /// A subscriber enqueueing on `targets`.
    pub fn new(source: Arc<dyn ExportSource>, targets: Vec<Arc<TargetQueue>>) -> ExportResults {
        ExportResults { source, targets, labels: Mutex::new(HashMap::new()) }
    }

    /// The records of `batch` (skipped slots and unknown endpoints give
    /// none).
    pub fn records(&self, batch: &[AcceptedResult]) -> Vec<Arc<Record>> {
        let mut records = Vec::with_capacity(batch.len());
        self.source.read(&mut |mesh| {
            let mut cache = self.labels.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > MAX_CACHED_LABEL_SETS {
                cache.clear();
            }
            for accepted in batch {
                let Some(result) = &accepted.observation.result else { continue };
                let endpoint_id = accepted.observation.endpoint_id;
                let Some(endpoint) = mesh.endpoints().get(&EndpointId(endpoint_id)) else { continue };
                let probe = mesh.probes().get(&ProbeId(accepted.probe_id));
                let probe_name =
                    probe.map_or_else(|| format!("probe-{}", accepted.probe_id), |p| p.name.clone());
                let fresh = |c: &CachedLabels| {
                    c.endpoint == endpoint.spec.name
                        && c.endpoint_labels == endpoint.spec.labels
                        && c.probe == probe_name
                        && c.region == accepted.region
                        && c.kind == result.kind
                };
                let key = (endpoint_id, accepted.probe_id);
                let set = match cache.get(&key) {
                    Some(cached) if fresh(cached) => cached.set.clone(),
                    _ => {
                        let set = Arc::new(LabelSet::of_check(
                            &endpoint.spec.name,
                            &accepted.region,
                            &probe_name,
                            result.kind.as_str(),
                            &endpoint.spec.labels,
                        ));
                        cache.insert(
                            key,
                            CachedLabels {
                                endpoint: endpoint.spec.name.clone(),
                                endpoint_labels: endpoint.spec.labels.clone(),
                                probe: probe_name.clone(),
                                region: accepted.region.clone(),
                                kind: result.kind,
                                set: set.clone(),
                            },
                        );
                        set
                    }
                };
                records.push(Arc::new(Record::Check(CheckRecord::of(result, set))));
            }
        });
        records
    }
}

impl ResultSink for ExportResults {
    fn accept(&self, batch: &[AcceptedResult]) {
        let records = self.records(batch);
        for target in &self.targets {
            target.push(&records);
        }
    }
}

#[cfg(test)]
mod tests;
