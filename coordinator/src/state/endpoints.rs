//! Endpoints: what the mesh monitors, from where, how often, and what a
//! good answer looks like.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vantage_core::assert::{Assertions, HeaderAssertion, JsonAssertion, Pattern, StatusSet};
use vantage_core::spec::{CheckKind, CheckSpec, SpecError};

use super::command::{CommandError, ObjectKind, Outcome};
use super::ids::{EndpointId, UnixMillis};
use super::{validate, MeshState};

/// The shortest check interval.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// The longest check interval.
pub const MAX_INTERVAL_MS: u64 = 24 * 60 * 60 * 1_000;
/// The longest check timeout (the probe's own ceiling).
pub const MAX_TIMEOUT_MS: u64 = 10 * 60 * 1_000;
/// The default check interval.
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// The default check timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The most expectations of one sort (body texts, patterns, JSON values,
/// headers) an endpoint may carry.
pub const MAX_ASSERTIONS_PER_SORT: usize = 16;
/// The longest single expectation, in bytes.
pub const MAX_ASSERTION_LEN: usize = 1_024;

/// A monitored endpoint as stored in the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Assigned by apply, never reused.
    pub id: EndpointId,
    /// The kind of check, from the URL's scheme.
    pub kind: EndpointKind,
    /// What the admin asked for.
    pub spec: EndpointSpec,
    /// When it was added.
    pub created_at: UnixMillis,
    /// When its specification last changed.
    pub updated_at: UnixMillis,
}

/// The kind of check, derived from the target URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
    /// TCP connect.
    Tcp,
    /// TCP connect and TLS handshake.
    Tls,
    /// DNS query.
    Dns,
}

impl From<CheckKind> for EndpointKind {
    fn from(kind: CheckKind) -> Self {
        match kind {
            CheckKind::Http => EndpointKind::Http,
            CheckKind::Https => EndpointKind::Https,
            CheckKind::Tcp => EndpointKind::Tcp,
            CheckKind::Tls => EndpointKind::Tls,
            CheckKind::Dns => EndpointKind::Dns,
        }
    }
}

/// What an admin specifies for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Unique among endpoints.
    pub name: String,
    /// The target: `http(s)://`, `tcp://`, `tls://` or `dns://` URL.
    pub url: String,
    /// Time between checks, 1 s to 24 h.
    pub interval_ms: u64,
    /// The whole check's deadline, above zero and below the interval.
    pub timeout_ms: u64,
    /// What a good answer looks like.
    #[serde(default)]
    pub assertions: AssertionSpec,
    /// Where to check from; empty means every region.
    #[serde(default)]
    pub regions: BTreeSet<String>,
    /// Shown on the public status page.
    #[serde(default)]
    pub public: bool,
    /// Lets the probe's SSRF guard through to private, loopback and
    /// link-local addresses for this endpoint.
    #[serde(default)]
    pub allow_private: bool,
    /// Free-form labels, e.g. `team=payments`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Checks are stopped.
    #[serde(default)]
    pub paused: bool,
}

impl EndpointSpec {
    /// A specification with default interval, timeout and no options.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> EndpointSpec {
        EndpointSpec {
            name: name.into(),
            url: url.into(),
            interval_ms: DEFAULT_INTERVAL_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            assertions: AssertionSpec::default(),
            regions: BTreeSet::new(),
            public: false,
            allow_private: false,
            labels: BTreeMap::new(),
            paused: false,
        }
    }

    /// Validates everything that does not depend on the rest of the state
    /// and returns the kind of check.
    fn validate(&self) -> Result<EndpointKind, CommandError> {
        validate::name(ObjectKind::Endpoint, &self.name)?;
        let check = CheckSpec::parse(&self.url)
            .map_err(|e| CommandError::InvalidTarget { url: self.url.clone(), reason: e.to_string() })?;
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(CommandError::InvalidInterval { interval_ms: self.interval_ms });
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS || self.timeout_ms >= self.interval_ms {
            return Err(CommandError::InvalidTimeout {
                timeout_ms: self.timeout_ms,
                interval_ms: self.interval_ms,
            });
        }
        self.assertions
            .to_assertions()
            .map_err(|e| CommandError::InvalidAssertion { reason: e.to_string() })?;
        validate::labels(&self.labels)?;
        Ok(check.kind().into())
    }
}

/// Expectations in the form admins write them (the `--expect-*` flags of
/// the CLI), kept as text so the replicated form is plain data.
/// [`AssertionSpec::to_assertions`] compiles them for the probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertionSpec {
    /// Acceptable status codes, e.g. `200-299,301` (default 200–399).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Texts the body must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_contains: Vec<String>,
    /// Regular expressions the body must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_matches: Vec<String>,
    /// `POINTER=VALUE` JSON expectations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json: Vec<String>,
    /// `Name` or `Name: REGEX` header expectations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Ceiling on the whole check's duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_ms: Option<u64>,
    /// Ceiling on time to first byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttfb_ms: Option<u64>,
    /// Minimum days before the certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cert_days: Option<i64>,
}

impl AssertionSpec {
    /// Compiles the expectations, failing on the first that does not parse.
    pub fn to_assertions(&self) -> Result<Assertions, SpecError> {
        let lists: [(&'static str, &Vec<String>); 4] = [
            ("expect-body", &self.body_contains),
            ("expect-body-regex", &self.body_matches),
            ("expect-json", &self.json),
            ("expect-header", &self.headers),
        ];
        for (field, list) in lists {
            if list.len() > MAX_ASSERTIONS_PER_SORT {
                return Err(SpecError::BadOption { field, reason: "at most 16 expectations".into() });
            }
            if list.iter().any(|item| item.len() > MAX_ASSERTION_LEN) {
                return Err(SpecError::BadOption { field, reason: "each at most 1024 bytes".into() });
            }
        }
        Ok(Assertions {
            status: match &self.status {
                Some(text) => StatusSet::parse(text)?,
                None => StatusSet::default(),
            },
            body_contains: self.body_contains.clone(),
            body_matches: self
                .body_matches
                .iter()
                .map(|source| Pattern::new("expect-body-regex", source))
                .collect::<Result<_, _>>()?,
            json: self.json.iter().map(|text| JsonAssertion::parse(text)).collect::<Result<_, _>>()?,
            headers: self
                .headers
                .iter()
                .map(|text| HeaderAssertion::parse(text))
                .collect::<Result<_, _>>()?,
            max_total: self.max_total_ms.map(Duration::from_millis),
            max_ttfb: self.max_ttfb_ms.map(Duration::from_millis),
            min_cert_days: self.min_cert_days,
        })
    }
}

/// Applies [`Command::AddEndpoint`](super::Command::AddEndpoint).
pub(super) fn add_endpoint(
    state: &mut MeshState,
    at: UnixMillis,
    spec: &EndpointSpec,
) -> Result<Outcome, CommandError> {
    let kind = check_spec(state, None, spec)?;
    let id = state.tables.ids.next_endpoint();
    state.endpoint_names.insert(spec.name.clone(), id);
    state
        .tables
        .endpoints
        .insert(id, Endpoint { id, kind, spec: spec.clone(), created_at: at, updated_at: at });
    Ok(Outcome::EndpointAdded { id })
}

/// Applies [`Command::UpdateEndpoint`](super::Command::UpdateEndpoint).
pub(super) fn update_endpoint(
    state: &mut MeshState,
    at: UnixMillis,
    id: EndpointId,
    spec: &EndpointSpec,
) -> Result<Outcome, CommandError> {
    let old_name = match state.tables.endpoints.get(&id) {
        Some(endpoint) if endpoint.spec == *spec => {
            return Ok(Outcome::EndpointUpdated { id, changed: false })
        }
        Some(endpoint) => endpoint.spec.name.clone(),
        None => return Err(not_found(id)),
    };
    let kind = check_spec(state, Some(id), spec)?;
    state.endpoint_names.remove(&old_name);
    state.endpoint_names.insert(spec.name.clone(), id);
    if let Some(endpoint) = state.tables.endpoints.get_mut(&id) {
        endpoint.kind = kind;
        endpoint.spec = spec.clone();
        endpoint.updated_at = at;
    }
    super::pins::forget_unchecked_regions(state, id);
    Ok(Outcome::EndpointUpdated { id, changed: true })
}

/// Applies [`Command::SetEndpointPaused`](super::Command::SetEndpointPaused).
pub(super) fn set_endpoint_paused(
    state: &mut MeshState,
    at: UnixMillis,
    id: EndpointId,
    paused: bool,
) -> Result<Outcome, CommandError> {
    let endpoint = state.tables.endpoints.get_mut(&id).ok_or_else(|| not_found(id))?;
    let changed = endpoint.spec.paused != paused;
    if changed {
        endpoint.spec.paused = paused;
        endpoint.updated_at = at;
    }
    Ok(Outcome::EndpointUpdated { id, changed })
}

/// Applies [`Command::RemoveEndpoint`](super::Command::RemoveEndpoint); the
/// endpoint also leaves every maintenance window that named it.
pub(super) fn remove_endpoint(state: &mut MeshState, id: EndpointId) -> Result<Outcome, CommandError> {
    let endpoint = state.tables.endpoints.remove(&id).ok_or_else(|| not_found(id))?;
    state.endpoint_names.remove(&endpoint.spec.name);
    for window in state.tables.maintenance.values_mut() {
        window.spec.endpoints.remove(&id);
    }
    super::pins::forget_endpoint(state, id);
    Ok(Outcome::EndpointRemoved { id })
}

/// Checks a specification against the rules and the rest of the state;
/// `own_id` is the endpoint being updated, whose name may stay.
fn check_spec(
    state: &MeshState,
    own_id: Option<EndpointId>,
    spec: &EndpointSpec,
) -> Result<EndpointKind, CommandError> {
    let kind = spec.validate()?;
    if let Some(&holder) = state.endpoint_names.get(&spec.name) {
        if Some(holder) != own_id {
            return Err(CommandError::DuplicateName { kind: ObjectKind::Endpoint, name: spec.name.clone() });
        }
    }
    if let Some(region) = spec.regions.iter().find(|r| !state.tables.regions.contains_key(*r)) {
        return Err(CommandError::UnknownRegion { region: region.clone() });
    }
    Ok(kind)
}

fn not_found(id: EndpointId) -> CommandError {
    CommandError::NotFound { kind: ObjectKind::Endpoint, id: id.0 }
}
