//! A DNS server for tests: answers from an in-memory [`DnsZone`] over UDP
//! and TCP on the same loopback port, with per-name delays and SERVFAIL.
//!
//! Behaviour, in the order it is decided for the first question of a query:
//!
//! - a name marked [`DnsZone::servfail`] gets `SERVFAIL`;
//! - a name with a CNAME is answered with the CNAME, followed through the
//!   zone (up to 8 links) unless the question asks for the CNAME itself;
//! - a name with records gets those of the asked type, or an empty
//!   `NOERROR` (NODATA) if it has none of that type;
//! - any other name gets `NXDOMAIN`.
//!
//! Negative answers carry an SOA in the authority section, as real servers'
//! do. Answers have TTL 300. A [`DnsZone::delay`] holds back only that
//! name's answers: every query is handled in its own task. Over UDP, an
//! answer larger than the client's EDNS payload size (512 bytes without
//! EDNS) is sent truncated with the TC bit, so clients retry over TCP.
//! Names are case-insensitive and may be given with or without the
//! trailing dot.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::tasks::TaskSet;

/// TTL of every record the server returns.
pub const TTL: u32 = 300;

/// Longest CNAME chain followed before answering `SERVFAIL`.
const MAX_CNAME_CHAIN: usize = 8;

/// Payload size advertised back to EDNS clients (the DNS-flag-day value).
const EDNS_PAYLOAD: u16 = 1232;

/// The records and fault settings a [`DnsTarget`] serves. Built by chaining:
///
/// ```
/// # use std::net::Ipv4Addr;
/// # use std::time::Duration;
/// # use vantage_tests::DnsZone;
/// let zone = DnsZone::new()
///     .a("api.test", Ipv4Addr::LOCALHOST)
///     .cname("www.test", "api.test")
///     .delay("slow.test", Duration::from_millis(300))
///     .a("slow.test", Ipv4Addr::LOCALHOST)
///     .servfail("broken.test");
/// ```
///
/// Calling [`a`](Self::a), [`aaaa`](Self::aaaa) or [`txt`](Self::txt) again
/// for the same name adds another record.
#[derive(Debug, Clone, Default)]
pub struct DnsZone {
    names: HashMap<String, ZoneEntry>,
}

impl DnsZone {
    /// An empty zone: every name is `NXDOMAIN`.
    pub fn new() -> DnsZone {
        DnsZone::default()
    }

    /// Adds an A record.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid domain name (as do all the builder methods).
    pub fn a(mut self, name: &str, addr: Ipv4Addr) -> DnsZone {
        self.entry(name).a.push(addr);
        self
    }

    /// Adds an AAAA record.
    pub fn aaaa(mut self, name: &str, addr: Ipv6Addr) -> DnsZone {
        self.entry(name).aaaa.push(addr);
        self
    }

    /// Adds a TXT record holding `text` (split into 255-byte strings on the
    /// wire if longer).
    pub fn txt(mut self, name: &str, text: &str) -> DnsZone {
        self.entry(name).txt.push(text.to_owned());
        self
    }

    /// Makes `name` an alias of `target` (which may be outside the zone; the
    /// answer is then `NXDOMAIN` after the CNAME, per RFC 6604).
    pub fn cname(mut self, name: &str, target: &str) -> DnsZone {
        let target = parse_name(target);
        self.entry(name).cname = Some(target);
        self
    }

    /// Answers queries for `name` only after `delay`.
    pub fn delay(mut self, name: &str, delay: Duration) -> DnsZone {
        self.entry(name).delay = delay;
        self
    }

    /// Answers queries for `name` with `SERVFAIL`.
    pub fn servfail(mut self, name: &str) -> DnsZone {
        self.entry(name).servfail = true;
        self
    }

    fn entry(&mut self, name: &str) -> &mut ZoneEntry {
        parse_name(name);
        self.names.entry(normalize(name)).or_default()
    }

    fn get(&self, key: &str) -> Option<&ZoneEntry> {
        self.names.get(key)
    }
}

/// A running DNS server. Dropping it stops the server.
#[derive(Debug)]
pub struct DnsTarget {
    addr: SocketAddr,
    stats: Arc<QueryStats>,
    tasks: TaskSet,
}

impl DnsTarget {
    /// Starts serving `zone` on `127.0.0.1`, UDP and TCP on the same
    /// ephemeral port.
    ///
    /// Must be called from within a Tokio runtime.
    pub fn start(zone: DnsZone) -> anyhow::Result<DnsTarget> {
        // tokio's from_std would panic outside a runtime; fail with a reason.
        tokio::runtime::Handle::try_current()
            .context("DnsTarget::start must be called within a tokio runtime")?;
        let (udp, tcp) = bind_same_port()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp = UdpSocket::from_std(udp)?;
        let tcp = TcpListener::from_std(tcp)?;
        let addr = udp.local_addr()?;

        let stats = Arc::new(QueryStats::default());
        let tasks = TaskSet::default();
        let server = Server { zone: Arc::new(zone), stats: stats.clone(), tasks: tasks.clone() };
        tasks.spawn(server.clone().udp_loop(Arc::new(udp)));
        tasks.spawn(server.tcp_loop(tcp));
        Ok(DnsTarget { addr, stats, tasks })
    }

    /// The address to send queries to (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Query messages received so far, over UDP and TCP, including ones that
    /// could not be decoded.
    pub fn queries(&self) -> u64 {
        self.stats.total.load(Ordering::SeqCst)
    }

    /// Queries received so far whose question is `name` (any type;
    /// case-insensitive, trailing dot optional).
    pub fn queries_for(&self, name: &str) -> u64 {
        self.stats
            .per_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&normalize(name))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DnsTarget {
    fn drop(&mut self) {
        self.tasks.close();
    }
}

#[derive(Debug, Clone, Default)]
struct ZoneEntry {
    a: Vec<Ipv4Addr>,
    aaaa: Vec<Ipv6Addr>,
    txt: Vec<String>,
    cname: Option<Name>,
    delay: Duration,
    servfail: bool,
}

impl ZoneEntry {
    /// Whether the name exists (a delay alone does not make it exist).
    fn exists(&self) -> bool {
        self.servfail
            || self.cname.is_some()
            || !self.a.is_empty()
            || !self.aaaa.is_empty()
            || !self.txt.is_empty()
    }

    fn records(&self, owner: &Name, query_type: RecordType) -> Vec<Record> {
        let wants = |record_type| query_type == record_type || query_type == RecordType::ANY;
        let mut data = Vec::new();
        if wants(RecordType::A) {
            data.extend(self.a.iter().map(|&addr| RData::A(A(addr))));
        }
        if wants(RecordType::AAAA) {
            data.extend(self.aaaa.iter().map(|&addr| RData::AAAA(AAAA(addr))));
        }
        if wants(RecordType::TXT) {
            data.extend(
                self.txt
                    .iter()
                    .map(|text| RData::TXT(TXT::from_bytes(text.as_bytes().chunks(255).collect()))),
            );
        }
        if wants(RecordType::CNAME) {
            data.extend(self.cname.iter().map(|target| RData::CNAME(CNAME(target.clone()))));
        }
        data.into_iter().map(|rdata| Record::from_rdata(owner.clone(), TTL, rdata)).collect()
    }
}

#[derive(Debug, Default)]
struct QueryStats {
    total: AtomicU64,
    per_name: Mutex<HashMap<String, u64>>,
}

#[derive(Clone)]
struct Server {
    zone: Arc<DnsZone>,
    stats: Arc<QueryStats>,
    tasks: TaskSet,
}

impl Server {
    async fn udp_loop(self, socket: Arc<UdpSocket>) {
        let mut buf = vec![0; 65_535];
        loop {
            // Errors here are ICMP noise from earlier sends; keep serving.
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Some(request) = self.receive(&buf[..len]) else {
                continue;
            };
            let zone = self.zone.clone();
            let socket = socket.clone();
            self.tasks.spawn(async move {
                let (response, delay) = answer(&zone, &request);
                sleep_unless_zero(delay).await;
                if let Ok(bytes) = encode_for_udp(&response, &request) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            });
        }
    }

    async fn tcp_loop(self, listener: TcpListener) {
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            self.tasks.spawn(self.clone().serve_tcp(stream));
        }
    }

    /// Reads length-prefixed queries off one TCP connection; answers go
    /// back in whatever order their delays allow, as RFC 7766 permits.
    async fn serve_tcp(self, stream: TcpStream) {
        let (mut reader, writer) = stream.into_split();
        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        loop {
            let Ok(len) = reader.read_u16().await else {
                return;
            };
            let mut buf = vec![0; usize::from(len)];
            if reader.read_exact(&mut buf).await.is_err() {
                return;
            }
            let Some(request) = self.receive(&buf) else {
                return;
            };
            let zone = self.zone.clone();
            let writer = writer.clone();
            self.tasks.spawn(async move {
                let (response, delay) = answer(&zone, &request);
                sleep_unless_zero(delay).await;
                let Ok(bytes) = response.to_vec() else {
                    return;
                };
                let Ok(len) = u16::try_from(bytes.len()) else {
                    return;
                };
                let mut framed = Vec::with_capacity(bytes.len() + 2);
                framed.extend_from_slice(&len.to_be_bytes());
                framed.extend_from_slice(&bytes);
                let _ = writer.lock().await.write_all(&framed).await;
            });
        }
    }

    /// Counts and decodes one query message.
    fn receive(&self, bytes: &[u8]) -> Option<Message> {
        self.stats.total.fetch_add(1, Ordering::SeqCst);
        let request = Message::from_vec(bytes).ok()?;
        if let Some(query) = request.queries.first() {
            let key = normalize(&query.name().to_ascii());
            *self.stats.per_name.lock().unwrap_or_else(PoisonError::into_inner).entry(key).or_default() += 1;
        }
        Some(request)
    }
}

/// The response to `request` from `zone`, and how long to hold it back.
fn answer(zone: &DnsZone, request: &Message) -> (Message, Duration) {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }
    response.add_queries(request.queries.iter().cloned());

    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return (response, Duration::ZERO);
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return (response, Duration::ZERO);
    };

    let delay = zone.get(&normalize(&query.name().to_ascii())).map_or(Duration::ZERO, |entry| entry.delay);
    let resolution = resolve(zone, query);
    response.metadata.response_code = resolution.code;
    let query_type = query.query_type();
    let negative = match resolution.code {
        ResponseCode::NXDomain => true,
        ResponseCode::NoError => !resolution
            .answers
            .iter()
            .any(|record| query_type == RecordType::ANY || record.record_type() == query_type),
        _ => false,
    };
    if negative {
        response.add_authority(soa_for(&resolution.last_name));
    }
    response.add_answers(resolution.answers);
    (response, delay)
}

struct Resolution {
    code: ResponseCode,
    answers: Vec<Record>,
    /// The name the answer ended on (after CNAMEs), for the negative SOA.
    last_name: Name,
}

fn resolve(zone: &DnsZone, query: &Query) -> Resolution {
    let mut owner = query.name().clone();
    let mut answers = Vec::new();
    for _ in 0..MAX_CNAME_CHAIN {
        let entry = zone.get(&normalize(&owner.to_ascii())).filter(|entry| entry.exists());
        let Some(entry) = entry else {
            return Resolution { code: ResponseCode::NXDomain, answers, last_name: owner };
        };
        if entry.servfail {
            return Resolution { code: ResponseCode::ServFail, answers: Vec::new(), last_name: owner };
        }
        match &entry.cname {
            Some(target) if query.query_type() != RecordType::CNAME => {
                answers.push(Record::from_rdata(owner.clone(), TTL, RData::CNAME(CNAME(target.clone()))));
                owner = target.clone();
            }
            _ => {
                answers.extend(entry.records(&owner, query.query_type()));
                return Resolution { code: ResponseCode::NoError, answers, last_name: owner };
            }
        }
    }
    Resolution { code: ResponseCode::ServFail, answers: Vec::new(), last_name: owner }
}

/// The SOA a negative answer carries, for the zone made of the name's last
/// label (`x.test.` → `test.`).
fn soa_for(name: &Name) -> Record {
    let key = normalize(&name.to_ascii());
    let apex = key.rsplit('.').next().unwrap_or("test");
    let apex = if apex.is_empty() { "test" } else { apex };
    let soa = SOA::new(
        parse_name(&format!("ns.{apex}")),
        parse_name(&format!("hostmaster.{apex}")),
        1,
        3600,
        600,
        86_400,
        60,
    );
    Record::from_rdata(parse_name(apex), TTL, RData::SOA(soa))
}

fn encode_for_udp(response: &Message, request: &Message) -> anyhow::Result<Vec<u8>> {
    let limit = request.edns.as_ref().map_or(512, |edns| usize::from(edns.max_payload().max(512)));
    let bytes = response.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    Ok(response.truncate().to_vec()?)
}

async fn sleep_unless_zero(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Lower-case, without the trailing dot: the zone's key for a name.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A fully qualified [`Name`]; panics on names no test should use.
fn parse_name(name: &str) -> Name {
    let fqdn = format!("{}.", normalize(name));
    Name::from_ascii(&fqdn).unwrap_or_else(|error| panic!("invalid DNS name {name:?}: {error}"))
}

/// Binds UDP and TCP on the same free loopback port, retrying when the TCP
/// side of a fresh UDP port happens to be taken.
fn bind_same_port() -> anyhow::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut last_error = None;
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("bind dns udp")?;
        let port = udp.local_addr()?.port();
        match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(anyhow::anyhow!("no loopback port free for both udp and tcp: {last_error:?}"))
}

#[cfg(test)]
mod tests;
