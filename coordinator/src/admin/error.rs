//! Every way an admin call fails, and its one mapping to `tonic::Status`.

use tonic::{Code, Status};

use crate::mesh::MeshError;
use crate::node::{ClusterError, HistoryError};
use crate::state::{CommandError, ObjectKind, Outcome};

/// The metadata key carrying the leader's API address (`HOST:PORT`) when a
/// follower refuses a call only the leader can answer.
pub const LEADER_API_METADATA: &str = "vantage-leader-api";

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
        /// The field, as named in the proto (`spec.format`).
        field: String,
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
    /// An AddWebhook retry whose key was already applied with a secret
    /// the server generated: the secret was in the first reply only.
    #[error(
        "this request (webhook {webhook}, id {id}) was already applied and its generated secret was shown only \
         in the first reply, which was lost; set a new one with `vantagectl webhook update {webhook} \
         --secret-file FILE`"
    )]
    SecretAlreadyIssued {
        /// The webhook's name.
        webhook: String,
        /// Its id.
        id: u64,
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
    /// The call needs the leader's in-memory state (the assignment, probe
    /// streams) and this node does not lead.
    #[error("{}", not_leader_message(*leader_id, leader_api_addr.as_deref()))]
    NotLeader {
        /// The leader's id, when known.
        leader_id: Option<u64>,
        /// The leader's API address, when known; sent to the client as the
        /// `vantage-leader-api` metadata.
        leader_api_addr: Option<String>,
    },
    /// This node runs no probe mesh, so it has no assignment to show.
    #[error("this node does not run the probe mesh, so it has no assignment to show")]
    NoMesh,
    /// CheckEndpoint on a paused endpoint.
    #[error("endpoint {name:?} is paused, so no probe is assigned to check it; resume it first (vantagectl endpoint resume {name})")]
    EndpointPaused {
        /// The endpoint's name.
        name: String,
    },
    /// The mesh refused a call (no assignment for the endpoint yet, too many
    /// checks waiting).
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// No incident has this id (never, or resolved longer ago than the
    /// retention).
    #[error("no incident has id {id} (resolved incidents are kept for 90 days; list them with: vantagectl incident list)")]
    UnknownIncident {
        /// The id asked for.
        id: u64,
    },
    /// An endpoint's history could not be read (removed meanwhile, or the
    /// rollup tables failed).
    #[error(transparent)]
    History(#[from] HistoryError),
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

    pub(super) fn bad(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AdminError::BadField { field: field.into(), reason: reason.into() }
    }

    /// A message of the request, at `path` (`spec`), that does not convert.
    pub(super) fn wire(path: &str, error: vantage_proto::ConvertError) -> Self {
        let reason = match &error {
            vantage_proto::ConvertError::Invalid { reason, .. } => reason.clone(),
            vantage_proto::ConvertError::Missing { .. } => "missing".to_string(),
        };
        AdminError::BadField { field: format!("{path}.{}", error.field()), reason }
    }
}

fn not_leader_message(leader_id: Option<u64>, leader_api_addr: Option<&str>) -> String {
    match (leader_id, leader_api_addr) {
        (Some(id), Some(addr)) => format!("this node is not the leader; the leader is node {id} at {addr}"),
        (Some(id), None) => {
            format!("this node is not the leader; the leader is node {id}, whose address is not known here")
        }
        (None, _) => "this node is not the leader and no leader is known yet; retry in a few seconds".into(),
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Status {
        let code = match &error {
            AdminError::Unauthenticated { .. } => Code::Unauthenticated,
            AdminError::BadField { .. } => Code::InvalidArgument,
            AdminError::UnknownName { .. } | AdminError::UnknownIncident { .. } => Code::NotFound,
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
            AdminError::TokenAlreadyIssued { .. }
            | AdminError::SecretAlreadyIssued { .. }
            | AdminError::ProbeInOtherRegion { .. } => Code::FailedPrecondition,
            AdminError::Vanished { .. } => Code::Aborted,
            AdminError::Unexpected { .. } => Code::Internal,
            // With an address the client can go there (no use retrying
            // here); without one an election may be under way: retry.
            AdminError::NotLeader { leader_api_addr: Some(_), .. } => Code::FailedPrecondition,
            AdminError::NotLeader { leader_api_addr: None, .. } => Code::Unavailable,
            AdminError::NoMesh | AdminError::EndpointPaused { .. } => Code::FailedPrecondition,
            AdminError::Mesh(mesh) => Status::from(mesh.clone()).code(),
            AdminError::History(HistoryError::UnknownEndpoint(_)) => Code::NotFound,
            AdminError::History(HistoryError::Storage(_)) => Code::Internal,
        };
        let mut status = Status::new(code, error.to_string());
        if let AdminError::NotLeader { leader_api_addr: Some(addr), .. } = &error {
            if let Ok(value) = addr.parse() {
                status.metadata_mut().insert(LEADER_API_METADATA, value);
            }
        }
        status
    }
}
