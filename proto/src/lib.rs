//! The Vantage wire protocol (protobuf package `vantage.v1`) and its
//! conversions to and from the domain types of `vantage-core`.
//!
//! The `.proto` files live in `proto/vantage/v1/` and are compiled by
//! `build.rs` with protox, a pure-Rust protobuf compiler, so no system
//! `protoc` is needed. Generated types never leave the edge of the system:
//! conversions live here, one module per message family.
//!
//! Modules:
//! - [`pb`]: the generated code.
//! - [`check`]: check results (`CheckResult`, phases, errors, TLS details).
//! - [`admin`]: the admin family's specifications (endpoints and their
//!   expectations, webhooks, maintenance windows) ↔ `vantage-core`'s.
//! - [`history`]: one endpoint's history (uptime, day bars, per-region
//!   latency) ↔ [`vantage_core::history::EndpointHistory`].
//! - [`incidents`]: agreement's decisions: endpoint states, region and
//!   probe verdicts with their evidence, agreement rules ↔
//!   [`vantage_core::agreement`]'s.
//! - [`probe`]: the probe family: assigned endpoints, and probe results ↔
//!   [`vantage_core::observation::Observation`].
//! - [`raft`]: the peer protocol between coordinators (`RaftService`) and its
//!   size limits.

pub mod admin;
pub mod check;
pub mod history;
pub mod incidents;
pub mod probe;
pub mod raft;

/// Generated protobuf and tonic code for package `vantage.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("vantage.v1");
}

/// A wire message that cannot become a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A required field is missing or unspecified.
    #[error("{message}: field {field} is missing or unspecified")]
    Missing {
        /// The message type.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field holds a value outside its domain.
    #[error("{message}: field {field} is invalid: {reason}")]
    Invalid {
        /// The message type.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl ConvertError {
    /// The message type the error is about.
    pub fn message(&self) -> &'static str {
        match self {
            ConvertError::Missing { message, .. } | ConvertError::Invalid { message, .. } => message,
        }
    }

    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            ConvertError::Missing { field, .. } | ConvertError::Invalid { field, .. } => field,
        }
    }
}
