//! One module per command group. Each takes the parsed arguments and a
//! [`Context`] (the client and the output mode), makes its calls and
//! writes its result.

pub mod alert;
pub mod apply;
pub mod check;
pub mod cluster;
pub mod endpoint;
pub mod export;
pub mod history;
pub mod incident;
pub mod maintenance;
pub mod probe;
pub mod region;
pub mod shard;
pub mod webhook;

use std::io::Write;

use serde::Serialize;
use vantage_core::clock::WallClock;

use crate::client::AdminClient;
use crate::error::Error;
use crate::keys::IdempotencyKey;
use crate::output::write_json;

/// What every command works with.
pub struct Context<'a> {
    /// The AdminService client.
    pub client: AdminClient,
    /// `--json`: print JSON for scripts.
    pub json: bool,
    /// Standard output is a terminal (and not `--json`): sparklines may be
    /// drawn.
    pub terminal: bool,
    /// `--consistent`: read through the leader.
    pub consistent: bool,
    /// The `--server` URL, for messages.
    pub server: String,
    /// The wall clock (`now`, `+DUR`, ended windows).
    pub clock: &'a dyn WallClock,
    /// Environment lookups (webhook secrets named by `secret_env`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Context<'_> {
    /// The key for this invocation's one change.
    pub fn new_key(&self) -> Result<IdempotencyKey, Error> {
        IdempotencyKey::random()
    }

    /// Prints `value` as JSON with `--json`, `human` otherwise.
    pub fn print<T: Serialize + ?Sized>(
        &self,
        out: &mut dyn Write,
        value: &T,
        human: &str,
    ) -> Result<(), Error> {
        if self.json {
            write_json(out, value)
        } else {
            out.write_all(human.as_bytes())?;
            if !human.is_empty() && !human.ends_with('\n') {
                writeln!(out)?;
            }
            Ok(())
        }
    }
}

/// The JSON answer of a removal.
#[derive(Debug, Serialize)]
pub struct RemovedJson<'a> {
    /// What was removed: `endpoint`, `region`, …
    pub kind: &'a str,
    /// Its id (0 for regions, which have none).
    pub id: u64,
    /// Its name.
    pub name: &'a str,
}
