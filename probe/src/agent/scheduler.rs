//! The drift-free scheduler: runs every assigned endpoint at its slots on the
//! wall clock, `start = k * interval + offset(endpoint_id)`
//! ([`vantage_core::schedule`]), with bounded concurrency, measured lag and
//! skipped (never overlapped) slots.
//!
//! One driver task owns the whole schedule: a map of endpoints and a binary
//! heap of their next due slots (one live entry per endpoint). It sleeps until
//! the earliest slot, starts that check on its own task (tracked by a
//! [`TaskTracker`]), pushes the endpoint's next slot and sleeps again. There is
//! no task per endpoint, so an idle endpoint costs a map entry, a heap entry
//! and its job (a few hundred bytes; see the memory test below).
//!
//! Rules:
//! - A slot's start comes from the schedule, never from when the previous
//!   check ended: no drift, no coordinated omission.
//! - A check still running when its endpoint's next slot comes makes that slot
//!   [`Outcome::Skipped`] (a record carrying the round); checks of one
//!   endpoint never overlap on the grid.
//! - At most `max_concurrency` checks run at once. A check waiting for a
//!   permit past its slot starts late; the lag (actual minus planned start) is
//!   in its record and in [`LagHistogram`].
//! - If the driver itself falls a whole interval or more behind (process
//!   stopped, machine suspended), only the latest started slot runs; the
//!   rounds in between are counted in [`SchedulerStats::slots_missed`] and
//!   logged, not replayed in a burst.
//! - A wall-clock step (NTP, an operator) of more than [`CLOCK_JUMP`] is
//!   detected by comparing wall and monotonic time; the schedule is then
//!   recomputed from the new wall time.
//! - "Check now" ([`SchedulerHandle::check_now`]) runs one endpoint at once,
//!   outside the grid: it neither moves nor skips grid slots.
//!
//! Time: wall time comes from a [`WallClock`] and sleeping uses tokio's
//! timer. In production that is [`vantage_core::clock::SystemWallClock`];
//! tests use [`TokioWallClock`], whose wall time advances with tokio's
//! (pausable) clock, so `tokio::time::pause()` drives the whole schedule.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vantage_core::clock::WallClock;
use vantage_core::result::CheckResult;
use vantage_core::schedule::{next_slot, slot_offset, slot_start, Slot};
use vantage_core::spec::CheckSpec;

use crate::check::Checker;

/// The longest the driver sleeps without looking at the wall clock again, so
/// a wall-clock step is noticed within this time even when nothing is due.
pub const MAX_SLEEP: Duration = Duration::from_secs(1);

/// How far wall time may move against monotonic time between two looks
/// before the driver treats it as a clock step and recomputes every slot.
pub const CLOCK_JUMP: Duration = Duration::from_secs(1);

/// Why the scheduler refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The scheduler has shut down (its cancellation token fired).
    #[error("the scheduler has stopped")]
    Stopped,
    /// An interval below one millisecond (slot offsets have millisecond
    /// granularity).
    #[error("endpoint {endpoint_id}: interval {interval:?} is below 1ms")]
    InvalidInterval {
        /// The endpoint.
        endpoint_id: u64,
        /// The interval given.
        interval: Duration,
    },
    /// The same endpoint twice in one set.
    #[error("endpoint {endpoint_id} is listed twice; each endpoint may appear once per set")]
    DuplicateEndpoint {
        /// The endpoint.
        endpoint_id: u64,
    },
    /// "Check now" for an endpoint that is not scheduled here.
    #[error("endpoint {endpoint_id} is not scheduled on this probe")]
    UnknownEndpoint {
        /// The endpoint.
        endpoint_id: u64,
    },
    /// `max_concurrency` of zero.
    #[error("max_concurrency must be at least 1")]
    NoConcurrency,
}

/// What the scheduler needs to know to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// How many checks may run at once.
    pub max_concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self { max_concurrency: 256 }
    }
}

/// One endpoint to run on the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledEndpoint<J> {
    /// The endpoint's id; its slot offset is a hash of it.
    pub endpoint_id: u64,
    /// Time between slots.
    pub interval: Duration,
    /// What to run at each slot (a [`CheckSpec`] in the agent).
    pub job: J,
}

/// Runs one job. Implemented by [`Checker`] for [`CheckSpec`]s, and by any
/// `Fn(&J) -> impl Future` closure, so tests can inject fake checks.
pub trait Executor<J>: Send + Sync + 'static {
    /// What one run produces.
    type Output: Send + 'static;

    /// Runs `job` once.
    fn execute(&self, job: &J) -> impl Future<Output = Self::Output> + Send;
}

impl Executor<CheckSpec> for Checker {
    type Output = CheckResult;

    fn execute(&self, job: &CheckSpec) -> impl Future<Output = CheckResult> + Send {
        self.check(job)
    }
}

impl<J, F, Fut> Executor<J> for F
where
    F: Fn(&J) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    type Output = Fut::Output;

    fn execute(&self, job: &J) -> impl Future<Output = Self::Output> + Send {
        self(job)
    }
}

/// Why a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Its slot on the grid came.
    Slot,
    /// An out-of-slot "check now" request.
    CheckNow,
}

/// What happened at a slot.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<R> {
    /// The check ran and produced this.
    Ran(R),
    /// The endpoint's previous check was still running at this slot, so the
    /// slot was not checked.
    Skipped,
}

/// One emitted record: a slot that ran or was skipped, or a "check now" run.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRecord<R> {
    /// The endpoint.
    pub endpoint_id: u64,
    /// The slot's round `k`. For a "check now" run: the round of the latest
    /// slot that had started when it was asked for.
    pub round: u64,
    /// Why it ran.
    pub trigger: Trigger,
    /// When the slot started by the schedule (for "check now": when it was
    /// asked for).
    pub planned_start: SystemTime,
    /// When the check actually started (it had its concurrency permit); for a
    /// skipped slot, when the scheduler decided to skip it.
    pub actual_start: SystemTime,
    /// `actual_start - planned_start` (zero if the clock says otherwise).
    pub lag: Duration,
    /// What happened.
    pub outcome: Outcome<R>,
}

/// Counters of a running scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerStats {
    /// Endpoints scheduled now.
    pub endpoints: u64,
    /// Grid slots whose check ran (started).
    pub slots_run: u64,
    /// Grid slots skipped because the previous check was still running.
    pub slots_skipped: u64,
    /// Grid slots the driver itself fell behind on (stall, suspend, clock
    /// step forward).
    pub slots_missed: u64,
    /// "Check now" runs started.
    pub checks_now: u64,
    /// Wall-clock steps detected.
    pub clock_jumps: u64,
}

/// The answer to [`SchedulerHandle::check_now`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckNowStatus {
    /// A check of the endpoint has been started (its record follows).
    Started,
    /// A "check now" of this endpoint is already running; its record will
    /// answer this request too.
    AlreadyRunning,
}

/// Controls a running scheduler. Cheap to clone.
#[derive(Debug)]
pub struct SchedulerHandle<J> {
    commands: mpsc::UnboundedSender<Command<J>>,
    shared: Arc<Shared>,
}

impl<J> Clone for SchedulerHandle<J> {
    fn clone(&self) -> Self {
        Self { commands: self.commands.clone(), shared: self.shared.clone() }
    }
}

impl<J: Send + Sync + 'static> SchedulerHandle<J> {
    /// Replaces the whole set (a versioned full assignment). Endpoints that
    /// stay keep their grid; their job is updated for the next slot. Removed
    /// endpoints get no further slots (a check already running finishes and
    /// is reported).
    pub fn replace(&self, endpoints: Vec<ScheduledEndpoint<J>>) -> Result<(), SchedulerError> {
        validate(&endpoints)?;
        self.send(Command::Replace(endpoints))
    }

    /// Adds endpoints or updates them (a delta). An endpoint whose interval
    /// is unchanged keeps its grid; a new interval moves it to the new grid
    /// from now on.
    pub fn upsert(&self, endpoints: Vec<ScheduledEndpoint<J>>) -> Result<(), SchedulerError> {
        validate(&endpoints)?;
        self.send(Command::Upsert(endpoints))
    }

    /// Removes endpoints (a delta). Unknown ids are ignored.
    pub fn remove(&self, endpoint_ids: Vec<u64>) -> Result<(), SchedulerError> {
        self.send(Command::Remove(endpoint_ids))
    }

    /// Runs one scheduled endpoint now, outside its grid (the coordinator's
    /// re-check when another region sees it down). The grid is not
    /// disturbed: a grid check may run at the same time, and the next slots
    /// come as scheduled. The result arrives as a record with
    /// [`Trigger::CheckNow`].
    pub async fn check_now(&self, endpoint_id: u64) -> Result<CheckNowStatus, SchedulerError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::CheckNow { endpoint_id, reply })?;
        answer.await.map_err(|_| SchedulerError::Stopped)?
    }

    /// The counters so far.
    pub fn stats(&self) -> SchedulerStats {
        let c = &self.shared;
        SchedulerStats {
            endpoints: c.endpoints.load(Ordering::Relaxed),
            slots_run: c.slots_run.load(Ordering::Relaxed),
            slots_skipped: c.slots_skipped.load(Ordering::Relaxed),
            slots_missed: c.slots_missed.load(Ordering::Relaxed),
            checks_now: c.checks_now.load(Ordering::Relaxed),
            clock_jumps: c.clock_jumps.load(Ordering::Relaxed),
        }
    }

    /// The scheduling lag of grid checks that ran (actual minus planned
    /// start), since the scheduler started.
    pub fn lag(&self) -> &LagHistogram {
        &self.shared.lag
    }

    fn send(&self, command: Command<J>) -> Result<(), SchedulerError> {
        self.commands.send(command).map_err(|_| SchedulerError::Stopped)
    }
}

/// Starts the scheduler's driver on `tracker` and returns its handle and the
/// stream of records. It runs until `shutdown` fires; then running checks are
/// abandoned (dropped, no record), the driver ends, and the record stream
/// closes. The set starts empty: call [`SchedulerHandle::replace`].
///
/// The receiver must be drained promptly (the agent moves records into the
/// spool, which never blocks); records wait in memory until it is.
#[allow(clippy::type_complexity)]
pub fn spawn<J, E>(
    config: SchedulerConfig,
    executor: E,
    clock: Arc<dyn WallClock>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<(SchedulerHandle<J>, mpsc::UnboundedReceiver<SlotRecord<E::Output>>), SchedulerError>
where
    J: Send + Sync + 'static,
    E: Executor<J>,
{
    if config.max_concurrency == 0 {
        return Err(SchedulerError::NoConcurrency);
    }
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (records, records_rx) = mpsc::unbounded_channel();
    let (done_tx, done) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    let now = since_epoch(clock.now());
    let driver = Driver {
        executor: Arc::new(executor),
        clock,
        permits: Arc::new(Semaphore::new(config.max_concurrency)),
        tracker: tracker.clone(),
        shutdown,
        endpoints: HashMap::new(),
        due: BinaryHeap::new(),
        next_incarnation: 0,
        commands,
        commands_open: true,
        done_tx,
        done,
        records,
        shared: shared.clone(),
        last_look: (now, tokio::time::Instant::now()),
    };
    tracker.spawn(driver.run());
    Ok((SchedulerHandle { commands: commands_tx, shared }, records_rx))
}

/// A wall clock that advances with tokio's clock: `base_wall` plus the tokio
/// time elapsed since it was made. Under `tokio::time::pause()` its time
/// stands still and jumps with `advance()` and auto-advance, exactly like the
/// scheduler's timers, so tests see slots land exactly.
#[derive(Debug, Clone, Copy)]
pub struct TokioWallClock {
    base_wall: SystemTime,
    base_instant: tokio::time::Instant,
}

impl TokioWallClock {
    /// A clock reading `base_wall` now.
    pub fn new(base_wall: SystemTime) -> Self {
        Self { base_wall, base_instant: tokio::time::Instant::now() }
    }
}

impl WallClock for TokioWallClock {
    fn now(&self) -> SystemTime {
        self.base_wall + self.base_instant.elapsed()
    }
}

/// A histogram of scheduling lag in microseconds: exact below 16 µs, then 8
/// buckets per power of two (upper bounds within 12.5%). Lock-free and fixed
/// in size (496 counters).
#[derive(Debug)]
pub struct LagHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Default for LagHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..LAG_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl LagHistogram {
    /// Counts one lag.
    pub fn record(&self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.buckets[lag_bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// How many lags were counted.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The largest lag counted.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us.load(Ordering::Relaxed))
    }

    /// The `q` quantile (`0.0..=1.0`), as its bucket's upper bound (never
    /// above the maximum). Zero when nothing was counted.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let max_us = self.max_us.load(Ordering::Relaxed);
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(lag_bucket_upper(bucket).min(max_us));
            }
        }
        Duration::from_micros(max_us)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }
}

/// Buckets of [`LagHistogram`]: 16 exact, then 8 per power of two up to
/// 2^64 µs.
const LAG_BUCKETS: usize = 16 + 60 * 8;

fn lag_bucket(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let msb = 63 - u64::from(us.leading_zeros());
    let shift = msb - 3;
    (16 + (msb - 4) * 8 + ((us >> shift) - 8)) as usize
}

fn lag_bucket_upper(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < 16 {
        return bucket;
    }
    let msb = (bucket - 16) / 8 + 4;
    let sub = (bucket - 16) % 8 + 8;
    let upper = (u128::from(sub + 1) << (msb - 3)) - 1;
    u64::try_from(upper).unwrap_or(u64::MAX)
}

/// Counters shared between the driver and the handles.
#[derive(Debug, Default)]
struct Shared {
    endpoints: AtomicU64,
    slots_run: AtomicU64,
    slots_skipped: AtomicU64,
    slots_missed: AtomicU64,
    checks_now: AtomicU64,
    clock_jumps: AtomicU64,
    lag: LagHistogram,
}

#[derive(Debug)]
enum Command<J> {
    Replace(Vec<ScheduledEndpoint<J>>),
    Upsert(Vec<ScheduledEndpoint<J>>),
    Remove(Vec<u64>),
    CheckNow { endpoint_id: u64, reply: oneshot::Sender<Result<CheckNowStatus, SchedulerError>> },
}

/// One scheduled endpoint, as the driver keeps it. Small on purpose: this
/// and one heap entry are the whole per-endpoint cost besides the job.
#[derive(Debug)]
struct Entry<J> {
    job: Arc<J>,
    interval: Duration,
    offset: Duration,
    /// The slot the live heap entry stands for; a heap entry for any other
    /// slot is stale (left behind by an interval change or a removal).
    next: Slot,
    /// Tells a finished check of this endpoint from one of an earlier
    /// incarnation (removed and added again meanwhile).
    incarnation: u64,
    grid_running: bool,
    check_now_running: bool,
}

/// A heap entry: an endpoint's next slot. Ordered by start first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    start: Duration,
    endpoint_id: u64,
    round: u64,
}

/// A finished check, sent from its task back to the driver.
#[derive(Debug)]
struct Done<R> {
    incarnation: u64,
    record: SlotRecord<R>,
}

struct Driver<J, E: Executor<J>> {
    executor: Arc<E>,
    clock: Arc<dyn WallClock>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    endpoints: HashMap<u64, Entry<J>>,
    due: BinaryHeap<Reverse<Due>>,
    next_incarnation: u64,
    commands: mpsc::UnboundedReceiver<Command<J>>,
    commands_open: bool,
    done_tx: mpsc::UnboundedSender<Done<E::Output>>,
    done: mpsc::UnboundedReceiver<Done<E::Output>>,
    records: mpsc::UnboundedSender<SlotRecord<E::Output>>,
    shared: Arc<Shared>,
    /// Wall and monotonic time at the last look, to detect clock steps.
    last_look: (Duration, tokio::time::Instant),
}

impl<J, E> Driver<J, E>
where
    J: Send + Sync + 'static,
    E: Executor<J>,
{
    async fn run(mut self) {
        loop {
            let now = self.look_at_clock();
            self.start_due(now);
            let sleep = match self.due.peek() {
                Some(Reverse(due)) => due.start.saturating_sub(now).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some(done) = self.done.recv() => {
                    self.finish(done);
                    while let Ok(done) = self.done.try_recv() {
                        self.finish(done);
                    }
                }
                command = self.commands.recv(), if self.commands_open => match command {
                    // Fresh time: `now` is from before the sleep.
                    Some(command) => self.apply(command, since_epoch(self.clock.now())),
                    // Every handle is gone: the set can no longer change, but
                    // the schedule keeps running until shutdown.
                    None => self.commands_open = false,
                },
                () = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::debug!(endpoints = self.endpoints.len(), "scheduler stopped");
    }

    /// The wall time now, since the epoch; on a clock step, recomputes every
    /// endpoint's next slot from it.
    fn look_at_clock(&mut self) -> Duration {
        let wall = since_epoch(self.clock.now());
        let mono = tokio::time::Instant::now();
        let (last_wall, last_mono) = self.last_look;
        self.last_look = (wall, mono);
        let mono_elapsed = mono.duration_since(last_mono);
        let step = if wall >= last_wall {
            (wall - last_wall).abs_diff(mono_elapsed)
        } else {
            last_wall - wall + mono_elapsed
        };
        if step > CLOCK_JUMP {
            self.shared.clock_jumps.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                step_ms = step.as_millis() as u64,
                endpoints = self.endpoints.len(),
                "wall clock stepped; recomputing every slot"
            );
            self.due.clear();
            for (&endpoint_id, entry) in &mut self.endpoints {
                entry.next = next_slot(wall, entry.interval, entry.offset);
                self.due.push(Reverse(Due { start: entry.next.start, endpoint_id, round: entry.next.round }));
            }
        }
        wall
    }

    /// Starts (or skips) every slot due at `now`.
    fn start_due(&mut self, now: Duration) {
        while let Some(&Reverse(due)) = self.due.peek() {
            if due.start > now {
                break;
            }
            self.due.pop();
            let Some(entry) = self.endpoints.get_mut(&due.endpoint_id) else { continue };
            if entry.next != (Slot { round: due.round, start: due.start }) {
                continue; // stale
            }
            // Fell a whole interval or more behind: run the latest started
            // slot, count the ones in between.
            let latest = latest_started(now, entry.interval, entry.offset);
            let slot = if latest.round > due.round {
                let missed = latest.round - due.round;
                self.shared.slots_missed.fetch_add(missed, Ordering::Relaxed);
                tracing::warn!(endpoint_id = due.endpoint_id, missed, "scheduler fell behind; slots missed");
                latest
            } else {
                entry.next
            };
            entry.next = Slot {
                round: slot.round + 1,
                start: slot_start(slot.round + 1, entry.interval, entry.offset),
            };
            self.due.push(Reverse(Due {
                start: entry.next.start,
                endpoint_id: due.endpoint_id,
                round: entry.next.round,
            }));
            if entry.grid_running {
                self.shared.slots_skipped.fetch_add(1, Ordering::Relaxed);
                let planned = UNIX_EPOCH + slot.start;
                let _ = self.records.send(SlotRecord {
                    endpoint_id: due.endpoint_id,
                    round: slot.round,
                    trigger: Trigger::Slot,
                    planned_start: planned,
                    actual_start: UNIX_EPOCH + now,
                    lag: now.saturating_sub(slot.start),
                    outcome: Outcome::Skipped,
                });
            } else {
                entry.grid_running = true;
                self.shared.slots_run.fetch_add(1, Ordering::Relaxed);
                let launch = Launch {
                    endpoint_id: due.endpoint_id,
                    incarnation: entry.incarnation,
                    job: entry.job.clone(),
                    trigger: Trigger::Slot,
                    round: slot.round,
                    planned: slot.start,
                };
                self.launch(launch);
            }
        }
        self.compact_heap();
    }

    /// Drops stale heap entries when they outnumber live ones, so interval
    /// changes and removals cannot grow the heap without bound.
    fn compact_heap(&mut self) {
        if self.due.len() <= 2 * self.endpoints.len() + 1024 {
            return;
        }
        let endpoints = &self.endpoints;
        self.due.retain(|Reverse(due)| {
            endpoints
                .get(&due.endpoint_id)
                .is_some_and(|e| e.next == Slot { round: due.round, start: due.start })
        });
    }

    /// Starts one check on its own tracked task: wait for a permit, stamp
    /// the actual start, run, report back to the driver.
    fn launch(&self, launch: Launch<J>) {
        let executor = self.executor.clone();
        let permits = self.permits.clone();
        let clock = self.clock.clone();
        let done = self.done_tx.clone();
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let run = async {
                let Ok(_permit) = permits.acquire_owned().await else { return None };
                let actual = since_epoch(clock.now());
                let output = executor.execute(&launch.job).await;
                Some((actual, output))
            };
            let finished = tokio::select! {
                () = shutdown.cancelled() => None,
                finished = run => finished,
            };
            let Some((actual, output)) = finished else { return };
            let record = SlotRecord {
                endpoint_id: launch.endpoint_id,
                round: launch.round,
                trigger: launch.trigger,
                planned_start: UNIX_EPOCH + launch.planned,
                actual_start: UNIX_EPOCH + actual,
                lag: actual.saturating_sub(launch.planned),
                outcome: Outcome::Ran(output),
            };
            let _ = done.send(Done { incarnation: launch.incarnation, record });
        });
    }

    /// A check finished: free its endpoint for the next slot, count its lag,
    /// pass the record on.
    fn finish(&mut self, done: Done<E::Output>) {
        let record = done.record;
        if let Some(entry) = self.endpoints.get_mut(&record.endpoint_id) {
            if entry.incarnation == done.incarnation {
                match record.trigger {
                    Trigger::Slot => entry.grid_running = false,
                    Trigger::CheckNow => entry.check_now_running = false,
                }
            }
        }
        if record.trigger == Trigger::Slot {
            self.shared.lag.record(record.lag);
        }
        let _ = self.records.send(record);
    }

    fn apply(&mut self, command: Command<J>, now: Duration) {
        match command {
            Command::Replace(endpoints) => {
                let keep: HashSet<u64> = endpoints.iter().map(|e| e.endpoint_id).collect();
                self.endpoints.retain(|id, _| keep.contains(id));
                for endpoint in endpoints {
                    self.upsert(endpoint, now);
                }
            }
            Command::Upsert(endpoints) => {
                for endpoint in endpoints {
                    self.upsert(endpoint, now);
                }
            }
            Command::Remove(ids) => {
                for id in ids {
                    self.endpoints.remove(&id);
                }
            }
            Command::CheckNow { endpoint_id, reply } => {
                let _ = reply.send(self.check_now(endpoint_id, now));
            }
        }
        self.shared.endpoints.store(self.endpoints.len() as u64, Ordering::Relaxed);
        self.compact_heap();
    }

    fn upsert(&mut self, endpoint: ScheduledEndpoint<J>, now: Duration) {
        let ScheduledEndpoint { endpoint_id, interval, job } = endpoint;
        let job = Arc::new(job);
        let offset = slot_offset(endpoint_id, interval);
        let next = next_slot(now, interval, offset);
        match self.endpoints.get_mut(&endpoint_id) {
            Some(entry) if entry.interval == interval => {
                entry.job = job;
                return; // same grid
            }
            Some(entry) => {
                entry.job = job;
                entry.interval = interval;
                entry.offset = offset;
                entry.next = next;
            }
            None => {
                self.next_incarnation += 1;
                let entry = Entry {
                    job,
                    interval,
                    offset,
                    next,
                    incarnation: self.next_incarnation,
                    grid_running: false,
                    check_now_running: false,
                };
                self.endpoints.insert(endpoint_id, entry);
            }
        }
        self.due.push(Reverse(Due { start: next.start, endpoint_id, round: next.round }));
    }

    fn check_now(&mut self, endpoint_id: u64, now: Duration) -> Result<CheckNowStatus, SchedulerError> {
        let entry =
            self.endpoints.get_mut(&endpoint_id).ok_or(SchedulerError::UnknownEndpoint { endpoint_id })?;
        if entry.check_now_running {
            return Ok(CheckNowStatus::AlreadyRunning);
        }
        entry.check_now_running = true;
        let launch = Launch {
            endpoint_id,
            incarnation: entry.incarnation,
            job: entry.job.clone(),
            trigger: Trigger::CheckNow,
            round: latest_started(now, entry.interval, entry.offset).round,
            planned: now,
        };
        self.shared.checks_now.fetch_add(1, Ordering::Relaxed);
        self.launch(launch);
        Ok(CheckNowStatus::Started)
    }
}

/// What a check task needs.
struct Launch<J> {
    endpoint_id: u64,
    incarnation: u64,
    job: Arc<J>,
    trigger: Trigger,
    round: u64,
    planned: Duration,
}

/// The latest slot that has started at `now` (round 0 if none has).
fn latest_started(now: Duration, interval: Duration, offset: Duration) -> Slot {
    let next = next_slot(now, interval, offset);
    if next.start == now || next.round == 0 {
        return next;
    }
    Slot { round: next.round - 1, start: slot_start(next.round - 1, interval, offset) }
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn validate<J>(endpoints: &[ScheduledEndpoint<J>]) -> Result<(), SchedulerError> {
    let mut seen = HashSet::with_capacity(endpoints.len());
    for e in endpoints {
        if e.interval < Duration::from_millis(1) {
            return Err(SchedulerError::InvalidInterval { endpoint_id: e.endpoint_id, interval: e.interval });
        }
        if !seen.insert(e.endpoint_id) {
            return Err(SchedulerError::DuplicateEndpoint { endpoint_id: e.endpoint_id });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::sync::Mutex;

    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Test time starts here (whole seconds since the epoch).
    fn base() -> SystemTime {
        UNIX_EPOCH + S(1_700_000_000)
    }

    /// A fake job: how long its check takes, a tag to tell job versions
    /// apart, and a gauge of its endpoint's checks in flight.
    #[derive(Debug, Clone, Default)]
    struct Fake {
        takes: Duration,
        tag: u32,
        in_flight: Arc<AtomicU32>,
        max_in_flight: Arc<AtomicU32>,
    }

    fn fake(takes: Duration) -> Fake {
        Fake { takes, ..Fake::default() }
    }

    /// What a fake check reports: when it really began, and its job's tag.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Ran {
        began: SystemTime,
        tag: u32,
    }

    fn fake_executor(clock: TokioWallClock) -> impl Executor<Fake, Output = Ran> {
        move |job: &Fake| {
            let began = clock.now();
            let (takes, tag) = (job.takes, job.tag);
            let (in_flight, max_in_flight) = (job.in_flight.clone(), job.max_in_flight.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max_in_flight.fetch_max(now, Ordering::SeqCst);
                if !takes.is_zero() {
                    tokio::time::sleep(takes).await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ran { began, tag }
            }
        }
    }

    struct Harness {
        handle: SchedulerHandle<Fake>,
        records: mpsc::UnboundedReceiver<SlotRecord<Ran>>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    }

    impl Harness {
        fn start(max_concurrency: usize) -> Self {
            Self::start_with_clock(
                max_concurrency,
                TokioWallClock::new(base()),
                Arc::new(TokioWallClock::new(base())),
            )
        }

        fn start_with_clock(
            max_concurrency: usize,
            fake_clock: TokioWallClock,
            clock: Arc<dyn WallClock>,
        ) -> Self {
            let tracker = TaskTracker::new();
            let shutdown = CancellationToken::new();
            let config = SchedulerConfig { max_concurrency };
            let (handle, records) =
                spawn(config, fake_executor(fake_clock), clock, &tracker, shutdown.clone()).unwrap();
            Self { handle, records, tracker, shutdown }
        }

        async fn next(&mut self) -> SlotRecord<Ran> {
            self.records.recv().await.expect("scheduler running")
        }

        /// Lets the schedule run until `at` (since the test's base), then
        /// returns every record emitted so far.
        async fn run_until(&mut self, at: Duration) -> Vec<SlotRecord<Ran>> {
            tokio::time::sleep_until(test_start() + at).await;
            let mut out = Vec::new();
            while let Ok(r) = self.records.try_recv() {
                out.push(r);
            }
            out
        }

        async fn stop(mut self) -> Vec<SlotRecord<Ran>> {
            self.shutdown.cancel();
            self.tracker.close();
            self.tracker.wait().await;
            let mut rest = Vec::new();
            while let Some(r) = self.records.recv().await {
                rest.push(r);
            }
            rest
        }
    }

    /// The tokio instant the test started at (the paused clock starts there
    /// and the wall clocks were made there).
    fn test_start() -> tokio::time::Instant {
        thread_local!(static START: std::cell::OnceCell<tokio::time::Instant> = const { std::cell::OnceCell::new() });
        START.with(|s| *s.get_or_init(tokio::time::Instant::now))
    }

    fn endpoint(endpoint_id: u64, interval: Duration, job: Fake) -> ScheduledEndpoint<Fake> {
        ScheduledEndpoint { endpoint_id, interval, job }
    }

    fn planned(endpoint_id: u64, interval: Duration, round: u64) -> SystemTime {
        UNIX_EPOCH + slot_start(round, interval, slot_offset(endpoint_id, interval))
    }

    /// The first round at or after `at` (since base).
    fn first_round(endpoint_id: u64, interval: Duration, at: Duration) -> u64 {
        next_slot(since_epoch(base()) + at, interval, slot_offset(endpoint_id, interval)).round
    }

    /// Asserts `records` (of one endpoint, grid only) are consecutive rounds
    /// from `first`, each ran exactly at its slot.
    fn assert_on_grid(records: &[&SlotRecord<Ran>], endpoint_id: u64, interval: Duration, first: u64) {
        for (i, r) in records.iter().enumerate() {
            let round = first + i as u64;
            assert_eq!(r.round, round, "endpoint {endpoint_id}: rounds are consecutive");
            assert_eq!(
                r.planned_start,
                planned(endpoint_id, interval, round),
                "endpoint {endpoint_id} round {round}"
            );
            assert_eq!(r.actual_start, r.planned_start, "endpoint {endpoint_id} round {round} started late");
            assert_eq!(r.lag, Duration::ZERO);
            match &r.outcome {
                Outcome::Ran(ran) => assert_eq!(ran.began, r.planned_start),
                Outcome::Skipped => panic!("endpoint {endpoint_id} round {round} skipped"),
            }
        }
    }

    fn of(records: &[SlotRecord<Ran>], endpoint_id: u64) -> Vec<&SlotRecord<Ran>> {
        let mut mine: Vec<_> =
            records.iter().filter(|r| r.endpoint_id == endpoint_id && r.trigger == Trigger::Slot).collect();
        mine.sort_by_key(|r| r.round);
        mine
    }

    /// The first whole millisecond at or after `around` (since base) at which
    /// none of `set` has a slot, so a test acting then does not race one.
    fn quiet_moment(set: &[(u64, Duration)], around: Duration) -> Duration {
        (0..)
            .map(|ms| around + MS(ms))
            .find(|&t| {
                set.iter().all(|&(id, interval)| {
                    next_slot(since_epoch(base()) + t, interval, slot_offset(id, interval)).start
                        != since_epoch(base()) + t
                })
            })
            .unwrap()
    }

    /// Slots of `interval` for `endpoint_id` starting in `[from, to)` (since base).
    fn slots_between(endpoint_id: u64, interval: Duration, from: Duration, to: Duration) -> u64 {
        let first = first_round(endpoint_id, interval, from);
        let end = first_round(endpoint_id, interval, to);
        end - first
    }

    #[tokio::test(start_paused = true)]
    async fn thousand_intervals_land_exactly_on_their_slots() {
        test_start();
        let mut h = Harness::start(4);
        let interval = S(10);
        h.handle.replace(vec![endpoint(42, interval, fake(Duration::ZERO))]).unwrap();
        let first = first_round(42, interval, Duration::ZERO);
        let mut records = Vec::new();
        for _ in 0..1000 {
            records.push(h.next().await);
        }
        assert_on_grid(&records.iter().collect::<Vec<_>>(), 42, interval, first);
        let last = records.last().unwrap();
        assert_eq!(last.round, first + 999);
        assert_eq!(h.handle.lag().count(), 1000);
        assert_eq!(h.handle.lag().p99(), Duration::ZERO);
        assert_eq!(h.handle.lag().max(), Duration::ZERO);
        let stats = h.handle.stats();
        assert_eq!((stats.slots_skipped, stats.slots_missed, stats.clock_jumps), (0, 0, 0));
        assert_eq!(stats.endpoints, 1);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn endpoints_with_different_intervals_all_stay_on_their_grids() {
        test_start();
        let mut h = Harness::start(16);
        let set = [(1, MS(1_000)), (2, MS(2_500)), (3, S(7)), (4, S(10)), (5, S(60)), (6, MS(90))];
        h.handle.replace(set.iter().map(|&(id, i)| endpoint(id, i, fake(MS(1)))).collect()).unwrap();
        let horizon = S(600);
        let records = h.run_until(horizon).await;
        for (id, interval) in set {
            let mine = of(&records, id);
            let expected = slots_between(id, interval, Duration::ZERO, horizon);
            // A slot at the horizon itself may or may not have been reported.
            let mine: Vec<_> = mine.into_iter().filter(|r| r.planned_start < base() + horizon).collect();
            assert_eq!(mine.len() as u64, expected, "endpoint {id} every {interval:?}");
            assert_on_grid(&mine, id, interval, first_round(id, interval, Duration::ZERO));
        }
        assert_eq!(h.handle.lag().p99(), Duration::ZERO);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_check_skips_its_next_slot_and_the_one_after_runs_on_time() {
        test_start();
        let mut h = Harness::start(4);
        let interval = S(10);
        let job = fake(S(15));
        let max_in_flight = job.max_in_flight.clone();
        h.handle.replace(vec![endpoint(7, interval, job)]).unwrap();
        let first = first_round(7, interval, Duration::ZERO);
        let mut records = Vec::new();
        while records.len() < 10 {
            records.push(h.next().await);
        }
        records.sort_by_key(|r| r.round);
        for (i, r) in records.iter().enumerate() {
            let round = first + i as u64;
            assert_eq!(r.round, round);
            assert_eq!(r.planned_start, planned(7, interval, round));
            if i % 2 == 0 {
                assert!(matches!(r.outcome, Outcome::Ran(_)), "round {round} should run: {r:?}");
                assert_eq!(r.actual_start, r.planned_start, "round {round} runs on time, not late");
            } else {
                assert_eq!(r.outcome, Outcome::Skipped, "round {round} falls inside the previous check");
                assert_eq!(r.actual_start, r.planned_start, "skipped at its slot");
            }
        }
        assert_eq!(max_in_flight.load(Ordering::SeqCst), 1, "never overlapped");
        let stats = h.handle.stats();
        assert_eq!(stats.slots_skipped, 5);
        assert_eq!(h.handle.lag().max(), Duration::ZERO);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_concurrency_delays_checks_and_measures_the_lag() {
        test_start();
        let interval = S(10);
        // Two endpoints whose slots are 0.5 s to 2 s apart.
        let offset = |id| slot_offset(id, interval);
        let (a, b) = (1..)
            .flat_map(|a| (1..200).map(move |b| (a, b)))
            .find(|&(a, b)| offset(b) > offset(a) + MS(500) && offset(b) < offset(a) + S(2))
            .unwrap();
        let expected_lag = offset(a) + S(3) - offset(b);
        let mut h = Harness::start(1);
        h.handle.replace(vec![endpoint(a, interval, fake(S(3))), endpoint(b, interval, fake(S(3)))]).unwrap();
        let mut records = Vec::new();
        while records.len() < 10 {
            records.push(h.next().await);
        }
        for r in &records {
            let Outcome::Ran(ran) = &r.outcome else { panic!("nothing is skipped here: {r:?}") };
            assert_eq!(ran.began, r.actual_start);
            assert_eq!(
                r.planned_start,
                planned(r.endpoint_id, interval, r.round),
                "planned start stays on the grid"
            );
            if r.endpoint_id == a {
                assert_eq!(r.lag, Duration::ZERO);
            } else {
                assert_eq!(r.lag, expected_lag, "b waited for a's permit");
                assert_eq!(r.actual_start, r.planned_start + expected_lag);
            }
        }
        let lag = h.handle.lag();
        assert_eq!(lag.count(), 10);
        assert_eq!(lag.max(), expected_lag);
        let p99 = lag.p99();
        assert!(p99 >= expected_lag && p99 <= expected_lag * 9 / 8, "p99 {p99:?} vs {expected_lag:?}");
        assert_eq!(lag.quantile(0.5), Duration::ZERO);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn replacing_and_updating_the_set_leaves_other_grids_undisturbed() {
        test_start();
        let mut h = Harness::start(16);
        let tagged = |tag| Fake { tag, ..fake(MS(5)) };
        let (i1, i2, i3, i4) = (S(3), S(5), S(7), S(4));
        h.handle
            .replace(vec![endpoint(1, i1, tagged(1)), endpoint(2, i2, tagged(2)), endpoint(3, i3, tagged(3))])
            .unwrap();
        let all = [(1, i1), (2, i2), (3, i3), (4, i4), (3, S(2))];
        let t1 = quiet_moment(&all, S(60));
        let mut records = h.run_until(t1).await;
        // Full set: 1 goes, 2 stays with a new job, 3 stays, 4 comes.
        h.handle
            .replace(vec![
                endpoint(2, i2, tagged(20)),
                endpoint(3, i3, tagged(3)),
                endpoint(4, i4, tagged(4)),
            ])
            .unwrap();
        let t2 = quiet_moment(&all, S(120));
        records.extend(h.run_until(t2).await);
        // Deltas: 3 moves to a 2 s grid, 4 goes.
        h.handle.upsert(vec![endpoint(3, S(2), tagged(30))]).unwrap();
        h.handle.remove(vec![4, 999]).unwrap();
        let t3 = S(180);
        records.extend(h.run_until(t3).await);
        let records: Vec<_> = records.into_iter().filter(|r| r.planned_start < base() + t3).collect();

        let one = of(&records, 1);
        assert_eq!(one.len() as u64, slots_between(1, i1, Duration::ZERO, t1));
        assert_on_grid(&one, 1, i1, first_round(1, i1, Duration::ZERO));

        let two = of(&records, 2);
        assert_eq!(two.len() as u64, slots_between(2, i2, Duration::ZERO, t3), "no slot lost or doubled");
        assert_on_grid(&two, 2, i2, first_round(2, i2, Duration::ZERO));
        for r in &two {
            let Outcome::Ran(ran) = r.outcome else { unreachable!() };
            let want = if r.planned_start < base() + t1 { 2 } else { 20 };
            assert_eq!(ran.tag, want, "the new job applies from the next slot");
        }

        let three: Vec<_> = of(&records, 3);
        let (old, new): (Vec<_>, Vec<_>) = three.into_iter().partition(|r| r.planned_start < base() + t2);
        assert_eq!(old.len() as u64, slots_between(3, i3, Duration::ZERO, t2));
        assert_on_grid(&old, 3, i3, first_round(3, i3, Duration::ZERO));
        assert_eq!(new.len() as u64, slots_between(3, S(2), t2, t3));
        assert_on_grid(&new, 3, S(2), first_round(3, S(2), t2));

        let four = of(&records, 4);
        assert_eq!(four.len() as u64, slots_between(4, i4, t1, t2));
        assert_on_grid(&four, 4, i4, first_round(4, i4, t1));

        assert_eq!(h.handle.stats().endpoints, 2);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn check_now_runs_once_immediately_without_moving_the_grid() {
        test_start();
        let mut h = Harness::start(4);
        let interval = S(60);
        h.handle.replace(vec![endpoint(5, interval, fake(S(2)))]).unwrap();
        let asked_at = quiet_moment(&[(5, interval)], MS(12_345));
        let mut records = h.run_until(asked_at).await;
        assert_eq!(h.handle.check_now(5).await, Ok(CheckNowStatus::Started));
        assert_eq!(h.handle.check_now(5).await, Ok(CheckNowStatus::AlreadyRunning), "coalesced");
        assert_eq!(h.handle.check_now(6).await, Err(SchedulerError::UnknownEndpoint { endpoint_id: 6 }));
        let horizon = S(600);
        records.extend(h.run_until(horizon).await);

        let now_runs: Vec<_> = records.iter().filter(|r| r.trigger == Trigger::CheckNow).collect();
        assert_eq!(now_runs.len(), 1, "{now_runs:?}");
        let r = now_runs[0];
        assert_eq!(r.planned_start, base() + asked_at);
        assert_eq!(r.actual_start, base() + asked_at, "immediately");
        assert!(matches!(r.outcome, Outcome::Ran(_)));
        let offset = slot_offset(5, interval);
        assert_eq!(r.round, latest_started(since_epoch(base()) + asked_at, interval, offset).round);

        let grid: Vec<_> =
            of(&records, 5).into_iter().filter(|r| r.planned_start < base() + horizon).collect();
        assert_eq!(grid.len() as u64, slots_between(5, interval, Duration::ZERO, horizon));
        assert_on_grid(&grid, 5, interval, first_round(5, interval, Duration::ZERO));
        assert_eq!(h.handle.stats().checks_now, 1);
        assert_eq!(h.handle.lag().count(), grid.len() as u64, "check-now lag is not scheduling lag");
        h.stop().await;
    }

    /// A wall clock that can be stepped, like NTP or an operator would.
    #[derive(Debug)]
    struct SteppedClock {
        inner: TokioWallClock,
        back: Mutex<Duration>,
    }

    impl WallClock for SteppedClock {
        fn now(&self) -> SystemTime {
            self.inner.now() - *self.back.lock().unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_step_back_reschedules_from_the_new_time() {
        test_start();
        let clock =
            Arc::new(SteppedClock { inner: TokioWallClock::new(base()), back: Mutex::new(Duration::ZERO) });
        let mut h = Harness::start_with_clock(4, TokioWallClock::new(base()), clock.clone());
        let interval = S(10);
        h.handle.replace(vec![endpoint(9, interval, fake(Duration::ZERO))]).unwrap();
        let stepped_at = quiet_moment(&[(9, interval)], S(30) + MS(500));
        let before = h.run_until(stepped_at).await;
        assert_eq!(before.len() as u64, slots_between(9, interval, Duration::ZERO, stepped_at));
        *clock.back.lock().unwrap() = S(3600);
        let after = h.run_until(S(90) + MS(500)).await;
        // Within MAX_SLEEP the step is noticed; then slots follow the new
        // wall time instead of waiting an hour for the old ones.
        assert!(after.len() >= 5, "{after:?}");
        let offset = slot_offset(9, interval);
        for r in &after {
            assert_eq!(since_epoch(r.planned_start), slot_start(r.round, interval, offset));
            assert!(r.lag <= MAX_SLEEP, "{r:?}");
        }
        assert_eq!(h.handle.stats().clock_jumps, 1);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_abandons_running_checks_and_closes_the_stream() {
        test_start();
        let h = Harness::start(4);
        let handle = h.handle.clone();
        handle.replace(vec![endpoint(1, S(10), fake(S(3600)))]).unwrap();
        tokio::time::sleep(S(30)).await;
        let stats = handle.stats();
        let rest = h.stop().await;
        // Only the skips were reported; the hour-long check was dropped.
        assert!(rest.iter().all(|r| r.outcome == Outcome::Skipped), "{rest:?}");
        assert_eq!(rest.len() as u64, stats.slots_skipped);
        assert_eq!(handle.replace(Vec::new()), Err(SchedulerError::Stopped));
        assert_eq!(handle.check_now(1).await, Err(SchedulerError::Stopped));
    }

    #[tokio::test(start_paused = true)]
    async fn bad_sets_and_configs_are_refused() {
        let tracker = TaskTracker::new();
        let clock: Arc<dyn WallClock> = Arc::new(TokioWallClock::new(base()));
        let refused = spawn::<Fake, _>(
            SchedulerConfig { max_concurrency: 0 },
            fake_executor(TokioWallClock::new(base())),
            clock,
            &tracker,
            CancellationToken::new(),
        );
        assert_eq!(refused.err(), Some(SchedulerError::NoConcurrency));
        let h = Harness::start(1);
        assert_eq!(
            h.handle.replace(vec![endpoint(1, Duration::from_micros(999), fake(Duration::ZERO))]),
            Err(SchedulerError::InvalidInterval { endpoint_id: 1, interval: Duration::from_micros(999) })
        );
        assert_eq!(
            h.handle.upsert(vec![endpoint(2, S(1), Fake::default()), endpoint(2, S(2), Fake::default())]),
            Err(SchedulerError::DuplicateEndpoint { endpoint_id: 2 })
        );
        h.stop().await;
    }

    #[test]
    fn lag_histogram_buckets_are_exact_then_within_an_eighth() {
        for us in
            [0, 1, 15, 16, 17, 100, 1_000, 12_345, 1_000_000, u64::from(u32::MAX), u64::MAX / 3, u64::MAX]
        {
            let bucket = lag_bucket(us);
            assert!(bucket < LAG_BUCKETS, "{us} -> {bucket}");
            let upper = lag_bucket_upper(bucket);
            assert!(upper >= us, "{us} -> upper {upper}");
            assert!((upper - us) as f64 <= us as f64 / 8.0, "{us} -> upper {upper}");
        }
        let mut last = 0;
        for us in (0..200_000).step_by(3) {
            assert!(lag_bucket(us) >= last);
            last = lag_bucket(us);
        }
        let h = LagHistogram::default();
        assert_eq!(h.p99(), Duration::ZERO);
        for ms in 1..=100 {
            h.record(MS(ms));
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.max(), MS(100));
        let p99 = h.p99();
        assert!(p99 >= MS(99) && p99 <= MS(100), "{p99:?}");
    }

    /// Compile-time proof that the real check engine plugs in.
    #[allow(dead_code)]
    fn checker_is_an_executor(checker: Checker, tracker: &TaskTracker) {
        let clock: Arc<dyn WallClock> = Arc::new(vantage_core::clock::SystemWallClock);
        let _: Result<(SchedulerHandle<CheckSpec>, mpsc::UnboundedReceiver<SlotRecord<CheckResult>>), _> =
            spawn(SchedulerConfig::default(), checker, clock, tracker, CancellationToken::new());
    }

    const MEMORY_CHILD: &str = "VANTAGE_SCHEDULER_MEMORY_CHILD";
    const ENDPOINTS: u64 = 100_000;

    /// Memory per scheduled endpoint at 100,000 endpoints, each with a real
    /// `CheckSpec`. Measured as the growth of VmRSS in a child process that
    /// runs only this test (so other tests' allocations do not blur it):
    /// the parent re-runs this test binary with `--exact` and an environment
    /// variable, reads the figure the child prints, and holds it to the
    /// issue's bound of 4 KiB.
    #[test]
    fn memory_per_scheduled_endpoint_at_100k_is_under_4_kib() {
        if std::env::var_os(MEMORY_CHILD).is_some() {
            measure_memory_per_endpoint();
            return;
        }
        let name = "agent::scheduler::tests::memory_per_scheduled_endpoint_at_100k_is_under_4_kib";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(MEMORY_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let line =
            stdout.lines().find_map(|l| Some(&l[l.find("scheduler memory:")?..])).expect("child reports");
        println!("{line}");
        let per_endpoint: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rss_bytes_per_endpoint="))
            .and_then(|v| v.parse().ok())
            .expect("figure");
        assert!(per_endpoint <= 4096, "{line}");
    }

    fn measure_memory_per_endpoint() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let tracker = TaskTracker::new();
            let shutdown = CancellationToken::new();
            let clock: Arc<dyn WallClock> = Arc::new(vantage_core::clock::SystemWallClock);
            let executor = |_: &CheckSpec| async {};
            let (handle, mut records) =
                spawn(SchedulerConfig::default(), executor, clock, &tracker, shutdown.clone()).unwrap();
            let drain = tokio::spawn(async move { while records.recv().await.is_some() {} });
            let before = vm_rss_bytes();
            let endpoints = (0..ENDPOINTS)
                .map(|id| ScheduledEndpoint {
                    endpoint_id: id,
                    interval: S(60),
                    job: CheckSpec::parse(&format!("https://endpoint-{id}.status.example.com/healthz"))
                        .unwrap(),
                })
                .collect();
            handle.replace(endpoints).unwrap();
            while handle.stats().endpoints < ENDPOINTS {
                tokio::time::sleep(MS(10)).await;
            }
            let after = vm_rss_bytes();
            let per_endpoint = after.saturating_sub(before) / ENDPOINTS;
            let fixed = std::mem::size_of::<Entry<CheckSpec>>()
                + std::mem::size_of::<u64>()
                + std::mem::size_of::<Reverse<Due>>()
                + std::mem::size_of::<CheckSpec>();
            println!(
                "scheduler memory: endpoints={ENDPOINTS} rss_before={before} rss_after={after} \
                 rss_bytes_per_endpoint={per_endpoint} inline_bytes_per_endpoint={fixed} \
                 (entry {} + key 8 + heap entry {} + CheckSpec {}, before the spec's own heap strings)",
                std::mem::size_of::<Entry<CheckSpec>>(),
                std::mem::size_of::<Reverse<Due>>(),
                std::mem::size_of::<CheckSpec>(),
            );
            shutdown.cancel();
            tracker.close();
            tracker.wait().await;
            drain.await.unwrap();
        });
    }

    fn vm_rss_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        kib * 1024
    }
}
