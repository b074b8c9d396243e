//! `vantage-probe bench`: sustained cold checks of one URL, back to back with
//! a fixed number in flight, to measure what one probe process can sustain.
//!
//! Each check is exactly what `vantage-probe check` would run (the same
//! [`check::specs`] and [`check::checker`], loopback allowed): a new TCP
//! connection and a full TLS handshake every time. After a warm-up, the
//! measured window reports checks per second, failures by kind, total
//! latency percentiles, the process CPU time per check (from
//! `/proc/self/stat`) and the peak resident set size (`VmHWM` from
//! `/proc/self/status`), so the figures are this process's own and not the
//! target's. Linux only: other systems report no CPU or memory figures.
//!
//! With `--schedule` ([`scheduled`]) the checks are not back to back: the
//! agent's scheduler runs `--rate` checks per second on its slot grid, and
//! the report adds scheduling lag, skipped and missed slots.

pub mod scheduled;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, FromArgMatches as _};
use serde::Serialize;
use tokio::task::JoinSet;
use vantage_core::result::{CheckError, CheckResult};
use vantage_core::spec::CheckSpec;

use crate::check::Checker;
use crate::cmd::check::{self, CheckArgs};

/// Arguments of `vantage-probe bench`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct BenchArgs {
    /// The URL to check over and over (http://, https://, tcp://, tls://);
    /// loopback and private addresses are allowed.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Length of the measured window (e.g. 10s, 1m).
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = parse_duration)]
    pub duration: Duration,
    /// Checks run before the measured window, to reach a steady state; they
    /// are not counted.
    #[arg(long, default_value = "1s", value_name = "DUR", value_parser = parse_duration)]
    pub warmup: Duration,
    /// How many checks are in flight at once.
    #[arg(long, short = 'c', default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Time limit of each check (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Trust the CA certificates in this PEM file, besides the public roots
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Skip certificate verification (the handshake is still complete).
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on standard error.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Run the agent's scheduler instead of checks back to back: RATE
    /// checks per second over RATE × INTERVAL endpoints, each checking URL
    /// on its slot grid; reports scheduling lag. CONCURRENCY is then the
    /// scheduler's max_concurrency (the agent's default is 256).
    #[arg(long)]
    pub schedule: bool,
    /// With --schedule: checks per second to schedule.
    #[arg(long, default_value_t = 2_000, value_name = "N", requires = "schedule", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,
    /// With --schedule: each endpoint's interval (e.g. 1s, 10s).
    #[arg(long, default_value = "1s", value_name = "DUR", requires = "schedule", value_parser = parse_duration)]
    pub interval: Duration,
}

const AFTER_HELP: &str = "\
One check is run first; if it fails, bench stops there (it measures working
checks, not failures). Then CONCURRENCY checks run back to back for WARMUP
plus DURATION. Only checks that finish inside the measured window count.

Figures:
  checks/s       checks finished in the window / window length
  latency        total time of the passed checks: p50, p90, p99, max
                 (histogram with < 1% error; max is exact)
  cpu            utime + stime of this whole process over the window
                 (/proc/self/stat, USER_HZ = 100), per finished check
  peak rss       VmHWM of /proc/self/status (whole run, warm-up included)

Any failed check is reported by kind with an example message, and the exit
status is then 1 (0 when every check passed, 2 bad usage).

With --schedule, the agent's scheduler runs RATE checks/s instead (RATE x
INTERVAL endpoints, ids 1.., slot offsets spread as in the agent). Every slot
planned in the window counts: ran, skipped (the endpoint's previous check was
still running) or missed (never started). Figures add
  lag            actual start (concurrency permit held) - planned start of
                 the checks that ran: p50, p90, p99, max
Skipped or missed slots are reported in !!! lines and make the exit status 1.

Examples:
  vantage-probe bench http://127.0.0.1:8080/
  vantage-probe bench --schedule --rate 2000 --duration 30s -c 256 http://127.0.0.1:8080/
  vantage-probe bench https://127.0.0.1:8443/ --ca ca.pem -c 128 --duration 30s
  vantage-probe bench --json http://127.0.0.1:8080/health > bench.json";

/// What one bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The URL checked.
    pub url: String,
    /// What the first check negotiated, e.g. `HTTP/1.1 over TLSv1.3
    /// TLS13_AES_256_GCM_SHA384`.
    pub protocol: String,
    /// Checks in flight at once.
    pub concurrency: u32,
    /// Length of the warm-up, in seconds.
    pub warmup_s: f64,
    /// Length of the measured window as it ran, in seconds.
    pub window_s: f64,
    /// True when the run was cut short (Ctrl-C).
    pub interrupted: bool,
    /// Checks finished in the window, passed or failed.
    pub checks: u64,
    /// Checks that passed.
    pub passed: u64,
    /// Checks that failed.
    pub failed: u64,
    /// `checks / window_s`.
    pub checks_per_s: f64,
    /// Failures by kind, most frequent first.
    pub failures: Vec<FailureCount>,
    /// Total latency of the passed checks.
    pub latency_ms: Latency,
    /// Process CPU time over the window; `None` when `/proc` is unreadable.
    pub cpu: Option<CpuUse>,
    /// Peak resident set size of the process, in bytes; `None` when `/proc`
    /// is unreadable.
    pub peak_rss_bytes: Option<u64>,
}

/// How often one kind of failure happened.
#[derive(Debug, Clone, Serialize)]
pub struct FailureCount {
    /// The kind, with its TLS reason or phase when it has one, e.g.
    /// `tls (unknown_issuer)` or `timeout (ttfb)`.
    pub kind: String,
    /// How many checks failed this way.
    pub count: u64,
    /// The message of the first such failure.
    pub example: String,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// CPU time the process used over the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    /// User plus system time per finished check, in milliseconds.
    pub ms_per_check: f64,
    /// User time per finished check, in milliseconds.
    pub user_ms_per_check: f64,
    /// System (kernel) time per finished check, in milliseconds.
    pub system_ms_per_check: f64,
    /// CPU seconds per second of the window: 1.0 is one core busy.
    pub cores: f64,
}

impl Report {
    /// Whether any check failed.
    pub fn has_failures(&self) -> bool {
        self.failed > 0
    }

    /// Writes the report as one JSON object on one line.
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)
    }

    /// Writes the report for a human; failures come first and loud.
    pub fn write_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "bench {}  {}  (concurrency {}, {:.1} s measured after {:.1} s warm-up{})",
            self.url,
            self.protocol,
            self.concurrency,
            self.window_s,
            self.warmup_s,
            if self.interrupted { ", INTERRUPTED" } else { "" }
        )?;
        if self.has_failures() {
            let share = 100.0 * self.failed as f64 / self.checks.max(1) as f64;
            writeln!(
                out,
                "!!! FAILURES: {} of {} checks failed ({share:.2}%); the rate below counts them !!!",
                self.failed, self.checks
            )?;
            for f in &self.failures {
                writeln!(out, "!!!   {:>9}  {:<24} e.g. {}", f.count, f.kind, f.example)?;
            }
        }
        writeln!(out, "  checks    {} ({} passed, {} failed)", self.checks, self.passed, self.failed)?;
        writeln!(out, "  rate      {:.1} checks/s", self.checks_per_s)?;
        write_footer(out, &self.latency_ms, self.cpu.as_ref(), self.peak_rss_bytes)
    }
}

/// The latency, CPU and memory lines every bench report ends with.
pub(crate) fn write_footer(
    out: &mut impl Write,
    latency: &Latency,
    cpu: Option<&CpuUse>,
    peak_rss_bytes: Option<u64>,
) -> std::io::Result<()> {
    let l = latency;
    writeln!(
        out,
        "  latency   p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (total, passed checks)",
        l.p50, l.p90, l.p99, l.max
    )?;
    match cpu {
        Some(c) => writeln!(
            out,
            "  cpu       {:.3} ms/check (user {:.3}, system {:.3}); {:.2} cores busy",
            c.ms_per_check, c.user_ms_per_check, c.system_ms_per_check, c.cores
        )?,
        None => writeln!(out, "  cpu       unknown (/proc/self/stat unreadable)")?,
    }
    match peak_rss_bytes {
        Some(b) => writeln!(out, "  peak rss  {:.1} MiB", b as f64 / (1024.0 * 1024.0))?,
        None => writeln!(out, "  peak rss  unknown (/proc/self/status unreadable)")?,
    }
    Ok(())
}

/// The `check` arguments a bench of `args` runs with: its URL, time limit,
/// CAs and verification, loopback allowed, and every other option at
/// `check`'s own default (taken from `check`'s parser, so the two cannot
/// drift apart).
pub fn check_args(args: &BenchArgs) -> anyhow::Result<CheckArgs> {
    let defaults = <CheckArgs as Args>::augment_args(clap::Command::new("check"))
        .try_get_matches_from(["check"])
        .context("the defaults of `check`")?;
    let mut check = CheckArgs::from_arg_matches(&defaults).context("the defaults of `check`")?;
    check.urls = vec![args.url.clone()];
    check.timeout = args.timeout;
    check.ca = args.ca.clone();
    check.insecure = args.insecure;
    check.allow_private = true;
    Ok(check)
}

/// Validates `args` and builds the spec and checker, before any runtime
/// exists: like `check`, a bad URL or CA file fails here.
pub fn prepare(args: &BenchArgs) -> anyhow::Result<(CheckSpec, Checker)> {
    let check = check_args(args)?;
    let mut specs = check::specs(&check)?;
    let spec = specs.pop().context("no URL to bench")?;
    Ok((spec, check::checker(&check)?))
}

/// Runs the bench: one check that must pass, then `args.concurrency` checks
/// back to back for the warm-up and the measured window. Progress goes to
/// `progress` once per second unless `args.quiet`. Ctrl-C ends the window
/// early and still reports it.
pub async fn run(
    args: &BenchArgs,
    spec: CheckSpec,
    checker: Checker,
    progress: &mut impl Write,
) -> anyhow::Result<Report> {
    let first = checker.check(&spec).await;
    if let Some(error) = &first.error {
        bail!("the first check of {} failed, not benchmarking it: {error}", spec.url);
    }
    let shared = Arc::new(Shared { protocol: protocol_of(&first), ..Shared::default() });
    let checker = Arc::new(checker);
    let spec = Arc::new(spec);
    let mut workers = JoinSet::new();
    for _ in 0..args.concurrency {
        workers.spawn(worker(checker.clone(), spec.clone(), shared.clone()));
    }

    let started = Instant::now();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut ticker = Ticker::new(started, args.quiet);
    let mut interrupted =
        wait_until(started + args.warmup, &mut interrupt, &mut ticker, &shared, progress).await;

    shared.stage.store(MEASURING, Ordering::SeqCst);
    let window_start = Instant::now();
    let cpu_start = read_cpu_ticks();
    if !interrupted {
        interrupted =
            wait_until(window_start + args.duration, &mut interrupt, &mut ticker, &shared, progress).await;
    }
    shared.stage.store(STOPPED, Ordering::SeqCst);
    let window = window_start.elapsed();
    let cpu_end = read_cpu_ticks();
    // In-flight checks finish outside the window: they do not count, and
    // waiting for them could take a whole timeout.
    workers.abort_all();
    while workers.join_next().await.is_some() {}

    Ok(shared.report(args, window, interrupted, cpu_start.zip(cpu_end), peak_rss_bytes()))
}

const WARMING_UP: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

/// What the workers share: the stage of the run and the window's tallies.
#[derive(Debug)]
struct Shared {
    /// What the first check negotiated.
    protocol: String,
    stage: AtomicU8,
    /// Checks finished in any stage, for progress.
    finished: AtomicU64,
    passed: AtomicU64,
    failed: AtomicU64,
    latency: Histogram,
    failures: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            protocol: String::new(),
            stage: AtomicU8::new(WARMING_UP),
            finished: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: Histogram::new(),
            failures: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Shared {
    fn record(&self, result: &CheckResult) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        if self.stage.load(Ordering::Relaxed) != MEASURING {
            return;
        }
        match &result.error {
            None => {
                self.passed.fetch_add(1, Ordering::Relaxed);
                self.latency.record(result.phases_ms.total);
            }
            Some(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
                failures.entry(failure_kind(error)).or_insert_with(|| (0, error.message.clone())).0 += 1;
            }
        }
    }

    fn report(
        &self,
        args: &BenchArgs,
        window: Duration,
        interrupted: bool,
        cpu_ticks: Option<(CpuTicks, CpuTicks)>,
        peak_rss_bytes: Option<u64>,
    ) -> Report {
        let passed = self.passed.load(Ordering::SeqCst);
        let failed = self.failed.load(Ordering::SeqCst);
        let checks = passed + failed;
        let seconds = window.as_secs_f64().max(1e-9);
        let mut failures: Vec<FailureCount> = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(kind, (count, example))| FailureCount {
                kind: kind.clone(),
                count: *count,
                example: example.clone(),
            })
            .collect();
        failures.sort_by_key(|f| std::cmp::Reverse(f.count));
        let cpu = cpu_ticks.filter(|_| checks > 0).map(|(start, end)| {
            let per_check = |ticks: u64| ticks as f64 * 1000.0 / USER_HZ / checks as f64;
            let user = end.user.saturating_sub(start.user);
            let system = end.system.saturating_sub(start.system);
            CpuUse {
                ms_per_check: per_check(user + system),
                user_ms_per_check: per_check(user),
                system_ms_per_check: per_check(system),
                cores: (user + system) as f64 / USER_HZ / seconds,
            }
        });
        Report {
            url: args.url.clone(),
            protocol: self.protocol.clone(),
            concurrency: args.concurrency,
            warmup_s: args.warmup.as_secs_f64(),
            window_s: seconds,
            interrupted,
            checks,
            passed,
            failed,
            checks_per_s: checks as f64 / seconds,
            failures,
            latency_ms: self.latency.latency_ms(),
            cpu,
            peak_rss_bytes,
        }
    }
}

/// Runs checks back to back until the run stops (the task is aborted).
async fn worker(checker: Arc<Checker>, spec: Arc<CheckSpec>, shared: Arc<Shared>) {
    while shared.stage.load(Ordering::Relaxed) != STOPPED {
        let result = checker.check(&spec).await;
        shared.record(&result);
    }
}

/// The HTTP version and TLS session of a check, as far as it has them.
fn protocol_of(result: &CheckResult) -> String {
    let mut protocol = result.http_version.clone().unwrap_or_default();
    if let Some(tls) = &result.tls {
        let over = if protocol.is_empty() { "" } else { " over " };
        protocol = format!("{protocol}{over}{} {}", tls.version, tls.cipher);
    }
    protocol
}

/// `kind`, with the TLS reason or the timed-out phase when there is one.
fn failure_kind(error: &CheckError) -> String {
    match (error.tls_reason, error.phase) {
        (Some(reason), _) => format!("{} ({})", error.kind, reason.as_str()),
        (None, Some(phase)) => format!("{} ({phase})", error.kind),
        (None, None) => error.kind.to_string(),
    }
}

/// Waits until `deadline` or Ctrl-C (then returns true), printing progress.
async fn wait_until(
    deadline: Instant,
    interrupt: &mut (impl std::future::Future<Output = std::io::Result<()>> + Unpin),
    ticker: &mut Ticker,
    shared: &Shared,
    progress: &mut impl Write,
) -> bool {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wake = deadline.min(ticker.next);
        tokio::select! {
            _ = &mut *interrupt => return true,
            () = tokio::time::sleep_until(wake.into()) => {}
        }
        if Instant::now() >= ticker.next {
            ticker.tick(shared, progress);
        }
    }
}

/// Once-a-second progress on standard error.
struct Ticker {
    started: Instant,
    next: Instant,
    last_finished: u64,
    last_at: Instant,
    quiet: bool,
}

impl Ticker {
    fn new(started: Instant, quiet: bool) -> Self {
        Self { started, next: started + Duration::from_secs(1), last_finished: 0, last_at: started, quiet }
    }

    fn tick(&mut self, shared: &Shared, progress: &mut impl Write) {
        let now = Instant::now();
        let finished = shared.finished.load(Ordering::Relaxed);
        let rate = (finished - self.last_finished) as f64 / (now - self.last_at).as_secs_f64().max(1e-9);
        (self.last_finished, self.last_at) = (finished, now);
        self.next += Duration::from_secs(1);
        if self.quiet {
            return;
        }
        let stage = match shared.stage.load(Ordering::Relaxed) {
            WARMING_UP => "warm-up",
            _ => "measuring",
        };
        let failed = shared.failed.load(Ordering::Relaxed);
        let failed = if failed > 0 { format!("  {failed} FAILED") } else { String::new() };
        // Progress is best effort: a closed stderr must not end the run.
        let _ = writeln!(
            progress,
            "{:>4.0}s  {stage:<9}  {rate:>7.0} checks/s{failed}",
            (now - self.started).as_secs_f64()
        );
        let _ = progress.flush();
    }
}

/// The clock-tick rate of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`),
/// 100 on every Linux architecture this runs on; reading it without libc
/// would need `unsafe`.
const USER_HZ: f64 = 100.0;

/// Process CPU time in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct CpuTicks {
    user: u64,
    system: u64,
}

/// utime and stime of this process (all its threads), from
/// `/proc/self/stat`.
fn read_cpu_ticks() -> Option<CpuTicks> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 and 15 of `/proc/<pid>/stat` (proc(5)); counted after the
/// command name, which is in parentheses and may hold spaces.
fn parse_cpu_ticks(stat: &str) -> Option<CpuTicks> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(CpuTicks { user, system })
}

/// The peak resident set size of this process, from `VmHWM` in
/// `/proc/self/status`.
fn peak_rss_bytes() -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// A latency histogram in microseconds, with buckets exact below 256 µs and
/// 128 per power of two above (error under 0.8%). Lock-free, so checks on
/// every worker thread record into it without waiting for each other, and
/// fixed in size, so a long run does not grow the memory it measures.
#[derive(Debug)]
struct Histogram {
    buckets: Vec<AtomicU64>,
    max_us: AtomicU64,
}

/// Sub-buckets per power of two above the exact range.
const SUB_BUCKETS: u64 = 128;
/// Enough buckets for any `u64` count of microseconds.
const BUCKETS: usize = (2 * SUB_BUCKETS + (64 - 8) * SUB_BUCKETS) as usize;

impl Histogram {
    fn new() -> Self {
        Self { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), max_us: AtomicU64::new(0) }
    }

    fn record(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn latency_ms(&self) -> Latency {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::SeqCst)).collect();
        let total: u64 = counts.iter().sum();
        let max_us = self.max_us.load(Ordering::SeqCst);
        let quantile = |q: f64| {
            if total == 0 {
                return 0.0;
            }
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (bucket, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return bucket_midpoint(bucket).min(max_us as f64) / 1000.0;
                }
            }
            max_us as f64 / 1000.0
        };
        Latency { p50: quantile(0.50), p90: quantile(0.90), p99: quantile(0.99), max: max_us as f64 / 1000.0 }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < 2 * SUB_BUCKETS {
        return us as usize;
    }
    let shift = 63 - us.leading_zeros() as u64 - 7;
    (2 * SUB_BUCKETS + (shift - 1) * SUB_BUCKETS + ((us >> shift) - SUB_BUCKETS)) as usize
}

/// The middle of a bucket's range, in microseconds.
fn bucket_midpoint(bucket: usize) -> f64 {
    let bucket = bucket as u64;
    if bucket < 2 * SUB_BUCKETS {
        return bucket as f64;
    }
    let shift = (bucket - 2 * SUB_BUCKETS) / SUB_BUCKETS + 1;
    let low = (SUB_BUCKETS + (bucket - 2 * SUB_BUCKETS) % SUB_BUCKETS) << shift;
    low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 1m)"))
}

#[cfg(test)]
mod tests {
    use vantage_core::result::{ErrorKind, Phase};

    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (vantage (probe) x) R 1 4242 4242 0 -1 4194304 900 0 0 0 1234 567 0 0 20 0 3 0";
        let ticks = parse_cpu_ticks(stat).unwrap();
        assert_eq!((ticks.user, ticks.system), (1234, 567));
        assert!(parse_cpu_ticks("4242 (x) R 1").is_none());
        let own = read_cpu_ticks().expect("/proc/self/stat on Linux");
        assert!(own.user + own.system < u64::MAX);
    }

    #[test]
    fn peak_rss_is_read_from_vm_hwm() {
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t   14336 kB\nVmRSS:\t 1 kB\n"), Some(14336 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert!(peak_rss_bytes().expect("/proc/self/status on Linux") > 0);
    }

    #[test]
    fn buckets_are_exact_then_within_one_percent() {
        for us in [0, 1, 255, 256, 257, 1000, 9_999, 123_456, 10_000_000, u64::from(u32::MAX), u64::MAX] {
            let bucket = bucket_of(us);
            assert!(bucket < BUCKETS, "{us} -> {bucket}");
            let mid = bucket_midpoint(bucket);
            let error = (mid - us as f64).abs() / (us as f64).max(1.0);
            assert!(error < 0.008, "{us} -> bucket {bucket} midpoint {mid}");
        }
        assert_eq!(bucket_midpoint(bucket_of(200)), 200.0);
        // Buckets are ordered like the values in them.
        let mut last = 0;
        for us in (0..100_000).step_by(7) {
            let bucket = bucket_of(us);
            assert!(bucket >= last);
            last = bucket;
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let h = Histogram::new();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let l = h.latency_ms();
        assert!((l.p50 - 50.0).abs() < 0.5, "{l:?}");
        assert!((l.p90 - 90.0).abs() < 0.8, "{l:?}");
        assert!((l.p99 - 99.0).abs() < 0.8, "{l:?}");
        assert_eq!(l.max, 100.0);
        assert_eq!(Histogram::new().latency_ms().p99, 0.0);
    }

    #[test]
    fn bench_checks_run_as_check_would_with_loopback_allowed() {
        let args = BenchArgs {
            url: "http://127.0.0.1:9/".into(),
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            concurrency: 1,
            timeout: Duration::from_secs(3),
            ca: vec![],
            insecure: true,
            json: false,
            quiet: true,
            schedule: false,
            rate: 2_000,
            interval: Duration::from_secs(1),
        };
        let check = check_args(&args).unwrap();
        assert_eq!(check.urls, vec!["http://127.0.0.1:9/".to_string()]);
        assert!(check.allow_private && check.insecure);
        assert_eq!(check.timeout, Duration::from_secs(3));
        assert_eq!(check.follow_redirects, 0);
        let (spec, _checker) = prepare(&args).unwrap();
        assert!(spec.guard.allow_private && !spec.tls_verify);
        assert_eq!(spec.timeout, Duration::from_secs(3));
    }

    pub(super) fn args_for(url: String) -> BenchArgs {
        BenchArgs {
            url,
            duration: Duration::from_millis(400),
            warmup: Duration::from_millis(100),
            concurrency: 4,
            timeout: Duration::from_secs(5),
            ca: vec![],
            insecure: false,
            json: false,
            quiet: false,
            schedule: false,
            rate: 2_000,
            interval: Duration::from_secs(1),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_bench_counts_cold_checks_and_reports_them() {
        let target = vantage_tests::HttpTarget::start(Default::default()).unwrap();
        let args = args_for(target.url("/"));
        let (spec, checker) = prepare(&args).unwrap();
        let mut progress = Vec::new();
        let report = run(&args, spec, checker, &mut progress).await.unwrap();
        assert!(report.checks > 0 && report.passed == report.checks, "{report:?}");
        assert_eq!(report.protocol, "HTTP/1.1");
        assert!(!report.has_failures() && report.failures.is_empty());
        assert!(report.window_s >= 0.4 && report.window_s < 2.0, "{report:?}");
        assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.max);
        assert!(report.cpu.is_some() && report.peak_rss_bytes.is_some());
        // Every check opened its own connection (no request reused one);
        // checks aborted at the end may have connected without a request.
        assert!(target.requests() <= target.connections());
        assert!(target.requests() > report.checks);

        let mut human = Vec::new();
        report.write_human(&mut human).unwrap();
        let human = String::from_utf8(human).unwrap();
        assert!(human.contains("checks/s") && !human.contains("FAIL"), "{human}");
        let mut json = Vec::new();
        report.write_json(&mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json["checks"], report.checks);
        assert!(json["cpu"]["ms_per_check"].as_f64().is_some());
    }

    #[tokio::test]
    async fn a_failing_first_check_stops_the_bench() {
        let target = vantage_tests::HttpTarget::start(Default::default()).unwrap();
        let args = args_for(target.url("/?status=503"));
        let (spec, checker) = prepare(&args).unwrap();
        let error = run(&args, spec, checker, &mut Vec::new()).await.unwrap_err();
        assert!(error.to_string().contains("first check"), "{error}");
        assert!(error.to_string().contains("http_status"), "{error}");
    }

    #[test]
    fn failures_are_counted_by_kind_only_in_the_window_and_reported_loudly() {
        let shared = Shared::default();
        let failed = |error: CheckError| CheckResult { ok: false, error: Some(error), ..passed_result() };
        let refused =
            || failed(CheckError::new(ErrorKind::ConnectRefused, "connection refused by 127.0.0.1:9"));
        shared.record(&refused());
        shared.stage.store(MEASURING, Ordering::SeqCst);
        shared.record(&passed_result());
        shared.record(&refused());
        shared.record(&refused());
        shared.record(&failed(CheckError::timeout(Phase::Ttfb, Duration::from_secs(1))));
        shared.stage.store(STOPPED, Ordering::SeqCst);
        shared.record(&refused());

        let report =
            shared.report(&args_for("http://127.0.0.1:9/".into()), Duration::from_secs(2), false, None, None);
        assert_eq!((report.checks, report.passed, report.failed), (4, 1, 3));
        assert_eq!(report.checks_per_s, 2.0);
        let kinds: Vec<(&str, u64)> = report.failures.iter().map(|f| (f.kind.as_str(), f.count)).collect();
        assert_eq!(kinds, [("connect_refused", 2), ("timeout (ttfb)", 1)]);
        assert_eq!(report.failures[0].example, "connection refused by 127.0.0.1:9");
        let mut human = Vec::new();
        report.write_human(&mut human).unwrap();
        let human = String::from_utf8(human).unwrap();
        assert!(human.contains("!!! FAILURES: 3 of 4 checks failed"), "{human}");
        assert!(human.contains("connect_refused"), "{human}");
    }

    fn passed_result() -> CheckResult {
        CheckResult {
            url: "http://127.0.0.1:9/".into(),
            kind: vantage_core::spec::CheckKind::Http,
            ok: true,
            error: None,
            status_code: Some(200),
            http_version: None,
            remote_addr: None,
            phases_ms: Default::default(),
            tls: None,
            body_bytes: 0,
            started_at: std::time::SystemTime::UNIX_EPOCH,
            hops: vec![],
            dns_answers: vec![],
            attempts: 1,
        }
    }
}
