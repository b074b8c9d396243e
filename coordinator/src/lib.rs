//! The Vantage coordinator: the Raft-replicated mesh state (endpoints,
//! regions, probes, webhooks, decisions), the gRPC services for probes and
//! admins, the agreement runner that declares outages only on a quorum of
//! regions, alert delivery, TSDB export and the HTTP status page.
//!
//! Nothing is built here yet; see `ARCHITECTURE.md` for what is planned.
