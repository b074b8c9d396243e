//! Raft for the coordinator cluster, on openraft 0.9.
//!
//! - [`types`]: the openraft type configuration ([`TypeConfig`]): node ids,
//!   the [`Node`] address record, requests and responses.
//! - [`store`]: durable log storage and the state machine under a node's
//!   `data_dir`.
//!
//! The network (tonic on the peer listener), node startup, bootstrap and
//! membership changes come in later increments.

pub mod store;
pub mod types;

pub use self::types::{Node, NodeId, TypeConfig};
