//! The results subscriber: newest result per probe, failures flagged.

use std::time::{Duration, SystemTime};

use vantage_core::observation::Observation;
use vantage_core::result::{CheckError, CheckResult, ErrorKind};
use vantage_core::spec::CheckKind;

use super::*;

fn accepted(probe_id: u64, endpoint_id: u64, ok: bool, started_secs: u64, unhealthy: bool) -> AcceptedResult {
    let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + started_secs);
    AcceptedResult {
        probe_id,
        region: "eu".into(),
        observation: Observation {
            seq: started_secs,
            endpoint_id,
            round: started_secs,
            probe_unhealthy: unhealthy,
            planned_start: started,
            lag: Duration::ZERO,
            out_of_slot: false,
            request_id: None,
            result: Some(CheckResult {
                url: "https://x/".into(),
                kind: CheckKind::Https,
                ok,
                error: (!ok).then(|| CheckError::new(ErrorKind::Timeout, "no answer")),
                status_code: None,
                http_version: None,
                remote_addr: None,
                phases_ms: Default::default(),
                tls: None,
                body_bytes: 0,
                started_at: started,
                hops: Vec::new(),
                dns_answers: Vec::new(),
                attempts: 1,
            }),
        },
        received_at: started,
    }
}

#[test]
fn latest_keeps_the_newest_result_per_probe_and_flags_trustworthy_failures() {
    let latest = Latest::new();
    latest.accept(&[accepted(1, 7, true, 20, false), accepted(1, 7, false, 10, false)]);
    assert!(latest.of(7)[&1].result.ok, "an older result arriving late does not replace a newer one");
    assert!(latest.take_failed().is_empty(), "the late failure is no news");
    latest.accept(&[accepted(1, 7, false, 30, true)]);
    assert!(latest.take_failed().is_empty(), "a failure while the probe's canaries fail is not a signal");
    latest.accept(&[accepted(2, 7, false, 31, false)]);
    assert_eq!(latest.take_failed(), [7]);
    assert_eq!(latest.of(7).len(), 2);
    latest.clear();
    assert!(latest.of(7).is_empty());
}
