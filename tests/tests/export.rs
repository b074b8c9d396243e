//! TSDB export against the real servers from Debian's packages (each in
//! its own temporary directory, on free loopback ports): TLS coordinators,
//! real `vantage-probe run` agents in two regions, loopback targets.
//!
//! The truth every server is compared with is (a) what the coordinator
//! received, as `/api/endpoints` shows it (how many results each endpoint
//! had, and each probe's latest result: start, total time, status), and
//! (b) [`LineReceiver`], an export target of the same coordinator that
//! never fails and keeps every line it was sent, parsed by the harness's
//! own reader.
//!
//! - t10: Prometheus (remote-write receiver), VictoriaMetrics and InfluxDB
//!   1.x at once: after N results each holds exactly N samples per series,
//!   at the checks' start times with the measured values; the agreed state
//!   has exactly one state at 1 per instant.
//! - t20: VictoriaMetrics stopped (SIGTERM) and restarted: an outage inside the
//!   queue's capacity loses nothing; a longer one drops exactly what the
//!   log says was dropped, and the coordinator's memory stays bounded.
//! - t30: the leader SIGKILLed while exporting: the new leader exports, the
//!   series go on, and no result is written twice at distinct timestamps.
//! - t40: bad targets: one answering 400 is not retried and counted; one
//!   answering 10 MB or hanging is cut off and retried, while a healthy
//!   target beside them gets everything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vantage_tests::operator::Deployment;
use vantage_tests::tsdb::{Influx, LineReceiver, Prometheus, Samples, VictoriaMetrics};
use vantage_tests::{refused_addr, HttpTarget, TargetOptions};

const RAFT: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n";
const MESH: &str = "[mesh]\nprobe_grace_ms = 2000\nheartbeat_ms = 500\n";
const CHECKS: &str = r#"{__name__=~"vantage_check_.+"}"#;

/// An `[[export.remote_write]]` table with short batching.
fn remote_write(name: &str, url: &str, extra: &str) -> String {
    format!("[[export.remote_write]]\nname = \"{name}\"\nurl = \"{url}\"\nmax_batch_delay_ms = 200\n{extra}")
}

/// An `[[export.influx]]` 1.x table with short batching.
fn influx(name: &str, url: &str, db: &str, extra: &str) -> String {
    format!(
        "[[export.influx]]\nname = \"{name}\"\nurl = \"{url}\"\ndb = \"{db}\"\nmax_batch_delay_ms = 200\n{extra}"
    )
}

/// A deployment of `nodes` coordinators exporting as `export` says, the
/// regions eu and us with one probe each, and endpoints added by `setup`.
struct World {
    d: Deployment,
    _target: HttpTarget,
    _runtime: tokio::runtime::Runtime,
}

impl World {
    fn start(nodes: usize, export: &str, endpoints: &[&[&str]]) -> World {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let target = {
            let _entered = runtime.enter();
            HttpTarget::start(TargetOptions::default()).unwrap()
        };
        let tables = format!("{RAFT}{MESH}[export]\nstate_interval_ms = 1000\n{export}");
        let mut d = Deployment::start(nodes, &tables).unwrap();
        let leader = d.leader(Duration::from_secs(15)).unwrap();
        d.ok(leader, &["region", "add", "eu", "us"]).unwrap();
        let web = target.url("/");
        let down = format!("http://{}/", refused_addr());
        for args in endpoints {
            let args: Vec<&str> = args
                .iter()
                .map(|a| match *a {
                    "$WEB" => web.as_str(),
                    "$DOWN" => down.as_str(),
                    other => other,
                })
                .collect();
            let mut add = vec!["endpoint", "add"];
            add.extend(&args);
            add.extend(["--interval", "1s", "--timeout", "500ms", "--allow-private"]);
            d.ok(leader, &add).unwrap();
        }
        for (name, region) in [("eu-1", "eu"), ("us-1", "us")] {
            d.add_probe(leader, name, region, "").unwrap();
            d.start_probe(name).unwrap();
        }
        World { d, _target: target, _runtime: runtime }
    }

    fn leader(&self) -> usize {
        self.d.leader(Duration::from_secs(15)).unwrap()
    }

    /// Stops the probes (SIGTERM: they hand over what they spooled).
    fn stop_probes(&mut self) {
        for name in ["eu-1", "us-1"] {
            self.d.stop_probe(name, Duration::from_secs(10)).unwrap();
        }
    }
}

/// Polls `f` every 100 ms until it holds, for at most `within`.
#[track_caller]
fn wait_for(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Result lines the receiver got (state samples go on all the time).
fn result_lines(receiver: &LineReceiver) -> usize {
    receiver.lines().iter().filter(|l| l.starts_with("vantage_check,")).count()
}

/// Waits until the receiver has had no new result line for `quiet`.
fn wait_quiet(receiver: &LineReceiver, quiet: Duration, within: Duration) {
    let deadline = Instant::now() + within;
    let (mut count, mut since) = (result_lines(receiver), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = result_lines(receiver);
        if now != count {
            (count, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            return;
        }
        assert!(Instant::now() < deadline, "the export never went quiet");
    }
}

/// Results per (endpoint, probe) in `samples`' success series.
fn results_per_probe(samples: &Samples) -> BTreeMap<(String, String), usize> {
    samples
        .iter()
        .filter(|((name, _), _)| name == "vantage_check_success")
        .map(|((_, labels), s)| ((labels["endpoint"].clone(), labels["probe"].clone()), s.len()))
        .collect()
}

/// `got` holds exactly `want`'s series and samples: the same timestamps,
/// values equal to within float formatting (1e-9 relative).
#[track_caller]
fn assert_same(what: &str, want: &Samples, got: &Samples) {
    let want_keys: Vec<_> = want.keys().collect();
    let got_keys: Vec<_> = got.keys().collect();
    assert_eq!(got_keys, want_keys, "{what}: the same series");
    for (key, want) in want {
        let got = &got[key];
        let stamps = |s: &[(i64, f64)]| s.iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(stamps(got), stamps(want), "{what}: timestamps of {key:?}");
        for ((ts, a), (_, b)) in got.iter().zip(want) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: {key:?} at {ts}: {a} vs {b}");
        }
    }
}

/// The samples of `metric` for `endpoint` and `probe` (and `phase`).
fn series_of<'a>(
    samples: &'a Samples,
    metric: &str,
    endpoint: &str,
    probe: &str,
    phase: Option<&str>,
) -> Option<&'a Vec<(i64, f64)>> {
    samples
        .iter()
        .find(|((n, l), _)| {
            n == metric
                && l["endpoint"] == endpoint
                && l["probe"] == probe
                && l.get("phase").map(String::as_str) == phase
        })
        .map(|(_, s)| s)
}

/// Unix ms of an RFC 3339 UTC time with fractional seconds
/// (`2026-12-06T23:59:01.123456Z`), as `/api/endpoints` writes them.
fn rfc3339_ms(text: &str) -> i64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms
}

#[test]
fn t10_every_result_reaches_prometheus_victoriametrics_and_influxdb_exactly_once() {
    let (Some(prometheus), Some(vm), Some(influxdb)) =
        (Prometheus::start().unwrap(), VictoriaMetrics::start().unwrap(), Influx::start("vantage").unwrap())
    else {
        return;
    };
    let reference = LineReceiver::start().unwrap();
    let export = [
        remote_write("prometheus", &prometheus.write_url(), ""),
        remote_write("vm", &vm.write_url(), ""),
        influx("influx", &influxdb.url(), "vantage", ""),
        influx("reference", &reference.url(), "reference", ""),
    ]
    .concat();
    let mut w = World::start(
        1,
        &export,
        &[
            &[
                "web",
                "$WEB",
                "--label",
                "team=core",
                "--label",
                "note=a,b=c d",
                "--label",
                "region=edge west",
            ],
            &["down", "$DOWN"],
        ],
    );
    const N: usize = 8;
    wait_for(Duration::from_secs(60), "N results per endpoint and probe", || {
        let counts = results_per_probe(&reference.samples("vantage_check").unwrap());
        counts.len() == 4 && counts.values().all(|&n| n >= N)
    });
    w.stop_probes();
    wait_quiet(&reference, Duration::from_secs(2), Duration::from_secs(20));
    // The state sampler goes on; the check series are complete now.
    let want = reference.samples("vantage_check").unwrap();

    // (a) The coordinator's own view: as many results per endpoint as it
    // received, and each probe's latest one among the samples.
    let view = w.d.http_json(w.leader(), "/api/endpoints").unwrap();
    let per_probe = results_per_probe(&want);
    for endpoint in view["endpoints"].as_array().unwrap() {
        let name = endpoint["name"].as_str().unwrap();
        let exported: usize = per_probe.iter().filter(|((e, _), _)| e == name).map(|(_, n)| n).sum();
        assert_eq!(
            exported as u64,
            endpoint["recent"].as_u64().unwrap(),
            "{name}: every result received, once"
        );
        for result in endpoint["results"].as_array().unwrap() {
            let probe = result["probe"].as_str().unwrap();
            let ts = rfc3339_ms(result["started_at"].as_str().unwrap());
            let at = |metric: &str, phase: Option<&str>| {
                series_of(&want, metric, name, probe, phase)
                    .and_then(|s| s.iter().find(|(t, _)| *t == ts))
                    .map(|s| s.1)
            };
            let ok = f64::from(u8::from(result["ok"].as_bool().unwrap()));
            assert_eq!(
                at("vantage_check_success", None),
                Some(ok),
                "{name}/{probe}: the latest result at {ts}"
            );
            let total = at("vantage_check_duration_seconds", Some("total")).unwrap();
            let total_ms = result["total_ms"].as_f64().unwrap();
            assert!(
                (total * 1000.0 - total_ms).abs() < 0.002,
                "{name}/{probe}: total {total} s vs {total_ms} ms"
            );
            let status = result["status"].as_u64().map(|s| s as f64);
            assert_eq!(at("vantage_check_http_status_code", None), status, "{name}/{probe}: status");
        }
    }
    // The labels as documented: the endpoint's own, sanitised, `region`
    // prefixed; the failing endpoint without a status or TLS series.
    let web_labels =
        &want.keys().find(|(n, l)| n == "vantage_check_success" && l["endpoint"] == "web").unwrap().1;
    assert_eq!(web_labels["team"], "core");
    assert_eq!(web_labels["note"], "a,b=c d");
    assert_eq!(web_labels["label_region"], "edge west");
    assert_eq!(web_labels["kind"], "http");
    assert!(want.keys().all(|(n, l)| !(l["endpoint"] == "down" && n == "vantage_check_http_status_code")));
    assert!(want
        .iter()
        .filter(|((n, l), _)| n == "vantage_check_success" && l["endpoint"] == "down")
        .all(|(_, s)| s.iter().all(|(_, v)| *v == 0.0)));

    // (b) Each server holds exactly the reference's samples.
    assert_same("prometheus", &want, &prometheus.samples(CHECKS).unwrap());
    assert_same("victoria-metrics", &want, &vm.samples(CHECKS).unwrap());
    assert_same("influxdb", &want, &influxdb.samples("vantage", "vantage_check").unwrap());

    // The agreed state: per endpoint and instant exactly one state is 1,
    // and `down` was sampled down.
    let states = prometheus.samples(r#"{__name__="vantage_endpoint_state"}"#).unwrap();
    let mut ones: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
    let mut instants: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for ((_, labels), samples) in &states {
        for &(ts, v) in samples {
            *instants.entry((labels["endpoint"].clone(), ts)).or_default() += 1;
            if v == 1.0 {
                ones.entry((labels["endpoint"].clone(), ts)).or_default().push(labels["state"].clone());
            }
        }
    }
    assert!(!instants.is_empty(), "agreed states were exported");
    for (at, n) in &instants {
        assert_eq!(*n, 7, "{at:?}: one sample per state");
        assert_eq!(ones.get(at).map(Vec::len), Some(1), "{at:?}: exactly one state at 1");
        assert_eq!(at.1 % 1000, 0, "{at:?}: on the 1 s sampling grid");
    }
    assert!(ones.iter().any(|((e, _), s)| e == "down" && s[0] == "down"), "{ones:?}");
    let down = vm.samples(r#"{__name__="vantage_endpoint_regions_down",endpoint="down"}"#).unwrap();
    assert!(down.values().flatten().any(|&(_, v)| v == 2.0), "both regions down: {down:?}");
}

/// Unix ms now.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Every vantage series in `samples` (results and states), with only the
/// samples at or before `until` ms.
fn until(samples: &Samples, until: i64) -> Samples {
    samples
        .iter()
        .map(|(k, s)| (k.clone(), s.iter().copied().filter(|(t, _)| *t <= until).collect::<Vec<_>>()))
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// What differs between two sample sets, for a failure message.
fn diff(want: &Samples, got: &Samples) -> String {
    let mut out = String::new();
    for (key, w) in want {
        match got.get(key) {
            None => out.push_str(&format!("\n  missing {key:?} ({} samples)", w.len())),
            Some(g) if g != w => {
                let missing: Vec<_> = w.iter().filter(|s| !g.contains(s)).take(5).collect();
                let extra: Vec<_> = g.iter().filter(|s| !w.contains(s)).take(5).collect();
                out.push_str(&format!(
                    "\n  {key:?}: {} vs {}; missing {missing:?} extra {extra:?}",
                    w.len(),
                    g.len()
                ));
            }
            _ => {}
        }
    }
    for key in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push_str(&format!("\n  unexpected {key:?}"));
    }
    out.chars().take(4000).collect()
}

fn count(samples: &Samples) -> usize {
    samples.values().map(Vec::len).sum()
}

/// Everything the reference has, results and states, as one map.
fn reference_all(reference: &LineReceiver) -> Samples {
    let mut all = reference.samples("vantage_check").unwrap();
    all.extend(reference.samples("vantage_endpoint").unwrap());
    all
}

/// Every vantage series VictoriaMetrics has.
fn vm_all(vm: &VictoriaMetrics) -> Samples {
    vm.samples(r#"{__name__=~"vantage_.+"}"#).unwrap()
}

/// The sum of `dropped=` over the lines saying a burst of drops on `sink`
/// ended.
fn dropped_in_log(log: &str, sink: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("export queue accepting samples again"))
        .filter(|l| l.contains(&format!("sink=\"{sink}\"")) || l.contains(&format!("sink={sink} ")))
        .filter_map(|l| {
            let start = l.find(" dropped=")? + " dropped=".len();
            l[start..].split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok()
        })
        .sum()
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn t20_a_tsdb_outage_inside_the_queue_loses_nothing_and_past_it_drops_exactly_what_is_counted() {
    let Some(mut vm) = VictoriaMetrics::start().unwrap() else { return };
    let reference = LineReceiver::start().unwrap();
    // About 80 samples/s (8 results of ~6 samples, 4 × 8 state samples):
    // the 1000-sample queue holds about 12 s of them.
    let export = [
        remote_write("vm", &vm.write_url(), "queue_capacity = 1000\nbatch_size = 100\n"),
        influx("reference", &reference.url(), "reference", ""),
    ]
    .concat();
    let endpoints: Vec<[&str; 2]> = ["web-1", "web-2", "web-3", "web-4"].map(|n| [n, "$WEB"]).to_vec();
    let endpoints: Vec<&[&str]> = endpoints.iter().map(|e| e.as_slice()).collect();
    let mut w = World::start(1, &export, &endpoints);
    wait_for(Duration::from_secs(30), "results flowing", || result_lines(&reference) >= 40);

    // A 4 s outage: inside the capacity.
    vm.stop().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    vm.restart().unwrap();
    let restarted = now_ms();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (got, want) = (until(&vm_all(&vm), restarted), until(&reference_all(&reference), restarted));
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "the outage's samples in victoria-metrics: {}", diff(&want, &got));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dropped_in_log(&w.d.log("node1.log"), "vm"), 0);
    assert!(!w.d.log("node1.log").contains("export queue full"), "nothing dropped in a short outage");

    // A 20 s outage: past the capacity; memory stays put.
    let pid = w.d.node_pid(1).unwrap();
    let rss_before = rss_kib(pid);
    vm.stop().unwrap();
    std::thread::sleep(Duration::from_secs(20));
    let rss_during = rss_kib(pid);
    vm.restart().unwrap();
    wait_for(Duration::from_secs(30), "the end of the drop burst in the log", || {
        dropped_in_log(&w.d.log("node1.log"), "vm") > 0
    });
    w.stop_probes();
    wait_quiet(&reference, Duration::from_secs(2), Duration::from_secs(20));
    let end = now_ms() - 1_000;
    std::thread::sleep(Duration::from_secs(2));
    let want = until(&reference_all(&reference), end);
    let got = until(&vm_all(&vm), end);
    let dropped = dropped_in_log(&w.d.log("node1.log"), "vm");
    assert!(dropped > 0);
    for (key, samples) in &got {
        let reference = want.get(key).unwrap_or_else(|| panic!("{key:?} is not in the reference"));
        assert!(samples.iter().all(|s| reference.contains(s)), "{key:?}: only what was sent");
    }
    assert_eq!(count(&want) - count(&got), dropped as usize, "exactly the dropped samples are missing");
    assert!(
        rss_during < rss_before + 30 * 1024,
        "the coordinator's memory is bounded: {rss_before} KiB → {rss_during} KiB"
    );
    eprintln!("t20: dropped {dropped} samples; RSS {rss_before} KiB → {rss_during} KiB during the outage");
}

/// The sum of `samples=` over the node's log lines containing `what` for
/// `sink`, and how many such lines there are.
fn logged(log: &str, what: &str, sink: &str) -> (usize, usize) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(what))
        .filter(|l| l.contains(&format!("sink=\"{sink}\"")) || l.contains(&format!("sink={sink} ")))
        .collect();
    let samples = lines
        .iter()
        .filter_map(|l| {
            let start = l.find(" samples=")? + " samples=".len();
            l[start..].split(|c: char| !c.is_ascii_digit()).next()?.parse::<usize>().ok()
        })
        .sum();
    (samples, lines.len())
}

#[test]
fn t40_a_400_is_not_retried_and_huge_or_hanging_answers_are_cut_off() {
    use vantage_tests::tsdb::{line_protocol_samples, Scripted, ScriptedReceiver};
    let refusing =
        ScriptedReceiver::start(Scripted::Status(400, "{\"error\":\"partial write: field type conflict\"}"))
            .unwrap();
    let huge = ScriptedReceiver::start(Scripted::Huge(10 << 20)).unwrap();
    let hanging = ScriptedReceiver::start(Scripted::Hang).unwrap();
    let reference = LineReceiver::start().unwrap();
    let export = [
        influx("refusing", &refusing.url(), "x", ""),
        influx("huge", &huge.url(), "x", ""),
        influx("hanging", &hanging.url(), "x", "timeout_ms = 500\n"),
        influx("reference", &reference.url(), "reference", ""),
    ]
    .concat();
    let mut w = World::start(1, &export, &[&["web", "$WEB"]]);
    wait_for(Duration::from_secs(30), "results", || result_lines(&reference) >= 16);
    std::thread::sleep(Duration::from_secs(3));
    let log = w.d.log("node1.log");

    // 400: every batch sent once, refused, counted as failed with the answer quoted.
    let bodies = refusing.bodies();
    assert!(bodies.len() >= 3, "{} batches", bodies.len());
    let distinct: std::collections::BTreeSet<&Vec<u8>> = bodies.iter().collect();
    assert_eq!(distinct.len(), bodies.len(), "no batch was sent twice");
    let (failed, refusals) = logged(&log, "export batch refused by the target; not retried", "refusing");
    assert!(
        refusals + 1 >= bodies.len() && refusals <= bodies.len(),
        "{refusals} refusals, {} requests",
        bodies.len()
    );
    let sent: usize = bodies[..refusals].iter().map(|b| line_protocol_samples(b).unwrap()).sum();
    assert_eq!(failed, sent, "the refused samples are counted as failed");
    assert!(log.contains(
        "the receiver answered 400 Bad Request: {\"error\":\"partial write: field type conflict\"}"
    ));

    // 10 MB answers: cut at the cap, retried with the same body.
    let bodies = huge.bodies();
    assert!(
        bodies.len() >= 2 && bodies.iter().all(|b| b == &bodies[0]),
        "the first batch, retried: {}",
        bodies.len()
    );
    assert!(log.contains("has a body over 65536 bytes"), "the cap is named");

    // No answer: each attempt ends at the 500 ms timeout, then is retried.
    let attempts = hanging.bodies().len();
    assert!(attempts >= 2, "{attempts} attempts");
    assert!(log.contains("no complete answer from 127.0.0.1 within 500ms"));

    // The healthy target beside them got every result.
    w.stop_probes();
    wait_quiet(&reference, Duration::from_secs(2), Duration::from_secs(20));
    let view = w.d.http_json(w.leader(), "/api/endpoints").unwrap();
    let received = view["endpoints"][0]["recent"].as_u64().unwrap() as usize;
    let exported: usize = results_per_probe(&reference.samples("vantage_check").unwrap()).values().sum();
    assert_eq!(exported, received);
}

#[test]
fn t30_after_a_leader_sigkill_the_new_leader_exports_and_nothing_is_written_at_two_timestamps() {
    let (Some(prometheus), Some(vm)) =
        (Prometheus::start_with("out_of_order_time_window: 10m").unwrap(), VictoriaMetrics::start().unwrap())
    else {
        return;
    };
    let reference = LineReceiver::start().unwrap();
    let export = [
        remote_write("prometheus", &prometheus.write_url(), ""),
        remote_write("vm", &vm.write_url(), ""),
        influx("reference", &reference.url(), "reference", ""),
    ]
    .concat();
    let mut w = World::start(3, &export, &[&["web", "$WEB"]]);
    wait_for(Duration::from_secs(30), "results", || result_lines(&reference) >= 10);
    let old = w.leader();
    let killed_at = now_ms();
    w.d.kill_node(old);
    let new = w.d.leader(Duration::from_secs(20)).unwrap();
    assert_ne!(new, old);
    // Series go on: five more seconds of results after the new leader.
    wait_for(Duration::from_secs(30), "results from the new leader", || {
        let samples = reference.samples("vantage_check").unwrap();
        let per_probe: Vec<usize> = samples
            .iter()
            .filter(|((n, _), _)| n == "vantage_check_success")
            .map(|(_, s)| s.iter().filter(|(t, _)| *t > killed_at + 3_000).count())
            .collect();
        per_probe.len() == 2 && per_probe.iter().all(|&n| n >= 5)
    });
    w.stop_probes();
    wait_quiet(&reference, Duration::from_secs(2), Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));

    let sent = reference.samples("vantage_check").unwrap();
    // A resend (a result the dead leader processed but had not recorded)
    // carries the same timestamp and value: idempotent.
    for (key, samples) in &sent {
        for pair in samples.windows(2) {
            if pair[0].0 == pair[1].0 {
                assert_eq!(pair[0].1, pair[1].1, "{key:?} at {}: a resend with another value", pair[0].0);
            }
        }
    }
    let resent = sent.values().flat_map(|s| s.windows(2).filter(|p| p[0].0 == p[1].0)).count();
    let mut distinct = sent.clone();
    for samples in distinct.values_mut() {
        samples.dedup_by_key(|s| s.0);
    }
    for (what, got) in [
        ("prometheus", prometheus.samples(CHECKS).unwrap()),
        ("victoria-metrics", vm.samples(CHECKS).unwrap()),
    ] {
        // Everything sent, once, whichever leader sent it.
        assert_same(what, &distinct, &got);
        for (key, samples) in &got {
            // One result per slot: a result written at a second timestamp
            // would put two samples within one 1 s interval.
            for pair in samples.windows(2) {
                assert!(
                    pair[1].0 - pair[0].0 >= 500,
                    "{what}: {key:?}: samples at {} and {}",
                    pair[0].0,
                    pair[1].0
                );
            }
            assert!(
                samples.iter().any(|(t, _)| *t > killed_at + 3_000),
                "{what}: {key:?} goes on after the failover"
            );
        }
    }
    let log = w.d.logs();
    assert!(!log.contains("export batch refused"), "no target refused a resend");
    let states = vm.samples(r#"{__name__="vantage_endpoint_state",state="up"}"#).unwrap();
    assert!(
        states.values().flatten().any(|(t, _)| *t > killed_at + 3_000),
        "the new leader samples the agreed state"
    );
    eprintln!("t30: node {old} killed, node {new} leads; {resent} samples were resent by the new leader");
}
