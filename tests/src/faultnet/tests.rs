//! Each of the link's faults against a tiny echo server on loopback.

use std::sync::Mutex;

use tokio::time::timeout;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// Echoes every byte back; half-closes when the client does. Counts what
/// it saw, so tests can tell whether bytes reached the target at all.
struct Echo {
    addr: SocketAddr,
    seen: Arc<EchoSeen>,
    tasks: TaskSet,
}

#[derive(Default)]
struct EchoSeen {
    connections: AtomicU64,
    bytes: AtomicU64,
    /// How each connection ended: `None` cleanly, else the error kind.
    ends: Mutex<Vec<Option<io::ErrorKind>>>,
}

impl Echo {
    async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(EchoSeen::default());
        let tasks = TaskSet::default();
        let (s, t) = (seen.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                s.connections.fetch_add(1, Ordering::Relaxed);
                let s = s.clone();
                t.spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let end = loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => break stream.shutdown().await.err().map(|e| e.kind()),
                            Ok(n) => {
                                s.bytes.fetch_add(n as u64, Ordering::Relaxed);
                                if let Err(e) = stream.write_all(&buf[..n]).await {
                                    break Some(e.kind());
                                }
                            }
                            Err(e) => break Some(e.kind()),
                        }
                    };
                    s.ends.lock().unwrap().push(end);
                });
            }
        });
        Echo { addr, seen, tasks }
    }

    fn connections(&self) -> u64 {
        self.seen.connections.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.seen.bytes.load(Ordering::Relaxed)
    }

    fn ends(&self) -> Vec<Option<io::ErrorKind>> {
        self.seen.ends.lock().unwrap().clone()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.tasks.close();
    }
}

async fn connect(link: &Link) -> TcpStream {
    let stream = TcpStream::connect(link.addr()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Sends `text` and reads the same number of bytes back.
async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> Vec<u8> {
    stream.write_all(text).await.unwrap();
    let mut back = vec![0u8; text.len()];
    timeout(Duration::from_secs(5), stream.read_exact(&mut back)).await.expect("echo within 5 s").unwrap();
    back
}

/// Polls `condition` every 5 ms for up to 2 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within 2 s");
        tokio::time::sleep(5 * MS).await;
    }
}

#[tokio::test]
async fn transparent_link_forwards_both_ways_and_counts_bytes() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    assert_eq!(link.target(), echo.addr);
    let mut stream = connect(&link).await;
    assert_eq!(round_trip(&mut stream, b"hello").await, b"hello");
    let stats = link.stats();
    assert_eq!((stats.accepted, stats.open, stats.bytes_to_target, stats.bytes_to_client), (1, 1, 5, 5));

    // A half-close crosses too: the echo server sees the end and closes.
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty());
    eventually("the connection closing", || link.stats().open == 0).await;
    assert_eq!(echo.ends(), [None], "closed cleanly, not reset");
}

#[tokio::test]
async fn delay_adds_latency_per_direction_once_not_per_queued_message() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let mut stream = connect(&link).await;
    round_trip(&mut stream, b"warm").await;

    link.delay(Direction::ToTarget, 100 * MS);
    let started = Instant::now();
    round_trip(&mut stream, b"x").await;
    let one_way = started.elapsed();
    assert!(one_way >= 100 * MS && one_way < 300 * MS, "one direction delayed 100 ms: {one_way:?}");

    link.delay(Direction::ToClient, 100 * MS);
    let started = Instant::now();
    round_trip(&mut stream, b"y").await;
    let both = started.elapsed();
    assert!(both >= 200 * MS && both < 400 * MS, "both directions delayed 100 ms: {both:?}");

    // Ten messages sent back to back arrive about one delay later, not ten.
    let started = Instant::now();
    for _ in 0..10 {
        stream.write_all(b"z").await.unwrap();
        tokio::time::sleep(2 * MS).await;
    }
    let mut back = [0u8; 10];
    timeout(Duration::from_secs(5), stream.read_exact(&mut back)).await.unwrap().unwrap();
    let pipelined = started.elapsed();
    assert!(pipelined >= 200 * MS && pipelined < 600 * MS, "pipelined, not serialized: {pipelined:?}");

    link.heal();
    let started = Instant::now();
    round_trip(&mut stream, b"w").await;
    assert!(started.elapsed() < 100 * MS, "healed: {:?}", started.elapsed());
}

#[tokio::test]
async fn blackhole_holds_bytes_without_closing_and_heal_delivers_them() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let mut open = connect(&link).await;
    round_trip(&mut open, b"before").await;

    link.blackhole();
    open.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    let answer = timeout(300 * MS, open.read(&mut buf)).await;
    assert!(answer.is_err(), "a blackhole answers nothing, not even a reset or EOF: {answer:?}");
    assert_eq!(echo.bytes(), 6, "the held bytes did not reach the target");

    // New connections are accepted, but the target does not see them.
    let mut late = connect(&link).await;
    late.write_all(b"late").await.unwrap();
    tokio::time::sleep(100 * MS).await;
    assert_eq!(echo.connections(), 1, "a blackholed link passes no new connection on");
    assert_eq!(link.stats().accepted, 2);

    link.heal();
    timeout(Duration::from_secs(2), open.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"held", "held bytes arrive once healed, in order");
    timeout(Duration::from_secs(2), late.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"late");
    assert_eq!(echo.connections(), 2);
}

#[tokio::test]
async fn cut_stops_one_direction_while_the_other_flows() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let mut stream = connect(&link).await;
    round_trip(&mut stream, b"ok").await;

    // Answers stop; requests still reach the target.
    link.cut(Direction::ToClient);
    stream.write_all(b"ping").await.unwrap();
    eventually("the request reaching the target", || echo.bytes() == 6).await;
    let mut buf = [0u8; 4];
    assert!(timeout(200 * MS, stream.read(&mut buf)).await.is_err(), "no answer while cut");
    assert_eq!(link.stats().bytes_to_client, 2);
    link.heal();
    timeout(Duration::from_secs(2), stream.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"ping");

    // Requests stop.
    link.cut(Direction::ToTarget);
    stream.write_all(b"pong").await.unwrap();
    tokio::time::sleep(150 * MS).await;
    assert_eq!(echo.bytes(), 6, "nothing reaches the target while cut");
    link.heal();
    timeout(Duration::from_secs(2), stream.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn refuse_new_resets_new_connections_and_keeps_open_ones() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let mut open = connect(&link).await;
    round_trip(&mut open, b"a").await;

    link.refuse_new();
    let mut refused = connect(&link).await;
    let mut buf = [0u8; 1];
    let read = timeout(Duration::from_secs(2), refused.read(&mut buf)).await.unwrap();
    assert!(
        matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "a refused connection is reset: {read:?}"
    );
    assert_eq!(round_trip(&mut open, b"b").await, b"b", "open connections carry on");
    assert_eq!((link.stats().refused, echo.connections()), (1, 1));

    link.heal();
    let mut again = connect(&link).await;
    assert_eq!(round_trip(&mut again, b"c").await, b"c");
}

#[tokio::test]
async fn reset_sends_rst_to_both_sides_of_every_open_connection() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&link).await;
        round_trip(&mut stream, b"x").await;
        streams.push(stream);
    }
    link.reset();
    for stream in &mut streams {
        let mut buf = [0u8; 1];
        let read = timeout(Duration::from_secs(2), stream.read(&mut buf)).await.unwrap();
        assert!(matches!(&read, Err(e) if e.kind() == io::ErrorKind::ConnectionReset), "{read:?}");
    }
    eventually("the target seeing three resets", || echo.ends().len() == 3).await;
    assert!(echo.ends().iter().all(|e| *e == Some(io::ErrorKind::ConnectionReset)), "{:?}", echo.ends());
    assert_eq!((link.stats().reset, link.stats().open), (3, 0));

    // A one-off: the next connection is served.
    let mut next = connect(&link).await;
    assert_eq!(round_trip(&mut next, b"y").await, b"y");
}

#[tokio::test]
async fn many_concurrent_connections_each_get_their_own_bytes_back() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..64u32 {
        let addr = link.addr();
        clients.spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            // Larger than one chunk, so reads and writes interleave.
            let text: Vec<u8> = (0..40_000u32).map(|j| ((i + j) % 251) as u8).collect();
            let back = round_trip(&mut stream, &text).await;
            assert!(back == text, "connection {i} got other bytes back");
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let stats = link.stats();
    assert_eq!(
        (stats.accepted, stats.bytes_to_target, stats.bytes_to_client),
        (64, 64 * 40_000, 64 * 40_000)
    );
}

#[tokio::test]
async fn dropping_the_link_closes_its_listener_and_connections() {
    let echo = Echo::start().await;
    let link = Link::start(echo.addr).unwrap();
    let addr = link.addr();
    let mut stream = connect(&link).await;
    round_trip(&mut stream, b"x").await;
    drop(link);
    let mut buf = [0u8; 1];
    let read = timeout(Duration::from_secs(2), stream.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "the connection ended: {read:?}");
    let error = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn a_unix_front_forwards_like_a_tcp_one() {
    let echo = Echo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("link.sock");
    let link = Link::start_unix(&path, echo.addr).unwrap();
    assert_eq!(link.addr(), echo.addr);
    let mut stream = UnixStream::connect(&path).await.unwrap();
    stream.write_all(b"via unix").await.unwrap();
    let mut back = [0u8; 8];
    timeout(Duration::from_secs(2), stream.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"via unix");
    link.blackhole();
    stream.write_all(b"x").await.unwrap();
    assert!(timeout(200 * MS, stream.read(&mut back)).await.is_err());
    drop(link);
    assert!(!path.exists(), "the socket file is removed with the link");
}

#[test]
fn targets_off_loopback_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _entered = runtime.enter();
    let error = Link::start("192.0.2.1:80".parse().unwrap()).unwrap_err();
    assert!(error.to_string().contains("not a loopback address"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_island_reaches_its_links_targets_at_their_own_addresses_and_nothing_else() {
    Island::check_supported().unwrap();
    let echo = Echo::start().await;
    let outside = Echo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let island = Island::new(dir.path(), &[echo.addr]).unwrap();
    // bash's /dev/tcp: one round trip to the linked address, then a connect
    // to an address without a link, which must fail inside the namespace.
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{}; printf island >&3; head -c 6 <&3; echo; \
         if (exec 4<>/dev/tcp/127.0.0.1/{}) 2>/dev/null; then echo reached-outside; else echo isolated; fi",
        echo.addr.port(),
        outside.addr.port()
    );
    let mut command = Command::new("bash");
    command.args(["-c", &script]);
    let mut wrapped = island.wrap("echo", &command).unwrap();
    let out = tokio::task::spawn_blocking(move || wrapped.output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout, "island\nisolated\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stats = island.link(echo.addr).stats();
    assert_eq!((stats.accepted, stats.bytes_to_target, stats.bytes_to_client), (1, 6, 6));
    assert_eq!(outside.connections(), 0);
}
