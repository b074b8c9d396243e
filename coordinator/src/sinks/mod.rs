//! Outputs that leave the process: webhooks and TSDB export (Prometheus
//! remote-write, InfluxDB line protocol).
//!
//! Each sink is split by concern, as vector's `src/sinks/` is, so the part
//! that changes (a body format, a header, a retry rule) has one place:
//!
//! - `config`: what an admin configures, validated before use (for
//!   webhooks, `vantage_core::webhook::WebhookSpec`, replicated);
//! - `encoder`: the body and its signature, pure functions of the event;
//! - `request`: the HTTP request a delivery sends (headers, content type,
//!   user agent), built from the encoded body, without I/O;
//! - `service`: sending one request: timeout, SSRF guard, retries with
//!   [`retry::RetryPolicy`], the outcome classified;
//! - `sink`: what to deliver and when: the queue or outbox, batching,
//!   backpressure, and what is recorded after a delivery.
//!
//! Shared by every sink: [`retry`] (backoff) and [`http`] (one HTTP/1.1
//! attempt: fresh connection, TLS, timeout, answer cap, outcome
//! classification). The [`webhook`] sink: encoder, request, service and
//! the alert outbox's [`webhook::Dispatcher`] (committed transitions,
//! delivered by the leader). The [`export`] sink: every result and the
//! agreed state to TSDBs, from the leader's results fan-out.
//!
//! Unlike the other sinks to come, the webhook dispatcher reads the
//! replicated state and commits outcomes, so `sinks` may import `state`
//! and `node` (see `coordinator/tests/layers.rs`).

pub mod export;
pub mod http;
pub mod retry;
pub mod webhook;
