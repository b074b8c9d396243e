//! Raft for the coordinator cluster, on openraft 0.9.
//!
//! - [`types`]: the openraft type configuration ([`TypeConfig`]): node ids,
//!   the [`Node`] address record, requests and responses.
//! - [`store`]: durable log storage and the state machine under a node's
//!   `data_dir`.
//! - [`network`]: openraft's network over tonic (lazily connected channels
//!   per peer, openraft's deadlines, unreachable peers reported so openraft
//!   backs off), shared with request forwarding.
//! - [`server`]: the peer listener serving `RaftService` (its own accept
//!   loop, TLS handshakes with a deadline, client certificate required).
//! - [`tls`]: [`PeerTls`] and the tokio-rustls acceptor and connector.
//! - [`wire`]: how openraft's messages travel inside `RaftService`.
//!
//! Node startup, bootstrap, forwarding and membership live in
//! [`crate::node`].

pub mod network;
pub mod server;
pub mod store;
pub mod tls;
pub mod types;
pub mod wire;

pub use self::tls::PeerTls;
pub use self::types::{Node, NodeId, TypeConfig};
