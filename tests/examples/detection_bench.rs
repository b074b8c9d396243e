//! Outage detection latency, end to end (issue 9's benchmark; not a timed
//! test): one TLS coordinator, a `vantage-probe run` agent in each of three
//! regions, an endpoint checked every `--interval`, and a webhook receiver
//! on loopback. Each trial waits a random moment, makes the target fail in
//! every region, and measures until the receiver has the `outage_opened`
//! webhook: the whole latency, and the part beyond the endpoint's next slot
//! (what agreement, Raft and delivery add to the probes' schedule). Then it
//! heals the target and waits for `outage_resolved` before the next trial.
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

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let target = {
        let _entered = runtime.enter();
        HttpTarget::start(TargetOptions::default())?
    };
    let receiver = Receiver::start(Fault::Ok);
    let mut d = Deployment::start(1, &format!("{RAFT}[mesh]\nprobe_grace_ms = 5000\n"))?;
    let n = d.leader(Duration::from_secs(15))?;
    d.ok(n, &["region", "add", "eu", "us", "ap"])?;
    let url = target.url("/");
    let interval_text = format!("{}s", interval.as_secs());
    d.ok(
        n,
        &[
            "endpoint",
            "add",
            "web",
            &url,
            "--interval",
            &interval_text,
            "--timeout",
            "2s",
            "--allow-private",
            "--recovery-rounds",
            "1",
        ],
    )?;
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
            "--event",
            "outage_resolved",
        ],
    )?;
    for (name, region) in [("eu-1", "eu"), ("us-1", "us"), ("ap-1", "ap")] {
        d.add_probe(n, name, region, "")?;
        d.start_probe(name)?;
    }
    let endpoint_id = d.json(n, &["endpoint", "get", "web"])?["id"].as_u64().context("endpoint id")?;
    let offset = slot_offset(endpoint_id, interval);
    wait_state(&d, n, "up", Duration::from_secs(60))?;

    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let (mut total, mut beyond) = (Vec::new(), Vec::new());
    for trial in 1..=trials {
        // A random moment within one interval.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % interval.as_millis() as u64));
        let before = count(&receiver, "outage_opened");
        let failed_at = SystemTime::now();
        target.fail_regions(&["eu", "us", "ap"]);
        let started = Instant::now();
        let arrived = wait_count(&receiver, "outage_opened", before + 1, interval * 3)
            .with_context(|| format!("trial {trial}: no outage_opened within {:?}", interval * 3))?;
        let latency = arrived.duration_since(started);
        let since_epoch = failed_at.duration_since(SystemTime::UNIX_EPOCH)?;
        let slot = next_slot(since_epoch, interval, offset).start;
        let to_slot = slot.saturating_sub(since_epoch);
        let after_slot = latency.saturating_sub(to_slot);
        println!(
            "trial {trial:>2}: outage_opened after {:>7.3} s; next slot was {:>6.3} s away; {:>6.3} s beyond it",
            latency.as_secs_f64(),
            to_slot.as_secs_f64(),
            after_slot.as_secs_f64()
        );
        total.push(latency);
        beyond.push(after_slot);
        let resolved = count(&receiver, "outage_resolved");
        target.fail_regions(&[]);
        wait_count(&receiver, "outage_resolved", resolved + 1, interval * 4)
            .with_context(|| format!("trial {trial}: not resolved"))?;
        wait_state(&d, n, "up", interval * 3)?;
    }
    for delivery in receiver.seen() {
        verify(SECRET, &delivery).map_err(|e| anyhow::anyhow!("{}: {e}", delivery.id()))?;
    }
    println!();
    println!("interval {:?}, 3 regions, {trials} trials (every delivery's signature verified)", interval);
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

fn count(receiver: &Receiver, kind: &str) -> usize {
    receiver
        .seen()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|b| b["type"] == kind)
        .count()
}

/// Polls every 10 ms until the receiver has `n` deliveries of `kind`;
/// returns when the last one was noticed.
fn wait_count(receiver: &Receiver, kind: &str, n: usize, within: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if count(receiver, kind) >= n {
            return Ok(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("{kind}: {n} not reached within {within:?}")
}

fn wait_state(d: &Deployment, n: usize, state: &str, within: Duration) -> anyhow::Result<()> {
    d.wait_json(n, &["endpoint", "status", "web"], within, state, |v| v["state"] == state).map(|_| ())
}
