//! The mesh through a probe crash and a leader crash, from real processes:
//! a three-node TLS coordinator cluster, three regions of two
//! `vantage-probe run` agents each checking loopback endpoints every second,
//! the real `vantagectl`. Probes are killed with SIGKILL and brought back;
//! the leader is killed with SIGKILL; at the end every probe is stopped with
//! SIGTERM and the replicated ingest ledger must account for every result
//! each probe produced exactly once: per probe, the sequence numbers
//! processed are one unbroken range per run of the probe, ending at the last
//! number the probe handed out, and none was recorded twice. Assignments are
//! read with `vantagectl shard list`: one probe per endpoint per region,
//! only the lost probe's share moving, and back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use vantage_tests::operator::Deployment;
use vantage_tests::{HttpTarget, TargetOptions};

const REGIONS: [&str; 3] = ["eu", "us", "ap"];
const ENDPOINTS: usize = 24;
const GRACE: Duration = Duration::from_secs(3);
/// Fast Raft timing (a failover within about 2 × 0.8 s), a short probe
/// grace and one-second probe heartbeats.
const TABLES: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 800\n\n\
                      [mesh]\nprobe_grace_ms = 3000\nheartbeat_ms = 1000\n";

fn names() -> Vec<String> {
    REGIONS.iter().flat_map(|r| (1..=2).map(move |i| format!("{r}-{i}"))).collect()
}

/// `probe list --json` on node `n`, by probe name.
fn probes(d: &Deployment, n: usize) -> BTreeMap<String, Value> {
    match d.json(n, &["probe", "list"]) {
        Ok(Value::Array(list)) => {
            list.into_iter().map(|p| (p["name"].as_str().unwrap_or_default().to_string(), p)).collect()
        }
        _ => BTreeMap::new(),
    }
}

fn endpoints_of(list: &BTreeMap<String, Value>, name: &str) -> u64 {
    list.get(name).and_then(|p| p["endpoints"].as_u64()).unwrap_or(0)
}

fn connected(list: &BTreeMap<String, Value>, name: &str) -> bool {
    list.get(name).is_some_and(|p| p["connected"] == true)
}

/// Polls node `n`'s probe list until `check` holds; returns it and when.
fn wait_list(
    d: &Deployment,
    n: usize,
    within: Duration,
    what: &str,
    check: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> (BTreeMap<String, Value>, Duration) {
    let started = Instant::now();
    loop {
        let list = probes(d, n);
        if check(&list) {
            return (list, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; last list from node {n}: {list:#?}{}",
            d.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Each region's endpoints add up to all of them: one probe each.
fn one_probe_per_region(list: &BTreeMap<String, Value>) -> bool {
    REGIONS.iter().all(|r| {
        endpoints_of(list, &format!("{r}-1")) + endpoints_of(list, &format!("{r}-2")) == ENDPOINTS as u64
    })
}

/// `shard list --json` on node `n`: (endpoint, region) → probe, checking
/// that each endpoint has exactly one probe, of the right region, in every
/// region and that nothing is uncovered.
fn shards(d: &Deployment, n: usize) -> BTreeMap<(String, String), String> {
    let list = d.json(n, &["shard", "list"]).unwrap();
    assert_eq!(list["uncovered"], serde_json::json!([]), "{list}");
    let mut map = BTreeMap::new();
    for row in list["shards"].as_array().unwrap() {
        let (endpoint, region, probe) = (
            row["endpoint"].as_str().unwrap(),
            row["region"].as_str().unwrap(),
            row["probe"].as_str().unwrap(),
        );
        assert!(probe.starts_with(&format!("{region}-")), "{probe} checks {endpoint} from {region}");
        let earlier = map.insert((endpoint.to_string(), region.to_string()), probe.to_string());
        assert_eq!(earlier, None, "{endpoint} has two probes in {region}: {list}");
    }
    assert_eq!(map.len(), ENDPOINTS * REGIONS.len(), "{list}");
    map
}

/// How many (endpoint, region) pairs have another probe in `b` than in `a`.
fn moved_between(a: &BTreeMap<(String, String), String>, b: &BTreeMap<(String, String), String>) -> usize {
    a.iter().filter(|(k, probe)| b.get(*k) != Some(probe)).count()
}

#[test]
fn t90_two_probes_per_region_survive_a_probe_crash_and_a_leader_crash_without_losing_or_repeating_results() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let target = {
        let _entered = runtime.enter();
        HttpTarget::start(TargetOptions::default()).unwrap()
    };
    let mut d = Deployment::start(3, TABLES).unwrap();
    let leader = d.leader(Duration::from_secs(20)).unwrap();

    let mut add_regions = vec!["region", "add"];
    add_regions.extend(REGIONS);
    d.ok(leader, &add_regions).unwrap();
    for i in 0..ENDPOINTS {
        let url = target.url(&format!("/e{i}"));
        let name = format!("e{i}");
        let add =
            ["endpoint", "add", &name, &url, "--interval", "1s", "--timeout", "500ms", "--allow-private"];
        d.ok(leader, &add).unwrap();
    }
    for name in names() {
        let region = name.split('-').next().unwrap().to_string();
        d.add_probe(leader, &name, &region, "").unwrap();
        d.start_probe(&name).unwrap();
    }

    // 1. All six connected; in each region every endpoint has one probe.
    let (shares, took) =
        wait_list(&d, leader, Duration::from_secs(20), "six probes sharing each region", |l| {
            names().iter().all(|n| connected(l, n) && endpoints_of(l, n) >= 1) && one_probe_per_region(l)
        });
    eprintln!("six probes connected with their shares after {took:?}");
    let share = |name: &str| endpoints_of(&shares, name);
    let before = shards(&d, leader);

    // 2. A crashed probe's endpoints move to the other probe of its region
    //    once probe_grace has passed, and not before.
    d.kill_probe("eu-1");
    let (_, moved) =
        wait_list(&d, leader, GRACE + Duration::from_secs(1), "eu-1's endpoints moving to eu-2", |l| {
            endpoints_of(l, "eu-2") == ENDPOINTS as u64
        });
    eprintln!("eu-1 killed: its {} endpoints moved to eu-2 after {moved:?}", share("eu-1"));
    assert!(
        moved >= GRACE - Duration::from_millis(300),
        "moved after {moved:?}, before the grace of {GRACE:?}"
    );
    let during = shards(&d, leader);
    assert!(during.iter().all(|((_, region), probe)| region != "eu" || probe == "eu-2"), "{during:?}");
    assert_eq!(moved_between(&before, &during), share("eu-1") as usize, "only eu-1's endpoints moved");

    // 3. Back again, it takes back its share, and only its share moves.
    d.start_probe("eu-1").unwrap();
    let (back, took) = wait_list(&d, leader, Duration::from_secs(10), "eu-1 taking back its share", |l| {
        connected(l, "eu-1") && one_probe_per_region(l) && endpoints_of(l, "eu-1") >= 1
    });
    eprintln!("eu-1 back: {} endpoints after {took:?}", endpoints_of(&back, "eu-1"));
    for name in names() {
        assert_eq!(endpoints_of(&back, &name), share(&name), "{name}: same inputs, same assignment");
    }
    let returned = shards(&d, leader);
    assert_eq!(returned, before, "the same assignment as before the crash");
    assert_eq!(moved_between(&during, &returned), share("eu-1") as usize, "only eu-1's share moved back");

    // 4. SIGKILL the leader: the probes reach the new one within 3 s.
    std::thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    d.kill_node(leader);
    let new_leader = d.leader(Duration::from_secs(10)).unwrap();
    let elected = killed.elapsed();
    let (after, _) =
        wait_list(&d, new_leader, Duration::from_secs(10), "six probes on the new leader", |l| {
            names().iter().all(|n| connected(l, n)) && one_probe_per_region(l)
        });
    let reconnected = killed.elapsed();
    eprintln!("leader {leader} killed: node {new_leader} elected after {elected:?}, all probes on it after {reconnected:?}");
    assert!(reconnected <= Duration::from_secs(3), "probes reached the new leader after {reconnected:?}");
    for name in names() {
        assert_eq!(
            endpoints_of(&after, &name),
            share(&name),
            "{name}: the new leader rebuilt the assignment"
        );
    }
    assert_eq!(shards(&d, new_leader), before, "the new leader rebuilt the same assignment");

    // 5. More results on the new leader, then every probe stops cleanly:
    //    everything it produced was acknowledged.
    std::thread::sleep(Duration::from_secs(2));
    let mut logs = BTreeMap::new();
    for name in names() {
        let status = d.stop_probe(&name, Duration::from_secs(15)).unwrap();
        assert!(status.success(), "{name} exited with {status}{}", d.logs());
        let log = d.probe_log(&name).unwrap();
        let (unacked, _) =
            log.shutdown.unwrap_or_else(|| panic!("{name} did not log its shutdown{}", d.logs()));
        assert_eq!(unacked, 0, "{name} stopped with results unacknowledged{}", d.logs());
        logs.insert(name, log);
    }

    // 6. The ledger accounts for every (probe, seq) exactly once, on every
    //    node: the survivors now, the old leader once restarted.
    let check_ledger = |d: &Deployment, n: usize, list: &BTreeMap<String, Value>| {
        for (name, log) in &logs {
            let p = &list[name];
            let ranges: Vec<(u64, u64)> = p["processed_seqs"]
                .as_array()
                .unwrap_or_else(|| panic!("node {n}: {name} has no processed_seqs: {p}"))
                .iter()
                .map(|r| (r["first"].as_u64().unwrap(), r["last"].as_u64().unwrap()))
                .collect();
            let processed: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
            let (recorded, refused) =
                (p["results_recorded"].as_u64().unwrap(), p["results_refused"].as_u64().unwrap());
            assert_eq!(p["results_duplicated"], 0, "node {n}: {name} had results recorded twice: {p}");
            assert_eq!(processed, recorded + refused, "node {n}: {name}: {p}");
            // Exactly the numbers the probe handed out: a lost result would
            // be a hole, a result from nowhere an extra number.
            assert_eq!(
                ranges,
                log.handed_out(),
                "node {n}: {name}: runs (previous last, first) {:?}",
                log.starts
            );
            assert!(recorded > 0, "node {n}: {name} recorded nothing");
            eprintln!("node {n}: {name}: {recorded} recorded, {refused} refused, ranges {ranges:?}");
            if refused > 0 && n == new_leader {
                let text = d.log(&format!("{name}.log"));
                let reasons: Vec<&str> = text.lines().filter(|l| l.contains("refused a result")).collect();
                eprintln!("  {name}: refusals as logged: {:?}", reasons.iter().take(3).collect::<Vec<_>>());
            }
        }
    };
    for n in d.running_nodes() {
        check_ledger(&d, n, &probes(&d, n));
    }
    d.start_node(leader).unwrap();
    let (caught_up, _) = wait_list(&d, leader, Duration::from_secs(15), "the restarted node's ledger", |l| {
        let survivor = probes(&d, new_leader);
        names()
            .iter()
            .all(|n| l.get(n).map(|p| &p["processed_seqs"]) == survivor.get(n).map(|p| &p["processed_seqs"]))
    });
    check_ledger(&d, leader, &caught_up);
    drop(target);
}
