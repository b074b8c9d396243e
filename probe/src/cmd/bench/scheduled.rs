//! `vantage-probe bench --schedule`: the agent's real scheduler
//! ([`crate::agent::scheduler`]) driving the real check engine at a fixed
//! rate, to measure scheduling lag (actual minus planned start) under load.
//!
//! `--rate R --interval I` schedules `R × I` endpoints (ids 1, 2, …, so
//! their slot offsets spread over the interval exactly as the agent's do),
//! each checking the bench URL every `I`, with `--concurrency` as the
//! scheduler's `max_concurrency`. The measured window is a span of wall
//! time: every slot planned inside it counts, whether it ran, was skipped
//! (the endpoint's previous check was still running) or never started (the
//! driver fell behind: "missed"). Slots planned in the window are expected
//! by the schedule's arithmetic ([`vantage_core::schedule`]), so a slot
//! that silently never happened shows as missed. After the window the run
//! waits (at most the check timeout plus a second) for checks still
//! running to report.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vantage_core::clock::{SystemWallClock, WallClock};
use vantage_core::schedule::{next_slot, slot_offset};
use vantage_core::spec::CheckSpec;

use super::{
    failure_kind, peak_rss_bytes, protocol_of, read_cpu_ticks, write_footer, BenchArgs, CpuTicks, CpuUse,
    FailureCount, Histogram, Latency, USER_HZ,
};
use crate::agent::scheduler::{self, Outcome, ScheduledEndpoint, SchedulerConfig, Trigger};
use crate::check::Checker;

/// What one scheduled bench run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleReport {
    /// The URL every endpoint checks.
    pub url: String,
    /// What the first check negotiated.
    pub protocol: String,
    /// Checks per second asked for (`--rate`).
    pub target_rate: u32,
    /// Endpoints scheduled (`rate × interval`).
    pub endpoints: u64,
    /// Each endpoint's interval, in seconds.
    pub interval_s: f64,
    /// The scheduler's `max_concurrency`.
    pub max_concurrency: u32,
    /// Length of the warm-up, in seconds.
    pub warmup_s: f64,
    /// Length of the measured window (wall time), in seconds.
    pub window_s: f64,
    /// True when the run was cut short (Ctrl-C).
    pub interrupted: bool,
    /// Slots the schedule planned inside the window.
    pub slots_planned: u64,
    /// Of those, slots whose check ran (started).
    pub checks: u64,
    /// Checks that passed.
    pub passed: u64,
    /// Checks that failed.
    pub failed: u64,
    /// Slots skipped: the endpoint's previous check was still running.
    pub skipped: u64,
    /// Slots that neither ran nor were reported skipped.
    pub missed: u64,
    /// `checks / window_s`.
    pub checks_per_s: f64,
    /// Scheduling lag of the checks that ran: actual start (concurrency
    /// permit held) minus planned start.
    pub lag_ms: Latency,
    /// Total latency of the passed checks.
    pub latency_ms: Latency,
    /// Failures by kind, most frequent first.
    pub failures: Vec<FailureCount>,
    /// Process CPU time over the window; `None` when `/proc` is unreadable.
    pub cpu: Option<CpuUse>,
    /// Peak resident set size of the process, in bytes.
    pub peak_rss_bytes: Option<u64>,
}

impl ScheduleReport {
    /// Whether any check failed or any slot was skipped or missed.
    pub fn has_failures(&self) -> bool {
        self.failed > 0 || self.skipped > 0 || self.missed > 0
    }

    /// Writes the report as one JSON object on one line.
    pub fn write_json(&self, out: &mut impl Write) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        writeln!(out)
    }

    /// Writes the report for a human; failures, skipped and missed slots
    /// come first and loud.
    pub fn write_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "bench --schedule {}  {}  ({} endpoints every {:.3} s = {} checks/s asked, max_concurrency {}, \
             {:.1} s measured after {:.1} s warm-up{})",
            self.url,
            self.protocol,
            self.endpoints,
            self.interval_s,
            self.target_rate,
            self.max_concurrency,
            self.window_s,
            self.warmup_s,
            if self.interrupted { ", INTERRUPTED" } else { "" }
        )?;
        if self.failed > 0 {
            writeln!(out, "!!! FAILURES: {} of {} checks failed", self.failed, self.checks)?;
            for f in &self.failures {
                writeln!(out, "!!!   {:>9}  {:<24} e.g. {}", f.count, f.kind, f.example)?;
            }
        }
        if self.skipped > 0 || self.missed > 0 {
            writeln!(
                out,
                "!!! SLOTS NOT CHECKED: {} skipped (previous check still running), {} missed (never started)",
                self.skipped, self.missed
            )?;
        }
        writeln!(
            out,
            "  slots     {} planned: {} ran ({} passed, {} failed), {} skipped, {} missed",
            self.slots_planned, self.checks, self.passed, self.failed, self.skipped, self.missed
        )?;
        writeln!(out, "  rate      {:.1} checks/s", self.checks_per_s)?;
        let l = &self.lag_ms;
        writeln!(
            out,
            "  lag       p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (actual − planned start)",
            l.p50, l.p90, l.p99, l.max
        )?;
        write_footer(out, &self.latency_ms, self.cpu.as_ref(), self.peak_rss_bytes)
    }
}

/// Endpoints scheduled for `rate` checks/s at `interval` (at least one).
pub fn endpoint_count(rate: u32, interval: Duration) -> u64 {
    ((f64::from(rate) * interval.as_secs_f64()).round() as u64).max(1)
}

/// How many slots of endpoints `1..=endpoints` start in `[from, to)`
/// (times since the Unix epoch).
pub fn slots_between(endpoints: u64, interval: Duration, from: Duration, to: Duration) -> u64 {
    (1..=endpoints)
        .map(|id| {
            let first = next_slot(from, interval, slot_offset(id, interval));
            if first.start >= to {
                0
            } else {
                // Slots at first.start, + interval, … while below `to`.
                ((to - first.start).as_nanos().div_ceil(interval.as_nanos().max(1))) as u64
            }
        })
        .sum()
}

/// Runs the scheduled bench: one check that must pass, then the schedule
/// for the warm-up and the measured window. Progress goes to `progress`
/// once per second unless `args.quiet`; Ctrl-C ends the window early.
pub async fn run(
    args: &BenchArgs,
    spec: CheckSpec,
    checker: Checker,
    progress: &mut impl Write,
) -> anyhow::Result<ScheduleReport> {
    let first = checker.check(&spec).await;
    if let Some(error) = &first.error {
        bail!("the first check of {} failed, not benchmarking it: {error}", spec.url);
    }
    let interval = args.interval;
    let endpoints = endpoint_count(args.rate, interval);
    let clock: Arc<dyn WallClock> = Arc::new(SystemWallClock);
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let config = SchedulerConfig { max_concurrency: args.concurrency as usize };
    let (handle, mut records) = scheduler::spawn(config, checker, clock.clone(), &tracker, shutdown.clone())
        .context("starting the scheduler")?;
    let set = (1..=endpoints)
        .map(|endpoint_id| ScheduledEndpoint { endpoint_id, interval, job: spec.clone() })
        .collect();
    handle.replace(set).context("scheduling the endpoints")?;

    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let started = since_epoch(clock.now());
    let window_start = started + args.warmup;
    let window_end = window_start + args.duration;
    let mut tally = Tally::default();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut interrupted = false;
    let mut cpu_start: Option<CpuTicks> = None;
    let mut measured_end = window_end;
    let mut cpu_end: Option<CpuTicks> = None;
    let mut last_progress = (started, 0u64);
    // Wall-time driven: each pass handles the records that arrived, then
    // waits for more, the next second's progress line, or the window's edges.
    let drain_deadline = window_end + args.timeout + Duration::from_secs(1);
    let expected_at_end = |end: Duration| slots_between(endpoints, interval, window_start, end);
    loop {
        let now = since_epoch(clock.now());
        if cpu_start.is_none() && now >= window_start {
            cpu_start = Some(read_cpu_ticks().unwrap_or_default());
        }
        if cpu_end.is_none() && (now >= window_end || interrupted) {
            cpu_end = Some(read_cpu_ticks().unwrap_or_default());
            if interrupted {
                measured_end = now.max(window_start);
            }
        }
        if cpu_end.is_some() {
            let expected = expected_at_end(measured_end);
            if tally.slots() >= expected || now >= drain_deadline || interrupted {
                break;
            }
        }
        if now >= last_progress.0 + Duration::from_secs(1) {
            let done = tally.seen;
            let rate = (done - last_progress.1) as f64 / (now - last_progress.0).as_secs_f64().max(1e-9);
            if !args.quiet {
                let stage = if now < window_start {
                    "warm-up"
                } else if now < window_end {
                    "measuring"
                } else {
                    "draining"
                };
                let p99 = handle.lag().p99();
                let _ = writeln!(
                    progress,
                    "{:>4.0}s  {stage:<9}  {rate:>7.0} slots/s  lag p99 so far {:.3} ms",
                    (now - started).as_secs_f64(),
                    p99.as_secs_f64() * 1000.0
                );
                let _ = progress.flush();
            }
            last_progress = (now, done);
        }
        let next_edge = [window_start, window_end, last_progress.0 + Duration::from_secs(1)]
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now + Duration::from_millis(100));
        let wait = (next_edge - now).min(Duration::from_millis(200));
        tokio::select! {
            record = records.recv() => match record {
                Some(record) => {
                    tally.add(&record, window_start, measured_end);
                    while let Ok(record) = records.try_recv() {
                        tally.add(&record, window_start, measured_end);
                    }
                }
                None => bail!("the scheduler stopped early"),
            },
            _ = &mut interrupt, if !interrupted => interrupted = true,
            () = tokio::time::sleep(wait) => {}
        }
    }
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;

    let window = measured_end.saturating_sub(window_start);
    let slots_planned = expected_at_end(measured_end);
    let seconds = window.as_secs_f64().max(1e-9);
    let checks = tally.passed + tally.failed;
    let cpu = cpu_start.zip(cpu_end).filter(|_| checks > 0).map(|(start, end)| {
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
    let mut failures: Vec<FailureCount> = tally
        .failures
        .iter()
        .map(|(kind, (count, example))| FailureCount {
            kind: kind.clone(),
            count: *count,
            example: example.clone(),
        })
        .collect();
    failures.sort_by_key(|f| std::cmp::Reverse(f.count));
    Ok(ScheduleReport {
        url: spec.url.to_string(),
        protocol: protocol_of(&first),
        target_rate: args.rate,
        endpoints,
        interval_s: interval.as_secs_f64(),
        max_concurrency: args.concurrency,
        warmup_s: args.warmup.as_secs_f64(),
        window_s: seconds,
        interrupted,
        slots_planned,
        checks,
        passed: tally.passed,
        failed: tally.failed,
        skipped: tally.skipped,
        missed: slots_planned.saturating_sub(tally.slots()),
        checks_per_s: checks as f64 / seconds,
        lag_ms: tally.lag.latency_ms(),
        latency_ms: tally.latency.latency_ms(),
        failures,
        cpu,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// What the records of slots planned inside the window added up to.
#[derive(Debug)]
struct Tally {
    /// Records seen, inside the window or not (for progress).
    seen: u64,
    passed: u64,
    failed: u64,
    skipped: u64,
    lag: Histogram,
    latency: Histogram,
    failures: std::collections::BTreeMap<String, (u64, String)>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            seen: 0,
            passed: 0,
            failed: 0,
            skipped: 0,
            lag: Histogram::new(),
            latency: Histogram::new(),
            failures: std::collections::BTreeMap::new(),
        }
    }
}

impl Tally {
    /// Grid slots in the window accounted for (ran or skipped).
    fn slots(&self) -> u64 {
        self.passed + self.failed + self.skipped
    }

    fn add(
        &mut self,
        record: &scheduler::SlotRecord<vantage_core::result::CheckResult>,
        from: Duration,
        to: Duration,
    ) {
        self.seen += 1;
        let planned = record.planned_start.duration_since(UNIX_EPOCH).unwrap_or_default();
        if record.trigger != Trigger::Slot || planned < from || planned >= to {
            return;
        }
        match &record.outcome {
            Outcome::Skipped => self.skipped += 1,
            Outcome::Ran(result) => {
                self.lag.record(record.lag);
                match &result.error {
                    None => {
                        self.passed += 1;
                        self.latency.record(result.phases_ms.total);
                    }
                    Some(error) => {
                        self.failed += 1;
                        self.failures
                            .entry(failure_kind(error))
                            .or_insert_with(|| (0, error.message.clone()))
                            .0 += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_rate_and_interval() {
        assert_eq!(endpoint_count(2_000, Duration::from_secs(1)), 2_000);
        assert_eq!(endpoint_count(2_000, Duration::from_secs(10)), 20_000);
        assert_eq!(endpoint_count(1, Duration::from_millis(10)), 1);
    }

    #[test]
    fn slots_in_a_window_are_counted_from_the_schedule() {
        let interval = Duration::from_secs(1);
        let from = Duration::from_secs(1_000_000);
        // Each endpoint has exactly one slot per interval in any window of
        // whole intervals.
        assert_eq!(slots_between(100, interval, from, from + 10 * interval), 1_000);
        assert_eq!(slots_between(100, interval, from, from), 0);
        // Half an interval: each endpoint's slot is in it or not, by offset.
        let half = slots_between(1_000, interval, from, from + interval / 2);
        let by_offset = (1..=1_000u64).filter(|&id| slot_offset(id, interval) < interval / 2).count() as u64;
        assert_eq!(half, by_offset);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_scheduled_bench_runs_every_planned_slot() {
        let target = vantage_tests::HttpTarget::start(Default::default()).unwrap();
        let mut args = super::super::tests::args_for(target.url("/"));
        args.schedule = true;
        args.rate = 200;
        args.interval = Duration::from_millis(100);
        args.warmup = Duration::from_millis(200);
        args.duration = Duration::from_millis(500);
        args.concurrency = 16;
        let (spec, checker) = super::super::prepare(&args).unwrap();
        let report = run(&args, spec, checker, &mut Vec::new()).await.unwrap();
        assert_eq!(report.endpoints, 20);
        assert!(report.slots_planned >= 90 && report.slots_planned <= 110, "{report:?}");
        assert_eq!(report.checks + report.skipped + report.missed, report.slots_planned, "{report:?}");
        assert_eq!(report.missed, 0, "{report:?}");
        assert!(report.passed > 0 && report.failed == 0, "{report:?}");
        assert!(report.lag_ms.p50 <= report.lag_ms.max);
        let mut human = Vec::new();
        report.write_human(&mut human).unwrap();
        let human = String::from_utf8(human).unwrap();
        assert!(human.contains("lag") && human.contains("planned"), "{human}");
    }
}
