//! The coordinator cluster's own bookkeeping in the replicated state: the
//! ids of nodes that were removed, so an id is never given to a new node.
//!
//! openraft's membership only knows the current members; a removed node
//! vanishes from it. Reusing its id would let a stale process with the old
//! data dir (and the old id's log and vote) rejoin as if it were the new
//! node, so removal first commits [`Command::RetireNode`](super::Command::RetireNode)
//! and adding a node refuses a retired id.

use super::command::Outcome;
use super::MeshState;

/// Applies [`Command::RetireNode`](super::Command::RetireNode). Retiring an
/// already retired id changes nothing (a retried removal).
pub(super) fn retire_node(state: &mut MeshState, node_id: u64) -> Outcome {
    let changed = state.tables.retired_nodes.insert(node_id);
    Outcome::NodeRetired { node_id, changed }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot;
    use super::super::{Command, CommandResponse, IdempotencyKey, MeshState, Outcome, Request, UnixMillis};

    fn retire(key: &str, node_id: u64) -> Request {
        Request {
            idempotency_key: IdempotencyKey(key.into()),
            issued_at: UnixMillis(1_700_000_000_000),
            command: Command::RetireNode { node_id },
        }
    }

    #[test]
    fn a_retired_id_stays_retired_and_retiring_again_changes_nothing() {
        let mut state = MeshState::new();
        assert_eq!(
            state.apply(&retire("a", 4)),
            CommandResponse::Applied(Outcome::NodeRetired { node_id: 4, changed: true })
        );
        assert_eq!(
            state.apply(&retire("b", 4)),
            CommandResponse::Applied(Outcome::NodeRetired { node_id: 4, changed: false })
        );
        assert!(state.retired_nodes().contains(&4));
        let reloaded = snapshot::decode(&snapshot::encode(&state).expect("encodes")).expect("decodes");
        assert_eq!(reloaded.retired_nodes(), state.retired_nodes());
    }

    #[test]
    fn a_snapshot_from_before_retired_nodes_existed_still_loads() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&snapshot::encode(&MeshState::new()).expect("encodes")).expect("json");
        json["state"].as_object_mut().expect("an object").remove("retired_nodes");
        let old = serde_json::to_vec(&json).expect("bytes");
        assert!(snapshot::decode(&old).expect("an old snapshot loads").retired_nodes().is_empty());
    }
}
