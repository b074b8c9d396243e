//! The peer protocol between coordinators (`RaftService`): its size limits.
//!
//! openraft's messages and the coordinator's requests travel as serde JSON
//! inside `bytes` fields (see the comment at the top of `raft.proto` for
//! why); the coordinator, which owns those types, encodes and decodes them.
//! What lives here is the part of the contract both ends must agree on
//! without knowing those types: how large a message may be.

/// The largest `RaftService` message either end sends or accepts, in bytes.
///
/// An append-entries batch holds at most openraft's `max_payload_entries`
/// entries, each a small configuration change, and a snapshot travels in
/// chunks of [`SNAPSHOT_CHUNK_BYTES`], so this leaves ample headroom while
/// still refusing a runaway message before it is buffered.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The size of one snapshot chunk, in bytes. Well below
/// [`MAX_MESSAGE_BYTES`], so a chunk plus its JSON metadata always fits.
pub const SNAPSHOT_CHUNK_BYTES: usize = 4 << 20;
