//! Every way an admin call fails, and its one mapping to `tonic::Status`.

use tonic::{Code, Status};

use crate::node::ClusterError;
use crate::state::{CommandError, ObjectKind, Outcome};

/// Why an admin call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The bearer token is missing or not an admin's.
    #[error("{reason}")]
    Unauthenticated {
        /// Why.
        reason: String,
    },
    /// A field of the request is missing or malformed.
    #[error("{field}: {reason}")]
    BadField {
        /// The field, as named in the proto.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No object of this kind has that name (or id).
    #[error("no {kind} named {name:?} (list them with: vantagectl {kind} list)")]
    UnknownName {
        /// The kind of object.
        kind: ObjectKind,
        /// The name asked for.
        name: String,
    },
    /// The state machine refused the change (nothing changed).
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The cluster could not carry the change.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// An object changed by the call was gone when read back (removed by a
    /// concurrent call).
    #[error("{what} was removed by another change; list again")]
    Vanished {
        /// The object.
        what: String,
    },
    /// A CreateProbeToken retry whose key was already applied: the token
    /// was in the first reply only (just its hash is stored).
    #[error(
        "this request (probe id {probe_id}) was already applied and its token was shown only in the first \
         reply, which was lost; run `vantagectl probe token create` again to rotate the token"
    )]
    TokenAlreadyIssued {
        /// The probe the token was issued for.
        probe_id: u64,
    },
    /// CreateProbeToken named an existing probe of another region.
    #[error("probe {probe:?} is registered in region {region:?}, not {asked:?}; revoke it first (vantagectl probe revoke {probe}) to move it")]
    ProbeInOtherRegion {
        /// The probe.
        probe: String,
        /// Its registered region.
        region: String,
        /// The region asked for.
        asked: String,
    },
    /// The state machine answered with an outcome of another command: a bug.
    #[error("internal error: unexpected outcome {outcome}")]
    Unexpected {
        /// The outcome, debug-printed.
        outcome: String,
    },
}

impl AdminError {
    pub(super) fn unexpected(outcome: &Outcome) -> Self {
        AdminError::Unexpected { outcome: format!("{outcome:?}") }
    }

    pub(super) fn bad(field: &'static str, reason: impl Into<String>) -> Self {
        AdminError::BadField { field, reason: reason.into() }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Status {
        let code = match &error {
            AdminError::Unauthenticated { .. } => Code::Unauthenticated,
            AdminError::BadField { .. } => Code::InvalidArgument,
            AdminError::UnknownName { .. } => Code::NotFound,
            AdminError::Refused(refusal) => match refusal {
                CommandError::NotFound { .. } => Code::NotFound,
                CommandError::DuplicateName { .. } => Code::AlreadyExists,
                CommandError::IdempotencyKeyReused { .. } | CommandError::RegionInUse { .. } => {
                    Code::FailedPrecondition
                }
                _ => Code::InvalidArgument,
            },
            AdminError::Cluster(cluster) => match cluster {
                ClusterError::NoQuorum { .. }
                | ClusterError::NoLeader { .. }
                | ClusterError::Timeout { .. }
                | ClusterError::ShuttingDown { .. }
                | ClusterError::Peer { .. } => Code::Unavailable,
                ClusterError::Stopped { .. } => Code::Internal,
                ClusterError::UnknownNode { .. } => Code::NotFound,
                ClusterError::NodeIdRetired { .. } | ClusterError::NodeIdInUse { .. } => Code::AlreadyExists,
                _ => Code::FailedPrecondition,
            },
            AdminError::TokenAlreadyIssued { .. } | AdminError::ProbeInOtherRegion { .. } => {
                Code::FailedPrecondition
            }
            AdminError::Vanished { .. } => Code::Aborted,
            AdminError::Unexpected { .. } => Code::Internal,
        };
        Status::new(code, error.to_string())
    }
}
