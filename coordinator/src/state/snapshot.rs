//! The versioned snapshot format of [`MeshState`]:
//! `{"version": 1, "state": {...}}` as JSON.
//!
//! A reader accepts only the versions it knows and says so otherwise, so a
//! node never loads state it would misread. Adding a field with a serde
//! default keeps version 1 (old snapshots still load; an older binary
//! refuses the new field by name, since the state denies unknown fields);
//! changing the meaning of a field bumps the version and adds a migration
//! here.

use serde::{Deserialize, Serialize};

use super::MeshState;

/// The snapshot format this build writes.
pub const FORMAT_VERSION: u64 = 1;

/// Why snapshot bytes could not be read as a [`MeshState`].
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFormatError {
    /// The bytes are not a JSON object with a numeric `version`.
    #[error("snapshot is not a versioned JSON document: {reason}")]
    Malformed {
        /// What the parser objected to.
        reason: String,
    },
    /// The snapshot was written by a format this build does not know.
    #[error("snapshot format version {found} is not supported (this build reads version {supported}); run a coordinator build that knows it")]
    UnsupportedVersion {
        /// The version in the snapshot.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// The version is known but the state does not decode.
    #[error("snapshot state (format version {version}) does not decode: {reason}")]
    BadState {
        /// The version in the snapshot.
        version: u64,
        /// What the parser objected to.
        reason: String,
    },
}

/// Encodes `state` in the current format.
pub fn encode(state: &MeshState) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Document<'a> {
        version: u64,
        state: &'a MeshState,
    }
    serde_json::to_vec(&Document { version: FORMAT_VERSION, state })
}

/// Decodes a snapshot written by [`encode`], refusing unknown versions.
pub fn decode(bytes: &[u8]) -> Result<MeshState, SnapshotFormatError> {
    // First only the version (the state is skipped, not decoded), so an
    // unknown version is reported as such rather than as a confusing field
    // error.
    #[derive(Deserialize)]
    struct Header {
        version: u64,
    }
    let header: Header = serde_json::from_slice(bytes)
        .map_err(|e| SnapshotFormatError::Malformed { reason: e.to_string() })?;
    match header.version {
        1 => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Document {
                #[allow(dead_code)]
                version: u64,
                state: MeshState,
            }
            let document: Document = serde_json::from_slice(bytes)
                .map_err(|e| SnapshotFormatError::BadState { version: 1, reason: e.to_string() })?;
            Ok(document.state)
        }
        found => Err(SnapshotFormatError::UnsupportedVersion { found, supported: FORMAT_VERSION }),
    }
}
