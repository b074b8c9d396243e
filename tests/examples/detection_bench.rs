//! Outage detection latency, end to end (issue 9's benchmark; not a timed
//! test): one TLS coordinator, a `vantage-probe run` agent in each of three
//! regions, an endpoint checked every `--interval`, and a webhook receiver
//! on loopback. Each trial is its own endpoint and target (so each starts
//! with a fresh agreement history: one endpoint failing twenty times in a
//! row would rightly be flapping); all fail within the same interval, each
//! at its own random moment, in every region, and the bench measures until
//! the receiver has that endpoint's `outage_opened` webhook: the whole
//! latency, and the part beyond the endpoint's next slot (what agreement,
//! Raft and delivery add to the probes' schedule).
//!
//! ```text
//! cargo build --release --workspace --bins
//! cargo run --release -p vantage-tests --example detection_bench -- --trials 20
//! ```

use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use serde_json::Value;
use vantage_core::schedule::{next_slot, slot_offset};
use vantage_tests::operator::Deployment;
use vantage_tests::webhook_receiver::{verify, Fault, Receiver};
use vantage_tests::{HttpTarget, TargetOptions};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const RAFT: &str =
    "[raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 500\nelection_timeout_max_ms = 1000\n";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: u64| -> anyhow::Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => args.get(i + 1).context("a value after the flag")?.parse().context(name.to_string()),
            None => Ok(default),
        }
    };
    let trials = flag("--trials", 20)? as usize;
    let interval = Duration::from_secs(flag("--interval", 10)?);

    // One target and one endpoint per trial: each endpoint's agreement
    // starts fresh (repeated outages of one endpoint are, rightly, flapping).
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let targets: Vec<HttpTarget> = {
        let _entered = runtime.enter();
        (0..trials).map(|_| HttpTarget::start(TargetOptions::default())).collect::<Result<_, _>>()?
    };
    let receiver = Receiver::start(Fault::Ok);
    let mut d = Deployment::start(1, &format!("{RAFT}[mesh]\nprobe_grace_ms = 5000\n"))?;
    let n = d.leader(Duration::from_secs(15))?;
    d.ok(n, &["region", "add", "eu", "us", "ap"])?;
    let interval_text = format!("{}s", interval.as_secs());
    let mut offsets = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let name = format!("web-{}", i + 1);
        let url = target.url("/");
        d.ok(
            n,
            &[
                "endpoint",
                "add",
                &name,
                &url,
                "--interval",
                &interval_text,
                "--timeout",
                "2s",
                "--allow-private",
            ],
        )?;
        let id = d.json(n, &["endpoint", "get", &name])?["id"].as_u64().context("endpoint id")?;
        offsets.push(slot_offset(id, interval));
    }
    d.ok(
        n,
        &[
            "webhook",
            "add",
            "bench",
            &receiver.url("/"),
            "--secret",
            SECRET,
            "--allow-private",
            "--event",
            "outage_opened",
        ],
    )?;
    for (name, region) in [("eu-1", "eu"), ("us-1", "us"), ("ap-1", "ap")] {
        d.add_probe(n, name, region, "")?;
        d.start_probe(name)?;
    }
    for i in 0..trials {
        wait_state(&d, n, &format!("web-{}", i + 1), "up", Duration::from_secs(90))?;
    }

    // Every trial fails its target at its own random moment within one
    // interval, all in the same interval.
    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let start = Instant::now();
    let mut plan: Vec<(usize, Duration)> = (0..trials)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (i, Duration::from_millis(seed % interval.as_millis() as u64))
        })
        .collect();
    plan.sort_by_key(|(_, at)| *at);
    let mut failed_at = vec![None; trials];
    let mut arrived = vec![None; trials];
    let deadline = start + interval * 5;
    let mut next = 0;
    while Instant::now() < deadline && arrived.iter().any(Option::is_none) {
        while next < plan.len() && start.elapsed() >= plan[next].1 {
            let i = plan[next].0;
            targets[i].fail_regions(&["eu", "us", "ap"]);
            failed_at[i] = Some((Instant::now(), SystemTime::now()));
            next += 1;
        }
        for (i, slot) in arrived.iter_mut().enumerate() {
            if slot.is_none() && failed_at[i].is_some() && opened(&receiver, &format!("web-{}", i + 1)) {
                *slot = Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (mut total, mut beyond) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let (Some((failed, failed_wall)), Some(arrived)) = (failed_at[i], arrived[i]) else {
            bail!("web-{}: no outage_opened within {:?}{}", i + 1, interval * 5, d.logs());
        };
        let latency = arrived.duration_since(failed);
        let since_epoch = failed_wall.duration_since(SystemTime::UNIX_EPOCH)?;
        let to_slot = next_slot(since_epoch, interval, offsets[i]).start.saturating_sub(since_epoch);
        let after_slot = latency.saturating_sub(to_slot);
        println!(
            "trial {:>2}: outage_opened after {:>7.3} s; next slot was {:>6.3} s away; {:>6.3} s beyond it",
            i + 1,
            latency.as_secs_f64(),
            to_slot.as_secs_f64(),
            after_slot.as_secs_f64()
        );
        total.push(latency);
        beyond.push(after_slot);
    }
    for delivery in receiver.seen() {
        verify(SECRET, &delivery).map_err(|e| anyhow::anyhow!("{}: {e}", delivery.id()))?;
    }
    println!();
    println!("interval {interval:?}, 3 regions, {trials} trials (every delivery's signature verified)");
    report("time to outage_opened", &mut total);
    report("beyond the next slot", &mut beyond);
    for name in ["eu-1", "us-1", "ap-1"] {
        d.stop_probe(name, Duration::from_secs(10))?;
    }
    d.stop_node(n, Duration::from_secs(15))?;
    Ok(())
}

fn report(what: &str, values: &mut [Duration]) {
    values.sort();
    let at = |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
    println!(
        "{what:<24} p50 {:>6.3} s   p99 {:>6.3} s   max {:>6.3} s",
        at(0.50).as_secs_f64(),
        at(0.99).as_secs_f64(),
        values[values.len() - 1].as_secs_f64()
    );
}

/// Whether the receiver has an `outage_opened` for `endpoint`.
fn opened(receiver: &Receiver, endpoint: &str) -> bool {
    receiver
        .seen()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .any(|b| b["type"] == "outage_opened" && b["endpoint"]["name"] == endpoint)
}

fn wait_state(d: &Deployment, n: usize, endpoint: &str, state: &str, within: Duration) -> anyhow::Result<()> {
    d.wait_json(n, &["endpoint", "status", endpoint], within, state, |v| v["state"] == state).map(|_| ())
}
