//! Table-driven tests of apply: each command against a small fixture mesh,
//! checking the response and that a refused command changes nothing.

use std::collections::BTreeSet;

use super::command::CommandError as E;
use super::command::CommandResponse::{Applied, Rejected};
use super::idempotency::{self, Lookup, RecentRequests};
use super::snapshot::{self, SnapshotFormatError};
use super::*;
use vantage_core::validate::ValidationError as V;

const T0: UnixMillis = UnixMillis(1_700_000_000_000);

fn hash(seed: char) -> TokenHash {
    TokenHash(seed.to_string().repeat(64))
}

fn request(key: &str, command: Command) -> Request {
    Request { idempotency_key: IdempotencyKey(key.into()), issued_at: T0, command }
}

fn endpoint_spec(name: &str, url: &str) -> EndpointSpec {
    EndpointSpec::new(name, url)
}

fn webhook_spec(name: &str, url: &str) -> WebhookSpec {
    WebhookSpec {
        name: name.into(),
        url: url.into(),
        secret: WebhookSecret("whsec_0123456789abcdef".into()),
        format: WebhookFormat::Standard,
        events: BTreeSet::new(),
        labels: Default::default(),
        allow_private: false,
    }
}

/// Regions eu-west, us-east, ap-south (unused); endpoints 1 "api" (in
/// eu-west) and 2 "web"; probe 1 "p1" in us-east with token hash a…; webhook
/// 1 "ops"; maintenance 1 over endpoint 1; admin token 1 "root" with hash c….
fn fixture() -> MeshState {
    let mut state = MeshState::new();
    let mut api = endpoint_spec("api", "https://api.example.com/health");
    api.regions.insert("eu-west".into());
    let setup = [
        Command::AddRegion { name: "eu-west".into() },
        Command::AddRegion { name: "us-east".into() },
        Command::AddRegion { name: "ap-south".into() },
        Command::AddEndpoint(api),
        Command::AddEndpoint(endpoint_spec("web", "tcp://web.example.com:443")),
        Command::RegisterProbe(ProbeSpec {
            name: "p1".into(),
            region: "us-east".into(),
            weight: 100,
            token_hash: hash('a'),
        }),
        Command::AddWebhook(webhook_spec("ops", "https://hooks.example.com/ops")),
        Command::AddMaintenance(MaintenanceSpec {
            starts_at: T0,
            ends_at: UnixMillis(T0.0 + 3_600_000),
            endpoints: BTreeSet::from([EndpointId(1)]),
            labels: Default::default(),
            reason: "upgrade".into(),
        }),
        Command::AddAdminToken(AdminTokenSpec { name: "root".into(), token_hash: hash('c') }),
    ];
    for (i, command) in setup.into_iter().enumerate() {
        let response = state.apply(&request(&format!("setup-{i}"), command));
        assert!(matches!(response, Applied(_)), "fixture step {i}: {response:?}");
    }
    state
}

/// Everything but the memory of requests, which a refusal also updates.
fn tables_without_requests(state: &MeshState) -> MeshState {
    let mut copy = state.clone();
    copy.tables.recent_requests = RecentRequests::default();
    copy
}

type Check = fn(&CommandResponse) -> bool;

#[test]
fn apply_each_command() {
    let long_window = UnixMillis(T0.0 + 32 * 24 * 3_600_000);
    let cases: Vec<(&str, Command, Check)> = vec![
        // Regions.
        ("add region", Command::AddRegion { name: "sa-east".into() }, |r| {
            *r == Applied(Outcome::RegionAdded { name: "sa-east".into() })
        }),
        ("add region twice", Command::AddRegion { name: "eu-west".into() }, |r| {
            matches!(r, Rejected(E::DuplicateName { kind: ObjectKind::Region, .. }))
        }),
        ("region name with spaces", Command::AddRegion { name: "EU West".into() }, |r| {
            matches!(r, Rejected(E::Invalid(V::InvalidName { kind: ObjectKind::Region, .. })))
        }),
        ("remove unused region", Command::RemoveRegion { name: "ap-south".into() }, |r| {
            *r == Applied(Outcome::RegionRemoved { name: "ap-south".into() })
        }),
        ("remove region used by an endpoint", Command::RemoveRegion { name: "eu-west".into() }, |r| {
            matches!(r, Rejected(E::RegionInUse { endpoints: 1, probes: 0, .. }))
        }),
        ("remove region used by a probe", Command::RemoveRegion { name: "us-east".into() }, |r| {
            matches!(r, Rejected(E::RegionInUse { endpoints: 0, probes: 1, .. }))
        }),
        ("remove unknown region", Command::RemoveRegion { name: "mars".into() }, |r| {
            matches!(r, Rejected(E::UnknownRegion { .. }))
        }),
        // Endpoints.
        ("add endpoint", Command::AddEndpoint(endpoint_spec("db", "tcp://db.example.com:5432")), |r| {
            *r == Applied(Outcome::EndpointAdded { id: EndpointId(3) })
        }),
        (
            "add endpoint with a taken name",
            Command::AddEndpoint(endpoint_spec("api", "https://x.example/")),
            |r| matches!(r, Rejected(E::DuplicateName { kind: ObjectKind::Endpoint, .. })),
        ),
        (
            "add endpoint in an unknown region",
            Command::AddEndpoint(EndpointSpec {
                regions: BTreeSet::from(["mars".to_string()]),
                ..endpoint_spec("db", "tcp://db.example.com:5432")
            }),
            |r| *r == Rejected(E::UnknownRegion { region: "mars".into() }),
        ),
        ("add endpoint with a bad scheme", Command::AddEndpoint(endpoint_spec("db", "htp:/x")), |r| {
            matches!(r, Rejected(E::Invalid(V::InvalidTarget { .. })))
        }),
        (
            "add endpoint with a 500 ms interval",
            Command::AddEndpoint(EndpointSpec {
                interval_ms: 500,
                timeout_ms: 100,
                ..endpoint_spec("db", "tcp://h:1")
            }),
            |r| *r == Rejected(E::Invalid(V::InvalidInterval { interval_ms: 500 })),
        ),
        (
            "add endpoint with a 25 h interval",
            Command::AddEndpoint(EndpointSpec {
                interval_ms: 25 * 3_600_000,
                ..endpoint_spec("db", "tcp://h:1")
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidInterval { .. }))),
        ),
        (
            "add endpoint with timeout equal to interval",
            Command::AddEndpoint(EndpointSpec {
                interval_ms: 5_000,
                timeout_ms: 5_000,
                ..endpoint_spec("db", "tcp://h:1")
            }),
            |r| *r == Rejected(E::Invalid(V::InvalidTimeout { timeout_ms: 5_000, interval_ms: 5_000 })),
        ),
        (
            "add endpoint with a bad status set",
            Command::AddEndpoint(EndpointSpec {
                expect: Expectations { status: Some("abc".into()), ..Default::default() },
                ..endpoint_spec("db", "https://h/")
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidAssertion { .. }))),
        ),
        (
            "add endpoint with a bad regex",
            Command::AddEndpoint(EndpointSpec {
                expect: Expectations { body_matches: vec!["(".into()], ..Default::default() },
                ..endpoint_spec("db", "https://h/")
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidAssertion { .. }))),
        ),
        (
            "add endpoint with a bad label key",
            Command::AddEndpoint(EndpointSpec {
                labels: [("bad key".to_string(), "v".to_string())].into(),
                ..endpoint_spec("db", "https://h/")
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidLabel { .. }))),
        ),
        ("add endpoint named like an id", Command::AddEndpoint(endpoint_spec("42", "https://h/")), |r| {
            matches!(r, Rejected(E::Invalid(V::InvalidName { kind: ObjectKind::Endpoint, .. })))
        }),
        (
            "update unknown endpoint",
            Command::UpdateEndpoint { id: EndpointId(99), spec: endpoint_spec("x", "https://h/") },
            |r| *r == Rejected(E::NotFound { kind: ObjectKind::Endpoint, id: 99 }),
        ),
        (
            "update endpoint to what it is",
            Command::UpdateEndpoint {
                id: EndpointId(2),
                spec: endpoint_spec("web", "tcp://web.example.com:443"),
            },
            |r| *r == Applied(Outcome::EndpointUpdated { id: EndpointId(2), changed: false }),
        ),
        (
            "rename endpoint",
            Command::UpdateEndpoint {
                id: EndpointId(2),
                spec: endpoint_spec("www", "tcp://web.example.com:443"),
            },
            |r| *r == Applied(Outcome::EndpointUpdated { id: EndpointId(2), changed: true }),
        ),
        (
            "rename endpoint to a taken name",
            Command::UpdateEndpoint {
                id: EndpointId(2),
                spec: endpoint_spec("api", "tcp://web.example.com:443"),
            },
            |r| matches!(r, Rejected(E::DuplicateName { kind: ObjectKind::Endpoint, .. })),
        ),
        ("pause endpoint", Command::SetEndpointPaused { id: EndpointId(1), paused: true }, |r| {
            *r == Applied(Outcome::EndpointUpdated { id: EndpointId(1), changed: true })
        }),
        ("resume a running endpoint", Command::SetEndpointPaused { id: EndpointId(1), paused: false }, |r| {
            *r == Applied(Outcome::EndpointUpdated { id: EndpointId(1), changed: false })
        }),
        ("remove endpoint", Command::RemoveEndpoint { id: EndpointId(1) }, |r| {
            *r == Applied(Outcome::EndpointRemoved { id: EndpointId(1) })
        }),
        ("remove unknown endpoint", Command::RemoveEndpoint { id: EndpointId(7) }, |r| {
            *r == Rejected(E::NotFound { kind: ObjectKind::Endpoint, id: 7 })
        }),
        // Probes.
        (
            "register probe",
            Command::RegisterProbe(ProbeSpec {
                name: "p2".into(),
                region: "eu-west".into(),
                weight: 50,
                token_hash: hash('b'),
            }),
            |r| *r == Applied(Outcome::ProbeRegistered { id: ProbeId(2) }),
        ),
        (
            "register probe in an unknown region",
            Command::RegisterProbe(ProbeSpec {
                name: "p2".into(),
                region: "mars".into(),
                weight: 50,
                token_hash: hash('b'),
            }),
            |r| matches!(r, Rejected(E::UnknownRegion { .. })),
        ),
        (
            "register probe with a taken name",
            Command::RegisterProbe(ProbeSpec {
                name: "p1".into(),
                region: "eu-west".into(),
                weight: 50,
                token_hash: hash('b'),
            }),
            |r| matches!(r, Rejected(E::DuplicateName { kind: ObjectKind::Probe, .. })),
        ),
        (
            "register probe with weight 0",
            Command::RegisterProbe(ProbeSpec {
                name: "p2".into(),
                region: "eu-west".into(),
                weight: 0,
                token_hash: hash('b'),
            }),
            |r| matches!(r, Rejected(E::InvalidWeight { weight: 0, .. })),
        ),
        (
            "register probe with a bad token hash",
            Command::RegisterProbe(ProbeSpec {
                name: "p2".into(),
                region: "eu-west".into(),
                weight: 1,
                token_hash: TokenHash("secret".into()),
            }),
            |r| matches!(r, Rejected(E::InvalidTokenHash { .. })),
        ),
        (
            "register probe with a taken token",
            Command::RegisterProbe(ProbeSpec {
                name: "p2".into(),
                region: "eu-west".into(),
                weight: 1,
                token_hash: hash('a'),
            }),
            |r| *r == Rejected(E::DuplicateTokenHash { kind: ObjectKind::Probe }),
        ),
        ("set probe weight too high", Command::SetProbeWeight { id: ProbeId(1), weight: 20_000 }, |r| {
            matches!(r, Rejected(E::InvalidWeight { weight: 20_000, .. }))
        }),
        ("set probe weight", Command::SetProbeWeight { id: ProbeId(1), weight: 7 }, |r| {
            *r == Applied(Outcome::ProbeUpdated { id: ProbeId(1), changed: true })
        }),
        ("drain probe", Command::SetProbeDrained { id: ProbeId(1), drained: true }, |r| {
            *r == Applied(Outcome::ProbeUpdated { id: ProbeId(1), changed: true })
        }),
        ("drain unknown probe", Command::SetProbeDrained { id: ProbeId(5), drained: true }, |r| {
            *r == Rejected(E::NotFound { kind: ObjectKind::Probe, id: 5 })
        }),
        ("rotate probe token", Command::RotateProbeToken { id: ProbeId(1), token_hash: hash('d') }, |r| {
            *r == Applied(Outcome::ProbeUpdated { id: ProbeId(1), changed: true })
        }),
        (
            "rotate to a taken token",
            Command::RotateProbeToken { id: ProbeId(1), token_hash: hash('a') },
            |r| matches!(r, Rejected(E::DuplicateTokenHash { .. })),
        ),
        ("remove probe", Command::RemoveProbe { id: ProbeId(1) }, |r| {
            *r == Applied(Outcome::ProbeRemoved { id: ProbeId(1) })
        }),
        // Pins.
        (
            "pin endpoint",
            Command::PinEndpoint { endpoint: EndpointId(2), region: "us-east".into(), probe: ProbeId(1) },
            |r| {
                *r == Applied(Outcome::EndpointPinned {
                    endpoint: EndpointId(2),
                    region: "us-east".into(),
                    probe: ProbeId(1),
                    changed: true,
                })
            },
        ),
        (
            "pin unknown endpoint",
            Command::PinEndpoint { endpoint: EndpointId(9), region: "us-east".into(), probe: ProbeId(1) },
            |r| *r == Rejected(E::NotFound { kind: ObjectKind::Endpoint, id: 9 }),
        ),
        (
            "pin in an unknown region",
            Command::PinEndpoint { endpoint: EndpointId(2), region: "mars".into(), probe: ProbeId(1) },
            |r| *r == Rejected(E::UnknownRegion { region: "mars".into() }),
        ),
        (
            "pin in a region the endpoint is not checked from",
            Command::PinEndpoint { endpoint: EndpointId(1), region: "us-east".into(), probe: ProbeId(1) },
            |r| {
                *r == Rejected(E::RegionNotChecked {
                    endpoint: "api".into(),
                    region: "us-east".into(),
                    regions: vec!["eu-west".into()],
                })
            },
        ),
        (
            "pin to an unknown probe",
            Command::PinEndpoint { endpoint: EndpointId(2), region: "us-east".into(), probe: ProbeId(4) },
            |r| *r == Rejected(E::NotFound { kind: ObjectKind::Probe, id: 4 }),
        ),
        (
            "pin to a probe of another region",
            Command::PinEndpoint { endpoint: EndpointId(2), region: "eu-west".into(), probe: ProbeId(1) },
            |r| matches!(r, Rejected(E::PinProbeInOtherRegion { probe_region, .. }) if probe_region == "us-east"),
        ),
        ("unpin what is not pinned", Command::UnpinEndpoint { endpoint: EndpointId(2), region: None }, |r| {
            *r == Applied(Outcome::EndpointUnpinned { endpoint: EndpointId(2), regions: vec![] })
        }),
        ("unpin unknown endpoint", Command::UnpinEndpoint { endpoint: EndpointId(9), region: None }, |r| {
            *r == Rejected(E::NotFound { kind: ObjectKind::Endpoint, id: 9 })
        }),
        (
            "unpin in an unknown region",
            Command::UnpinEndpoint { endpoint: EndpointId(2), region: Some("mars".into()) },
            |r| *r == Rejected(E::UnknownRegion { region: "mars".into() }),
        ),
        // Webhooks.
        ("add webhook", Command::AddWebhook(webhook_spec("pager", "https://pager.example.com/in")), |r| {
            *r == Applied(Outcome::WebhookAdded { id: WebhookId(2) })
        }),
        (
            "add webhook with an ftp URL",
            Command::AddWebhook(webhook_spec("pager", "ftp://x.example/")),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidWebhookUrl { .. }))),
        ),
        (
            "add webhook with credentials in the URL",
            Command::AddWebhook(webhook_spec("pager", "https://u:p@x.example/")),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidWebhookUrl { .. }))),
        ),
        (
            "add webhook with a short secret",
            Command::AddWebhook(WebhookSpec {
                secret: WebhookSecret("short".into()),
                ..webhook_spec("pager", "https://x.example/")
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidWebhookSecret { .. }))),
        ),
        (
            "add webhook with a taken name",
            Command::AddWebhook(webhook_spec("ops", "https://x.example/")),
            |r| matches!(r, Rejected(E::DuplicateName { kind: ObjectKind::Webhook, .. })),
        ),
        (
            "update webhook",
            Command::UpdateWebhook {
                id: WebhookId(1),
                spec: WebhookSpec {
                    format: WebhookFormat::Slack,
                    ..webhook_spec("ops", "https://hooks.example.com/ops")
                },
            },
            |r| *r == Applied(Outcome::WebhookUpdated { id: WebhookId(1), changed: true }),
        ),
        ("remove unknown webhook", Command::RemoveWebhook { id: WebhookId(9) }, |r| {
            *r == Rejected(E::NotFound { kind: ObjectKind::Webhook, id: 9 })
        }),
        // Maintenance windows.
        (
            "add maintenance",
            Command::AddMaintenance(MaintenanceSpec {
                starts_at: T0,
                ends_at: UnixMillis(T0.0 + 60_000),
                endpoints: BTreeSet::from([EndpointId(2)]),
                labels: Default::default(),
                reason: String::new(),
            }),
            |r| *r == Applied(Outcome::MaintenanceAdded { id: MaintenanceId(2) }),
        ),
        (
            "add maintenance ending before it starts",
            Command::AddMaintenance(MaintenanceSpec {
                starts_at: UnixMillis(T0.0 + 60_000),
                ends_at: T0,
                endpoints: BTreeSet::new(),
                labels: Default::default(),
                reason: String::new(),
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidMaintenanceWindow { .. }))),
        ),
        (
            "add maintenance already over",
            Command::AddMaintenance(MaintenanceSpec {
                starts_at: UnixMillis(T0.0 - 120_000),
                ends_at: UnixMillis(T0.0 - 60_000),
                endpoints: BTreeSet::new(),
                labels: Default::default(),
                reason: String::new(),
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidMaintenanceWindow { .. }))),
        ),
        (
            "add maintenance longer than 31 days",
            Command::AddMaintenance(MaintenanceSpec {
                starts_at: T0,
                ends_at: long_window,
                endpoints: BTreeSet::new(),
                labels: Default::default(),
                reason: String::new(),
            }),
            |r| matches!(r, Rejected(E::Invalid(V::InvalidMaintenanceWindow { .. }))),
        ),
        (
            "add maintenance over an unknown endpoint",
            Command::AddMaintenance(MaintenanceSpec {
                starts_at: T0,
                ends_at: UnixMillis(T0.0 + 60_000),
                endpoints: BTreeSet::from([EndpointId(42)]),
                labels: Default::default(),
                reason: String::new(),
            }),
            |r| *r == Rejected(E::NotFound { kind: ObjectKind::Endpoint, id: 42 }),
        ),
        ("remove maintenance", Command::RemoveMaintenance { id: MaintenanceId(1) }, |r| {
            *r == Applied(Outcome::MaintenanceRemoved { id: MaintenanceId(1) })
        }),
        // Admin tokens.
        (
            "add admin token",
            Command::AddAdminToken(AdminTokenSpec { name: "ci".into(), token_hash: hash('e') }),
            |r| *r == Applied(Outcome::AdminTokenAdded { id: AdminTokenId(2) }),
        ),
        (
            "add admin token with a taken hash",
            Command::AddAdminToken(AdminTokenSpec { name: "ci".into(), token_hash: hash('c') }),
            |r| *r == Rejected(E::DuplicateTokenHash { kind: ObjectKind::AdminToken }),
        ),
        (
            "add admin token with a taken name",
            Command::AddAdminToken(AdminTokenSpec { name: "root".into(), token_hash: hash('e') }),
            |r| matches!(r, Rejected(E::DuplicateName { kind: ObjectKind::AdminToken, .. })),
        ),
        ("revoke admin token", Command::RevokeAdminToken { id: AdminTokenId(1) }, |r| {
            *r == Applied(Outcome::AdminTokenRevoked { id: AdminTokenId(1) })
        }),
        ("revoke unknown admin token", Command::RevokeAdminToken { id: AdminTokenId(3) }, |r| {
            *r == Rejected(E::NotFound { kind: ObjectKind::AdminToken, id: 3 })
        }),
    ];

    let base = fixture();
    for (name, command, check) in cases {
        let mut state = base.clone();
        let response = state.apply(&request("case", command));
        assert!(check(&response), "{name}: unexpected {response:?}");
        let unchanged = tables_without_requests(&state) == tables_without_requests(&base);
        match response {
            Rejected(_) => assert!(unchanged, "{name}: a refused command changed the state"),
            Applied(
                Outcome::EndpointUpdated { changed: false, .. }
                | Outcome::ProbeUpdated { changed: false, .. }
                | Outcome::WebhookUpdated { changed: false, .. }
                | Outcome::EndpointPinned { changed: false, .. },
            ) => assert!(unchanged, "{name}: a no-op changed the state"),
            Applied(Outcome::EndpointUnpinned { regions, .. }) if regions.is_empty() => {
                assert!(unchanged, "{name}: a no-op changed the state")
            }
            _ => assert!(!unchanged, "{name}: applied but changed nothing"),
        }
    }
}

#[test]
fn applied_commands_change_what_they_say() {
    let mut state = fixture();
    assert_eq!(state.endpoints()[&EndpointId(1)].kind, CheckKind::Https);
    assert_eq!(state.endpoints()[&EndpointId(2)].kind, CheckKind::Tcp);
    assert_eq!(state.endpoint_by_name("api").map(|e| e.id), Some(EndpointId(1)));

    let renamed = endpoint_spec("www", "dns://example.com?type=AAAA");
    state.apply(&request("rename", Command::UpdateEndpoint { id: EndpointId(2), spec: renamed }));
    assert!(state.endpoint_by_name("web").is_none());
    let www = state.endpoint_by_name("www").expect("renamed endpoint");
    assert_eq!((www.id, www.kind), (EndpointId(2), CheckKind::Dns));

    state.apply(&request("rm", Command::RemoveEndpoint { id: EndpointId(1) }));
    assert!(
        state.maintenance_windows()[&MaintenanceId(1)].spec.endpoints.is_empty(),
        "a removed endpoint leaves the maintenance windows"
    );

    state.apply(&request("drain", Command::SetProbeDrained { id: ProbeId(1), drained: true }));
    assert!(state.probes()[&ProbeId(1)].drained);
    assert_eq!(state.probe_by_token_hash(&hash('a')).map(|p| p.id), Some(ProbeId(1)));
    assert_eq!(state.admin_token_by_hash(&hash('c')).map(|t| t.name.as_str()), Some("root"));
}

/// The fixture plus probes p2 (eu-west) and p3 (us-east), and endpoint
/// "web" pinned to p1 in us-east and to p2 in eu-west.
fn pinned_fixture() -> MeshState {
    let mut state = fixture();
    let setup = [
        Command::RegisterProbe(ProbeSpec {
            name: "p2".into(),
            region: "eu-west".into(),
            weight: 100,
            token_hash: hash('b'),
        }),
        Command::RegisterProbe(ProbeSpec {
            name: "p3".into(),
            region: "us-east".into(),
            weight: 100,
            token_hash: hash('d'),
        }),
        Command::PinEndpoint { endpoint: EndpointId(2), region: "us-east".into(), probe: ProbeId(1) },
        Command::PinEndpoint { endpoint: EndpointId(2), region: "eu-west".into(), probe: ProbeId(2) },
    ];
    for (i, command) in setup.into_iter().enumerate() {
        let response = state.apply(&request(&format!("pin-setup-{i}"), command));
        assert!(matches!(response, Applied(_)), "pin fixture step {i}: {response:?}");
    }
    state
}

fn pins_of(state: &MeshState, endpoint: u64) -> Vec<(String, u64)> {
    state
        .pins()
        .get(&EndpointId(endpoint))
        .map(|pins| pins.iter().map(|(r, p)| (r.clone(), p.0)).collect())
        .unwrap_or_default()
}

#[test]
fn pins_are_replaced_and_removed_by_region_or_all_at_once() {
    let mut state = pinned_fixture();
    assert_eq!(pins_of(&state, 2), [("eu-west".to_string(), 2), ("us-east".to_string(), 1)]);

    let same = Command::PinEndpoint { endpoint: EndpointId(2), region: "us-east".into(), probe: ProbeId(1) };
    let response = state.apply(&request("same", same));
    assert!(matches!(response, Applied(Outcome::EndpointPinned { changed: false, .. })), "{response:?}");
    let other = Command::PinEndpoint { endpoint: EndpointId(2), region: "us-east".into(), probe: ProbeId(3) };
    let response = state.apply(&request("other", other));
    assert!(matches!(response, Applied(Outcome::EndpointPinned { changed: true, .. })), "{response:?}");
    assert_eq!(pins_of(&state, 2), [("eu-west".to_string(), 2), ("us-east".to_string(), 3)], "replaced");

    let one = Command::UnpinEndpoint { endpoint: EndpointId(2), region: Some("eu-west".into()) };
    let response = state.apply(&request("unpin-eu", one));
    assert_eq!(
        response,
        Applied(Outcome::EndpointUnpinned { endpoint: EndpointId(2), regions: vec!["eu-west".into()] })
    );
    assert_eq!(pins_of(&state, 2), [("us-east".to_string(), 3)]);

    let response =
        state.apply(&request("unpin-all", Command::UnpinEndpoint { endpoint: EndpointId(2), region: None }));
    assert_eq!(
        response,
        Applied(Outcome::EndpointUnpinned { endpoint: EndpointId(2), regions: vec!["us-east".into()] })
    );
    assert!(state.pins().is_empty(), "no empty entries are left behind: {:?}", state.pins());
}

#[test]
fn pins_go_with_the_endpoint_probe_or_region_they_name() {
    // Removing the probe drops its pins only.
    let mut state = pinned_fixture();
    state.apply(&request("rm-p1", Command::RemoveProbe { id: ProbeId(1) }));
    assert_eq!(pins_of(&state, 2), [("eu-west".to_string(), 2)]);

    // Removing the endpoint drops all of its pins.
    let mut state = pinned_fixture();
    state.apply(&request("rm-web", Command::RemoveEndpoint { id: EndpointId(2) }));
    assert!(state.pins().is_empty());

    // An update that stops checking from a pinned region drops that pin;
    // one that keeps every region keeps them all.
    let mut state = pinned_fixture();
    let mut web = endpoint_spec("web", "tcp://web.example.com:443");
    web.interval_ms = 30_000;
    state.apply(&request("slower", Command::UpdateEndpoint { id: EndpointId(2), spec: web.clone() }));
    assert_eq!(pins_of(&state, 2).len(), 2);
    web.regions = BTreeSet::from(["us-east".to_string(), "ap-south".to_string()]);
    state.apply(&request("narrower", Command::UpdateEndpoint { id: EndpointId(2), spec: web }));
    assert_eq!(pins_of(&state, 2), [("us-east".to_string(), 1)]);

    // A region with a pin has a probe, so it cannot be removed; once the
    // probe is gone, so is the pin, and the region can go.
    let mut state = pinned_fixture();
    let response = state.apply(&request("rm-eu", Command::RemoveRegion { name: "eu-west".into() }));
    assert!(matches!(response, Rejected(E::RegionInUse { .. })), "{response:?}");
    state.apply(&request("rm-p2", Command::RemoveProbe { id: ProbeId(2) }));
    state.apply(&request("rm-api", Command::RemoveEndpoint { id: EndpointId(1) }));
    let response = state.apply(&request("rm-eu-2", Command::RemoveRegion { name: "eu-west".into() }));
    assert_eq!(response, Applied(Outcome::RegionRemoved { name: "eu-west".into() }));
    assert!(state.pins().values().all(|pins| !pins.contains_key("eu-west")), "{:?}", state.pins());
}

#[test]
fn snapshots_carry_pins_and_leave_them_out_when_there_are_none() {
    let state = pinned_fixture();
    let bytes = snapshot::encode(&state).unwrap();
    let decoded = snapshot::decode(&bytes).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(pins_of(&decoded, 2), [("eu-west".to_string(), 2), ("us-east".to_string(), 1)]);

    // Without pins the snapshot has no "pins" key: a build from before
    // pins (which refuses unknown fields) still reads it.
    let text = String::from_utf8(snapshot::encode(&fixture()).unwrap()).unwrap();
    assert!(!text.contains("\"pins\""), "{text}");
    assert!(text.starts_with(r#"{"version":1,"#), "{text}");
}

#[test]
fn ids_are_never_reused() {
    let mut state = fixture();
    state.apply(&request("rm", Command::RemoveEndpoint { id: EndpointId(2) }));
    let response = state.apply(&request("add", Command::AddEndpoint(endpoint_spec("web", "https://h/"))));
    assert_eq!(response, Applied(Outcome::EndpointAdded { id: EndpointId(3) }));
    // A refused add does not consume an id either.
    state.apply(&request("dup", Command::AddEndpoint(endpoint_spec("web", "https://h/"))));
    let response = state.apply(&request("add2", Command::AddEndpoint(endpoint_spec("web2", "https://h/"))));
    assert_eq!(response, Applied(Outcome::EndpointAdded { id: EndpointId(4) }));
}

#[test]
fn a_retried_request_returns_the_first_response_without_applying_twice() {
    let mut state = fixture();
    let add = request("k-1", Command::AddEndpoint(endpoint_spec("db", "tcp://db:5432")));
    let first = state.apply(&add);
    assert_eq!(first, Applied(Outcome::EndpointAdded { id: EndpointId(3) }));
    let after_first = state.clone();

    // Same key, same command, even stamped at another time: a retry.
    let retry = Request { issued_at: UnixMillis(T0.0 + 5_000), ..add.clone() };
    assert_eq!(state.apply(&retry), first);
    assert_eq!(state, after_first, "a retry changes nothing");
    assert_eq!(state.endpoints().len(), 3);

    // Same key, different command: refused, nothing changes.
    let reuse = request("k-1", Command::AddEndpoint(endpoint_spec("other", "tcp://db:5432")));
    assert_eq!(state.apply(&reuse), Rejected(E::IdempotencyKeyReused { key: "k-1".into() }));
    assert_eq!(state, after_first);

    // A refusal is remembered too: its retry gets the same refusal.
    let dup = request("k-2", Command::AddEndpoint(endpoint_spec("db", "tcp://db:5432")));
    let refused = state.apply(&dup);
    assert!(matches!(refused, Rejected(E::DuplicateName { .. })));
    state.apply(&request("k-3", Command::RemoveEndpoint { id: EndpointId(3) }));
    assert_eq!(state.apply(&dup), refused);
}

#[test]
fn bad_idempotency_keys_are_refused() {
    for key in ["", "has space", &"k".repeat(129), "tab\t"] {
        let mut state = fixture();
        let before = state.clone();
        let response = state.apply(&request(key, Command::AddRegion { name: "sa-east".into() }));
        assert!(matches!(response, Rejected(E::InvalidIdempotencyKey { .. })), "{key:?}: {response:?}");
        assert_eq!(state, before, "{key:?}");
    }
}

#[test]
fn the_memory_of_requests_is_bounded_and_forgets_the_oldest() {
    let mut requests = RecentRequests::with_capacity(3);
    for key in ["a", "b", "c", "d"] {
        requests.remember(IdempotencyKey(key.into()), 1, CommandResponse::Empty);
    }
    assert_eq!(requests.len(), 3);
    assert_eq!(requests.lookup(&IdempotencyKey("a".into()), 1), Lookup::New);
    assert_eq!(requests.lookup(&IdempotencyKey("b".into()), 1), Lookup::Replay(&CommandResponse::Empty));
    assert_eq!(requests.lookup(&IdempotencyKey("d".into()), 2), Lookup::Conflict);

    // The state remembers the last 10,000 requests.
    let mut state = fixture();
    let first = request("toggle-0", Command::SetEndpointPaused { id: EndpointId(1), paused: true });
    state.apply(&first);
    for i in 1..=idempotency::DEFAULT_CAPACITY {
        let paused = i % 2 == 1;
        state.apply(&request(
            &format!("toggle-{i}"),
            Command::SetEndpointPaused { id: EndpointId(1), paused },
        ));
    }
    assert_eq!(state.recent_requests().len(), idempotency::DEFAULT_CAPACITY);
    assert!(!state.endpoints()[&EndpointId(1)].spec.paused);
    // The first key is forgotten, so sending it again applies again.
    assert_eq!(state.apply(&first), Applied(Outcome::EndpointUpdated { id: EndpointId(1), changed: true }));
}

#[test]
fn apply_is_deterministic() {
    let run = || {
        let mut state = fixture();
        let mut responses = Vec::new();
        for i in 0..50u64 {
            let command = Command::AddEndpoint(EndpointSpec {
                labels: [(format!("k{}", i % 7), format!("v{i}"))].into(),
                ..endpoint_spec(&format!("e{i}"), "https://h.example/")
            });
            responses.push(state.apply(&Request {
                idempotency_key: IdempotencyKey(format!("key-{i}")),
                issued_at: UnixMillis(T0.0 + i),
                command,
            }));
        }
        (state, responses)
    };
    let (a, responses_a) = run();
    let (b, responses_b) = run();
    assert_eq!(responses_a, responses_b);
    assert_eq!(a, b);
    assert_eq!(snapshot::encode(&a).unwrap(), snapshot::encode(&b).unwrap(), "snapshots are byte-identical");
}

#[test]
fn snapshots_round_trip() {
    let state = fixture();
    let bytes = snapshot::encode(&state).unwrap();
    assert!(bytes.starts_with(br#"{"version":1,"state":{"#), "{}", String::from_utf8_lossy(&bytes[..40]));
    let decoded = snapshot::decode(&bytes).unwrap();
    assert_eq!(decoded, state);
    assert_eq!(decoded.endpoint_by_name("web").map(|e| e.id), Some(EndpointId(2)), "name index rebuilt");
    assert_eq!(decoded.recent_requests().len(), state.recent_requests().len());

    // A retry after a restart from the snapshot still replays.
    let mut restored = decoded;
    let replay = restored.apply(&request("setup-3", fixture_api_command()));
    assert_eq!(replay, Applied(Outcome::EndpointAdded { id: EndpointId(1) }));
}

fn fixture_api_command() -> Command {
    let mut api = endpoint_spec("api", "https://api.example.com/health");
    api.regions.insert("eu-west".into());
    Command::AddEndpoint(api)
}

#[test]
fn snapshots_of_unknown_versions_or_shapes_are_refused() {
    let cases: [(&[u8], &str); 4] = [
        (
            br#"{"version":2,"state":{}}"#,
            "snapshot format version 2 is not supported (this build reads version 1); run a coordinator build that knows it",
        ),
        (b"not json", "snapshot is not a versioned JSON document: expected ident at line 1 column 2"),
        (br#"{"state":{}}"#, "snapshot is not a versioned JSON document: missing field `version` at line 1 column 12"),
        (br#"{"version":1,"state":{"rollups":[]}}"#, "snapshot state (format version 1) does not decode: unknown field `rollups`"),
    ];
    for (bytes, want) in cases {
        let error = snapshot::decode(bytes).unwrap_err();
        assert!(error.to_string().starts_with(want), "{:?}: got {error}", String::from_utf8_lossy(bytes));
    }
    assert!(matches!(
        snapshot::decode(br#"{"version":7}"#),
        Err(SnapshotFormatError::UnsupportedVersion { found: 7, supported: 1 })
    ));
}

#[test]
fn requests_round_trip_as_json() {
    let command = Command::AddWebhook(webhook_spec("ops", "https://hooks.example.com/"));
    let original = request("k", command);
    let json = serde_json::to_string(&original).unwrap();
    assert!(json.contains(r#""add_webhook":"#), "{json}");
    let back: Request = serde_json::from_str(&json).unwrap();
    assert_eq!(back, original);
}

#[test]
fn error_messages_are_lowercase_and_say_what_to_do() {
    let cases = [
        (
            E::UnknownRegion { region: "mars".into() },
            "unknown region \"mars\" (add it first: vantagectl region add mars)",
        ),
        (
            E::DuplicateName { kind: ObjectKind::Endpoint, name: "api".into() },
            "endpoint \"api\" already exists",
        ),
        (E::NotFound { kind: ObjectKind::Maintenance, id: 4 }, "no maintenance window has id 4"),
        (
            E::Invalid(V::InvalidTimeout { timeout_ms: 5_000, interval_ms: 5_000 }),
            "invalid timeout 5s: must be below the interval (5s)",
        ),
    ];
    for (error, want) in cases {
        assert_eq!(error.to_string(), want);
    }
    assert!(format!("{:?}", WebhookSecret("whsec_topsecret_value".into())).contains("redacted"));
}

fn ingest(probe: u64, ranges: &[(u64, u64)], accepted: u64, rejected: u64) -> IngestEntry {
    let mut seqs = SeqRanges::new();
    for &(lo, hi) in ranges {
        seqs.insert_range(lo, hi);
    }
    IngestEntry { probe: ProbeId(probe), seqs, accepted, rejected }
}

#[test]
fn ingest_checkpoints_build_the_ledger_and_count_numbers_recorded_twice() {
    let mut state = fixture();
    let remembered = state.recent_requests().len();
    let first = request("ingest-1", Command::RecordIngest { entries: vec![ingest(1, &[(10, 19)], 9, 1)] });
    assert_eq!(state.apply(&first), Applied(Outcome::IngestRecorded { duplicates: 0 }));
    // The same key again is applied again: checkpoints are not remembered
    // (the ledger makes them idempotent), so the overlap shows as duplicates.
    assert_eq!(state.apply(&first), Applied(Outcome::IngestRecorded { duplicates: 10 }));
    let next =
        Command::RecordIngest { entries: vec![ingest(1, &[(18, 25)], 8, 0), ingest(99, &[(1, 5)], 5, 0)] };
    assert_eq!(state.apply(&request("ingest-2", next)), Applied(Outcome::IngestRecorded { duplicates: 2 }));
    let ledger = &state.ingest()[&ProbeId(1)];
    assert_eq!(ledger.processed.ranges(), [(10, 25)]);
    assert_eq!((ledger.accepted, ledger.rejected, ledger.duplicates), (26, 2, 12));
    assert!(!state.ingest().contains_key(&ProbeId(99)), "a checkpoint for an unknown probe is ignored");
    assert_eq!(state.recent_requests().len(), remembered, "checkpoints stay out of the memory of requests");

    let reloaded = snapshot::decode(&snapshot::encode(&state).expect("encodes")).expect("decodes");
    assert_eq!(reloaded.ingest(), state.ingest());

    let removed = state.apply(&request("rm", Command::RemoveProbe { id: ProbeId(1) }));
    assert!(matches!(removed, Applied(Outcome::ProbeRemoved { .. })), "{removed:?}");
    assert!(state.ingest().is_empty(), "a removed probe's ledger goes with it");
}

#[test]
fn a_snapshot_from_before_the_ingest_ledger_still_loads() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&snapshot::encode(&fixture()).expect("encodes")).expect("json");
    json["state"].as_object_mut().expect("an object").remove("ingest");
    let old = serde_json::to_vec(&json).expect("bytes");
    assert!(snapshot::decode(&old).expect("an old snapshot loads").ingest().is_empty());
}

/// Snapshots (and log entries) written before the specs moved to
/// `vantage-core` name some fields differently; they still decode to the
/// same state.
#[test]
fn snapshots_in_the_older_spec_layout_still_decode() {
    let state = fixture();
    let mut json: serde_json::Value = serde_json::from_slice(&snapshot::encode(&state).unwrap()).unwrap();
    let tables = &mut json["state"];
    let mut renamed = 0;
    for (_, endpoint) in tables["endpoints"].as_object_mut().unwrap() {
        let spec = endpoint["spec"].as_object_mut().unwrap();
        if let Some(expect) = spec.remove("expect") {
            spec.insert("assertions".into(), expect);
            renamed += 1;
        }
    }
    for (_, webhook) in tables["webhooks"].as_object_mut().unwrap() {
        let spec = webhook["spec"].as_object_mut().unwrap();
        let events = spec.remove("events").unwrap();
        let labels = spec.remove("labels").unwrap();
        spec.insert("filter".into(), serde_json::json!({"events": events, "labels": labels}));
        renamed += 1;
    }
    for (_, window) in tables["maintenance"].as_object_mut().unwrap() {
        let spec = window["spec"].as_object_mut().unwrap();
        for (new, old) in [("starts_at_unix_ms", "starts_at"), ("ends_at_unix_ms", "ends_at")] {
            let value = spec.remove(new).unwrap();
            spec.insert(old.into(), value);
        }
        renamed += 1;
    }
    assert!(renamed >= 4, "the fixture has endpoints, a webhook and a window to rename");
    let old = serde_json::to_vec(&json).unwrap();
    assert_eq!(snapshot::decode(&old).unwrap(), state);
}

/// Refusals are replicated (and remembered under their idempotency key) in
/// the form they had before the rules moved to `vantage-core`.
#[test]
fn refusals_keep_their_replicated_form() {
    let refused = CommandResponse::Rejected(E::Invalid(V::InvalidInterval { interval_ms: 500 }));
    let json = serde_json::to_string(&refused).unwrap();
    assert_eq!(json, r#"{"rejected":{"invalid_interval":{"interval_ms":500}}}"#);
    assert_eq!(serde_json::from_str::<CommandResponse>(&json).unwrap(), refused);
    let other = CommandResponse::Rejected(E::UnknownRegion { region: "mars".into() });
    let json = serde_json::to_string(&other).unwrap();
    assert_eq!(serde_json::from_str::<CommandResponse>(&json).unwrap(), other);
}

#[test]
fn a_quorum_larger_than_the_endpoints_regions_is_refused() {
    let mut state = fixture();
    let mut spec = endpoint_spec("q", "https://q.example.com/");
    spec.quorum = Some(4);
    let before = tables_without_requests(&state);
    let response = state.apply(&request("q1", Command::AddEndpoint(spec.clone())));
    assert!(matches!(response, Rejected(E::Invalid(V::InvalidAgreement { .. }))), "{response:?}");
    assert_eq!(tables_without_requests(&state), before, "nothing changed");
    spec.regions = ["eu-west".to_string()].into();
    spec.quorum = Some(2);
    let response = state.apply(&request("q2", Command::AddEndpoint(spec.clone())));
    assert!(matches!(response, Rejected(E::Invalid(V::InvalidAgreement { .. }))), "{response:?}");
    spec.quorum = Some(1);
    assert!(matches!(state.apply(&request("q3", Command::AddEndpoint(spec))), Applied(_)));
}

fn transition(endpoint: u64, from: State, to: State, at: u64, alert: bool) -> Command {
    Command::RecordTransition(TransitionRecord {
        endpoint: EndpointId(endpoint),
        from,
        to,
        at: UnixMillis(T0.0 + at),
        alert,
        evidence: vec![RegionEvidence {
            region: "eu-west".into(),
            verdict: Verdict::Down(vantage_core::result::ErrorKind::Timeout),
            probes: Vec::new(),
        }],
    })
}

use vantage_core::agreement::{RegionEvidence, State, Verdict};

#[test]
fn a_transition_opens_an_incident_and_queues_one_delivery_per_matching_webhook() {
    let mut state = fixture();
    // Webhook 2 wants only degraded alerts; webhook 3 only endpoints labelled team=db.
    let mut degraded_only = webhook_spec("deg", "https://hooks.example.com/deg");
    degraded_only.events = [AlertEvent::Degraded].into();
    let mut db_only = webhook_spec("db", "https://hooks.example.com/db");
    db_only.labels = [("team".to_string(), "db".to_string())].into();
    for (key, spec) in [("w2", degraded_only), ("w3", db_only)] {
        assert!(matches!(state.apply(&request(key, Command::AddWebhook(spec))), Applied(_)));
    }
    let opened = state.apply(&request("t1", transition(2, State::Unknown, State::Down, 1_000, true)));
    let Applied(Outcome::TransitionRecorded { opened: Some(incident), resolved, deliveries }) = opened else {
        panic!("{opened:?}")
    };
    assert!(resolved.is_empty());
    assert_eq!(deliveries.len(), 1, "only webhook 1 matches an outage of an unlabelled endpoint");
    let delivery = &state.deliveries()[&deliveries[0]];
    assert_eq!(
        (delivery.webhook, delivery.event, delivery.incident),
        (WebhookId(1), AlertEvent::OutageOpened, incident)
    );
    assert!(matches!(delivery.status, DeliveryStatus::Pending { .. }));
    assert_eq!(state.agreement()[&EndpointId(2)].state, State::Down);
    assert_eq!(state.incidents()[&incident].kind, IncidentKind::Outage);
    assert_eq!(state.incidents()[&incident].opened_evidence.len(), 1, "the evidence is kept");

    // A stale transition (from a state not recorded) changes nothing.
    let before = tables_without_requests(&state);
    let stale = state.apply(&request("t2", transition(2, State::Up, State::Degraded, 2_000, true)));
    assert!(matches!(stale, Rejected(E::StaleTransition { .. })), "{stale:?}");
    assert_eq!(tables_without_requests(&state), before);

    // Resolution: the same incident, resolved, one outage_resolved.
    let resolved = state.apply(&request("t3", transition(2, State::Down, State::Up, 3_000, true)));
    let Applied(Outcome::TransitionRecorded { opened: None, resolved, deliveries }) = resolved else {
        panic!("{resolved:?}")
    };
    assert_eq!(resolved, [incident]);
    assert_eq!(state.deliveries()[&deliveries[0]].event, AlertEvent::OutageResolved);
    assert_eq!(state.deliveries()[&deliveries[0]].incident, incident);
    assert_eq!(state.incidents()[&incident].resolved_at, Some(UnixMillis(T0.0 + 3_000)));
    assert!(state.agreement()[&EndpointId(2)].open.is_empty());
}

#[test]
fn an_outage_ending_in_degraded_alerts_about_the_outage() {
    let mut state = fixture();
    let opened = state.apply(&request("t1", transition(2, State::Unknown, State::Down, 1_000, true)));
    let Applied(Outcome::TransitionRecorded { opened: Some(outage), .. }) = opened else {
        panic!("{opened:?}")
    };
    let response = state.apply(&request("t2", transition(2, State::Down, State::Degraded, 2_000, true)));
    let Applied(Outcome::TransitionRecorded { opened: Some(degraded), resolved, deliveries }) = response
    else {
        panic!("{response:?}")
    };
    assert_eq!(resolved, [outage]);
    assert_eq!(state.incidents()[&degraded].kind, IncidentKind::Degraded);
    let delivery = &state.deliveries()[&deliveries[0]];
    assert_eq!(delivery.event, AlertEvent::OutageResolved);
    assert_eq!(delivery.incident, outage, "the alert names the outage that resolved");
    assert_eq!(delivery.state, Some(State::Degraded), "and the state the endpoint is in now");
}

#[test]
fn transitions_inside_maintenance_are_recorded_without_deliveries() {
    let mut state = fixture();
    let response = state.apply(&request("t1", transition(2, State::Unknown, State::Down, 0, false)));
    let Applied(Outcome::TransitionRecorded { opened: Some(_), deliveries, .. }) = response else {
        panic!("{response:?}")
    };
    assert!(deliveries.is_empty());
    let response = state.apply(&request("t2", transition(2, State::Down, State::Maintenance, 10, false)));
    let Applied(Outcome::TransitionRecorded { resolved, .. }) = response else { panic!("{response:?}") };
    assert!(resolved.is_empty(), "maintenance keeps the open incident");
}

#[test]
fn delivery_outcomes_are_recorded_once_final() {
    let mut state = fixture();
    let Applied(Outcome::TransitionRecorded { deliveries, .. }) =
        state.apply(&request("t1", transition(2, State::Unknown, State::Down, 0, true)))
    else {
        panic!()
    };
    let id = deliveries[0];
    let record = |attempts, outcome| {
        Command::RecordDelivery(DeliveryRecord { delivery: id, attempts, at: UnixMillis(T0.0 + 5), outcome })
    };
    let retry = DeliveryOutcome::Retry { error: "HTTP 500".into(), next_attempt_at: UnixMillis(T0.0 + 500) };
    assert!(matches!(
        state.apply(&request("d1", record(1, retry))),
        Applied(Outcome::DeliveryRecorded { changed: true, .. })
    ));
    let d = &state.deliveries()[&id];
    assert_eq!((d.attempts, d.last_error.as_deref()), (1, Some("HTTP 500")));
    assert_eq!(d.status, DeliveryStatus::Pending { next_attempt_at: UnixMillis(T0.0 + 500) });
    assert!(matches!(state.apply(&request("d2", record(2, DeliveryOutcome::Delivered))), Applied(_)));
    assert_eq!(state.deliveries()[&id].status, DeliveryStatus::Delivered { at: UnixMillis(T0.0 + 5) });
    let late = state.apply(&request("d3", record(2, DeliveryOutcome::Failed { error: "late".into() })));
    assert!(
        matches!(late, Applied(Outcome::DeliveryRecorded { changed: false, .. })),
        "the first final outcome stands"
    );
    let unknown = Command::RecordDelivery(DeliveryRecord {
        delivery: DeliveryId(99),
        attempts: 1,
        at: T0,
        outcome: DeliveryOutcome::Delivered,
    });
    assert!(matches!(state.apply(&request("d4", unknown)), Rejected(E::NotFound { .. })));
}

#[test]
fn removing_an_endpoint_resolves_its_open_incidents_and_snapshots_keep_them() {
    let mut state = fixture();
    state.apply(&request("t1", transition(2, State::Unknown, State::Degraded, 0, true)));
    let bytes = snapshot::encode(&state).unwrap();
    assert_eq!(snapshot::decode(&bytes).unwrap(), state, "agreement, incidents and deliveries round-trip");
    assert!(matches!(state.apply(&request("rm", Command::RemoveEndpoint { id: EndpointId(2) })), Applied(_)));
    assert!(state.agreement().get(&EndpointId(2)).is_none());
    assert!(state.incidents().values().all(|i| i.resolved_at.is_some()));
}
