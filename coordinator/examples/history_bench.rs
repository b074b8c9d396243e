//! History budget benchmark (issue 10): the rollup tables at full size —
//! 10,000 endpoints × 3 regions checked every 60 s, 90 days of history —
//! in the real state machine store (`raft::store`: redb tables applied by
//! the state machine, snapshot files).
//!
//! ```sh
//! cargo run --release -p vantage-coordinator --example history_bench
//! cargo run --release -p vantage-coordinator --example history_bench -- --endpoints 1000 --days 30
//! ```
//!
//! Simulated time, real storage: it applies, through
//! `RaftStateMachine::apply`, the regions and endpoints, then what 90 days
//! of per-minute batches leave in the tables — older days as one batch
//! per day (each row a day's 1,440 checks), the last 8 days as one batch
//! per hour (each row an hour's 60 checks), both pruned by retention as
//! they go — then measures:
//!
//! - the cost of one realistic per-minute batch (every endpoint × region,
//!   one check each) applied on the full tables, and its size in the log;
//! - disk use, the process's RSS (VmRSS) and peak (VmHWM);
//! - building a snapshot (size, time) and installing it in a fresh store;
//! - reading one endpoint's 90-day and 7-day history (what
//!   `/api/endpoints/NAME/history` does), p50/p99/max over random endpoints.
//!
//! Latencies are synthetic but shaped like real ones (a base per endpoint,
//! ±30 % jitter, a 2 % tail at 3×), so histograms occupy as many buckets
//! as real data would. Everything is local; no network.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use openraft::storage::RaftStateMachine;
use openraft::testing::log_id;
use openraft::{EntryPayload, RaftSnapshotBuilder};
use vantage_coordinator::node::read_endpoint_history;
use vantage_coordinator::raft::store;
use vantage_coordinator::raft::types::Entry;
use vantage_coordinator::state::history::{BatchOrigin, RollupBatch, RollupRow};
use vantage_coordinator::state::{Command, EndpointId, EndpointSpec, IdempotencyKey, Request, UnixMillis};
use vantage_core::history::{Granularity, Rollup, Window, DAY_MS, HOUR_MS};

struct Args {
    endpoints: u64,
    regions: usize,
    days: u64,
    reads: usize,
}

fn parse_args() -> Args {
    let mut args = Args { endpoints: 10_000, regions: 3, days: 90, reads: 1_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| usage(&flag));
        match flag.as_str() {
            "--endpoints" => args.endpoints = value(),
            "--regions" => args.regions = value() as usize,
            "--days" => args.days = value(),
            "--reads" => args.reads = value() as usize,
            _ => usage(&flag),
        }
    }
    if args.days < 9 || args.endpoints == 0 || args.regions == 0 {
        usage("--days must be at least 9, --endpoints and --regions at least 1");
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!("history_bench: bad argument {problem}\nusage: history_bench [--endpoints N] [--regions N] [--days N ≥ 9] [--reads N]");
    std::process::exit(2)
}

/// xorshift64*: deterministic synthetic latencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A rollup of `checks` checks of an endpoint whose base latency is `base_us`.
fn rollup(rng: &mut Rng, base_us: u64, checks: u32) -> Rollup {
    let mut r = Rollup {
        checks,
        failures: u32::from(rng.unit() < 0.01 * f64::from(checks).min(1.0)),
        ..Rollup::default()
    };
    // At most 48 distinct values per rollup (a day of 1,440 checks is
    // recorded as 48 groups of 30), so building it stays cheap.
    let groups = checks.min(48);
    let per_group = checks / groups;
    for g in 0..groups {
        let n = if g == groups - 1 { checks - per_group * (groups - 1) } else { per_group };
        let jitter = 0.7 + 0.6 * rng.unit();
        let tail = if rng.unit() < 0.02 { 3.0 } else { 1.0 };
        let total = (base_us as f64 * jitter * tail) as u64;
        r.total.record_n(total, n);
        r.ttfb.record_n(total * 6 / 10, n);
        let phases = [total / 10, total / 10, total / 5, total * 6 / 10 - total / 10 * 4, total / 10];
        for (sum, p) in r.phase_sums.iter_mut().zip(phases) {
            *sum += p * u64::from(n);
        }
    }
    r
}

fn rows(args: &Args, rng: &mut Rng, hour: u32, checks: u32) -> Vec<RollupRow> {
    let mut rows = Vec::with_capacity(args.endpoints as usize * args.regions);
    for e in 1..=args.endpoints {
        let base = 20_000 + (e * 7919) % 280_000;
        for region in 0..args.regions {
            rows.push(RollupRow {
                endpoint: EndpointId(e),
                region: format!("region-{region}"),
                hour,
                rollup: rollup(rng, base, checks),
            });
        }
    }
    rows
}

fn entry(index: u64, at: UnixMillis, command: Command) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            idempotency_key: IdempotencyKey(format!("bench-{index}")),
            issued_at: at,
            command,
        }),
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field).map(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .flatten()
        .unwrap_or(0)
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_log, mut sm) = store::open(dir.path()).expect("a fresh store");
    let now = UnixMillis::from(SystemTime::now());
    let start = UnixMillis(now.0 - args.days * DAY_MS);
    let mut index = 0u64;
    let mut next = || {
        index += 1;
        index
    };

    // Regions and endpoints.
    let regions: Vec<String> = (0..args.regions).map(|r| format!("region-{r}")).collect();
    let mut setup: Vec<Entry> =
        regions.iter().map(|name| entry(next(), start, Command::AddRegion { name: name.clone() })).collect();
    for e in 1..=args.endpoints {
        let mut spec = EndpointSpec::new(format!("endpoint-{e}"), format!("https://endpoint-{e}.example/"));
        spec.regions = regions.iter().cloned().collect::<BTreeSet<_>>();
        setup.push(entry(next(), start, Command::AddEndpoint(spec)));
    }
    sm.apply(setup).await.expect("setup applies");

    // History: whole days, then the last 8 days hour by hour.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let origin = BatchOrigin { term: 1, node: 1 };
    let mut batch = 0u64;
    let series = args.endpoints * args.regions as u64;
    let filled = Instant::now();
    let first_hourly_day = Granularity::Day.period_of(now) - 8;
    let mut day = Granularity::Day.period_of(start);
    while day < first_hourly_day {
        let at = UnixMillis(Granularity::Day.start_of(day).0 + DAY_MS - 1);
        batch += 1;
        let rows = rows(&args, &mut rng, Granularity::Hour.period_of(Granularity::Day.start_of(day)), 1440);
        let command = Command::RecordRollups(RollupBatch { origin, batch, rows });
        sm.apply([entry(next(), at, command)]).await.expect("a day applies");
        day += 1;
    }
    let mut hour = Granularity::Hour.period_of(Granularity::Day.start_of(first_hourly_day));
    while hour <= Granularity::Hour.period_of(now) {
        let at = UnixMillis((Granularity::Hour.start_of(hour).0 + HOUR_MS - 1).min(now.0));
        batch += 1;
        let command =
            Command::RecordRollups(RollupBatch { origin, batch, rows: rows(&args, &mut rng, hour, 60) });
        sm.apply([entry(next(), at, command)]).await.expect("an hour applies");
        hour += 1;
    }
    let (hourly, daily) = sm.reader().history().row_counts().expect("counts");
    println!(
        "history budget: {} endpoints × {} regions = {series} series, {} days",
        args.endpoints, args.regions, args.days
    );
    println!("  filled in {:.1} s: {hourly} hourly rows, {daily} daily rows", filled.elapsed().as_secs_f64());
    println!(
        "  disk: history.redb {}, data dir {}",
        mib(std::fs::metadata(dir.path().join(store::HISTORY_FILE)).map(|m| m.len()).unwrap_or(0)),
        mib(dir_bytes(dir.path()))
    );
    println!(
        "  rss after filling: {} (peak {})",
        mib(status_kib("VmRSS:") * 1024),
        mib(status_kib("VmHWM:") * 1024)
    );

    // One minute's batch on the full tables: every series, one check.
    let mut applies = Vec::new();
    let mut log_bytes = 0;
    for minute in 0..20u64 {
        batch += 1;
        let hour = Granularity::Hour.period_of(now);
        let command =
            Command::RecordRollups(RollupBatch { origin, batch, rows: rows(&args, &mut rng, hour, 1) });
        let e = entry(next(), UnixMillis(now.0 + minute), command);
        if let EntryPayload::Normal(request) = &e.payload {
            log_bytes = serde_json::to_vec(request).map(|b| b.len()).unwrap_or(0);
        }
        let began = Instant::now();
        sm.apply([e]).await.expect("a minute applies");
        applies.push(began.elapsed());
    }
    println!(
        "  apply of one minute's batch ({series} rows, {} in the log): {}",
        mib(log_bytes as u64),
        percentiles(applies)
    );

    // Reads.
    let reader = sm.reader();
    for window in [Window::Quarter, Window::Week] {
        let mut reads = Vec::new();
        for _ in 0..args.reads {
            let e = rng.next() % args.endpoints + 1;
            let began = Instant::now();
            let h = read_endpoint_history(&reader, &format!("endpoint-{e}"), window, now).expect("a history");
            reads.push(began.elapsed());
            assert_eq!(h.regions.len(), args.regions);
        }
        println!("  read one endpoint's {window} history: {}", percentiles(reads));
    }

    // Snapshot: build, then install in a fresh store.
    let began = Instant::now();
    let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("a snapshot");
    let built = began.elapsed();
    let size = std::fs::metadata(dir.path().join(store::SNAPSHOT_DIR).join("current.snapshot"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("  snapshot: {} built in {:.1} s", mib(size), built.as_secs_f64());
    let follower_dir = tempfile::tempdir().expect("a temporary directory");
    let (_flog, mut follower) = store::open(follower_dir.path()).expect("a fresh store");
    let began = Instant::now();
    let mut receiving = follower.begin_receiving_snapshot().await.expect("receiving");
    *receiving = *snapshot.snapshot;
    follower.install_snapshot(&snapshot.meta, receiving).await.expect("installs");
    println!("  snapshot install (copy, check, import): {:.1} s", began.elapsed().as_secs_f64());
    assert_eq!(follower.reader().history().row_counts().expect("counts"), (hourly, daily));
    let mesh_bytes = serde_json::to_vec(&sm.reader().read(|s| s.mesh.clone())).map(|b| b.len()).unwrap_or(0);
    println!("  mesh state JSON (no rollups in it): {}", mib(mesh_bytes as u64));
    println!(
        "  rss at the end: {} (peak {})",
        mib(status_kib("VmRSS:") * 1024),
        mib(status_kib("VmHWM:") * 1024)
    );
}
