//! Sending one batch until it is written, refused, or abandoned: each
//! attempt through the shared client ([`crate::sinks::http`]: fresh
//! connection, TLS, the target's timeout, a 64 KiB answer cap), retried
//! with [`RetryPolicy`]'s capped exponential backoff and full jitter,
//! honouring `Retry-After`.
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | sent |
//! | 5xx, 429, 408, a network error, a timeout, an answer over the cap | retried: 250 ms doubling to 5 s (Prometheus's own remote-write backoff is 30 ms to 5 s), without an attempt limit, so an outage of the TSDB is ridden out while the queue holds |
//! | any other 4xx (a bad sample, an out-of-order sample, bad credentials) | refused: not retried, counted as failed, logged with the answer's first bytes |
//!
//! A retry is abandoned only when the sink is stopping and its flush
//! deadline would pass before the next attempt.
//!
//! The SSRF guard is off here: export targets come from the operator's own
//! configuration file (not from the replicated state admins write), and a
//! TSDB on the same host or network is the usual case.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::request_builder::RequestTemplate;
use crate::sinks::http::{Attempt, AttemptOutcome, ClientError, ClientOptions, HttpClient, SendError};
use crate::sinks::retry::{jitter, Next, RetryPolicy};

/// The most of an answer read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The export retry policy (see the module docs).
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(250),
        max_delay: Duration::from_secs(5),
        max_attempts: u32::MAX,
        give_up_after: Duration::MAX,
    }
}

/// How one batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Written (2xx).
    Sent {
        /// Attempts made.
        attempts: u32,
    },
    /// Refused for good (a 4xx other than 408/429, a bad URL).
    Refused {
        /// Why.
        error: SendError,
        /// Attempts made.
        attempts: u32,
    },
    /// Given up because the sink stops (its flush deadline).
    Abandoned {
        /// The last attempt's error.
        error: Option<SendError>,
        /// Attempts made.
        attempts: u32,
    },
}

/// Sends batches for one target.
#[derive(Debug, Clone)]
pub struct ExportService {
    client: HttpClient,
    retry: RetryPolicy,
}

impl ExportService {
    /// A service with `timeout` per attempt, trusting the public roots
    /// and `extra_roots`.
    pub fn new(
        timeout: Duration,
        extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    ) -> Result<ExportService, ClientError> {
        let client =
            HttpClient::new(ClientOptions { timeout, max_response_bytes: MAX_RESPONSE_BYTES, extra_roots })?;
        Ok(ExportService { client, retry: retry_policy() })
    }

    /// With another retry policy (tests).
    pub fn with_retry(mut self, retry: RetryPolicy) -> ExportService {
        self.retry = retry;
        self
    }

    /// Sends `body` until it is written or refused, or until `give_up_at`
    /// holds a deadline the next attempt would not make. `on_attempt` sees
    /// every attempt (for metrics and logs).
    pub async fn send(
        &self,
        template: &RequestTemplate,
        body: Bytes,
        give_up_at: &mut watch::Receiver<Option<Instant>>,
        mut on_attempt: impl FnMut(&Attempt, u32),
    ) -> BatchOutcome {
        let first = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let attempt = self.client.send(template.build(body.clone()), true).await;
            on_attempt(&attempt, attempts);
            let (error, hint) = match attempt.outcome {
                AttemptOutcome::Delivered => return BatchOutcome::Sent { attempts },
                AttemptOutcome::Rejected { error } => return BatchOutcome::Refused { error, attempts },
                AttemptOutcome::Retryable { error, retry_after } => (error, retry_after),
            };
            let delay = match self.retry.next(attempts, first.elapsed(), jitter(), hint) {
                Next::RetryAfter(delay) => delay,
                Next::GiveUp => return BatchOutcome::Abandoned { error: Some(error), attempts },
            };
            let wake = Instant::now() + delay;
            if !wait_unless_given_up(wake, give_up_at).await {
                return BatchOutcome::Abandoned { error: Some(error), attempts };
            }
        }
    }
}

/// Sleeps until `wake`; false (at once) when a deadline before `wake` is
/// or becomes set.
async fn wait_unless_given_up(wake: Instant, give_up_at: &mut watch::Receiver<Option<Instant>>) -> bool {
    loop {
        let deadline = *give_up_at.borrow_and_update();
        if deadline.is_some_and(|d| wake > d) {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake) => return true,
            changed = give_up_at.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(wake).await;
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_policy_never_runs_out_of_attempts_and_caps_at_five_seconds() {
        let policy = retry_policy();
        let day = Duration::from_secs(86_400);
        for attempt in [1, 10, 1_000, 1_000_000] {
            match policy.next(attempt, day, 0.999_999, None) {
                Next::RetryAfter(delay) => assert!(delay <= Duration::from_secs(5), "{attempt}: {delay:?}"),
                Next::GiveUp => panic!("gave up at attempt {attempt}"),
            }
        }
        assert_eq!(
            policy.next(1, Duration::ZERO, 0.0, Some(Duration::from_secs(60))),
            Next::RetryAfter(Duration::from_secs(5)),
            "Retry-After is honoured within the cap"
        );
    }

    #[tokio::test]
    async fn a_deadline_before_the_next_attempt_abandons_the_wait() {
        let (tx, mut rx) = watch::channel(None);
        let wake = Instant::now() + Duration::from_millis(100);
        assert!(wait_unless_given_up(wake, &mut rx).await, "no deadline: waits it out");
        assert!(Instant::now() >= wake);
        let started = Instant::now();
        let wake = started + Duration::from_secs(30);
        let waiter = tokio::spawn(async move { wait_unless_given_up(wake, &mut rx).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(Some(Instant::now() + Duration::from_secs(1))).unwrap();
        assert!(!waiter.await.unwrap(), "a deadline before the wake-up gives up");
        assert!(started.elapsed() < Duration::from_secs(5), "at once, not at the wake-up");
    }
}
