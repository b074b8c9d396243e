//! The sink against a scripted HTTP receiver on loopback: batching by
//! size and delay, drops past the capacity, retries on 5xx and 429 and
//! none on 400, the answer cap and timeout, flush and stop.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::config::{parse_http_url, InfluxConfig, TargetSettings};
use super::model::{CheckRecord, LabelSet, Record};
use super::request_builder::RequestTemplate;
use super::service::ExportService;
use super::sink::{run_worker, TargetQueue};

/// How the receiver answers one request.
#[derive(Clone)]
enum Answer {
    Status(u16, &'static str),
    /// Headers and a body of this many bytes.
    Huge(usize),
    /// Never answers.
    Hang,
}

/// A loopback HTTP/1.1 receiver: answers requests from a script (the last
/// answer repeats), records each request's body.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    async fn start(script: Vec<Answer>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let script = script.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut stream).await else { return };
                    seen.lock().unwrap().push(body);
                    let answer = {
                        let mut script = script.lock().unwrap();
                        if script.len() > 1 {
                            script.pop_front().unwrap()
                        } else {
                            script.front().cloned().unwrap()
                        }
                    };
                    match answer {
                        Answer::Status(code, body) => {
                            let head = format!(
                                "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            );
                            let _ = stream.write_all(head.as_bytes()).await;
                            let _ = stream.write_all(body.as_bytes()).await;
                        }
                        Answer::Huge(n) => {
                            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {n}\r\n\r\n");
                            let _ = stream.write_all(head.as_bytes()).await;
                            let chunk = vec![b'x'; 64 * 1024];
                            let mut left = n;
                            while left > 0 {
                                let k = left.min(chunk.len());
                                if stream.write_all(&chunk[..k]).await.is_err() {
                                    break;
                                }
                                left -= k;
                            }
                        }
                        Answer::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        Receiver { port, bodies }
    }

    fn requests(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?db=test", self.port)
    }
}

/// Reads one request; returns its body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let n = stream.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                data.extend_from_slice(&buf[..n]);
            }
            return Some(data[end + 4..end + 4 + length].to_vec());
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// A result record of 2 samples (success and total) at `ts`.
fn record(ts: i64) -> Arc<Record> {
    Arc::new(Record::Check(CheckRecord {
        labels: Arc::new(LabelSet::of_endpoint("web")),
        timestamp_ms: ts,
        success: true,
        phases: [None, None, None, None, None, Some(0.01)],
        status_code: None,
        cert_expiry_s: None,
    }))
}

fn settings(capacity: usize, batch: usize, delay_ms: u64) -> TargetSettings {
    TargetSettings {
        name: "test".into(),
        queue_capacity: capacity,
        batch_size: batch,
        max_batch_delay: Duration::from_millis(delay_ms),
        timeout: Duration::from_millis(500),
        ca_file: None,
    }
}

/// A queue with its worker writing line protocol to `receiver`.
fn start(receiver: &Receiver, settings: &TargetSettings, retry_ms: u64) -> Arc<TargetQueue> {
    let influx = InfluxConfig::from_url(parse_http_url(&receiver.url()).unwrap());
    let template = RequestTemplate::influx(&influx, &influx.api().unwrap()).unwrap();
    let retry = crate::sinks::retry::RetryPolicy {
        initial: Duration::from_millis(retry_ms),
        max_delay: Duration::from_millis(retry_ms),
        max_attempts: u32::MAX,
        give_up_after: Duration::MAX,
    };
    let service = ExportService::new(settings.timeout, Vec::new()).unwrap().with_retry(retry);
    let queue = TargetQueue::new(settings);
    tokio::spawn(run_worker(queue.clone(), service, template));
    queue
}

/// Polls `f` every 10 ms for up to `within`.
async fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lines(receiver: &Receiver) -> Vec<String> {
    let bodies = receiver.bodies.lock().unwrap();
    bodies
        .iter()
        .flat_map(|b| String::from_utf8_lossy(b).lines().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[tokio::test]
async fn a_full_batch_goes_at_once_and_a_partial_one_after_the_delay() {
    let receiver = Receiver::start(vec![Answer::Status(204, "")]).await;
    let queue = start(&receiver, &settings(1_000, 10, 400), 10);
    let started = Instant::now();
    queue.push(&(0..5).map(record).collect::<Vec<_>>()); // 10 samples: a full batch
    eventually(Duration::from_secs(2), "the full batch", || receiver.requests() == 1).await;
    assert!(started.elapsed() < Duration::from_millis(300), "a full batch does not wait for the delay");
    queue.push(&[record(10)]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.requests(), 1, "a partial batch waits");
    eventually(Duration::from_secs(2), "the partial batch", || receiver.requests() == 2).await;
    assert_eq!(lines(&receiver).len(), 6);
    assert_eq!(queue.stats().sent.load(Ordering::Relaxed), 12);
    assert_eq!(queue.pending_samples(), 0);
}

#[tokio::test]
async fn records_of_a_batch_are_sorted_by_timestamp() {
    let receiver = Receiver::start(vec![Answer::Status(204, "")]).await;
    let queue = start(&receiver, &settings(1_000, 100, 50), 10);
    queue.push(&[record(30), record(10), record(20)]);
    eventually(Duration::from_secs(2), "the batch", || receiver.requests() == 1).await;
    let stamps: Vec<String> =
        lines(&receiver).iter().map(|l| l.rsplit(' ').next().unwrap().to_string()).collect();
    assert_eq!(stamps, ["10", "20", "30"]);
}

#[tokio::test]
async fn past_the_capacity_the_newest_are_dropped_and_counted() {
    // No worker: nothing drains.
    let queue = TargetQueue::new(&settings(10, 10, 1_000));
    assert_eq!(queue.push(&(0..5).map(record).collect::<Vec<_>>()), 0);
    assert_eq!(queue.push(&[record(5), record(6)]), 4, "both are dropped");
    assert_eq!(queue.pending_samples(), 10, "memory stays at the capacity");
    assert_eq!(queue.stats().dropped.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_until_written() {
    let receiver = Receiver::start(vec![
        Answer::Status(500, "down"),
        Answer::Status(503, ""),
        Answer::Status(429, ""),
        Answer::Status(204, ""),
    ])
    .await;
    let queue = start(&receiver, &settings(1_000, 10, 10), 20);
    queue.push(&[record(1)]);
    eventually(Duration::from_secs(5), "the batch written", || {
        queue.stats().sent.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(receiver.requests(), 4);
    assert_eq!(queue.stats().failed.load(Ordering::Relaxed), 0);
    let bodies = receiver.bodies.lock().unwrap();
    assert!(bodies.iter().all(|b| b == &bodies[0]), "every attempt sends the same body");
}

#[tokio::test]
async fn a_400_is_not_retried_and_is_counted_as_failed() {
    let receiver = Receiver::start(vec![
        Answer::Status(400, "partial write: field type conflict"),
        Answer::Status(204, ""),
    ])
    .await;
    let queue = start(&receiver, &settings(1_000, 10, 10), 20);
    queue.push(&[record(1)]);
    eventually(Duration::from_secs(5), "the failure", || queue.stats().failed.load(Ordering::Relaxed) == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.requests(), 1, "not retried");
    queue.push(&[record(2)]);
    eventually(Duration::from_secs(5), "the next batch", || queue.stats().sent.load(Ordering::Relaxed) == 2)
        .await;
}

#[tokio::test]
async fn a_huge_or_hanging_answer_is_cut_off_and_retried() {
    // 10 MB of answer: over the 64 KiB cap, so the attempt fails (retried).
    let receiver = Receiver::start(vec![Answer::Huge(10 << 20), Answer::Hang, Answer::Status(204, "")]).await;
    let queue = start(&receiver, &settings(1_000, 10, 10), 20);
    let started = Instant::now();
    queue.push(&[record(1)]);
    eventually(Duration::from_secs(5), "the batch written", || {
        queue.stats().sent.load(Ordering::Relaxed) == 2
    })
    .await;
    assert_eq!(receiver.requests(), 3);
    // The hang costs one 500 ms timeout, no more.
    assert!(started.elapsed() < Duration::from_millis(2_000), "{:?}", started.elapsed());
}

#[tokio::test]
async fn flush_sends_a_partial_batch_now_and_stop_abandons_at_its_deadline() {
    let receiver = Receiver::start(vec![Answer::Status(204, "")]).await;
    let queue = start(&receiver, &settings(1_000, 100, 60_000), 10);
    queue.push(&[record(1), record(2)]);
    assert!(queue.flush(Instant::now() + Duration::from_secs(2)).await, "drained");
    assert_eq!(receiver.requests(), 1, "sent without waiting a minute");

    let down = Receiver::start(vec![Answer::Status(503, "")]).await;
    let queue = start(&down, &settings(1_000, 100, 60_000), 50);
    queue.push(&[record(1)]);
    let started = Instant::now();
    queue.stop(started + Duration::from_millis(300));
    eventually(Duration::from_secs(3), "abandoned", || queue.stats().failed.load(Ordering::Relaxed) == 2)
        .await;
    assert!(started.elapsed() < Duration::from_millis(1_000), "{:?}", started.elapsed());
    assert!(down.requests() >= 1);
}
