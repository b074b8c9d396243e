//! The real `vantagectl` binary against an in-process fake AdminService
//! (see `support/mod.rs`; a test double, not the coordinator). End-to-end
//! tests against a real cluster live with the coordinator.

mod support;

use std::io::Write;
use std::net::TcpListener;

use serde_json::Value;
use support::{stderr, stdout, vantagectl, FakeAdmin, TestCa, GENERATED_SECRET};

/// A file with every section; windows far in the future so none is over.
const MESH: &str = "\
regions: [eu-west, us-east]
endpoints:
  - name: api
    url: https://api.example.com/health
    interval: 30s
    timeout: 5s
    regions: [eu-west]
    public: true
    labels: {team: core}
    expect: {status: \"200-299\", body_contains: [\"ok\"]}
  - name: web
    url: https://www.example.com/
webhooks:
  - name: oncall
    url: https://hooks.example.com/x
    secret_env: ONCALL_SECRET
    format: standard
maintenance:
  - start: 2099-12-01T02:00:00Z
    end: 2099-12-01T03:00:00Z
    reason: db upgrade
    endpoints: [api]
";

const SECRET: (&str, &str) = ("ONCALL_SECRET", "0123456789abcdef0123");

fn write_file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path).unwrap().write_all(content.as_bytes()).unwrap();
    path.to_str().unwrap().to_string()
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

#[test]
fn t01_endpoint_add_then_list_as_json_and_table() {
    let fake = FakeAdmin::start();
    let added = ok(&vantagectl(
        &fake.url(),
        &[
            "endpoint",
            "add",
            "api",
            "https://api.example.com/health",
            "--interval",
            "30s",
            "--timeout",
            "5s",
            "--label",
            "team=core",
            "--expect-status",
            "200-299",
        ],
        &[],
    ));
    assert_eq!(added, "added endpoint api (id 1)\n");
    ok(&vantagectl(&fake.url(), &["endpoint", "add", "db", "tcp://db.internal:5432"], &[]));

    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&fake.url(), &["endpoint", "list", "--json"], &[]))).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], 1);
    assert_eq!(list[0]["name"], "api");
    assert_eq!(list[0]["url"], "https://api.example.com/health");
    assert_eq!(list[0]["kind"], "https");
    assert_eq!(list[0]["interval_ms"], 30_000);
    assert_eq!(list[0]["timeout_ms"], 5_000);
    assert_eq!(list[0]["labels"]["team"], "core");
    assert_eq!(list[0]["expect"]["status"], "200-299");
    assert_eq!(list[1]["name"], "db");
    assert_eq!(list[1]["timeout_ms"], 10_000);

    let table = ok(&vantagectl(&fake.url(), &["endpoint", "list"], &[]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID  NAME  KIND   URL "), "{table}");
    assert!(lines[2].starts_with("2   db    tcp    tcp://db.internal:5432 "), "{table}");
}

#[test]
fn t02_update_keeps_what_is_not_given_and_pause_get_rm_work() {
    let fake = FakeAdmin::start();
    let url = fake.url();
    ok(&vantagectl(
        &url,
        &["endpoint", "add", "api", "https://api.example.com/", "--label", "team=core"],
        &[],
    ));

    let updated = ok(&vantagectl(&url, &["endpoint", "update", "api", "--interval", "2m", "--public"], &[]));
    assert_eq!(updated, "updated endpoint api (id 1): interval 1m -> 2m, public false -> true\n");
    let applied = fake.state().mutations_applied;
    let same = ok(&vantagectl(&url, &["endpoint", "update", "1", "--interval", "2m"], &[]));
    assert_eq!(same, "endpoint api (id 1) is already as asked; nothing sent\n");
    assert_eq!(fake.state().mutations_applied, applied, "an update that changes nothing is not sent");

    assert_eq!(ok(&vantagectl(&url, &["endpoint", "pause", "api"], &[])), "paused endpoint api (id 1)\n");
    assert_eq!(
        ok(&vantagectl(&url, &["endpoint", "pause", "api"], &[])),
        "endpoint api (id 1) was already paused\n"
    );
    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&url, &["endpoint", "get", "api", "--json"], &[]))).unwrap();
    assert_eq!(
        (json["paused"].clone(), json["interval_ms"].clone()),
        (Value::Bool(true), Value::from(120_000))
    );
    assert_eq!(json["labels"]["team"], "core", "labels survive an update that does not mention them");
    assert!(ok(&vantagectl(&url, &["endpoint", "get", "api"], &[])).contains("paused:        yes\n"));

    assert_eq!(ok(&vantagectl(&url, &["endpoint", "resume", "1"], &[])), "resumed endpoint api (id 1)\n");
    assert_eq!(ok(&vantagectl(&url, &["endpoint", "rm", "api"], &[])), "removed endpoint api (id 1)\n");
    let missing = vantagectl(&url, &["endpoint", "get", "api"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing), "error: no endpoint is named or numbered \"api\"\n");
}

#[test]
fn t03_apply_twice_changes_nothing_the_second_time() {
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "mesh.yaml", MESH);

    let first = ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET]));
    assert_eq!(
        first,
        "+ region eu-west\n\
         + region us-east\n\
         + endpoint api (https://api.example.com/health, every 30s)\n\
         + endpoint web (https://www.example.com/, every 1m)\n\
         + webhook oncall (https://hooks.example.com/x, standard)\n\
         + maintenance 2099-12-01T02:00:00Z..2099-12-01T03:00:00Z \"db upgrade\"\n\
         applied 6 change(s)\n"
    );
    {
        let state = fake.state();
        assert_eq!(state.mutations_applied, 6);
        assert_eq!(state.webhooks.values().next().unwrap().1, SECRET.1, "the secret comes from secret_env");
        let window = state.maintenance.values().next().unwrap().spec.clone().unwrap();
        assert_eq!(window.endpoints, vec![1], "maintenance names endpoints, sent as ids");
    }
    let keys = fake.state().keys_seen.len();

    let second = ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET]));
    assert_eq!(second, "no changes\n");
    let state = fake.state();
    assert_eq!(state.mutations_applied, 6, "the second apply applies nothing");
    assert_eq!(state.keys_seen.len(), keys, "the second apply sends no mutation at all");
    assert_eq!(state.local_reads, 0, "apply reads consistently");
}

#[test]
fn t04_dry_run_prints_the_diff_and_sends_nothing() {
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    ok(&vantagectl(&fake.url(), &["apply", "-f", &write_file(&dir, "a.yaml", MESH)], &[SECRET]));
    let changed = write_file(&dir, "b.yaml", &MESH.replace("interval: 30s", "interval: 1m"));
    let keys = fake.state().keys_seen.len();

    let dry = ok(&vantagectl(&fake.url(), &["apply", "-f", &changed, "--dry-run"], &[]));
    assert_eq!(dry, "~ endpoint api: interval 30s -> 1m\ndry run: nothing sent\n");
    assert_eq!(fake.state().keys_seen.len(), keys);

    let json: Value = serde_json::from_str(&ok(&vantagectl(
        &fake.url(),
        &["apply", "-f", &changed, "--dry-run", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(json["changes"][0]["op"], "update");
    assert_eq!(json["changes"][0]["kind"], "endpoint");
    assert_eq!(json["changes"][0]["name"], "api");
}

#[test]
fn t05_prune_removes_only_what_the_file_no_longer_has() {
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    ok(&vantagectl(&fake.url(), &["apply", "-f", &write_file(&dir, "a.yaml", MESH)], &[SECRET]));
    let without_web = MESH.replace("  - name: web\n    url: https://www.example.com/\n", "");
    let file = write_file(&dir, "b.yaml", &without_web);

    let kept = ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[]));
    assert_eq!(kept, "no changes\n  kept (not in the file; --prune removes them): endpoint web\n");
    let pruned = ok(&vantagectl(&fake.url(), &["apply", "-f", &file, "--prune"], &[]));
    assert_eq!(pruned, "- endpoint web\napplied 1 change(s)\n");
    assert_eq!(fake.state().endpoints.len(), 1);
}

#[test]
fn t06_export_then_apply_changes_nothing() {
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    ok(&vantagectl(&fake.url(), &["apply", "-f", &write_file(&dir, "a.yaml", MESH)], &[SECRET]));
    let exported = ok(&vantagectl(&fake.url(), &["export"], &[]));
    assert!(exported.contains("secret_env: WEBHOOK_ONCALL_SECRET\n"), "{exported}");
    assert!(exported.contains("# Webhook secrets cannot be read back"), "{exported}");
    let keys = fake.state().keys_seen.len();
    let again = ok(&vantagectl(
        &fake.url(),
        &["apply", "--prune", "-f", &write_file(&dir, "e.yaml", &exported)],
        &[],
    ));
    assert_eq!(again, "no changes\n");
    assert_eq!(fake.state().keys_seen.len(), keys);
}

#[test]
fn t07_yaml_errors_carry_line_and_column_and_send_nothing() {
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    let file =
        write_file(&dir, "bad.yaml", "endpoints:\n  - name: api\n    url: https://x/\n    intervall: 30s\n");
    let output = vantagectl(&fake.url(), &["apply", "-f", &file], &[]);
    assert_eq!(output.status.code(), Some(1));
    let want = format!(
        "error: {file}:4:5: endpoints[0]: unknown field \"intervall\", expected one of \"name\", \"url\""
    );
    assert!(stderr(&output).starts_with(&want), "{}", stderr(&output));
    assert!(fake.state().keys_seen.is_empty());

    let missing_secret = write_file(&dir, "s.yaml", MESH);
    let output = vantagectl(&fake.url(), &["apply", "-f", &missing_secret], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("secret_env ONCALL_SECRET is not set"), "{}", stderr(&output));
    assert!(fake.state().keys_seen.is_empty(), "nothing is sent when a secret is missing");
}

#[test]
fn t08_a_lost_reply_is_retried_with_the_same_key_and_applied_once() {
    let fake = FakeAdmin::start();
    fake.state().lose_replies = 1;
    let added = ok(&vantagectl(&fake.url(), &["endpoint", "add", "api", "https://api.example.com/"], &[]));
    assert_eq!(added, "added endpoint api (id 1)\n");
    let state = fake.state();
    assert_eq!(state.endpoints.len(), 1);
    assert_eq!((state.mutations_applied, state.replays), (1, 1));
    assert_eq!(state.keys_seen.len(), 2);
    assert_eq!(state.keys_seen[0], state.keys_seen[1], "the retry carries the same key");
    assert_eq!(state.keys_seen[0].1.len(), 32, "a random 128-bit hex key");
}

#[test]
fn t08b_a_removal_whose_reply_was_lost_is_reported_done() {
    let fake = FakeAdmin::start();
    ok(&vantagectl(&fake.url(), &["endpoint", "add", "api", "https://api.example.com/"], &[]));
    fake.state().lose_replies = 1;
    // The retry's name lookup finds nothing: the first attempt removed it.
    assert_eq!(ok(&vantagectl(&fake.url(), &["endpoint", "rm", "api"], &[])), "removed endpoint api\n");
    assert!(fake.state().endpoints.is_empty());
    // Without a lost reply, a missing endpoint is an error.
    let output = vantagectl(&fake.url(), &["endpoint", "rm", "api"], &[]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn t09_apply_after_a_manual_removal_adds_the_object_again() {
    // The same file gives the same derived keys, which the coordinator
    // remembers; apply notices the replayed change is not in effect and
    // sends it again with a new key.
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "mesh.yaml", MESH);
    ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET]));
    ok(&vantagectl(&fake.url(), &["endpoint", "rm", "web"], &[]));
    let again = ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET]));
    assert!(
        again.starts_with(
            "+ endpoint web (https://www.example.com/, every 1m)\nnote: 1 change(s) are not in effect"
        ),
        "{again}"
    );
    assert!(again.ends_with("applied 1 change(s)\n"), "{again}");
    assert!(fake.state().endpoints.values().any(|e| e.spec.as_ref().unwrap().name == "web"));
    assert_eq!(ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET])), "no changes\n");
}

#[test]
fn t10_an_unreachable_server_exits_1_with_a_clear_message() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = format!("http://127.0.0.1:{port}");
    let output = vantagectl(&server, &["endpoint", "list"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.starts_with(&format!("error: cannot reach the coordinator at {server}: ")), "{err}");
    assert!(err.ends_with("(is it running? check --server)\n"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn t11_server_messages_are_printed_as_they_are() {
    let fake = FakeAdmin::start();
    fake.state().unavailable = Some("no leader: 1 of 3 nodes reachable, a quorum needs 2".into());
    let output = vantagectl(&fake.url(), &["region", "add", "eu-west"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr(&output), "error: no leader: 1 of 3 nodes reachable, a quorum needs 2\n");

    fake.state().unavailable = None;
    let output =
        vantagectl(&fake.url(), &["endpoint", "add", "api", "https://x.example/", "--regions", "mars"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: unknown region \"mars\" (add it first: vantagectl region add mars)\n"
    );
}

#[test]
fn t12_tokens_come_from_the_flag_or_the_environment() {
    let fake = FakeAdmin::start();
    let wrong = vantagectl(&fake.url(), &["endpoint", "list"], &[("VANTAGE_TOKEN", "wrong")]);
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(
        stderr(&wrong),
        "error: the coordinator refused the admin token: invalid admin token (check --token-file FILE or VANTAGE_TOKEN)\n"
    );
    let none = vantagectl(&fake.url(), &["endpoint", "list"], &[("VANTAGE_TOKEN", "")]);
    assert!(stderr(&none).starts_with("error: no admin token given"), "{}", stderr(&none));

    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(&dir, "admin.token", &format!("{}\n", support::TOKEN));
    ok(&vantagectl(
        &fake.url(),
        &["endpoint", "list", "--token-file", &token_file],
        &[("VANTAGE_TOKEN", "wrong")],
    ));
    ok(&vantagectl(
        &fake.url(),
        &["endpoint", "list"],
        &[("VANTAGE_TOKEN", ""), ("VANTAGE_TOKEN_FILE", &token_file)],
    ));
}

#[test]
fn t13_usage_errors_exit_2_and_send_nothing() {
    let fake = FakeAdmin::start();
    for (args, message) in [
        (&["endpoint", "add", "api", "https://x/", "--interval", "500ms"][..], "between 1s and 24h"),
        (
            &["endpoint", "add", "api", "https://x/", "--interval", "5s", "--timeout", "5s"],
            "error: invalid timeout 5s: must be below the interval (5s)",
        ),
        (&["endpoint", "add", "api", "ftp://x/"], "unsupported scheme"),
        (&["endpoint", "add", "api", "https://x/", "--label", "team"], "KEY=VALUE"),
        (&["endpoint", "frobnicate"], "unrecognized subcommand"),
        (&["maintenance", "add", "--start", "later", "--end", "+1h"], "error: --start: invalid time"),
    ] {
        let output = vantagectl(&fake.url(), args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(message), "{args:?}: {}", stderr(&output));
    }
    let output = vantagectl("ftp://x", &["endpoint", "list"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(fake.state().keys_seen.is_empty());
}

#[test]
fn t14_cluster_status_json_has_the_documented_shape() {
    let fake = FakeAdmin::start();
    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&fake.url(), &["cluster", "status", "--json"], &[]))).unwrap();
    assert_eq!(json["leader_id"], 1);
    assert_eq!(json["term"], 4);
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(
        members[2],
        serde_json::json!({"id": 3, "api_addr": "127.0.0.1:7430", "raft_addr": "127.0.0.1:7431",
            "role": "follower", "reachable": false, "last_applied": 9})
    );
    let human = ok(&vantagectl(&fake.url(), &["cluster", "status"], &[]));
    assert!(human.starts_with("leader: 1  term: 4  answered by: node 1\nID  ROLE      API"), "{human}");
    let added = ok(&vantagectl(
        &fake.url(),
        &["cluster", "add-node", "4", "--api", "h:1", "--raft", "h:2", "--learner"],
        &[],
    ));
    assert!(added.starts_with("added node 4 as learner\n"), "{added}");
    assert_eq!(
        ok(&vantagectl(&fake.url(), &["cluster", "snapshot"], &[])),
        "snapshot built; it covers the log up to index 42\n"
    );
}

#[test]
fn t15_regions_webhooks_and_maintenance_commands() {
    let fake = FakeAdmin::start();
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        ok(&vantagectl(&url, &["region", "add", "eu-west", "us-east"], &[])),
        "added region eu-west\nadded region us-east\n"
    );
    assert_eq!(
        ok(&vantagectl(&url, &["region", "list"], &[])),
        "NAME     CREATED\neu-west  1970-01-01T00:00:01Z\nus-east  1970-01-01T00:00:01Z\n"
    );
    ok(&vantagectl(
        &url,
        &["endpoint", "add", "api", "https://api.example.com/", "--regions", "eu-west"],
        &[],
    ));

    let secret = write_file(&dir, "secret", "0123456789abcdef0123\n");
    let added = ok(&vantagectl(
        &url,
        &[
            "webhook",
            "add",
            "oncall",
            "https://hooks.example.com/x",
            "--secret-file",
            &secret,
            "--event",
            "outage_opened",
        ],
        &[],
    ));
    assert_eq!(added, "added webhook oncall (id 2)\n");
    assert_eq!(
        fake.state().webhooks[&2].1,
        "0123456789abcdef0123",
        "the file's newline is not part of the secret"
    );
    let list = ok(&vantagectl(&url, &["webhook", "list"], &[]));
    assert!(
        list.contains("oncall  https://hooks.example.com/x  standard  outage_opened  -       set"),
        "{list}"
    );

    let added = ok(&vantagectl(
        &url,
        &[
            "maintenance",
            "add",
            "--start",
            "+1h",
            "--end",
            "+2h",
            "--endpoint",
            "api",
            "--reason",
            "db upgrade",
        ],
        &[],
    ));
    assert!(added.starts_with("added maintenance window 3 ("), "{added}");
    let list = ok(&vantagectl(&url, &["maintenance", "list"], &[]));
    assert!(list.lines().nth(1).unwrap().ends_with("  api     db upgrade"), "{list}");
    assert_eq!(ok(&vantagectl(&url, &["maintenance", "rm", "3"], &[])), "removed maintenance window 3\n");
    assert_eq!(ok(&vantagectl(&url, &["webhook", "rm", "oncall"], &[])), "removed webhook oncall (id 2)\n");
    assert_eq!(ok(&vantagectl(&url, &["region", "rm", "us-east"], &[])), "removed region us-east\n");
    let used = vantagectl(&url, &["region", "rm", "eu-west"], &[]);
    assert_eq!(used.status.code(), Some(1));
}

#[test]
fn t15b_webhook_add_without_a_secret_prints_the_generated_one_and_test_reports() {
    let fake = FakeAdmin::start();
    let url = fake.url();
    let added = ok(&vantagectl(
        &url,
        &[
            "webhook",
            "add",
            "local",
            "http://127.0.0.1:9000/hook",
            "--allow-private",
            "--format",
            "alertmanager",
        ],
        &[],
    ));
    assert_eq!(
        added,
        format!("added webhook local (id 1)\nsigning secret (shown only now; give it to the receiver): {GENERATED_SECRET}\n")
    );
    let spec = fake.state().webhooks[&1].0.spec.clone().unwrap();
    assert!(spec.allow_private);
    assert_eq!(spec.format, "alertmanager");
    let json: serde_json::Value = serde_json::from_str(&ok(&vantagectl(
        &url,
        &["webhook", "add", "other", "https://hooks.example.com/x", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(json["generated_secret"], GENERATED_SECRET, "--json includes it");
    let listed = ok(&vantagectl(&url, &["webhook", "list", "--json"], &[]));
    assert!(!listed.contains(GENERATED_SECRET), "never shown again: {listed}");
    // Without --allow-private a loopback address is a usage error.
    let refused = vantagectl(&url, &["webhook", "add", "lo", "http://127.0.0.1:9000/hook"], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-private"));

    let tested = ok(&vantagectl(&url, &["webhook", "test", "other"], &[]));
    assert_eq!(
        tested,
        "delivered: test event msg_vantage_test_00000000000000ff to webhook other (https://hooks.example.com/x): \
         HTTP 204 in 12.3 ms (sent by node 1)\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&vantagectl(&url, &["webhook", "test", "other", "--json"], &[]))).unwrap();
    assert_eq!(json["status_code"], 204);
    assert_eq!(json["latency_ms"], 12.345);
    assert_eq!(json["delivered"], true);

    ok(&vantagectl(
        &url,
        &["webhook", "add", "broken", "https://broken.example.com/x", "--secret", "0123456789abcdef"],
        &[],
    ));
    let failed = vantagectl(&url, &["webhook", "test", "broken"], &[]);
    assert_eq!(failed.status.code(), Some(1), "not accepted: exit 1");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(stdout.starts_with("not delivered: ") && stdout.contains("HTTP 500"), "{stdout}");
    assert!(stdout.contains("error: the receiver answered 500 Internal Server Error"), "{stdout}");
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr),
        "error: webhook broken did not accept the test event\n"
    );
}

#[test]
fn t16_https_trusts_only_the_ca_given() {
    let pki = TestCa::new();
    let fake = FakeAdmin::start_tls(&pki.leaf_pem, &pki.leaf_key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca = write_file(&dir, "ca.pem", &pki.ca_pem);
    let status = ok(&vantagectl(&fake.tls_url(), &["cluster", "status", "--ca", &ca], &[]));
    assert!(status.starts_with("leader: 1"), "{status}");

    // Another CA, no --ca (the public roots), the leaf itself as --ca:
    // rustls says UnknownIssuer or BadSignature; vantagectl says the fix.
    let other = write_file(&dir, "other.pem", &TestCa::new().ca_pem);
    let leaf = write_file(&dir, "leaf.pem", &pki.leaf_pem);
    for args in [
        &["cluster", "status", "--ca", &other][..],
        &["cluster", "status"],
        &["cluster", "status", "--ca", &leaf],
    ] {
        let output = vantagectl(&fake.tls_url(), args, &[]);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&output),
            format!(
                "error: cannot reach the coordinator at {}: its certificate is not signed by a CA vantagectl \
                 trusts (give the cluster CA with --ca FILE: the ca.pem from `vantage-coordinator certs \
                 init`)\n",
                fake.tls_url()
            ),
            "{args:?}"
        );
    }

    let plaintext = vantagectl(&fake.url(), &["cluster", "status"], &[]);
    assert_eq!(plaintext.status.code(), Some(1), "http:// to a TLS server fails");
    // How the TLS server drops an HTTP/2 preface varies (bad frame or
    // broken pipe), so only the start of the message is certain.
    assert!(
        stderr(&plaintext).starts_with("error: cannot reach the coordinator at http://"),
        "{}",
        stderr(&plaintext)
    );
    let not_pem = write_file(&dir, "not.pem", "hello");
    let output = vantagectl(&fake.tls_url(), &["cluster", "status", "--ca", &not_pem], &[]);
    assert!(
        stderr(&output).starts_with(&format!("error: --ca {not_pem}: no PEM certificate")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn t16b_https_to_a_plaintext_coordinator_says_to_use_http() {
    let fake = FakeAdmin::start();
    let https = fake.url().replace("http://", "https://");
    let output = vantagectl(&https, &["cluster", "status"], &[]);
    assert_eq!(output.status.code(), Some(1));
    // rustls: "received corrupt message of type InvalidContentType".
    assert_eq!(
        stderr(&output),
        format!(
            "error: cannot reach the coordinator at {https}: it does not answer with TLS (for a cluster with \
             insecure = true, use --server http://HOST:PORT)\n"
        )
    );
}

#[test]
fn t17_apply_updates_a_changed_webhook_in_place() {
    let fake = FakeAdmin::start();
    let dir = tempfile::tempdir().unwrap();
    ok(&vantagectl(&fake.url(), &["apply", "-f", &write_file(&dir, "a.yaml", MESH)], &[SECRET]));
    let id = *fake.state().webhooks.keys().next().unwrap();
    let keys = fake.state().keys_seen.len();

    let moved = MESH.replace("https://hooks.example.com/x", "https://hooks.example.com/y");
    let file = write_file(&dir, "b.yaml", &moved);
    let applied = ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET]));
    assert_eq!(
        applied,
        "~ webhook oncall: url https://hooks.example.com/x -> https://hooks.example.com/y\n\
         applied 1 change(s)\n"
    );
    {
        let state = fake.state();
        assert_eq!(state.webhooks.len(), 1);
        let (webhook, secret) = &state.webhooks[&id];
        assert_eq!(webhook.spec.as_ref().unwrap().url, "https://hooks.example.com/y", "updated in place");
        assert_eq!(secret, SECRET.1, "the file's secret goes with the update");
        let rpcs: Vec<&str> = state.keys_seen[keys..].iter().map(|(rpc, _)| *rpc).collect();
        assert_eq!(rpcs, ["UpdateWebhook"], "no removal, no addition");
    }
    let keys = fake.state().keys_seen.len();

    assert_eq!(ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[SECRET])), "no changes\n");
    assert_eq!(fake.state().keys_seen.len(), keys, "the second apply sends no mutation");

    // Secrets cannot be read back: a file that differs only in the secret
    // shows no change and sends nothing.
    let other =
        ok(&vantagectl(&fake.url(), &["apply", "-f", &file], &[("ONCALL_SECRET", "another-secret-0123456")]));
    assert_eq!(other, "no changes\n");
    let state = fake.state();
    assert_eq!(state.keys_seen.len(), keys);
    assert_eq!(state.webhooks[&id].1, SECRET.1);
}

#[test]
fn t18_webhook_update_round_trip() {
    let fake = FakeAdmin::start();
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let secret = write_file(&dir, "secret", "0123456789abcdef0123\n");
    ok(&vantagectl(
        &url,
        &[
            "webhook",
            "add",
            "oncall",
            "https://hooks.example.com/x",
            "--secret-file",
            &secret,
            "--label",
            "team=core",
        ],
        &[],
    ));

    let updated = ok(&vantagectl(
        &url,
        &[
            "webhook",
            "update",
            "oncall",
            "--url",
            "https://hooks.example.com/y",
            "--format",
            "slack",
            "--event",
            "degraded",
            "--label",
            "tier=1",
        ],
        &[],
    ));
    assert_eq!(
        updated,
        "updated webhook oncall (id 1): url https://hooks.example.com/x -> https://hooks.example.com/y, \
         format standard -> slack, events all -> [degraded], labels {team=core} -> {team=core,tier=1}\n"
    );
    assert_eq!(fake.state().webhooks[&1].1, "0123456789abcdef0123", "no secret given: the stored one stays");
    let list: Value =
        serde_json::from_str(&ok(&vantagectl(&url, &["webhook", "list", "--json"], &[]))).unwrap();
    assert_eq!(
        list,
        serde_json::json!([{"id": 1, "name": "oncall", "url": "https://hooks.example.com/y", "format": "slack",
            "events": ["degraded"], "labels": {"team": "core", "tier": "1"}, "secret_set": true,
            "created_at_unix_ms": 1000}])
    );

    let applied = fake.state().mutations_applied;
    let same =
        ok(&vantagectl(&url, &["webhook", "update", "1", "--format", "slack", "--event", "degraded"], &[]));
    assert_eq!(same, "webhook oncall (id 1) is already as asked; nothing sent\n");
    assert_eq!(fake.state().mutations_applied, applied, "an update that changes nothing is not sent");

    let new_secret = write_file(&dir, "new-secret", "fedcba9876543210fedc\n");
    let rotated = ok(&vantagectl(&url, &["webhook", "update", "oncall", "--secret-file", &new_secret], &[]));
    assert_eq!(rotated, "updated webhook oncall (id 1): secret replaced\n");
    assert_eq!(fake.state().webhooks[&1].1, "fedcba9876543210fedc");

    // A lost reply is retried with the same key and applied once.
    fake.state().lose_replies = 1;
    let json: Value = serde_json::from_str(&ok(&vantagectl(
        &url,
        &["webhook", "update", "oncall", "--clear-events", "--clear-labels", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!((json["id"].clone(), json["events"].clone()), (Value::from(1), serde_json::json!([])));
    assert_eq!(json["labels"], serde_json::json!({}));
    {
        let state = fake.state();
        assert_eq!(state.webhooks.len(), 1);
        assert_eq!(state.replays, 1);
        let last = &state.keys_seen[state.keys_seen.len() - 2..];
        assert_eq!(last[0], last[1], "the retry carries the same key");
        assert_eq!(last[0].0, "UpdateWebhook");
    }

    let keys = fake.state().keys_seen.len();
    let missing = vantagectl(&url, &["webhook", "update", "nope", "--url", "https://x.example/"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        "error: no webhook named \"nope\" (list them with: vantagectl webhook list)\n"
    );
    for args in [
        &["webhook", "update", "oncall", "--secret", "short"][..],
        &["webhook", "update", "oncall", "--url", "ftp://x/"],
        &["webhook", "update", "oncall", "--clear-events", "--event", "degraded"],
    ] {
        let output = vantagectl(&url, args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
    assert_eq!(fake.state().keys_seen.len(), keys, "failed updates send nothing");
}

#[test]
fn t19_probe_token_create_prints_the_token_once_with_a_warning() {
    let fake = FakeAdmin::start();
    ok(&vantagectl(&fake.url(), &["region", "add", "eu", "us"], &[]));
    let created =
        ok(&vantagectl(&fake.url(), &["probe", "token", "create", "--probe", "eu-1", "--region", "eu"], &[]));
    assert!(created.starts_with("registered probe eu-1 (id 1) in region eu\ntoken: token-01\n"), "{created}");
    assert!(created.contains("warning: this token is shown only once"), "{created}");

    let json = ok(&vantagectl(
        &fake.url(),
        &["--json", "probe", "token", "create", "--probe", "us-1", "--region", "us", "--weight", "50"],
        &[],
    ));
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value, serde_json::json!({"probe_id": 2, "token": "token-02"}));
    assert_eq!(fake.state().probes[&2].0.weight, 50);

    // Again for an existing probe: the token is replaced.
    let rotated =
        ok(&vantagectl(&fake.url(), &["probe", "token", "create", "--probe", "eu-1", "--region", "eu"], &[]));
    assert!(
        rotated.starts_with("rotated the token of probe eu-1 (id 1) in region eu\ntoken: token-03\n"),
        "{rotated}"
    );
    assert_eq!(fake.state().probes[&1].1, "token-03");

    let bad = vantagectl(
        &fake.url(),
        &["probe", "token", "create", "--probe", "x", "--region", "eu", "--weight", "0"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn t20_a_probe_token_whose_reply_was_lost_is_not_replayed() {
    let fake = FakeAdmin::start();
    ok(&vantagectl(&fake.url(), &["region", "add", "eu"], &[]));
    fake.state().lose_replies = 1;
    let output =
        vantagectl(&fake.url(), &["probe", "token", "create", "--probe", "eu-1", "--region", "eu"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("shown only in the first reply"), "{}", stderr(&output));
    assert!(!stdout(&output).contains("token-01"));
    let state = fake.state();
    assert_eq!((state.mutations_applied, state.replays), (2, 1), "region add, then the token once");
    assert_eq!(state.keys_seen[1], state.keys_seen[2], "the retry carries the same key");
    drop(state);
    // Running it again (a new key) rotates the token and prints it.
    let again =
        ok(&vantagectl(&fake.url(), &["probe", "token", "create", "--probe", "eu-1", "--region", "eu"], &[]));
    assert!(again.contains("token: token-02"), "{again}");
}

#[test]
fn t21_probe_list_revoke_and_drain() {
    let fake = FakeAdmin::start();
    ok(&vantagectl(&fake.url(), &["region", "add", "eu", "us"], &[]));
    assert!(ok(&vantagectl(&fake.url(), &["probe", "list"], &[])).starts_with("no probes"));
    ok(&vantagectl(&fake.url(), &["probe", "token", "create", "--probe", "eu-1", "--region", "eu"], &[]));
    ok(&vantagectl(&fake.url(), &["probe", "token", "create", "--probe", "us-1", "--region", "us"], &[]));
    {
        let mut state = fake.state();
        let (probe, _) = state.probes.get_mut(&2).unwrap();
        probe.connected = true;
        probe.endpoints = 3;
        probe.version = "0.1.0".into();
        probe.connected_since_unix_ms = 1_700_000_000_000;
    }
    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&fake.url(), &["--json", "probe", "list"], &[]))).unwrap();
    let probes = json.as_array().unwrap();
    assert_eq!(probes.len(), 2);
    assert_eq!(
        (&probes[1]["id"], &probes[1]["region"], &probes[1]["connected"], &probes[1]["endpoints"]),
        (&Value::from(2), &Value::from("us"), &Value::from(true), &Value::from(3))
    );
    assert_eq!(probes[0]["connected"], Value::from(false));

    let table = ok(&vantagectl(&fake.url(), &["probe", "ls"], &[]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID  NAME  REGION  WEIGHT  STATE"), "{table}");
    assert!(lines[1].contains("eu-1") && lines[1].contains("disconnected"), "{table}");
    assert!(lines[2].contains("us-1") && lines[2].contains("2023-11-14T22:13:20"), "{table}");

    assert_eq!(ok(&vantagectl(&fake.url(), &["probe", "drain", "eu-1"], &[])), "drained probe eu-1 (id 1)\n");
    assert!(fake.state().probes[&1].0.drained);
    assert_eq!(ok(&vantagectl(&fake.url(), &["probe", "revoke", "1"], &[])), "revoked probe eu-1 (id 1)\n");
    assert!(!fake.state().probes.contains_key(&1));
    let missing = vantagectl(&fake.url(), &["probe", "revoke", "eu-1"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no probe named \"eu-1\""), "{}", stderr(&missing));
}

// ---------------------------------------------------------------- shards

/// Regions eu and us; endpoint 1 "web"; probes 2 eu-1, 3 eu-2, 4 us-1; the
/// leader's assignment: web by eu-1 in eu and by us-1 in us (disconnected);
/// "api" (5, eu only) uncovered in eu.
fn shard_fake() -> FakeAdmin {
    use vantage_proto::pb;
    let fake = FakeAdmin::start();
    ok(&vantagectl(&fake.url(), &["region", "add", "eu", "us"], &[]));
    ok(&vantagectl(&fake.url(), &["endpoint", "add", "web", "https://www.example.com/"], &[]));
    for (probe, region) in [("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us")] {
        ok(&vantagectl(
            &fake.url(),
            &["probe", "token", "create", "--probe", probe, "--region", region],
            &[],
        ));
    }
    ok(&vantagectl(
        &fake.url(),
        &["endpoint", "add", "api", "https://api.example.com/", "--regions", "eu"],
        &[],
    ));
    let row = |region: &str, probe_id: u64, probe: &str, connected: bool| pb::ShardRow {
        endpoint_id: 1,
        endpoint: "web".into(),
        region: region.into(),
        probe_id,
        probe: probe.into(),
        pinned: false,
        connected,
    };
    let mut state = fake.state();
    state.shards = vec![row("eu", 2, "eu-1", true), row("us", 4, "us-1", false)];
    state.uncovered =
        vec![pb::UncoveredShard { endpoint_id: 5, endpoint: "api".into(), region: "eu".into() }];
    drop(state);
    fake
}

#[test]
fn t22_shard_list_and_show_as_tables_and_json() {
    let fake = shard_fake();
    let table = ok(&vantagectl(&fake.url(), &["shard", "list"], &[]));
    assert_eq!(
        table,
        "ENDPOINT  REGION  PROBE  PINNED  CONNECTED\n\
         web (1)   eu      eu-1   no      yes\n\
         web (1)   us      us-1   no      no\n\
         uncovered: api (5) in eu: no live probe checks it there\n"
    );
    let json: Value = serde_json::from_str(&ok(&vantagectl(
        &fake.url(),
        &["shard", "ls", "--region", "us", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(json["assignment_version"], 7);
    assert_eq!(
        json["shards"],
        serde_json::json!([{"endpoint_id": 1, "endpoint": "web", "region": "us", "probe_id": 4, "probe": "us-1",
                            "pinned": false, "connected": false}])
    );
    assert_eq!(json["uncovered"], serde_json::json!([]), "filtered by region");
    let by_probe = ok(&vantagectl(&fake.url(), &["--json", "shard", "list", "--probe", "eu-1"], &[]));
    let by_probe: Value = serde_json::from_str(&by_probe).unwrap();
    assert_eq!(by_probe["shards"].as_array().unwrap().len(), 1);

    let shown: Value =
        serde_json::from_str(&ok(&vantagectl(&fake.url(), &["shard", "show", "web", "--json"], &[])))
            .unwrap();
    assert_eq!(shown["endpoint"], "web");
    let assignments: Vec<(&str, &str)> = shown["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["region"].as_str().unwrap(), a["probe"].as_str().unwrap()))
        .collect();
    assert_eq!(assignments, [("eu", "eu-1"), ("us", "us-1")]);
    let human = ok(&vantagectl(&fake.url(), &["shard", "show", "1"], &[]));
    assert_eq!(
        human,
        "endpoint web (id 1), assignment version 7\n\
         REGION  PROBE  PINNED  CONNECTED\n\
         eu      eu-1   no      yes\n\
         us      us-1   no      no\n"
    );
    let uncovered = ok(&vantagectl(&fake.url(), &["shard", "show", "api"], &[]));
    assert!(uncovered.contains("eu      -      -       uncovered: no live probe"), "{uncovered}");

    let missing = vantagectl(&fake.url(), &["shard", "show", "nope"], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no endpoint is named or numbered \"nope\""), "{}", stderr(&missing));
}

#[test]
fn t23_shard_pin_and_unpin() {
    let fake = shard_fake();
    let pinned =
        ok(&vantagectl(&fake.url(), &["shard", "pin", "web", "--region", "eu", "--probe", "eu-2"], &[]));
    assert!(pinned.starts_with("pinned endpoint web (id 1) in eu to probe eu-2 (id 3)"), "{pinned}");
    assert_eq!(fake.state().pins.get(&(1, "eu".to_string())), Some(&3));
    let again = ok(&vantagectl(&fake.url(), &["shard", "pin", "web", "--region", "eu", "--probe", "3"], &[]));
    assert_eq!(again, "endpoint web was already pinned in eu to probe eu-2\n");
    let shown = ok(&vantagectl(&fake.url(), &["shard", "show", "web"], &[]));
    assert!(shown.contains("eu      eu-2   yes     yes"), "{shown}");
    assert!(shown.ends_with("pinned in eu to eu-2\n"), "{shown}");

    let wrong = vantagectl(&fake.url(), &["shard", "pin", "web", "--region", "us", "--probe", "eu-1"], &[]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("probe \"eu-1\" is in region \"eu\", not \"us\""), "{}", stderr(&wrong));
    let usage = vantagectl(&fake.url(), &["shard", "pin", "web", "--region", "eu"], &[]);
    assert_eq!(usage.status.code(), Some(2), "--probe is required");
    let usage = vantagectl(&fake.url(), &["shard", "pin", "web", "--region", "EU", "--probe", "eu-1"], &[]);
    assert_eq!(usage.status.code(), Some(2), "region names are checked locally");

    let json: Value = serde_json::from_str(&ok(&vantagectl(
        &fake.url(),
        &["--json", "shard", "unpin", "web", "--region", "eu"],
        &[],
    )))
    .unwrap();
    assert_eq!(json, serde_json::json!({"endpoint_id": 1, "endpoint": "web", "regions": ["eu"]}));
    assert!(fake.state().pins.is_empty());
    let nothing = ok(&vantagectl(&fake.url(), &["shard", "unpin", "web"], &[]));
    assert_eq!(nothing, "endpoint web had no pin; nothing changed\n");
    let keys: Vec<_> =
        fake.state().keys_seen.iter().filter(|(rpc, _)| rpc.contains("inShard")).cloned().collect();
    let distinct: std::collections::BTreeSet<_> = keys.iter().map(|(_, key)| key).collect();
    assert_eq!((keys.len(), distinct.len()), (5, 5), "three pins, two unpins, a new key each: {keys:?}");
}

#[test]
fn t24_shard_rebalance_reports_moves_per_region_and_help_teaches() {
    use vantage_proto::pb;
    let fake = shard_fake();
    let moved = |endpoint_id: u64, endpoint: &str| pb::ShardMove {
        endpoint_id,
        endpoint: endpoint.into(),
        region: "eu".into(),
        from: vec!["eu-1".into()],
        to: vec!["eu-2".into()],
    };
    fake.state().rebalance = Some(pb::RebalanceReply {
        dry_run: false,
        expired_probes: vec!["eu-1".into()],
        regions: vec![pb::RegionMoves { region: "eu".into(), endpoints_moved: 2 }],
        moves: vec![moved(1, "web"), moved(5, "api")],
        assignment_version: 8,
    });
    let dry = ok(&vantagectl(&fake.url(), &["shard", "rebalance", "--dry-run"], &[]));
    assert_eq!(
        dry,
        "would end the grace period of: eu-1\n\
         eu: would move 2 endpoint(s)\n\
         ENDPOINT  REGION  FROM  TO\n\
         web (1)   eu      eu-1  eu-2\n\
         api (5)   eu      eu-1  eu-2\n"
    );
    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&fake.url(), &["shard", "rebalance", "--json"], &[]))).unwrap();
    assert_eq!(json["dry_run"], false);
    assert_eq!(json["moved"], serde_json::json!({"eu": 2}));
    assert_eq!(
        json["moves"][0],
        serde_json::json!({"endpoint_id": 1, "endpoint": "web", "region": "eu", "from": ["eu-1"], "to": ["eu-2"]})
    );
    assert_eq!(json["assignment_version"], 8);

    let help = ok(&vantagectl(&fake.url(), &["shard", "--help"], &[]));
    for text in ["When to pin", "When to rebalance", "probe_grace", "vantagectl shard pin api"] {
        assert!(help.contains(text), "shard --help lacks {text:?}: {help}");
    }
    let help = ok(&vantagectl(&fake.url(), &["check", "--help"], &[]));
    assert!(help.contains("Exit status: 0 every region ok, 1 at least one region failed"), "{help}");
}

#[test]
fn t25_leader_only_calls_sent_to_a_follower_are_asked_again_at_the_leader() {
    let leader = shard_fake();
    let follower = FakeAdmin::start();
    follower.state().follower_of = Some(leader.addr.to_string());
    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&follower.url(), &["--json", "shard", "list"], &[]))).unwrap();
    assert_eq!(json["shards"].as_array().unwrap().len(), 2, "the leader's answer");
    assert_eq!(follower.state().leader_calls, ["ListShards"], "asked once, not retried there");
    assert_eq!(leader.state().leader_calls, ["ListShards"]);

    // A follower naming itself (a misconfiguration) is not asked forever.
    let confused = FakeAdmin::start();
    confused.state().follower_of = Some(confused.addr.to_string());
    let output = vantagectl(&confused.url(), &["shard", "show", "web"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let expected = format!("error: this node is not the leader; the leader is node 1 at {}\n", confused.addr);
    assert_eq!(stderr(&output), expected);
    assert_eq!(confused.state().leader_calls.len(), 1);

    // A leader that cannot be reached is named in the error.
    let gone = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    follower.state().follower_of = Some(gone.to_string());
    let output = vantagectl(&follower.url(), &["shard", "rebalance"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(&format!("cannot reach the coordinator at http://{gone}")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn t26_check_prints_one_row_per_region_and_exits_by_outcome() {
    use vantage_proto::pb;
    let fake = shard_fake();
    let region = |region: &str, probe_id: u64, probe: &str, outcome: &str| pb::RegionCheck {
        region: region.into(),
        probe_id,
        probe: probe.into(),
        outcome: outcome.into(),
        status_code: (outcome == "ok").then_some(200),
        dns_ms: 1.25,
        connect_ms: 2.0,
        tls_ms: 3.5,
        ttfb_ms: 10.0,
        transfer_ms: 0.5,
        total_ms: 17.25,
        ..Default::default()
    };
    let all_ok = pb::CheckEndpointReply {
        endpoint_id: 1,
        endpoint: "web".into(),
        request_id: "chk-7-1".into(),
        regions: vec![region("eu", 2, "eu-1", "ok"), region("us", 4, "us-1", "ok")],
    };
    fake.state().check = Some(all_ok.clone());
    let table = ok(&vantagectl(&fake.url(), &["check", "web"], &[]));
    assert_eq!(
        table,
        "REGION  PROBE  RESULT    DNS  CONNECT  TLS  TTFB  TRANSFER  TOTAL\n\
         eu      eu-1   ok (200)  1.2  2.0      3.5  10.0  0.5       17.2\n\
         us      us-1   ok (200)  1.2  2.0      3.5  10.0  0.5       17.2\n\
         2 of 2 region(s) ok for web (phases in ms)\n"
    );
    let json: Value =
        serde_json::from_str(&ok(&vantagectl(&fake.url(), &["check", "1", "--json"], &[]))).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["endpoint"], "web");
    assert_eq!(
        json["regions"][0],
        serde_json::json!({"region": "eu", "probe": "eu-1", "probe_id": 2, "outcome": "ok", "error_kind": null,
                           "message": "", "status_code": 200,
                           "phases_ms": {"dns": 1.25, "connect": 2.0, "tls": 3.5, "ttfb": 10.0, "transfer": 0.5, "total": 17.25}})
    );

    // One region fails, one never answers, one has no probe: exit 1, with
    // the rows still printed.
    let mut failed = region("us", 4, "us-1", "failed");
    failed.error_kind = "connect_refused".into();
    failed.message = "connection refused".into();
    let mut silent = region("ap", 9, "ap-1", "timed_out");
    (silent.dns_ms, silent.connect_ms, silent.tls_ms, silent.ttfb_ms, silent.transfer_ms, silent.total_ms) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let uncovered =
        pb::RegionCheck { region: "sa".into(), outcome: "uncovered".into(), ..Default::default() };
    fake.state().check = Some(pb::CheckEndpointReply {
        regions: vec![silent, region("eu", 2, "eu-1", "ok"), uncovered, failed],
        ..all_ok
    });
    let output = vantagectl(&fake.url(), &["check", "web"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("ap      ap-1   no answer in time") && lines[1].ends_with("-"), "{table}");
    assert!(lines[3].starts_with("sa      -      uncovered"), "{table}");
    assert!(lines[4].contains("connect_refused: connection refused  1.2"), "{table}");
    assert_eq!(stderr(&output), "error: 3 of 4 region(s) did not pass the check\n");
    let json = vantagectl(&fake.url(), &["--json", "check", "web"], &[]);
    assert_eq!(json.status.code(), Some(1));
    let json: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["regions"][0]["phases_ms"], Value::Null, "no phases for a region that did not answer");

    // The check could not run: exit 2.
    let unknown = vantagectl(&fake.url(), &["check", "nope"], &[]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = vantagectl(&format!("http://127.0.0.1:{port}"), &["check", "web"], &[]);
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(stderr(&unreachable).contains("cannot reach the coordinator"), "{}", stderr(&unreachable));
}
