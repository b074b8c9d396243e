//! The store against openraft's storage suite, plus what the suite does not
//! cover: data surviving a reopen, damaged files refused loudly, and I/O
//! errors surfacing as openraft storage errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper};
use tempfile::TempDir;

use super::{open, LogStore, StateMachineStore, StoreError, LOG_FILE, SNAPSHOT_DIR};
use crate::raft::types::{Entry, Node, StorageError, TypeConfig, Vote};
use crate::state::{Command, EndpointSpec, IdempotencyKey, Request, UnixMillis};

/// Builds each suite case a store in a fresh temporary directory, removed
/// when the case ends.
struct TempStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for TempStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, state_machine) = open(dir.path()).expect("a fresh store opens");
        Ok((dir, log, state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    // The suite runs each case on its own tokio runtime, so this test must
    // not run inside one.
    Suite::test_all(TempStoreBuilder).expect("openraft's storage suite passes");
}

fn request_entry(index: u64, key: &str, command: Command) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            idempotency_key: IdempotencyKey(key.into()),
            issued_at: UnixMillis(1_700_000_000_000 + index),
            command,
        }),
    }
}

fn membership_entry(index: u64) -> Entry {
    let node = Node { api_addr: "127.0.0.1:7400".into(), raft_addr: "127.0.0.1:7401".into() };
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(Membership::new(
            vec![BTreeSet::from([1])],
            BTreeMap::from([(1, node)]),
        )),
    }
}

/// A log of: membership, blank, region, then endpoints e4..=e{last}.
fn sample_log(last: u64) -> Vec<Entry> {
    let mut entries = vec![
        membership_entry(1),
        Entry { log_id: log_id(1, 1, 2), payload: EntryPayload::Blank },
        request_entry(3, "k3", Command::AddRegion { name: "eu-west".into() }),
    ];
    for index in 4..=last {
        let spec = EndpointSpec::new(format!("e{index}"), "https://example.com/");
        entries.push(request_entry(index, &format!("k{index}"), Command::AddEndpoint(spec)));
    }
    entries
}

fn endpoint_names(state_machine: &StateMachineStore) -> Vec<String> {
    state_machine.reader().read(|s| s.mesh.endpoints().values().map(|e| e.spec.name.clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_log_committed_and_snapshot_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let vote = Vote::new_committed(3, 1);
    {
        let (mut log, mut state_machine) = open(dir.path()).unwrap();
        log.save_vote(&vote).await.unwrap();
        log.blocking_append(sample_log(8)).await.unwrap();
        // Entries 1..=6 applied and snapshotted; the log is purged up to 5;
        // 7 and 8 are committed but only in the log.
        let responses = state_machine.apply(sample_log(6)).await.unwrap();
        assert_eq!(responses.len(), 6);
        let snapshot = state_machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 6)));
        log.purge(log_id(1, 1, 5)).await.unwrap();
        log.save_committed(Some(log_id(1, 1, 8))).await.unwrap();
    }

    let (mut log, mut state_machine) = open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 8)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 8)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, [6, 7, 8]);
    assert_eq!(entries[1], sample_log(8)[6], "entries come back as written");

    let current = state_machine.get_current_snapshot().await.unwrap().expect("the snapshot survives");
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 1, 6)));
    let (applied, membership) = state_machine.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 6)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 1)));
    assert_eq!(endpoint_names(&state_machine), ["e4", "e5", "e6"]);

    // What openraft does at startup: re-apply the committed entries after
    // the snapshot.
    let initial = StorageHelper::new(&mut log, &mut state_machine).get_initial_state().await.unwrap();
    assert_eq!(initial.committed, Some(log_id(1, 1, 8)));
    assert_eq!(endpoint_names(&state_machine), ["e4", "e5", "e6", "e7", "e8"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_snapshot_replaces_the_state_and_survives_reopening() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let (_leader_log, mut leader) = open(leader_dir.path()).unwrap();
    leader.apply(sample_log(5)).await.unwrap();
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();
    {
        let (_log, mut follower) = open(follower_dir.path()).unwrap();
        follower.apply(sample_log(2)).await.unwrap();
        let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
        *receiving = *snapshot.snapshot;
        follower.install_snapshot(&snapshot.meta, receiving).await.unwrap();
        assert_eq!(endpoint_names(&follower), ["e4", "e5"]);
    }
    let (_log, mut follower) = open(follower_dir.path()).unwrap();
    assert_eq!(follower.applied_state().await.unwrap().0, Some(log_id(1, 1, 5)));
    assert_eq!(endpoint_names(&follower), ["e4", "e5"]);
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_does_not_decode_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut state_machine) = open(dir.path()).unwrap();
    let mut receiving = state_machine.begin_receiving_snapshot().await.unwrap();
    receiving.get_mut().extend_from_slice(br#"{"version":9,"state":{}}"#);
    let meta = openraft::SnapshotMeta { last_log_id: Some(log_id(1, 1, 3)), ..Default::default() };
    let error = state_machine.install_snapshot(&meta, receiving).await.unwrap_err();
    assert!(error.to_string().contains("snapshot format version 9 is not supported"), "{error}");
    assert_eq!(state_machine.applied_state().await.unwrap().0, None, "nothing was installed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_write_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut state_machine) = open(dir.path()).unwrap();
    state_machine.apply(sample_log(4)).await.unwrap();
    // A file where the snapshot directory should be: every write fails.
    std::fs::write(dir.path().join(SNAPSHOT_DIR), b"in the way").unwrap();
    let error = state_machine.get_snapshot_builder().await.build_snapshot().await.unwrap_err();
    match error {
        StorageError::IO { source } => {
            // The subject and verb are private; their Display names them.
            assert!(source.to_string().starts_with("when Write Snapshot("), "{source}");
        }
        other => panic!("expected an I/O storage error, got {other}"),
    }
    assert!(state_machine.get_current_snapshot().await.unwrap().is_none());
}

fn open_error(dir: &Path) -> StoreError {
    match open(dir) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(error) => error,
    }
}

#[test]
fn a_damaged_log_file_is_refused_not_replaced() {
    for (name, contents) in [("garbage", b"this is not a database".repeat(300)), ("empty", Vec::new())] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), &contents).unwrap();
        let error = open_error(dir.path());
        assert!(matches!(error, StoreError::OpenLog { .. }), "{name}: {error:?}");
        let message = error.to_string();
        assert!(message.starts_with("cannot open raft log "), "{name}: {message}");
        assert!(message.contains("restore the data dir from a backup"), "{name}: {message}");
        assert_eq!(std::fs::read(dir.path().join(LOG_FILE)).unwrap(), contents, "{name}: file left alone");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut state_machine) = open(dir.path()).unwrap();
        state_machine.apply(sample_log(4)).await.unwrap();
        state_machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
    }
    let path = dir.path().join(SNAPSHOT_DIR).join("current.snapshot");
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x01;
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 10);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("bit flip", flipped, "does not match the recorded"),
        ("truncated", truncated, "bytes of data, found"),
        ("not a snapshot", b"hello".to_vec(), "missing the vantage-snapshot 1 header"),
    ];
    for (name, bytes, want) in cases {
        std::fs::write(&path, bytes).unwrap();
        let error = open_error(dir.path());
        assert!(matches!(error, StoreError::CorruptSnapshot { .. }), "{name}: {error:?}");
        assert!(error.to_string().contains(want), "{name}: {error}");
    }
    std::fs::write(&path, good).unwrap();
    assert!(open(dir.path()).is_ok(), "the intact snapshot opens again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_missing_pieces_is_refused() {
    // The log is gone but a snapshot remains.
    let dir = tempfile::tempdir().unwrap();
    {
        let (_log, mut state_machine) = open(dir.path()).unwrap();
        state_machine.apply(sample_log(4)).await.unwrap();
        state_machine.get_snapshot_builder().await.build_snapshot().await.unwrap();
    }
    std::fs::remove_file(dir.path().join(LOG_FILE)).unwrap();
    let error = open_error(dir.path());
    assert!(matches!(error, StoreError::LogMissing { .. }), "{error:?}");

    // The log was compacted behind a snapshot that is gone.
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _state_machine) = open(dir.path()).unwrap();
        log.blocking_append(sample_log(4)).await.unwrap();
        log.purge(log_id(1, 1, 2)).await.unwrap();
    }
    let error = open_error(dir.path());
    assert!(matches!(error, StoreError::SnapshotMissing { purged_index: 2, .. }), "{error:?}");
}

#[test]
fn a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path()).unwrap();
    let error = open_error(dir.path());
    assert!(matches!(error, StoreError::LogInUse { .. }), "{error:?}");
    assert!(error.to_string().contains("is another coordinator running with this data_dir?"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_and_purge_leave_no_holes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _state_machine) = open(dir.path()).unwrap();
    log.blocking_append(sample_log(10)).await.unwrap();
    log.truncate(log_id(1, 1, 8)).await.unwrap();
    log.purge(log_id(1, 1, 3)).await.unwrap();
    // Purging behind the purged point changes nothing.
    log.purge(log_id(1, 1, 2)).await.unwrap();
    let indexes: Vec<u64> =
        log.try_get_log_entries(..).await.unwrap().iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, [4, 5, 6, 7]);
    let state = log.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 1, 3)), Some(log_id(1, 1, 7))));
}

#[test]
fn a_log_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join(LOG_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, &[u8]> = redb::TableDefinition::new("meta");
            txn.open_table(meta).unwrap().insert("format", b"2".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let error = open_error(dir.path());
    assert!(matches!(error, StoreError::UnsupportedLogFormat { .. }), "{error:?}");
    assert!(error.to_string().contains("has format \"2\", this build reads format 1"), "{error}");
}
