//! Why a probe stream, or a call on the mesh, was refused or ended: one
//! enum, one mapping to `tonic::Status`.

use tonic::{Code, Status};

/// A refusal or the end of a probe stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// No usable `authorization: Bearer <token>` metadata.
    #[error("missing or malformed authorization metadata: send `authorization: Bearer <probe token>`")]
    MissingToken,
    /// The token matches no registered probe.
    #[error("unknown probe token: it was never issued, or it was revoked or rotated; issue one with `vantagectl probe token create`")]
    UnknownToken,
    /// The probe's token was revoked, rotated or the probe removed while
    /// its stream was open.
    #[error("the token of probe {probe} was revoked or rotated; this stream is closed")]
    Revoked {
        /// The probe's name.
        probe: String,
    },
    /// The stream did not start with Hello in time.
    #[error("expected Hello as the first message within {timeout_ms} ms")]
    NoHello {
        /// The limit.
        timeout_ms: u64,
    },
    /// Hello names another probe than the token's.
    #[error("the token belongs to probe {registered}, not {claimed}")]
    WrongProbe {
        /// The token's probe.
        registered: String,
        /// What Hello said.
        claimed: String,
    },
    /// Hello claims another region than the token's.
    #[error("probe {probe} is registered in region {registered}, not {claimed}")]
    WrongRegion {
        /// The probe's name.
        probe: String,
        /// Its registered region.
        registered: String,
        /// What Hello said.
        claimed: String,
    },
    /// A batch with more results than allowed.
    #[error("result batch of {count} results exceeds the limit of {max}; nothing from it was stored")]
    OversizedBatch {
        /// Results in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A message larger than the limit (tonic's message, code OutOfRange as
    /// on the admin API).
    #[error("message from the probe refused: {detail}")]
    TooLarge {
        /// What tonic said, with the size and the limit.
        detail: String,
    },
    /// A message that does not decode.
    #[error("bad message from the probe: {detail}")]
    BadMessage {
        /// What tonic or the decoder said.
        detail: String,
    },
    /// A message that is not allowed at this point (a second Hello).
    #[error("unexpected message: {detail}")]
    Unexpected {
        /// What arrived.
        detail: String,
    },
    /// Nothing from the probe for too long.
    #[error("no message from the probe for {silent_ms} ms (heartbeats are due every {heartbeat_ms} ms)")]
    Silent {
        /// How long.
        silent_ms: u64,
        /// The heartbeat interval.
        heartbeat_ms: u64,
    },
    /// The probe does not read what is sent to it.
    #[error("the probe did not read its messages within {timeout_ms} ms")]
    SlowReader {
        /// The limit.
        timeout_ms: u64,
    },
    /// The probe closed the stream or the connection broke.
    #[error("the probe disconnected")]
    Disconnected,
    /// A newer stream of the same probe took over.
    #[error("replaced by a newer connection of the same probe")]
    Replaced,
    /// This node stopped leading; the probe gets a Redirect first.
    #[error("this coordinator no longer leads; reconnect to the leader")]
    NotLeader,
    /// The coordinator is shutting down.
    #[error("the coordinator is shutting down; reconnect to another one")]
    ShuttingDown,
    /// CheckNow for an endpoint with no assignment.
    #[error("endpoint {endpoint_id} is not assigned to any probe (unknown, paused, or not yet placed)")]
    NotPlaced {
        /// The endpoint.
        endpoint_id: u64,
    },
    /// Too many `check` calls wait for their results at once.
    #[error("{max} checks are already waiting for their results; try again in a few seconds")]
    TooManyChecks {
        /// The limit.
        max: usize,
    },
}

impl From<MeshError> for Status {
    fn from(error: MeshError) -> Status {
        let code = match &error {
            MeshError::MissingToken | MeshError::UnknownToken | MeshError::Revoked { .. } => {
                Code::Unauthenticated
            }
            MeshError::WrongProbe { .. } | MeshError::WrongRegion { .. } => Code::PermissionDenied,
            MeshError::NoHello { .. } | MeshError::Silent { .. } | MeshError::SlowReader { .. } => {
                Code::DeadlineExceeded
            }
            MeshError::OversizedBatch { .. }
            | MeshError::BadMessage { .. }
            | MeshError::Unexpected { .. } => Code::InvalidArgument,
            MeshError::TooLarge { .. } => Code::OutOfRange,
            MeshError::Replaced => Code::Aborted,
            MeshError::Disconnected => Code::Cancelled,
            MeshError::NotLeader | MeshError::ShuttingDown => Code::Unavailable,
            MeshError::NotPlaced { .. } => Code::FailedPrecondition,
            MeshError::TooManyChecks { .. } => Code::ResourceExhausted,
        };
        Status::new(code, error.to_string())
    }
}
