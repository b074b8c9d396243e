//! Coordinator ingest benchmark (issue 4): simulated probes streaming results
//! to one real single-node coordinator on this machine.
//!
//! ```sh
//! cargo run --release -p vantage-coordinator --example ingest_bench -- --duration 20s
//! bench/ingest.sh          # the same, with the defaults recorded in BENCHMARKS.md
//! ```
//!
//! It starts the real coordinator runtime ([`vantage_coordinator::app::run`],
//! plaintext, data in a temporary directory) on its own tokio runtime, whose
//! threads are named `vantage-coord` so their CPU time can be told apart from
//! the simulated probes' (threads `sim-probe`). Through the real AdminService
//! it adds `--regions` regions, `--endpoints` endpoints (every region) and
//! one token per probe; then `--probes` simulated probes (spread over the
//! regions) open `ProbeService.Connect`: Hello, Welcome, Assignment, then
//! result batches of `--batch` results with increasing sequence numbers for
//! the endpoints assigned to them, and a heartbeat every heartbeat interval.
//!
//! Probes pipeline: they send without waiting for each acknowledgement, with
//! at most `--window` unacknowledged results each, treating `ResultAck` as
//! cumulative (everything up to `up_to_seq` is stored). So the figures hold
//! whether acks come after every batch or only after a replicated
//! checkpoint.
//!
//! It measures acknowledged results per second over `--duration` after
//! `--warmup`, batches per second, the CPU of the coordinator's threads, of
//! the simulated probes' and of the rest of the machine, and the ack latency
//! (batch sent → covering ack received). At the end every probe stops
//! sending and waits for its last sequence number to be acknowledged; the
//! run then fails (exit status 1, `!!!` lines) unless every result sent was
//! acknowledged, none was refused, and the coordinator's own counters
//! (`vantage_mesh_results_accepted_total`, `…_duplicate_total`,
//! `…_rejected_total`, `vantage_mesh_batches_rejected_total`, read through an
//! in-process `metrics` recorder) count each result exactly once.
//!
//! All traffic is on 127.0.0.1; every loop is bounded in time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use clap::Parser;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use vantage_coordinator::auth::{token_hash, AdminAuth};
use vantage_coordinator::config::{Config, Peer};
use vantage_core::time::unix_micros as unix_us;
use vantage_proto::pb;
use vantage_proto::pb::admin_service_client::AdminServiceClient;
use vantage_proto::pb::coordinator_message::Msg as Out;
use vantage_proto::pb::probe_message::Msg as In;
use vantage_proto::pb::probe_service_client::ProbeServiceClient;

/// Thread-name prefix of the coordinator's runtime.
const COORDINATOR_THREADS: &str = "vantage-coord";
/// Thread-name prefix of the simulated probes' runtime.
const PROBE_THREADS: &str = "sim-probe";
/// How long setup steps (leader election, the assignment settling, the
/// final acknowledgements) may take.
const STEP_LIMIT: Duration = Duration::from_secs(60);
/// `sysconf(_SC_CLK_TCK)` on Linux.
const USER_HZ: f64 = 100.0;

/// Simulated probes streaming results to one coordinator.
#[derive(Debug, Clone, Parser)]
#[command(name = "ingest_bench")]
struct Args {
    /// Simulated probes, spread round-robin over the regions.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    probes: u32,
    /// Regions.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    regions: u32,
    /// Endpoints (each placed in every region).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    endpoints: u32,
    /// Results per batch (the coordinator allows 500).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Most unacknowledged results per probe before it waits for an ack.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    window: u64,
    /// Target results/s over all probes; 0 sends as fast as acks allow.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Measured window.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    duration: Duration,
    /// Sending before the measured window (not counted).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    warmup: Duration,
    /// Worker threads of the coordinator's runtime (default: every CPU).
    #[arg(long)]
    coordinator_threads: Option<usize>,
    /// Worker threads of the simulated probes' runtime (default: every CPU).
    #[arg(long)]
    probe_threads: Option<usize>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also export every result with Prometheus remote-write to this URL
    /// (e.g. a VictoriaMetrics' http://127.0.0.1:8428/api/v1/write);
    /// repeatable. The run fails if any sample is dropped or fails.
    #[arg(long = "remote-write", value_name = "URL")]
    remote_write: Vec<String>,
    /// Samples per export request.
    #[arg(long, default_value_t = 10_000)]
    export_batch: usize,
    /// Samples each export queue holds.
    #[arg(long, default_value_t = 1_000_000)]
    export_queue: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    duration_text(s).ok_or_else(|| format!("{s:?}: expected e.g. 20s, 500ms, 1m"))
}

/// `500ms`, `20s`, `1m`.
fn duration_text(s: &str) -> Option<Duration> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VANTAGE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let counters = Arc::new(CountingRecorder::default());
    if metrics::set_global_recorder(counters.clone()).is_err() {
        eprintln!("error: a metrics recorder is already installed");
        return ExitCode::from(2);
    }
    match run(&args, &counters) {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            let written = if args.json { report.write_json(&mut out) } else { report.write_human(&mut out) };
            if let Err(error) = written {
                eprintln!("error: writing the report: {error}");
                return ExitCode::from(1);
            }
            if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime(name: &'static str, threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name(name);
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder.build().with_context(|| format!("starting the {name} runtime"))
}

fn run(args: &Args, counters: &CountingRecorder) -> anyhow::Result<Report> {
    let coordinator_rt = runtime(COORDINATOR_THREADS, args.coordinator_threads)?;
    let probes_rt = runtime(PROBE_THREADS, args.probe_threads)?;
    let dir =
        tempfile::Builder::new().prefix("vantage-ingest-").tempdir().context("a temporary directory")?;
    let config = config(dir.path(), args)?;
    let admin_token = vantage_coordinator::auth::generate_token()?;
    let auth = AdminAuth::new(token_hash(&admin_token));
    let stop = CancellationToken::new();
    let coordinator =
        coordinator_rt.spawn(vantage_coordinator::app::run(config.clone(), None, auth, stop.clone()));

    let outcome = probes_rt.block_on(drive(args, &config, &admin_token, counters));
    stop.cancel();
    let stopped =
        coordinator_rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), coordinator).await });
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => eprintln!("!!! the coordinator stopped with an error: {error}"),
        Ok(Err(join)) => eprintln!("!!! the coordinator task failed: {join}"),
        Err(_) => eprintln!("!!! the coordinator did not stop within 20 s"),
    }
    probes_rt.shutdown_timeout(Duration::from_secs(5));
    coordinator_rt.shutdown_timeout(Duration::from_secs(5));
    let mut report = outcome?;
    if !args.remote_write.is_empty() {
        // After the coordinator's stop, which flushed every queue.
        report.export_counters = counters.matching("vantage_export_samples_");
        for kind in ["dropped", "failed"] {
            let n = counters.total(&format!("vantage_export_samples_{kind}_total"));
            if n > 0 {
                eprintln!("!!! {n} export samples {kind}");
                report.problems.push(format!("{n} export samples {kind}"));
            }
        }
        let sent = counters.total("vantage_export_samples_sent_total");
        // 9 samples per simulated result (success, 6 phases, status, certificate).
        let expected = report.results_acked * 9;
        if sent < expected {
            eprintln!("!!! {sent} export samples sent, expected at least {expected}");
            report.problems.push(format!("{sent} export samples sent of {expected}"));
        }
    }
    Ok(report)
}

/// A single-node, plaintext configuration on free loopback ports.
fn config(dir: &std::path::Path, args: &Args) -> anyhow::Result<Config> {
    let free = || -> anyhow::Result<SocketAddr> {
        Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
    };
    let mut config = Config::default();
    config.node_id = 1;
    config.data_dir = dir.join("data");
    config.api_addr = free()?;
    config.raft_addr = free()?;
    config.http_addr = free()?;
    config.admin_token_file = dir.join("admin.token");
    config.peers =
        vec![Peer { id: 1, api_addr: config.api_addr, raft_addr: config.raft_addr, dial_raft_addr: None }];
    for (i, url) in args.remote_write.iter().enumerate() {
        let url =
            vantage_coordinator::sinks::export::config::parse_http_url(url).map_err(anyhow::Error::msg)?;
        let mut target = vantage_coordinator::config::RemoteWriteConfig::at(url);
        target.name = Some(format!("bench-{}", i + 1));
        target.batch_size = args.export_batch;
        target.queue_capacity = args.export_queue;
        config.export.remote_write.push(target);
    }
    // Long enough for the queues to drain at the end of the run.
    config.export.flush_timeout_ms = 30_000;
    config.validate()?;
    Ok(config)
}

/// Sets the mesh up through the AdminService, runs the probes, measures.
async fn drive(
    args: &Args,
    config: &Config,
    admin_token: &str,
    counters: &CountingRecorder,
) -> anyhow::Result<Report> {
    let api_url = format!("http://{}", config.api_addr);
    let mut admin = Admin::connect(&api_url, admin_token).await?;
    let regions: Vec<String> = (1..=args.regions).map(|r| format!("bench-r{r}")).collect();
    for region in &regions {
        admin.add_region(region).await?;
    }
    for e in 1..=args.endpoints {
        admin.add_endpoint(e).await?;
    }
    let mut probes = Vec::new();
    for p in 0..args.probes {
        let region = regions[p as usize % regions.len()].clone();
        let name = format!("{region}-p{}", p / args.regions + 1);
        let token = admin.probe_token(&name, &region).await?;
        probes.push(ProbeSpec { name, region, token });
    }
    eprintln!(
        "coordinator on {api_url}: {} regions, {} endpoints, {} probes",
        regions.len(),
        args.endpoints,
        probes.len()
    );

    let totals = Arc::new(Totals::default());
    let stop = CancellationToken::new();
    let per_probe_rate = (args.rate > 0).then(|| args.rate as f64 / f64::from(args.probes));
    let mut states = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for spec in probes {
        let state = Arc::new(ProbeState::default());
        states.push((spec.name.clone(), state.clone()));
        let simulated = SimProbe {
            api_url: api_url.clone(),
            spec,
            state,
            totals: totals.clone(),
            batch: args.batch as usize,
            window: args.window,
            rate: per_probe_rate,
            stop: stop.clone(),
        };
        tasks.spawn(simulated.run());
    }

    // Start sending once every probe has endpoints and the assignment has
    // stopped changing for a second (it is recomputed as probes join).
    let deadline = Instant::now() + STEP_LIMIT;
    let mut stable_since: Option<(Vec<u64>, Instant)> = None;
    loop {
        if Instant::now() > deadline {
            let empty = states.iter().filter(|(_, s)| s.endpoints().is_empty()).count();
            bail!(
                "the assignment did not settle within {STEP_LIMIT:?} ({empty} probes have no endpoint; \
                 each needs some: raise --endpoints)"
            );
        }
        if let Some(result) = tasks.try_join_next() {
            result.context("a simulated probe panicked")??;
            bail!("a simulated probe ended before the run started");
        }
        let versions: Vec<u64> = states.iter().map(|(_, s)| s.version.load(Ordering::SeqCst)).collect();
        let all_placed = states.iter().all(|(_, s)| !s.endpoints().is_empty());
        match &stable_since {
            Some((v, since)) if *v == versions && all_placed => {
                if since.elapsed() >= Duration::from_secs(1) {
                    break;
                }
            }
            _ => stable_since = Some((versions, Instant::now())),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let assigned: Vec<usize> = states.iter().map(|(_, s)| s.endpoints().len()).collect();
    eprintln!(
        "assignment settled: {}..{} endpoints per probe; sending ({} s warm-up, {} s measured)",
        assigned.iter().min().unwrap_or(&0),
        assigned.iter().max().unwrap_or(&0),
        args.warmup.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    totals.sending.store(true, Ordering::SeqCst);
    for (_, state) in &states {
        state.go.notify_one();
    }

    tokio::time::sleep(args.warmup).await;
    let start = Snapshot::take(&totals);
    let exported_at_start = counters.total("vantage_export_samples_sent_total");
    totals.measuring.store(true, Ordering::SeqCst);
    let mut last = Snapshot::take(&totals);
    let window_end = Instant::now() + args.duration;
    while Instant::now() < window_end {
        tokio::time::sleep(Duration::from_secs(1).min(window_end.saturating_duration_since(Instant::now())))
            .await;
        let now = Snapshot::take(&totals);
        let seconds = now.at.duration_since(last.at).as_secs_f64().max(1e-9);
        eprintln!(
            "{:>5.1} s  {:>9.0} results/s acked  coordinator {:.2} cores  probes {:.2} cores  others {:.2} cores",
            now.at.duration_since(start.at).as_secs_f64(),
            (now.acked - last.acked) as f64 / seconds,
            now.cpu.coordinator.saturating_sub(last.cpu.coordinator) as f64 / USER_HZ / seconds,
            now.cpu.probes.saturating_sub(last.cpu.probes) as f64 / USER_HZ / seconds,
            others(&last, &now) as f64 / USER_HZ / seconds,
        );
        last = now;
    }
    totals.measuring.store(false, Ordering::SeqCst);
    let end = Snapshot::take(&totals);
    let exported = counters.total("vantage_export_samples_sent_total") - exported_at_start;

    // Drain: stop sending, wait for every probe's last ack.
    stop.cancel();
    let mut outcomes = BTreeMap::new();
    let drain_deadline = tokio::time::Instant::now() + STEP_LIMIT;
    while let Some(joined) = tokio::time::timeout_at(drain_deadline, tasks.join_next())
        .await
        .context("the probes did not drain within the step limit")?
    {
        let outcome = joined.context("a simulated probe panicked")??;
        outcomes.insert(outcome.name.clone(), outcome);
    }
    let mut report = Report::new(args, &start, &end, &outcomes, &totals, counters);
    report.export_samples_per_s = exported as f64 / report.measured_s.max(1e-9);
    Ok(report)
}

/// What one simulated probe needs to connect.
struct ProbeSpec {
    name: String,
    region: String,
    token: String,
}

/// Sums over every probe.
#[derive(Default)]
struct Totals {
    sending: AtomicBool,
    measuring: AtomicBool,
    results_sent: AtomicU64,
    batches_sent: AtomicU64,
    acked: AtomicU64,
    batches_acked: AtomicU64,
    /// Ack latencies (µs) of batches sent inside the measured window.
    ack_latency_us: Mutex<Vec<u64>>,
}

/// One probe's state, shared by its sending and receiving halves.
#[derive(Default)]
struct ProbeState {
    /// The highest `up_to_seq` acknowledged.
    acked: AtomicU64,
    /// Wakes the sender when an ack arrives (room in the window).
    acked_changed: Notify,
    /// Wakes the sender when the run starts.
    go: Notify,
    version: AtomicU64,
    assigned: Mutex<Vec<u64>>,
    /// (last seq of a batch, when it was sent), oldest first.
    in_flight: Mutex<VecDeque<(u64, Instant, bool)>>,
    rejected: AtomicU64,
    first_rejection: Mutex<Option<String>>,
    /// Acks whose `up_to_seq` went backwards (never expected).
    regressions: AtomicU64,
}

impl ProbeState {
    fn endpoints(&self) -> Vec<u64> {
        self.assigned.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn apply(&self, assignment: &pb::Assignment) {
        let mut assigned = self.assigned.lock().unwrap_or_else(PoisonError::into_inner);
        if assignment.full {
            assigned.clear();
        }
        assigned.retain(|e| !assignment.remove.contains(e));
        for upsert in &assignment.upsert {
            if !assigned.contains(&upsert.endpoint_id) {
                assigned.push(upsert.endpoint_id);
            }
        }
        assigned.sort_unstable();
        self.version.store(assignment.version, Ordering::SeqCst);
    }
}

/// What a probe reports when it has drained.
#[derive(Debug, Clone)]
struct ProbeOutcome {
    name: String,
    last_seq: u64,
    acked: u64,
    rejected: u64,
    first_rejection: Option<String>,
    regressions: u64,
    ended: Option<String>,
}

/// One simulated probe: a `ProbeService.Connect` stream with pipelined
/// result batches.
struct SimProbe {
    api_url: String,
    spec: ProbeSpec,
    state: Arc<ProbeState>,
    totals: Arc<Totals>,
    batch: usize,
    window: u64,
    /// Results/s for this probe; `None`: as fast as the window allows.
    rate: Option<f64>,
    stop: CancellationToken,
}

impl SimProbe {
    async fn run(self) -> anyhow::Result<ProbeOutcome> {
        let channel = Endpoint::from_shared(self.api_url.clone())?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("{}: connecting to {}", self.spec.name, self.api_url))?;
        let mut client = ProbeServiceClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(4 << 20);
        let (tx, rx) = mpsc::channel::<pb::ProbeMessage>(16);
        let hello = pb::Hello {
            probe: self.spec.name.clone(),
            region: self.spec.region.clone(),
            version: "ingest-bench".into(),
            weight: 100,
            assignment_version: 0,
            max_concurrency: 256,
        };
        tx.send(pb::ProbeMessage { msg: Some(In::Hello(hello)) }).await.context("queueing Hello")?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        request.metadata_mut().insert("authorization", format!("Bearer {}", self.spec.token).parse()?);
        let mut inbound = client
            .connect(request)
            .await
            .with_context(|| format!("{}: ProbeService.Connect", self.spec.name))?
            .into_inner();
        let welcome = match tokio::time::timeout(STEP_LIMIT, inbound.message()).await {
            Ok(Ok(Some(pb::CoordinatorMessage { msg: Some(Out::Welcome(w)) }))) => w,
            other => bail!("{}: expected Welcome, got {other:?}", self.spec.name),
        };
        let heartbeat = Duration::from_millis(u64::from(welcome.heartbeat_interval_ms).max(100));
        let batch = self.batch.min(welcome.max_batch_results.max(1) as usize);

        let receiver = tokio::spawn(receive(inbound, self.state.clone(), self.totals.clone()));
        let last_seq = self.send_loop(&tx, batch, heartbeat).await?;
        // Wait for the last ack (bounded), then close our side.
        let deadline = tokio::time::Instant::now() + STEP_LIMIT;
        while self.state.acked.load(Ordering::SeqCst) < last_seq && tokio::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(heartbeat, self.state.acked_changed.notified()).await;
            if self.state.acked.load(Ordering::SeqCst) < last_seq {
                let _ = tx.send(heartbeat_message()).await;
            }
        }
        drop(tx);
        let ended = match tokio::time::timeout(Duration::from_secs(10), receiver).await {
            Ok(Ok(ended)) => ended,
            Ok(Err(join)) => Some(format!("receiver failed: {join}")),
            Err(_) => Some("the stream did not close within 10 s".into()),
        };
        Ok(ProbeOutcome {
            name: self.spec.name.clone(),
            last_seq,
            acked: self.state.acked.load(Ordering::SeqCst),
            rejected: self.state.rejected.load(Ordering::SeqCst),
            first_rejection: self
                .state
                .first_rejection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            regressions: self.state.regressions.load(Ordering::SeqCst),
            ended,
        })
    }

    /// Sends batches until `stop`; returns the last sequence number sent.
    async fn send_loop(
        &self,
        tx: &mpsc::Sender<pb::ProbeMessage>,
        batch: usize,
        heartbeat: Duration,
    ) -> anyhow::Result<u64> {
        let state = &self.state;
        let mut next_heartbeat = tokio::time::Instant::now() + heartbeat;
        // Heartbeats until the run starts.
        while !self.totals.sending.load(Ordering::SeqCst) {
            tokio::select! {
                () = self.stop.cancelled() => return Ok(0),
                () = state.go.notified() => {}
                () = tokio::time::sleep_until(next_heartbeat) => {
                    tx.send(heartbeat_message()).await.context("the stream closed")?;
                    next_heartbeat += heartbeat;
                }
            }
        }
        let period = self.rate.map(|r| Duration::from_secs_f64(batch as f64 / r.max(1e-3)));
        let mut next_batch = tokio::time::Instant::now();
        let mut seq = 0u64;
        let mut templates: HashMap<u64, pb::ProbeResult> = HashMap::new();
        let mut endpoints = Vec::new();
        let mut version = u64::MAX;
        let mut cursor = 0usize;
        while !self.stop.is_cancelled() {
            if tokio::time::Instant::now() >= next_heartbeat {
                tx.send(heartbeat_message()).await.context("the stream closed")?;
                next_heartbeat += heartbeat;
            }
            // Room in the window, and the pace when one is set.
            let room = seq.saturating_sub(state.acked.load(Ordering::SeqCst)) + batch as u64 <= self.window;
            let paced = period.is_none_or(|_| tokio::time::Instant::now() >= next_batch);
            if !room || !paced {
                let wake = if paced { next_heartbeat } else { next_batch.min(next_heartbeat) };
                tokio::select! {
                    () = self.stop.cancelled() => break,
                    () = state.acked_changed.notified(), if !room => {}
                    () = tokio::time::sleep_until(wake) => {}
                }
                continue;
            }
            if let Some(period) = period {
                next_batch += period;
            }
            if state.version.load(Ordering::SeqCst) != version {
                version = state.version.load(Ordering::SeqCst);
                endpoints = state.endpoints();
            }
            if endpoints.is_empty() {
                bail!("{}: no endpoints assigned", self.spec.name);
            }
            let now = unix_us(SystemTime::now());
            let mut results = Vec::with_capacity(batch);
            for _ in 0..batch {
                seq += 1;
                cursor = (cursor + 1) % endpoints.len();
                let endpoint_id = endpoints[cursor];
                let template = templates.entry(endpoint_id).or_insert_with(|| result_template(endpoint_id));
                let mut result = template.clone();
                result.seq = seq;
                // Planned a second ago on a 1 s grid, started 120 µs late.
                let planned = now - 1_000_000 - (now % 1_000_000);
                result.round = (planned / 1_000_000) as u64;
                result.planned_start_unix_us = planned;
                if let Some(check) = result.result.as_mut() {
                    check.started_at_unix_us = planned + 120;
                }
                results.push(result);
            }
            let measuring = self.totals.measuring.load(Ordering::Relaxed);
            state.in_flight.lock().unwrap_or_else(PoisonError::into_inner).push_back((
                seq,
                Instant::now(),
                measuring,
            ));
            let message = pb::ProbeMessage { msg: Some(In::Results(pb::ResultBatch { results })) };
            tx.send(message).await.context("the stream closed")?;
            self.totals.results_sent.fetch_add(batch as u64, Ordering::Relaxed);
            self.totals.batches_sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(seq)
    }
}

/// Reads the coordinator's messages until the stream ends; returns why it
/// ended when that was an error.
async fn receive(
    mut inbound: tonic::Streaming<pb::CoordinatorMessage>,
    state: Arc<ProbeState>,
    totals: Arc<Totals>,
) -> Option<String> {
    loop {
        let message = match inbound.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return None,
            Err(status) => return Some(format!("{:?}: {}", status.code(), status.message())),
        };
        match message.msg {
            Some(Out::Assignment(assignment)) => state.apply(&assignment),
            Some(Out::Ack(ack)) => {
                let previous = state.acked.fetch_max(ack.up_to_seq, Ordering::SeqCst);
                if ack.up_to_seq < previous {
                    state.regressions.fetch_add(1, Ordering::Relaxed);
                } else {
                    totals.acked.fetch_add(ack.up_to_seq - previous, Ordering::Relaxed);
                }
                if !ack.rejected.is_empty() {
                    state.rejected.fetch_add(ack.rejected.len() as u64, Ordering::Relaxed);
                    let mut first = state.first_rejection.lock().unwrap_or_else(PoisonError::into_inner);
                    if first.is_none() {
                        let r = &ack.rejected[0];
                        *first = Some(format!("seq {}: {}: {}", r.seq, r.reason, r.detail));
                    }
                }
                let now = Instant::now();
                let mut latencies = Vec::new();
                {
                    let mut in_flight = state.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
                    while let Some(&(last, sent, measured)) = in_flight.front() {
                        if last > ack.up_to_seq {
                            break;
                        }
                        in_flight.pop_front();
                        totals.batches_acked.fetch_add(1, Ordering::Relaxed);
                        if measured {
                            latencies.push(now.duration_since(sent).as_micros() as u64);
                        }
                    }
                }
                if !latencies.is_empty() {
                    totals.ack_latency_us.lock().unwrap_or_else(PoisonError::into_inner).extend(latencies);
                }
                state.acked_changed.notify_one();
            }
            Some(Out::Redirect(redirect)) => {
                return Some(format!(
                    "redirected to {:?} (a single node should lead)",
                    redirect.leader_api_addr
                ))
            }
            Some(Out::Welcome(_) | Out::CheckNow(_)) | None => {}
        }
    }
}

fn heartbeat_message() -> pb::ProbeMessage {
    pb::ProbeMessage {
        msg: Some(In::Heartbeat(pb::Heartbeat {
            sent_at_unix_ms: unix_us(SystemTime::now()) / 1000,
            unhealthy: false,
            stats: None,
        })),
    }
}

/// A passed HTTPS check as a probe reports it (≈ 300 bytes on the wire).
fn result_template(endpoint_id: u64) -> pb::ProbeResult {
    pb::ProbeResult {
        endpoint_id,
        lag_us: 120,
        result: Some(pb::CheckResult {
            url: format!("https://endpoint-{endpoint_id}.bench.example/health"),
            kind: pb::CheckKind::Https as i32,
            ok: true,
            status_code: Some(200),
            http_version: Some("HTTP/1.1".into()),
            remote_addr: Some("192.0.2.10:443".into()),
            phases: Some(pb::Phases {
                dns_us: 1_200,
                connect_us: 11_000,
                tls_us: 24_000,
                ttfb_us: 38_000,
                transfer_us: 300,
                total_us: 74_500,
            }),
            tls: Some(pb::TlsInfo {
                version: "TLSv1.3".into(),
                cipher: "TLS13_AES_128_GCM_SHA256".into(),
                alpn: Some("http/1.1".into()),
                subject: format!("CN=endpoint-{endpoint_id}.bench.example"),
                issuer: "CN=Bench CA".into(),
                cert_not_after_unix_us: 1_900_000_000_000_000,
                cert_days_left: 60,
                verified: true,
            }),
            body_bytes: 512,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The AdminService, with the admin token.
struct Admin {
    client: AdminServiceClient<Channel>,
    token: String,
    next_key: u64,
}

impl Admin {
    /// Connects and waits until the node leads (a consistent read answers).
    async fn connect(url: &str, token: &str) -> anyhow::Result<Admin> {
        let deadline = Instant::now() + STEP_LIMIT;
        let endpoint = Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10));
        loop {
            if let Ok(channel) = endpoint.connect().await {
                let mut admin =
                    Admin { client: AdminServiceClient::new(channel), token: token.into(), next_key: 0 };
                let request = admin.request(pb::ListRequest { consistent: true });
                if admin.client.list_regions(request).await.is_ok() {
                    return Ok(admin);
                }
            }
            if Instant::now() > deadline {
                bail!("the coordinator at {url} did not lead within {STEP_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    fn mutation(&mut self) -> Option<pb::Mutation> {
        self.next_key += 1;
        Some(pb::Mutation { idempotency_key: format!("ingest-bench-{}", self.next_key) })
    }

    async fn add_region(&mut self, name: &str) -> anyhow::Result<()> {
        let message = pb::AddRegionRequest { mutation: self.mutation(), name: name.into() };
        let request = self.request(message);
        self.client.add_region(request).await.with_context(|| format!("adding region {name}"))?;
        Ok(())
    }

    async fn add_endpoint(&mut self, n: u32) -> anyhow::Result<()> {
        let spec = pb::EndpointSpec {
            name: format!("bench-{n}"),
            url: format!("https://endpoint-{n}.bench.example/health"),
            interval_ms: 30_000,
            timeout_ms: 10_000,
            ..Default::default()
        };
        let message = pb::AddEndpointRequest { mutation: self.mutation(), spec: Some(spec) };
        let request = self.request(message);
        self.client.add_endpoint(request).await.with_context(|| format!("adding endpoint bench-{n}"))?;
        Ok(())
    }

    async fn probe_token(&mut self, probe: &str, region: &str) -> anyhow::Result<String> {
        let message = pb::CreateProbeTokenRequest {
            mutation: self.mutation(),
            probe: probe.into(),
            region: region.into(),
            weight: 0,
        };
        let request = self.request(message);
        let reply = self
            .client
            .create_probe_token(request)
            .await
            .with_context(|| format!("creating a token for probe {probe}"))?;
        Ok(reply.into_inner().token)
    }
}

/// Counters at one instant.
struct Snapshot {
    at: Instant,
    acked: u64,
    batches_acked: u64,
    cpu: CpuTicks,
}

impl Snapshot {
    fn take(totals: &Totals) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            acked: totals.acked.load(Ordering::SeqCst),
            batches_acked: totals.batches_acked.load(Ordering::SeqCst),
            cpu: CpuTicks::read(),
        }
    }
}

/// CPU time in clock ticks: this process's threads by runtime, and the
/// whole machine.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTicks {
    coordinator: u64,
    probes: u64,
    /// This process's other threads (main thread, threads not from either
    /// runtime).
    rest: u64,
    /// Every CPU's busy time (user, nice, system, irq, softirq, steal).
    machine: u64,
}

impl CpuTicks {
    fn read() -> CpuTicks {
        let mut ticks = CpuTicks::default();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
                let Some((name, used)) = thread_ticks(&stat) else { continue };
                if name.starts_with(COORDINATOR_THREADS) {
                    ticks.coordinator += used;
                } else if name.starts_with(PROBE_THREADS) {
                    ticks.probes += used;
                } else {
                    ticks.rest += used;
                }
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) {
                let f: Vec<u64> =
                    line.split_ascii_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
                if f.len() >= 8 {
                    ticks.machine = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
                }
            }
        }
        ticks
    }
}

/// A thread's name and utime + stime from its `/proc/…/stat` line.
fn thread_ticks(stat: &str) -> Option<(&str, u64)> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    let mut fields = stat[stat.rfind(')')? + 1..].split_ascii_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((name, user + system))
}

/// Machine ticks not charged to this process between two snapshots.
fn others(a: &Snapshot, b: &Snapshot) -> u64 {
    let machine = b.cpu.machine.saturating_sub(a.cpu.machine);
    let own = (b.cpu.coordinator + b.cpu.probes + b.cpu.rest)
        .saturating_sub(a.cpu.coordinator + a.cpu.probes + a.cpu.rest);
    machine.saturating_sub(own)
}

/// A `metrics` recorder that keeps every counter (by name and labels) so
/// the run can read the coordinator's own counts.
#[derive(Default)]
struct CountingRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl CountingRecorder {
    /// The sum of every counter named `name`, whatever its labels.
    fn total(&self, name: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .filter(|(key, _)| key.split('{').next() == Some(name))
            .map(|(_, c)| c.load(Ordering::SeqCst))
            .sum()
    }

    /// Every counter whose name starts with `prefix`, as `name{labels}`.
    fn matching(&self, prefix: &str) -> BTreeMap<String, u64> {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, c)| (key.clone(), c.load(Ordering::SeqCst)))
            .collect()
    }
}

impl metrics::Recorder for CountingRecorder {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name = if labels.is_empty() {
            key.name().to_string()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        metrics::Counter::from_arc(counters.entry(name).or_default().clone())
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// What the run measured, and what went wrong.
#[derive(Debug, serde::Serialize)]
struct Report {
    probes: u32,
    regions: u32,
    endpoints: u32,
    batch: u32,
    window_per_probe: u64,
    target_rate: u64,
    measured_s: f64,
    results_per_s: f64,
    batches_per_s: f64,
    /// CPU seconds per second of the window (1.0 is one core).
    coordinator_cores: f64,
    probes_cores: f64,
    rest_of_process_cores: f64,
    other_processes_cores: f64,
    /// Coordinator CPU per acknowledged result, in microseconds.
    coordinator_us_per_result: f64,
    ack_latency_ms_p50: f64,
    ack_latency_ms_p99: f64,
    ack_latency_ms_max: f64,
    /// Over the whole run, warm-up and drain included.
    results_sent: u64,
    results_acked: u64,
    coordinator_counters: BTreeMap<String, u64>,
    /// Export samples written per second in the window (0 without export).
    export_samples_per_s: f64,
    /// `vantage_export_samples_*` after the coordinator stopped.
    export_counters: BTreeMap<String, u64>,
    cpus: usize,
    problems: Vec<String>,
}

impl Report {
    fn new(
        args: &Args,
        start: &Snapshot,
        end: &Snapshot,
        outcomes: &BTreeMap<String, ProbeOutcome>,
        totals: &Totals,
        counters: &CountingRecorder,
    ) -> Report {
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / USER_HZ / seconds;
        let acked = end.acked - start.acked;
        let mut latencies = totals.ack_latency_us.lock().unwrap_or_else(PoisonError::into_inner).clone();
        latencies.sort_unstable();
        let quantile = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1] as f64 / 1000.0
        };

        let mut problems = Vec::new();
        let results_sent = totals.results_sent.load(Ordering::SeqCst);
        let results_acked = totals.acked.load(Ordering::SeqCst);
        let sent_by_probes: u64 = outcomes.values().map(|o| o.last_seq).sum();
        if sent_by_probes != results_sent {
            problems.push(format!("probes report {sent_by_probes} results sent, the totals {results_sent}"));
        }
        for outcome in outcomes.values() {
            if outcome.acked != outcome.last_seq {
                problems.push(format!(
                    "{}: sent up to seq {} but acknowledged only up to {}",
                    outcome.name, outcome.last_seq, outcome.acked
                ));
            }
            if outcome.rejected > 0 {
                problems.push(format!(
                    "{}: {} results refused, e.g. {}",
                    outcome.name,
                    outcome.rejected,
                    outcome.first_rejection.as_deref().unwrap_or("?")
                ));
            }
            if outcome.regressions > 0 {
                problems.push(format!("{}: {} acks went backwards", outcome.name, outcome.regressions));
            }
            if let Some(ended) = &outcome.ended {
                problems.push(format!("{}: the stream ended with an error: {ended}", outcome.name));
            }
        }
        if outcomes.len() != args.probes as usize {
            problems.push(format!("{} of {} probes reported", outcomes.len(), args.probes));
        }
        let accepted = counters.total("vantage_mesh_results_accepted_total");
        let duplicates = counters.total("vantage_mesh_results_duplicate_total");
        let rejected = counters.total("vantage_mesh_results_rejected_total");
        let batches_rejected = counters.total("vantage_mesh_batches_rejected_total");
        if accepted != results_sent {
            problems.push(format!("the coordinator accepted {accepted} results; {results_sent} were sent"));
        }
        if duplicates != 0 || rejected != 0 || batches_rejected != 0 {
            problems.push(format!(
                "the coordinator counted {duplicates} duplicates, {rejected} rejected results, \
                 {batches_rejected} rejected batches; expected none"
            ));
        }
        if results_acked != results_sent {
            problems.push(format!("{results_acked} results acknowledged of {results_sent} sent"));
        }
        Report {
            probes: args.probes,
            regions: args.regions,
            endpoints: args.endpoints,
            batch: args.batch,
            window_per_probe: args.window,
            target_rate: args.rate,
            measured_s: seconds,
            results_per_s: acked as f64 / seconds,
            batches_per_s: (end.batches_acked - start.batches_acked) as f64 / seconds,
            coordinator_cores: cores(start.cpu.coordinator, end.cpu.coordinator),
            probes_cores: cores(start.cpu.probes, end.cpu.probes),
            rest_of_process_cores: cores(start.cpu.rest, end.cpu.rest),
            other_processes_cores: others(start, end) as f64 / USER_HZ / seconds,
            coordinator_us_per_result: end.cpu.coordinator.saturating_sub(start.cpu.coordinator) as f64 * 1e6
                / USER_HZ
                / acked.max(1) as f64,
            ack_latency_ms_p50: quantile(0.50),
            ack_latency_ms_p99: quantile(0.99),
            ack_latency_ms_max: quantile(1.0),
            results_sent,
            results_acked,
            coordinator_counters: counters.matching("vantage_mesh_"),
            export_samples_per_s: 0.0,
            export_counters: BTreeMap::new(),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            problems,
        }
    }

    fn write_json(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)
    }

    fn write_human(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        for problem in &self.problems {
            writeln!(out, "!!! {problem}")?;
        }
        writeln!(
            out,
            "ingest: {} probes in {} regions, {} endpoints, batches of {}, ≤ {} unacked results per probe, {}",
            self.probes,
            self.regions,
            self.endpoints,
            self.batch,
            self.window_per_probe,
            if self.target_rate == 0 { "as fast as acks allow".to_string() } else { format!("paced at {} results/s", self.target_rate) }
        )?;
        writeln!(
            out,
            "  measured        {:.1} s on {} CPUs (coordinator and probes share them)",
            self.measured_s, self.cpus
        )?;
        writeln!(out, "  results/s       {:.0} acknowledged", self.results_per_s)?;
        writeln!(out, "  batches/s       {:.0}", self.batches_per_s)?;
        writeln!(
            out,
            "  cpu (cores)     coordinator {:.2} ({:.2} µs/result), simulated probes {:.2}, rest of process {:.2}, other processes {:.2}",
            self.coordinator_cores,
            self.coordinator_us_per_result,
            self.probes_cores,
            self.rest_of_process_cores,
            self.other_processes_cores
        )?;
        writeln!(
            out,
            "  ack latency     p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (batch sent → covering ack)",
            self.ack_latency_ms_p50, self.ack_latency_ms_p99, self.ack_latency_ms_max
        )?;
        writeln!(
            out,
            "  whole run       {} results sent, {} acknowledged; coordinator counters {:?}",
            self.results_sent, self.results_acked, self.coordinator_counters
        )?;
        if !self.export_counters.is_empty() {
            writeln!(
                out,
                "  export          {:.0} samples/s written in the window; after the flush {:?}",
                self.export_samples_per_s, self.export_counters
            )?;
        }
        writeln!(
            out,
            "  verdict         {}",
            if self.problems.is_empty() {
                "ok: every result acknowledged and counted once"
            } else {
                "FAILED (see !!! lines)"
            }
        )?;
        Ok(())
    }
}
