//! The DNS target driven by raw UDP and TCP sockets.

use std::time::Instant;

use hickory_proto::op::MessageType;
use tokio::net::UdpSocket;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn query(name: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message
}

async fn ask_udp(target: &DnsTarget, request: &Message) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(target.addr()).await.unwrap();
    socket.send(&request.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0; 65_535];
    let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf))
        .await
        .expect("dns answer within 2 s")
        .unwrap();
    let response = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(response.metadata.id, request.metadata.id);
    assert_eq!(response.metadata.message_type, MessageType::Response);
    response
}

async fn ask(target: &DnsTarget, name: &str, record_type: RecordType) -> Message {
    ask_udp(target, &query(name, record_type)).await
}

fn ipv4s(response: &Message) -> Vec<Ipv4Addr> {
    response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(A(addr)) => Some(*addr),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn answers_a_records_with_ttl_300() {
    let target = DnsTarget::start(
        DnsZone::new().a("api.test", Ipv4Addr::new(127, 0, 0, 1)).a("api.test", Ipv4Addr::new(127, 0, 0, 2)),
    )
    .unwrap();
    let response = ask(&target, "api.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.recursion_available);
    assert_eq!(ipv4s(&response), vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)]);
    assert!(response.answers.iter().all(|record| record.ttl == TTL));
}

#[tokio::test]
async fn names_are_case_insensitive_with_or_without_trailing_dot() {
    let target = DnsTarget::start(DnsZone::new().a("Mixed.Test.", Ipv4Addr::LOCALHOST)).unwrap();
    let response = ask(&target, "mIXED.test.", RecordType::A).await;
    assert_eq!(ipv4s(&response), vec![Ipv4Addr::LOCALHOST]);
    assert_eq!(target.queries_for("mixed.test"), 1);
    assert_eq!(target.queries_for("MIXED.TEST."), 1);
}

#[tokio::test]
async fn aaaa_txt_and_nodata() {
    let long_text = "t".repeat(300);
    let target = DnsTarget::start(
        DnsZone::new()
            .a("v4.test", Ipv4Addr::LOCALHOST)
            .aaaa("v6.test", Ipv6Addr::LOCALHOST)
            .txt("v6.test", "hello")
            .txt("v6.test", &long_text),
    )
    .unwrap();

    let response = ask(&target, "v6.test.", RecordType::AAAA).await;
    assert!(matches!(
        response.answers[..],
        [Record { data: RData::AAAA(AAAA(addr)), .. }] if addr == Ipv6Addr::LOCALHOST
    ));

    let response = ask(&target, "v6.test.", RecordType::TXT).await;
    let texts: Vec<String> = response
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => {
                Some(txt.txt_data.iter().map(|part| String::from_utf8_lossy(part).into_owned()).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["hello".to_owned(), long_text]);

    // A name with only an A record: NOERROR, no answers, SOA for caching.
    let response = ask(&target, "v4.test.", RecordType::AAAA).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities[0].record_type(), RecordType::SOA);
}

#[tokio::test]
async fn unknown_names_are_nxdomain_with_soa() {
    let target = DnsTarget::start(DnsZone::new()).unwrap();
    let response = ask(&target, "nope.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(response.authorities[0].name.to_ascii(), "test.");
}

#[tokio::test]
async fn cname_chains_are_followed() {
    let target = DnsTarget::start(
        DnsZone::new()
            .cname("www.test", "edge.test")
            .cname("edge.test", "origin.test")
            .a("origin.test", Ipv4Addr::new(127, 0, 0, 9))
            .cname("dangling.test", "missing.test"),
    )
    .unwrap();
    let response = ask(&target, "www.test.", RecordType::A).await;
    let types: Vec<RecordType> = response.answers.iter().map(Record::record_type).collect();
    assert_eq!(types, vec![RecordType::CNAME, RecordType::CNAME, RecordType::A]);
    assert_eq!(ipv4s(&response), vec![Ipv4Addr::new(127, 0, 0, 9)]);

    let response = ask(&target, "www.test.", RecordType::CNAME).await;
    assert_eq!(response.answers.len(), 1);

    let response = ask(&target, "dangling.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(response.answers.len(), 1);
}

#[tokio::test]
async fn servfail_names_fail() {
    let target = DnsTarget::start(DnsZone::new().servfail("broken.test")).unwrap();
    let response = ask(&target, "broken.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    assert!(response.answers.is_empty());
}

#[tokio::test]
async fn delay_holds_back_only_that_name() {
    let target = DnsTarget::start(
        DnsZone::new()
            .a("slow.test", Ipv4Addr::LOCALHOST)
            .delay("slow.test", 300 * MS)
            .a("fast.test", Ipv4Addr::LOCALHOST),
    )
    .unwrap();
    let started = Instant::now();
    let slow = async {
        ask(&target, "slow.test.", RecordType::A).await;
        started.elapsed()
    };
    let fast = async {
        // Make sure the slow query is in flight first.
        tokio::time::sleep(20 * MS).await;
        ask(&target, "fast.test.", RecordType::A).await;
        started.elapsed()
    };
    let (slow, fast) = tokio::join!(slow, fast);
    assert!(slow >= 300 * MS && slow < 380 * MS, "slow {slow:?}");
    assert!(fast < 100 * MS, "fast {fast:?}");
    assert_eq!(target.queries(), 2);
    assert_eq!(target.queries_for("slow.test"), 1);
    assert_eq!(target.queries_for("fast.test"), 1);
    assert_eq!(target.queries_for("other.test"), 0);
}

#[tokio::test]
async fn large_udp_answers_are_truncated_and_tcp_carries_them() {
    let mut zone = DnsZone::new();
    for i in 0..60 {
        zone = zone.a("many.test", Ipv4Addr::new(127, 0, 1, i));
    }
    let target = DnsTarget::start(zone).unwrap();

    let response = ask(&target, "many.test.", RecordType::A).await;
    assert!(response.metadata.truncation);
    assert!(response.answers.is_empty());

    let request = query("many.test.", RecordType::A);
    let mut stream = TcpStream::connect(target.addr()).await.unwrap();
    let bytes = request.to_vec().unwrap();
    stream.write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes()).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    let response = Message::from_vec(&buf).unwrap();
    assert_eq!(response.metadata.id, request.metadata.id);
    assert!(!response.metadata.truncation);
    assert_eq!(ipv4s(&response).len(), 60);
    assert_eq!(target.queries(), 2);
}

#[tokio::test]
async fn edns_clients_get_larger_udp_answers() {
    let mut zone = DnsZone::new();
    for i in 0..40 {
        zone = zone.a("many.test", Ipv4Addr::new(127, 0, 1, i));
    }
    let target = DnsTarget::start(zone).unwrap();
    let mut request = query("many.test.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    request.set_edns(edns);
    let response = ask_udp(&target, &request).await;
    assert!(!response.metadata.truncation);
    assert_eq!(ipv4s(&response).len(), 40);
}

#[test]
#[should_panic(expected = "invalid DNS name")]
fn invalid_names_panic_at_build_time() {
    let _ = DnsZone::new().a("bad..name", Ipv4Addr::LOCALHOST);
}
