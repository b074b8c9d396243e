//! The alert outbox's sink: on the leader only, deliver the committed
//! pending deliveries whose time has come and commit each outcome.
//!
//! Every `tick` (and at once when this node starts leading) the dispatcher
//! reads its own applied state, picks the pending deliveries due now that
//! are not already in flight, up to `max_in_flight` at a time, and sends
//! each with the [`WebhookService`]. Each attempt's outcome is committed as
//! [`Command::RecordDelivery`] under the idempotency key
//! `delivery-{id}-{attempt}`, so a retried commit is applied once:
//! delivered; retry at a time [`RetryPolicy`] draws (bounded in attempts
//! and age, `Retry-After` honoured); or failed, visible in the state, never
//! dropped. A delivery whose webhook was removed is failed with an error
//! saying so.
//!
//! The `webhook-id` of every attempt is [`Delivery::message_id`], a
//! function of the replicated delivery: the same across retries and leader
//! changes. A new leader simply finds the pending deliveries in its state
//! (it reads only once it has applied its term's first entry,
//! [`ClusterNode::leading_term`]); an attempt the old leader made but did
//! not record is made again with the same id, which receivers
//! de-duplicate.
//!
//! For Alertmanager webhooks the dispatcher also re-posts every
//! `alertmanager_repost` the alerts of open incidents (and of those
//! resolved within two such periods, with `endsAt`), since Alertmanager
//! resolves an alert it stops hearing about. Re-posts are idempotent for
//! Alertmanager, so they bypass the outbox and are only logged and
//! counted.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vantage_core::agreement::State;
use vantage_core::clock::WallClock;
use vantage_core::webhook::{WebhookFormat, WebhookSpec};

use super::alert::{opening_event, Alert};
use super::encoder::alertmanager_alert;
use super::events;
use super::service::{AttemptOutcome, WebhookService};
use crate::node::ClusterNode;
use crate::sinks::retry::{jitter, Next, RetryPolicy};
use crate::state::{
    Command, CommandResponse, Delivery, DeliveryId, DeliveryOutcome, DeliveryRecord, DeliveryStatus,
    IdempotencyKey, MeshState, Outcome, Request, UnixMillis, WebhookId,
};

/// How often the dispatcher looks for due deliveries by default.
pub const DEFAULT_TICK: Duration = Duration::from_millis(250);
/// Deliveries in flight at once by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;
/// How often open incidents are re-posted to Alertmanager by default
/// (Alertmanager's own `resolve_timeout` defaults to 5 minutes; posting
/// more often than that keeps the alert active).
pub const DEFAULT_ALERTMANAGER_REPOST: Duration = Duration::from_secs(60);
/// Commits of one outcome tried before the dispatcher leaves the delivery
/// to its next round (it is still pending, so it is sent again).
const COMMIT_TRIES: u32 = 3;

/// The dispatcher's tunables.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// How often due deliveries are looked for.
    pub tick: Duration,
    /// Deliveries sent at once, at most.
    pub max_in_flight: usize,
    /// When to try again and when to give up.
    pub retry: RetryPolicy,
    /// Sends requests (timeouts, body cap, trusted roots).
    pub service: WebhookService,
    /// How often open incidents are re-posted to Alertmanager webhooks.
    pub alertmanager_repost: Duration,
    /// The coordinator's public HTTP base URL, linked from bodies.
    pub base_url: Option<String>,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        DispatcherOptions {
            tick: DEFAULT_TICK,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            retry: RetryPolicy::default(),
            service: WebhookService::default(),
            alertmanager_repost: DEFAULT_ALERTMANAGER_REPOST,
            base_url: None,
        }
    }
}

/// The running dispatcher.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
}

struct Shared {
    node: ClusterNode,
    clock: Arc<dyn WallClock>,
    options: DispatcherOptions,
    /// Deliveries being sent or recorded now.
    in_flight: Mutex<BTreeSet<DeliveryId>>,
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Dispatcher {
    /// Starts delivering on `node` (doing nothing while it does not lead)
    /// until `shutdown` is cancelled; [`Dispatcher::stopped`] returns once
    /// every attempt in flight has ended.
    pub fn start(
        node: ClusterNode,
        clock: Arc<dyn WallClock>,
        options: DispatcherOptions,
        shutdown: CancellationToken,
    ) -> Dispatcher {
        let slots = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
        let shared = Arc::new(Shared {
            node,
            clock,
            options,
            in_flight: Mutex::new(BTreeSet::new()),
            slots,
            tasks: TaskTracker::new(),
            shutdown,
        });
        shared.tasks.spawn(run(shared.clone()));
        shared.tasks.close();
        Dispatcher { shared }
    }

    /// Returns once the dispatcher has stopped (after `shutdown`).
    pub async fn stopped(&self) {
        self.shared.tasks.wait().await;
    }
}

/// What the dispatcher decides after one attempt, from the attempt's
/// outcome: delivered; failed at once (the receiver refused it, or the
/// address is not allowed); or, for a failure that may pass, a retry at
/// `now` + the policy's delay, unless attempts (`attempts` made, this one
/// included) or age (since `created_at`, when the delivery was due first)
/// are used up. `unit` is the jitter draw in `[0, 1)`.
pub fn decide(
    outcome: &AttemptOutcome,
    attempts: u32,
    created_at: UnixMillis,
    now: UnixMillis,
    policy: &RetryPolicy,
    unit: f64,
) -> DeliveryOutcome {
    match outcome {
        AttemptOutcome::Delivered => DeliveryOutcome::Delivered,
        AttemptOutcome::Rejected { error } => DeliveryOutcome::Failed { error: error.to_string() },
        AttemptOutcome::Retryable { error, retry_after } => {
            let elapsed = Duration::from_millis(now.0.saturating_sub(created_at.0));
            match policy.next(attempts, elapsed, unit, *retry_after) {
                Next::RetryAfter(delay) => DeliveryOutcome::Retry {
                    error: error.to_string(),
                    next_attempt_at: UnixMillis(now.0 + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
                },
                Next::GiveUp => DeliveryOutcome::Failed {
                    error: format!(
                        "{error}; gave up after {attempts} attempt(s) in {}",
                        vantage_core::time::format_duration(Duration::from_secs(elapsed.as_secs()))
                    ),
                },
            }
        }
    }
}

/// The idempotency key of one attempt's record: a retried commit of the
/// same attempt is applied once.
pub fn record_key(delivery: DeliveryId, attempts: u32) -> IdempotencyKey {
    IdempotencyKey(format!("delivery-{}-{attempts}", delivery.0))
}

/// One delivery to make: everything read from the state at pick time.
struct Job {
    delivery: Delivery,
    /// `None`: the webhook was removed.
    webhook: Option<(String, WebhookSpec)>,
    alert: Alert,
}

async fn run(shared: Arc<Shared>) {
    let mut ticker = tokio::time::interval(shared.options.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = None;
    let mut last_repost: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let term = shared.node.leading_term();
        if term != leading {
            match term {
                Some(term) => tracing::info!(term, "alert dispatcher delivering: this node leads"),
                None => tracing::info!("alert dispatcher idle: this node does not lead"),
            }
            leading = term;
            // A new leader re-posts to Alertmanager at once.
            last_repost = None;
        }
        let Some(term) = term else { continue };
        dispatch_due(&shared, term);
        if last_repost.is_none_or(|at| at.elapsed() >= shared.options.alertmanager_repost) {
            last_repost = Some(tokio::time::Instant::now());
            repost_to_alertmanager(&shared, term);
        }
    }
    tracing::debug!("alert dispatcher stopping");
}

/// Starts an attempt for each due pending delivery not in flight, as many
/// as there are free slots.
fn dispatch_due(shared: &Arc<Shared>, term: u64) {
    let free = shared.slots.available_permits();
    if free == 0 {
        return;
    }
    let now = UnixMillis::from(shared.clock.now());
    let base_url = shared.options.base_url.as_deref();
    let jobs: Vec<Job> = {
        let in_flight = shared.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        shared.node.read_local(|applied| {
            let mesh = &applied.mesh;
            // One endpoint's alerts reach one webhook in the order they were
            // decided (deliveries by id): a later one waits while an earlier
            // one for the same pair is still pending.
            let mut first_of_pair = std::collections::BTreeSet::new();
            mesh.deliveries()
                .values()
                .filter(|d| matches!(d.status, DeliveryStatus::Pending { .. }))
                .filter(|d| first_of_pair.insert((d.webhook, d.endpoint)))
                .filter(|d| is_due(&d.status, now))
                .filter(|d| !in_flight.contains(&d.id))
                .take(free)
                .map(|d| Job {
                    delivery: d.clone(),
                    webhook: mesh.webhooks().get(&d.webhook).map(|w| (w.spec.name.clone(), w.spec.clone())),
                    alert: Alert::of_delivery(mesh, d, base_url),
                })
                .collect()
        })
    };
    for job in jobs {
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else { break };
        shared.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(job.delivery.id);
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            let id = job.delivery.id;
            attempt(&task_shared, term, job).await;
            task_shared.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            drop(permit);
        });
    }
}

fn is_due(status: &DeliveryStatus, now: UnixMillis) -> bool {
    matches!(status, DeliveryStatus::Pending { next_attempt_at } if *next_attempt_at <= now)
}

/// Sends one delivery and records the outcome.
async fn attempt(shared: &Shared, term: u64, job: Job) {
    let Job { delivery, webhook, alert } = job;
    let (attempts, outcome, key) = match &webhook {
        None => {
            let error = format!(
                "webhook {} was removed before this alert was delivered; nothing was sent",
                delivery.webhook.0
            );
            let key = IdempotencyKey(format!("delivery-{}-removed", delivery.id.0));
            (delivery.attempts, DeliveryOutcome::Failed { error }, key)
        }
        Some((name, spec)) => {
            let attempts = delivery.attempts + 1;
            let sent = tokio::select! {
                () = shared.shutdown.cancelled() => return,
                sent = shared.options.service.deliver(spec, &alert, shared.clock.now()) => sent,
            };
            let now = UnixMillis::from(shared.clock.now());
            let outcome =
                decide(&sent.outcome, attempts, delivery.created_at, now, &shared.options.retry, jitter());
            events::attempt_finished(&events::AttemptEvent {
                delivery: delivery.id,
                message_id: &alert.message_id,
                webhook: name,
                event: alert.event.as_str(),
                attempt: attempts,
                sent: &sent,
                outcome: &outcome,
            });
            (attempts, outcome, record_key(delivery.id, attempts))
        }
    };
    if webhook.is_none() {
        events::webhook_gone(delivery.id, delivery.webhook);
    }
    let record =
        DeliveryRecord { delivery: delivery.id, attempts, at: UnixMillis::from(shared.clock.now()), outcome };
    commit(shared, term, key, record).await;
}

/// Commits one attempt's record, retrying a failed commit while this node
/// still leads in `term`. Not committed, the delivery stays pending and is
/// sent again (with the same `webhook-id`).
async fn commit(shared: &Shared, term: u64, key: IdempotencyKey, record: DeliveryRecord) {
    let delivery = record.delivery;
    for attempt in 1..=COMMIT_TRIES {
        if shared.node.leading_term() != Some(term) {
            tracing::info!(delivery = delivery.0, "delivery outcome not recorded: this node no longer leads");
            return;
        }
        let request = Request {
            idempotency_key: key.clone(),
            issued_at: UnixMillis::from(shared.clock.now()),
            command: Command::RecordDelivery(record.clone()),
        };
        let error = match shared.node.write_if_leader(request).await {
            Ok(Some(CommandResponse::Applied(Outcome::DeliveryRecorded { .. }))) | Ok(None) => return,
            Ok(Some(CommandResponse::Rejected(error))) => error.to_string(),
            Ok(Some(other)) => format!("unexpected answer {other:?}"),
            Err(error) => error.to_string(),
        };
        tracing::warn!(delivery = delivery.0, attempt, %error, "recording a delivery outcome failed");
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))) => {}
        }
    }
}

/// Re-posts, to every Alertmanager webhook, the alerts of the incidents it
/// takes: open ones (unless their endpoint is in maintenance or paused),
/// and those resolved within two re-post periods, with `endsAt`.
fn repost_to_alertmanager(shared: &Arc<Shared>, term: u64) {
    let now = shared.clock.now();
    let recent =
        UnixMillis::from(now - (shared.options.alertmanager_repost * 2).min(Duration::from_secs(86_400)));
    let base_url = shared.options.base_url.as_deref();
    let posts: Vec<(WebhookId, String, WebhookSpec, Vec<Alert>)> = shared.node.read_local(|applied| {
        let mesh = &applied.mesh;
        mesh.webhooks()
            .values()
            .filter(|w| w.spec.format == WebhookFormat::Alertmanager)
            .map(|w| {
                let secs = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
                let alerts = repost_alerts(mesh, &w.spec, recent, base_url, &|incident| {
                    format!("msg_vantage_repost_{}_{}_{secs}", w.id.0, incident)
                });
                (w.id, w.spec.name.clone(), w.spec.clone(), alerts)
            })
            .filter(|(_, _, _, alerts)| !alerts.is_empty())
            .collect()
    });
    for (id, name, spec, alerts) in posts {
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            if task_shared.node.leading_term() != Some(term) {
                return;
            }
            let body = serde_json::Value::Array(alerts.iter().map(alertmanager_alert).collect());
            let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
            let message_id = alerts[0].message_id.clone();
            let service = &task_shared.options.service;
            let sent = tokio::select! {
                () = task_shared.shutdown.cancelled() => return,
                sent = service.deliver_body(&spec, &message_id, body, task_shared.clock.now()) => sent,
            };
            events::reposted(id, &name, alerts.len(), &sent);
        });
    }
}

/// The alerts an Alertmanager webhook is re-posted: incidents whose
/// opening event and endpoint labels it takes, open (and not in
/// maintenance or paused) or resolved since `recent`.
fn repost_alerts(
    mesh: &MeshState,
    webhook: &WebhookSpec,
    recent: UnixMillis,
    base_url: Option<&str>,
    message_id: &dyn Fn(u64) -> String,
) -> Vec<Alert> {
    mesh.incidents()
        .values()
        .filter(|i| match i.resolved_at {
            None => !mesh
                .agreement()
                .get(&i.endpoint)
                .is_some_and(|s| matches!(s.state, State::Maintenance | State::Paused)),
            Some(at) => at >= recent,
        })
        .filter(|i| webhook.events.is_empty() || webhook.events.contains(&opening_event(i.kind)))
        .filter(|i| {
            let labels = mesh.endpoints().get(&i.endpoint).map(|e| &e.spec.labels);
            webhook.labels.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .map(|i| Alert::of_incident(mesh, i, message_id(i.id.0), base_url))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::webhook::service::SendError;

    fn retryable(hint: Option<u64>) -> AttemptOutcome {
        AttemptOutcome::Retryable {
            error: SendError::Status { status: "503 Service Unavailable".into(), body: String::new() },
            retry_after: hint.map(Duration::from_secs),
        }
    }

    #[test]
    fn retries_follow_the_policy_and_end_in_a_visible_failure() {
        let policy = RetryPolicy {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_attempts: 4,
            give_up_after: Duration::from_secs(60),
        };
        let created = UnixMillis(1_000_000);
        let now = |secs: u64| UnixMillis(created.0 + secs * 1000);
        let retry_at = |o: DeliveryOutcome| match o {
            DeliveryOutcome::Retry { next_attempt_at, error } => {
                assert_eq!(error, "the receiver answered 503 Service Unavailable");
                next_attempt_at.0 - created.0
            }
            other => panic!("{other:?}"),
        };
        // Attempt 1 at t=0: ceiling 1 s; attempt 3 at t=5: ceiling 4 s.
        assert_eq!(retry_at(decide(&retryable(None), 1, created, now(0), &policy, 0.5)), 500);
        assert_eq!(retry_at(decide(&retryable(None), 3, created, now(5), &policy, 0.999_999)), 8_999);
        // Retry-After raises the delay (within max_delay).
        assert_eq!(retry_at(decide(&retryable(Some(6)), 1, created, now(0), &policy, 0.0)), 6_000);
        assert_eq!(retry_at(decide(&retryable(Some(600)), 1, created, now(0), &policy, 0.0)), 8_000);
        // Attempts used up, or too old: failed, saying why.
        let DeliveryOutcome::Failed { error } = decide(&retryable(None), 4, created, now(10), &policy, 0.5)
        else {
            panic!()
        };
        assert_eq!(error, "the receiver answered 503 Service Unavailable; gave up after 4 attempt(s) in 10s");
        assert!(matches!(
            decide(&retryable(None), 2, created, now(59), &policy, 0.9),
            DeliveryOutcome::Failed { .. }
        ));
    }

    #[test]
    fn delivered_and_rejected_attempts_are_final() {
        let policy = RetryPolicy::default();
        let t = UnixMillis(5);
        assert_eq!(decide(&AttemptOutcome::Delivered, 3, t, t, &policy, 0.5), DeliveryOutcome::Delivered);
        let rejected = AttemptOutcome::Rejected {
            error: SendError::Status { status: "404 Not Found".into(), body: "no such hook".into() },
        };
        assert_eq!(
            decide(&rejected, 1, t, t, &policy, 0.5),
            DeliveryOutcome::Failed { error: "the receiver answered 404 Not Found: no such hook".into() }
        );
    }

    #[test]
    fn record_keys_name_the_delivery_and_the_attempt() {
        assert_eq!(record_key(DeliveryId(7), 3).0, "delivery-7-3");
        assert!(record_key(DeliveryId(u64::MAX), u32::MAX).validate().is_ok());
        let draws: Vec<f64> = (0..100).map(|_| jitter()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
    }
}
