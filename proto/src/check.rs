//! Conversions for the check-result family: `CheckResult`, `Phases`,
//! `CheckError`, `TlsInfo`, `Hop`.

use std::net::SocketAddr;
use std::time::Duration;

use vantage_core::result as core;
use vantage_core::spec::CheckKind;
use vantage_core::time::{from_unix_micros as from_unix_us, unix_micros as unix_us};

use crate::{pb, ConvertError};

const MSG: &str = "CheckResult";

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

impl From<&core::Phases> for pb::Phases {
    fn from(p: &core::Phases) -> Self {
        pb::Phases {
            dns_us: micros(p.dns),
            connect_us: micros(p.connect),
            tls_us: micros(p.tls),
            ttfb_us: micros(p.ttfb),
            transfer_us: micros(p.transfer),
            total_us: micros(p.total),
        }
    }
}

impl From<&pb::Phases> for core::Phases {
    fn from(p: &pb::Phases) -> Self {
        core::Phases {
            dns: Duration::from_micros(p.dns_us),
            connect: Duration::from_micros(p.connect_us),
            tls: Duration::from_micros(p.tls_us),
            ttfb: Duration::from_micros(p.ttfb_us),
            transfer: Duration::from_micros(p.transfer_us),
            total: Duration::from_micros(p.total_us),
        }
    }
}

const CHECK_KINDS: [(CheckKind, pb::CheckKind); 5] = [
    (CheckKind::Http, pb::CheckKind::Http),
    (CheckKind::Https, pb::CheckKind::Https),
    (CheckKind::Tcp, pb::CheckKind::Tcp),
    (CheckKind::Tls, pb::CheckKind::Tls),
    (CheckKind::Dns, pb::CheckKind::Dns),
];

pub(crate) const ERROR_KINDS: [(core::ErrorKind, pb::ErrorKind); 10] = [
    (core::ErrorKind::Dns, pb::ErrorKind::Dns),
    (core::ErrorKind::ConnectRefused, pb::ErrorKind::ConnectRefused),
    (core::ErrorKind::ConnectTimeout, pb::ErrorKind::ConnectTimeout),
    (core::ErrorKind::Tls, pb::ErrorKind::Tls),
    (core::ErrorKind::Timeout, pb::ErrorKind::Timeout),
    (core::ErrorKind::HttpStatus, pb::ErrorKind::HttpStatus),
    (core::ErrorKind::Assertion, pb::ErrorKind::Assertion),
    (core::ErrorKind::BodyTooLarge, pb::ErrorKind::BodyTooLarge),
    (core::ErrorKind::Blocked, pb::ErrorKind::Blocked),
    (core::ErrorKind::Protocol, pb::ErrorKind::Protocol),
];

const PHASES: [(core::Phase, pb::Phase); 5] = [
    (core::Phase::Dns, pb::Phase::Dns),
    (core::Phase::Connect, pb::Phase::Connect),
    (core::Phase::Tls, pb::Phase::Tls),
    (core::Phase::Ttfb, pb::Phase::Ttfb),
    (core::Phase::Transfer, pb::Phase::Transfer),
];

const TLS_REASONS: [(core::TlsReason, pb::TlsReason); 4] = [
    (core::TlsReason::UnknownIssuer, pb::TlsReason::UnknownIssuer),
    (core::TlsReason::Expired, pb::TlsReason::Expired),
    (core::TlsReason::HostnameMismatch, pb::TlsReason::HostnameMismatch),
    (core::TlsReason::Handshake, pb::TlsReason::Handshake),
];

fn to_pb<D: PartialEq + Copy, W: Copy>(table: &[(D, W)], d: D) -> W {
    table.iter().find(|(x, _)| *x == d).map(|(_, w)| *w).expect("every domain value has a wire value")
}

fn from_pb<D: Copy, W: PartialEq + Copy>(table: &[(D, W)], w: W) -> Option<D> {
    table.iter().find(|(_, x)| *x == w).map(|(d, _)| *d)
}

impl From<&core::CheckError> for pb::CheckError {
    fn from(e: &core::CheckError) -> Self {
        pb::CheckError {
            kind: to_pb(&ERROR_KINDS, e.kind) as i32,
            message: e.message.clone(),
            phase: e.phase.map_or(pb::Phase::Unspecified, |p| to_pb(&PHASES, p)) as i32,
            tls_reason: e.tls_reason.map_or(pb::TlsReason::Unspecified, |r| to_pb(&TLS_REASONS, r)) as i32,
        }
    }
}

impl TryFrom<&pb::CheckError> for core::CheckError {
    type Error = ConvertError;

    fn try_from(e: &pb::CheckError) -> Result<Self, ConvertError> {
        let kind = from_pb(&ERROR_KINDS, e.kind())
            .ok_or(ConvertError::Missing { message: "CheckError", field: "kind" })?;
        Ok(core::CheckError {
            kind,
            message: e.message.clone(),
            phase: from_pb(&PHASES, e.phase()),
            tls_reason: from_pb(&TLS_REASONS, e.tls_reason()),
        })
    }
}

impl From<&core::TlsInfo> for pb::TlsInfo {
    fn from(t: &core::TlsInfo) -> Self {
        pb::TlsInfo {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            alpn: t.alpn.clone(),
            subject: t.subject.clone(),
            issuer: t.issuer.clone(),
            cert_not_after_unix_us: unix_us(t.cert_not_after),
            cert_days_left: t.cert_days_left,
            verified: t.verified,
        }
    }
}

impl From<&pb::TlsInfo> for core::TlsInfo {
    fn from(t: &pb::TlsInfo) -> Self {
        core::TlsInfo {
            version: t.version.clone(),
            cipher: t.cipher.clone(),
            alpn: t.alpn.clone(),
            subject: t.subject.clone(),
            issuer: t.issuer.clone(),
            cert_not_after: from_unix_us(t.cert_not_after_unix_us),
            cert_days_left: t.cert_days_left,
            verified: t.verified,
        }
    }
}

fn parse_addr(field: &'static str, text: &Option<String>) -> Result<Option<SocketAddr>, ConvertError> {
    text.as_deref()
        .map(|s| {
            s.parse().map_err(|e| ConvertError::Invalid {
                message: MSG,
                field,
                reason: format!("{s:?}: {e}"),
            })
        })
        .transpose()
}

fn status(field: &'static str, code: Option<u32>) -> Result<Option<u16>, ConvertError> {
    code.map(|c| {
        u16::try_from(c).ok().filter(|c| (100..=599).contains(c)).ok_or_else(|| ConvertError::Invalid {
            message: MSG,
            field,
            reason: format!("{c} is not an HTTP status"),
        })
    })
    .transpose()
}

impl From<&core::CheckResult> for pb::CheckResult {
    fn from(r: &core::CheckResult) -> Self {
        pb::CheckResult {
            url: r.url.clone(),
            kind: to_pb(&CHECK_KINDS, r.kind) as i32,
            ok: r.ok,
            error: r.error.as_ref().map(Into::into),
            status_code: r.status_code.map(u32::from),
            http_version: r.http_version.clone(),
            remote_addr: r.remote_addr.map(|a| a.to_string()),
            phases: Some((&r.phases_ms).into()),
            tls: r.tls.as_ref().map(Into::into),
            body_bytes: r.body_bytes,
            started_at_unix_us: unix_us(r.started_at),
            hops: r
                .hops
                .iter()
                .map(|h| pb::Hop {
                    url: h.url.clone(),
                    status_code: h.status_code.map(u32::from),
                    remote_addr: h.remote_addr.map(|a| a.to_string()),
                    phases: Some((&h.phases_ms).into()),
                })
                .collect(),
            dns_answers: r.dns_answers.clone(),
            attempts: r.attempts.max(1),
        }
    }
}

impl TryFrom<&pb::CheckResult> for core::CheckResult {
    type Error = ConvertError;

    fn try_from(r: &pb::CheckResult) -> Result<Self, ConvertError> {
        let kind =
            from_pb(&CHECK_KINDS, r.kind()).ok_or(ConvertError::Missing { message: MSG, field: "kind" })?;
        let error = r.error.as_ref().map(core::CheckError::try_from).transpose()?;
        if r.ok == error.is_some() {
            return Err(ConvertError::Invalid {
                message: MSG,
                field: "ok",
                reason: "ok must be true exactly when there is no error".into(),
            });
        }
        let hops = r
            .hops
            .iter()
            .map(|h| {
                Ok(core::Hop {
                    url: h.url.clone(),
                    status_code: status("hops.status_code", h.status_code)?,
                    remote_addr: parse_addr("hops.remote_addr", &h.remote_addr)?,
                    phases_ms: h.phases.as_ref().map(Into::into).unwrap_or_default(),
                })
            })
            .collect::<Result<_, ConvertError>>()?;
        Ok(core::CheckResult {
            url: r.url.clone(),
            kind,
            ok: r.ok,
            error,
            status_code: status("status_code", r.status_code)?,
            http_version: r.http_version.clone(),
            remote_addr: parse_addr("remote_addr", &r.remote_addr)?,
            phases_ms: r
                .phases
                .as_ref()
                .map(Into::into)
                .ok_or(ConvertError::Missing { message: MSG, field: "phases" })?,
            tls: r.tls.as_ref().map(Into::into),
            body_bytes: r.body_bytes,
            started_at: from_unix_us(r.started_at_unix_us),
            hops,
            dns_answers: r.dns_answers.clone(),
            attempts: r.attempts.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use std::time::SystemTime;

    fn sample() -> core::CheckResult {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_790_000_000_123_456);
        let phases = core::Phases {
            dns: Duration::from_micros(1),
            ttfb: Duration::from_micros(200_123),
            total: Duration::from_micros(201_000),
            ..Default::default()
        };
        core::CheckResult {
            url: "https://example.com/".into(),
            kind: CheckKind::Https,
            ok: false,
            error: Some(core::CheckError::tls(core::TlsReason::Expired, "certificate expired")),
            status_code: None,
            http_version: None,
            remote_addr: Some("[::1]:443".parse().unwrap()),
            phases_ms: phases,
            tls: Some(core::TlsInfo {
                version: String::new(),
                cipher: String::new(),
                alpn: None,
                subject: "CN=localhost".into(),
                issuer: "CN=Test CA".into(),
                cert_not_after: t - Duration::from_secs(86_400 * 2),
                cert_days_left: -2,
                verified: false,
            }),
            body_bytes: 0,
            started_at: t,
            hops: vec![core::Hop {
                url: "http://example.com/".into(),
                status_code: Some(301),
                remote_addr: None,
                phases_ms: phases,
            }],
            dns_answers: vec![],
            attempts: 1,
        }
    }

    #[test]
    fn check_results_round_trip_through_bytes() {
        let result = sample();
        let bytes = pb::CheckResult::from(&result).encode_to_vec();
        let back = core::CheckResult::try_from(&pb::CheckResult::decode(bytes.as_slice()).unwrap()).unwrap();
        assert_eq!(back, result);
    }

    #[test]
    fn bad_wire_values_are_refused_with_the_field_named() {
        let good = pb::CheckResult::from(&sample());
        let cases: Vec<(pb::CheckResult, &str)> = vec![
            (
                pb::CheckResult { kind: 0, ..good.clone() },
                "CheckResult: field kind is missing or unspecified",
            ),
            (
                pb::CheckResult { ok: true, ..good.clone() },
                "CheckResult: field ok is invalid: ok must be true exactly when there is no error",
            ),
            (
                pb::CheckResult { remote_addr: Some("nope".into()), ..good.clone() },
                "CheckResult: field remote_addr is invalid: \"nope\": invalid socket address syntax",
            ),
            (
                pb::CheckResult { status_code: Some(70000), ..good.clone() },
                "CheckResult: field status_code is invalid: 70000 is not an HTTP status",
            ),
            (pb::CheckResult { phases: None, ..good }, "CheckResult: field phases is missing or unspecified"),
        ];
        for (wire, want) in cases {
            assert_eq!(core::CheckResult::try_from(&wire).unwrap_err().to_string(), want);
        }
    }
}
