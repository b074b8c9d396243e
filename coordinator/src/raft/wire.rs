//! How openraft's and the node's messages travel inside `RaftService`:
//! serde JSON in `RaftPayload.json` (see `proto/vantage/v1/raft.proto` for
//! why), snapshot chunks as raw bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;
use vantage_proto::pb;

use super::types::{SnapshotMeta, TypeConfig, Vote};

/// A payload that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Encoding failed (a bug: every payload type is plain data).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// The payload type.
        what: &'static str,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The bytes do not decode as the expected type: a peer of another
    /// build, or a damaged message.
    #[error("cannot decode {what} from a peer: {source}; are all coordinators the same version?")]
    Decode {
        /// The payload type.
        what: &'static str,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

/// Encodes `value` as a payload.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<pb::RaftPayload, WireError> {
    serde_json::to_vec(value)
        .map(|json| pb::RaftPayload { json })
        .map_err(|source| WireError::Encode { what, source })
}

/// Decodes a payload as `T`.
pub fn decode<T: DeserializeOwned>(what: &'static str, payload: &pb::RaftPayload) -> Result<T, WireError> {
    serde_json::from_slice(&payload.json).map_err(|source| WireError::Decode { what, source })
}

/// openraft's snapshot chunk as a wire chunk; the data stays raw bytes.
pub fn encode_chunk(
    request: openraft::raft::InstallSnapshotRequest<TypeConfig>,
) -> Result<pb::RaftSnapshotChunk, WireError> {
    let vote =
        serde_json::to_vec(&request.vote).map_err(|source| WireError::Encode { what: "vote", source })?;
    let meta = serde_json::to_vec(&request.meta)
        .map_err(|source| WireError::Encode { what: "snapshot meta", source })?;
    Ok(pb::RaftSnapshotChunk { vote, meta, offset: request.offset, data: request.data, done: request.done })
}

/// A wire chunk as openraft's snapshot chunk.
pub fn decode_chunk(
    chunk: pb::RaftSnapshotChunk,
) -> Result<openraft::raft::InstallSnapshotRequest<TypeConfig>, WireError> {
    let vote: Vote =
        serde_json::from_slice(&chunk.vote).map_err(|source| WireError::Decode { what: "vote", source })?;
    let meta: SnapshotMeta = serde_json::from_slice(&chunk.meta)
        .map_err(|source| WireError::Decode { what: "snapshot meta", source })?;
    Ok(openraft::raft::InstallSnapshotRequest {
        vote,
        meta,
        offset: chunk.offset,
        data: chunk.data,
        done: chunk.done,
    })
}
