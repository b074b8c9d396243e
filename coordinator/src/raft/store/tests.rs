//! The store against openraft's storage suite, plus what the suite does not
//! cover: data surviving a reopen, damaged files refused loudly, and I/O
//! errors surfacing as openraft storage errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

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
    let meta = openraft::SnapshotMeta { last_log_id: Some(log_id(1, 1, 3)), ..Default::default() };
    receiving.write_all(&super::snapshot_file::frame(&meta, br#"{"version":9,"state":{}}"#)).await.unwrap();
    receiving.flush().await.unwrap();
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
        ("not a snapshot", b"hello".to_vec(), "missing the vantage-snapshot header"),
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

/// A rollup batch entry: `rows` of (endpoint, region, hour, total ms).
fn rollup_entry(index: u64, batch: u64, at: UnixMillis, rows: &[(u64, &str, u32, u64)]) -> Entry {
    use vantage_core::history::Rollup;
    let rows = rows
        .iter()
        .map(|&(endpoint, region, hour, total_ms)| {
            let mut rollup = Rollup { checks: 1, ..Rollup::default() };
            rollup.total.record(total_ms * 1000);
            crate::state::history::RollupRow {
                endpoint: crate::state::EndpointId(endpoint),
                region: region.into(),
                hour,
                rollup,
            }
        })
        .collect();
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request {
            idempotency_key: IdempotencyKey(format!("rollups-{batch}")),
            issued_at: at,
            command: Command::RecordRollups(crate::state::history::RollupBatch {
                origin: crate::state::history::BatchOrigin { term: 1, node: 1 },
                batch,
                rows,
            }),
        }),
    }
}

/// Checks per region in endpoint `id`'s hourly rollups over `hours`.
fn hourly_checks(
    sm: &StateMachineStore,
    id: u64,
    hours: std::ops::RangeInclusive<u32>,
) -> BTreeMap<String, u32> {
    let rows = sm
        .reader()
        .history()
        .read(crate::state::EndpointId(id), vantage_core::history::Granularity::Hour, hours)
        .unwrap();
    rows.into_iter().map(|(region, periods)| (region, periods.values().map(|r| r.checks).sum())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_are_merged_once_even_when_the_log_is_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let at = UnixMillis(1_700_000_000_000);
    let hour = vantage_core::history::Granularity::Hour.period_of(at);
    // Endpoints 1 and 2 exist (e4, e5); 99 does not; hour - 500 is past retention.
    let mut log = sample_log(5);
    log.push(rollup_entry(6, 1, at, &[(1, "eu", hour, 100), (1, "us", hour, 120), (99, "eu", hour, 1)]));
    log.push(rollup_entry(7, 2, at, &[(1, "eu", hour, 110), (2, "eu", hour - 500, 5)]));
    log.push(rollup_entry(8, 2, at, &[(1, "eu", hour, 999)])); // a duplicate batch number
    {
        let (mut log_store, mut sm) = open(dir.path()).unwrap();
        log_store.blocking_append(log.clone()).await.unwrap();
        let responses = sm.apply(log.clone()).await.unwrap();
        assert!(
            matches!(
                responses[7],
                crate::state::CommandResponse::Applied(crate::state::Outcome::RollupsRecorded {
                    duplicate: true,
                    ..
                })
            ),
            "{:?}",
            responses[7]
        );
        assert_eq!(hourly_checks(&sm, 1, hour..=hour), BTreeMap::from([("eu".into(), 2), ("us".into(), 1)]));
        assert!(hourly_checks(&sm, 99, hour..=hour).is_empty(), "rows of unknown endpoints are dropped");
        assert!(hourly_checks(&sm, 2, 0..=hour).is_empty(), "rows past retention are dropped");
        // Applying the same entries again (what a restart does) changes nothing.
        sm.apply(log.clone()).await.unwrap();
        assert_eq!(hourly_checks(&sm, 1, hour..=hour)["eu"], 2);
    }
    // Reopened without a snapshot: openraft re-applies the log from the start.
    let (_log, mut sm) = open(dir.path()).unwrap();
    sm.apply(log).await.unwrap();
    assert_eq!(hourly_checks(&sm, 1, hour..=hour)["eu"], 2);
    let day = vantage_core::history::Granularity::Day.period_of(at);
    let daily = sm
        .reader()
        .history()
        .read(crate::state::EndpointId(1), vantage_core::history::Granularity::Day, day..=day)
        .unwrap();
    assert_eq!(daily["eu"][&day].checks, 2);
    assert_eq!(daily["eu"][&day].total.max_micros(), Some(110_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_carries_the_rollups_to_a_follower_and_a_rebuilt_history_file() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let at = UnixMillis(1_700_000_000_000);
    let hour = vantage_core::history::Granularity::Hour.period_of(at);
    let mut log = sample_log(5);
    log.push(rollup_entry(6, 1, at, &[(1, "eu", hour, 100), (2, "us", hour - 1, 120)]));
    let (_leader_log, mut leader) = open(leader_dir.path()).unwrap();
    leader.apply(log).await.unwrap();
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();
    {
        let (_log, mut follower) = open(follower_dir.path()).unwrap();
        let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
        *receiving = *snapshot.snapshot;
        follower.install_snapshot(&snapshot.meta, receiving).await.unwrap();
        assert_eq!(hourly_checks(&follower, 1, hour..=hour), BTreeMap::from([("eu".into(), 1)]));
        assert_eq!(hourly_checks(&follower, 2, hour - 1..=hour), BTreeMap::from([("us".into(), 1)]));
        assert_eq!(follower.reader().history().row_counts().unwrap(), (2, 2));
    }
    // The history file is lost: it is rebuilt from the snapshot on start.
    std::fs::remove_file(follower_dir.path().join(super::HISTORY_FILE)).unwrap();
    let (_log, follower) = open(follower_dir.path()).unwrap();
    assert_eq!(hourly_checks(&follower, 1, hour..=hour), BTreeMap::from([("eu".into(), 1)]));
    assert_eq!(follower.reader().history().applied_index().unwrap(), 6);
}
