//! The command line: global options and the command tree. Values that can
//! be checked alone are checked here (clap reports them as usage errors,
//! exit 2); checks across values happen when requests are built.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use std::path::PathBuf;
use std::time::Duration;
use vantage_core::webhook::{AlertEvent, WebhookFormat};

use clap::{Args, Parser, Subcommand};

use crate::timefmt;

mod history;
mod incidents;
pub use self::history::{EndpointHistoryArgs, HISTORY_HELP};
pub use self::incidents::{
    AlertCommand, EndpointStatusArgs, IncidentCommand, IncidentListArgs, Since, ALERT_HELP, INCIDENT_HELP,
    STATUS_HELP,
};

/// The coordinator API address used when neither `--server` nor
/// `VANTAGE_SERVER` is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7400";

/// `vantagectl`: manage a Vantage mesh over the coordinator's AdminService.
#[derive(Debug, Clone, Parser)]
#[command(name = "vantagectl", version, about, after_long_help = AFTER_HELP)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Environment:
  VANTAGE_SERVER       the coordinator URL (like --server)
  VANTAGE_TOKEN        the admin token itself
  VANTAGE_TOKEN_FILE   a file holding the admin token (like --token-file)
--token-file wins over VANTAGE_TOKEN, which wins over VANTAGE_TOKEN_FILE.

Writes may go to any coordinator node; followers forward them to the leader.
Each change carries an idempotency key and is retried (at most 3 attempts)
with the same key when the coordinator is unavailable or slow, so it is never
applied twice.

Exit status: 0 success, 1 failure, 2 bad usage (`check`: 0 every region ok,
1 a region failed, 2 the check could not run).

Examples:
  vantagectl endpoint add api https://api.example.com/health --interval 30s --timeout 5s
  vantagectl endpoint update api --regions eu-west,us-east --label team=core
  vantagectl --json endpoint list
  vantagectl endpoint status
  vantagectl endpoint history api --window 30d
  vantagectl incident list --open
  vantagectl apply -f mesh.yaml --dry-run
  vantagectl --server https://10.0.0.1:7400 --ca ca.pem --token-file admin.token cluster status";

const GLOBAL: &str = "Global options";

/// Options for every command (they may come before or after it).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The coordinator's API URL: http://HOST:PORT (plaintext, for clusters
    /// with `insecure = true`) or https://HOST:PORT (TLS).
    #[arg(long, global = true, help_heading = GLOBAL, env = "VANTAGE_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// Read the admin token from FILE.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Trust only this CA (PEM) for an https:// server, e.g. the cluster CA
    /// from `vantage-coordinator certs init` (default: the public roots).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Present this client certificate (PEM) to an https:// server; needs
    /// --key.
    #[arg(long, global = true, help_heading = GLOBAL, requires = "key", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, global = true, help_heading = GLOBAL, requires = "cert", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Read through the leader (linearizable) instead of from the answering
    /// node's state.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub consistent: bool,
    /// How long one call may take before it is retried or given up.
    #[arg(long, global = true, help_heading = GLOBAL, default_value = "10s", value_name = "DUR", value_parser = parse_positive_duration)]
    pub call_timeout: Duration,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Monitored endpoints.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Regions probes live in and endpoints are checked from.
    #[command(subcommand)]
    Region(RegionCommand),
    /// Probes: tokens, revocation, draining and their live state.
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Webhooks alerts are delivered to.
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Maintenance windows (no alerts for the endpoints they cover).
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Shards: which probe checks which endpoint from each region; pin and
    /// rebalance.
    #[command(subcommand, after_long_help = SHARD_HELP)]
    Shard(ShardCommand),
    /// Check an endpoint now from every region and show each region's
    /// result and timing phases: "is it down, or just from one region?".
    #[command(after_long_help = CHECK_HELP)]
    Check(CheckArgs),
    /// Incidents: outages, degraded and flapping periods, with the evidence
    /// that opened and resolved them.
    #[command(subcommand, after_long_help = INCIDENT_HELP)]
    Incident(IncidentCommand),
    /// Alert deliveries to webhooks: pending, delivered or failed, with
    /// attempts and the last error.
    #[command(subcommand, after_long_help = ALERT_HELP)]
    Alert(AlertCommand),
    /// The coordinator cluster's membership and leadership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Make the mesh match a YAML file: print the diff, then apply it.
    Apply(ApplyArgs),
    /// Print the mesh's configuration as a YAML file for `apply`.
    Export,
}

/// `vantagectl endpoint …`.
#[derive(Debug, Clone, Subcommand)]
pub enum EndpointCommand {
    /// Add an endpoint to monitor.
    Add(EndpointAddArgs),
    /// Change an endpoint; options not given keep their value.
    Update(EndpointUpdateArgs),
    /// Remove an endpoint.
    #[command(visible_alias = "remove")]
    Rm(EndpointRefArgs),
    /// Show one endpoint.
    Get(EndpointRefArgs),
    /// List endpoints.
    #[command(visible_alias = "ls")]
    List,
    /// Stop checking an endpoint.
    Pause(EndpointRefArgs),
    /// Resume checking an endpoint.
    Resume(EndpointRefArgs),
    /// Show the agreed state: of one endpoint with its rules, per-region
    /// verdicts and open incidents, or a table of every endpoint's.
    #[command(after_long_help = STATUS_HELP)]
    Status(EndpointStatusArgs),
    /// Show an endpoint's history: uptime over a window (and 24h, 7d, 30d,
    /// 90d), one bar per day, and per region checks, failures and latency
    /// quantiles.
    #[command(after_long_help = HISTORY_HELP)]
    History(EndpointHistoryArgs),
}

/// An endpoint named by id or name.
#[derive(Debug, Clone, Args)]
pub struct EndpointRefArgs {
    /// The endpoint's name or id.
    #[arg(value_name = "NAME|ID")]
    pub endpoint: String,
}

/// `vantagectl endpoint add`.
#[derive(Debug, Clone, Args)]
pub struct EndpointAddArgs {
    /// A unique name (not all digits).
    pub name: String,
    /// http(s)://…, tcp://host:port, tls://host:port or dns://name?type=T.
    pub url: String,
    /// Settings (defaults: interval 60s, timeout 10s, every region).
    #[command(flatten)]
    pub settings: EndpointSettings,
}

/// `vantagectl endpoint update`.
#[derive(Debug, Clone, Args)]
pub struct EndpointUpdateArgs {
    /// The endpoint's name or id.
    #[arg(value_name = "NAME|ID")]
    pub endpoint: String,
    /// Rename the endpoint.
    #[arg(long = "rename", value_name = "NEW_NAME")]
    pub rename: Option<String>,
    /// Check this URL instead.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Remove the label KEY (repeatable).
    #[arg(long, value_name = "KEY")]
    pub remove_label: Vec<String>,
    /// Drop every expectation before applying the --expect-* and --max-*
    /// options given.
    #[arg(long)]
    pub clear_expect: bool,
    /// Settings to change.
    #[command(flatten)]
    pub settings: EndpointSettings,
}

/// The endpoint settings `add` and `update` share. Unset options keep
/// their value (update) or default (add).
#[derive(Debug, Clone, Default, Args)]
pub struct EndpointSettings {
    /// Check a failure again at once this many times (0 to 3, default 1)
    /// before the probe reports it, so one lost packet is not Down.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=3))]
    pub retries: Option<u32>,
    /// Regions that must see it down for an outage (default: a majority of
    /// its regions, at least 2 where it has 2 or more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub quorum: Option<u32>,
    /// Rounds below the quorum that resolve an outage (1 to 20, default 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub recovery_rounds: Option<u32>,
    /// How long the quorum must hold before an outage opens (e.g. 1m;
    /// default: at once; 0s clears it).
    #[arg(long, value_name = "DUR", value_parser = timefmt::parse_duration)]
    pub min_failure: Option<Duration>,
    /// Time between checks, 1s to 24h (e.g. 30s, 5m).
    #[arg(long, value_name = "DUR", value_parser = parse_interval)]
    pub interval: Option<Duration>,
    /// The whole check's deadline, below the interval (e.g. 5s; default 10s,
    /// or half the interval when that is shorter).
    #[arg(long, value_name = "DUR", value_parser = parse_check_timeout)]
    pub timeout: Option<Duration>,
    /// Check only from these regions, comma-separated; "" for every region.
    #[arg(long, value_name = "R1,R2", value_parser = parse_regions)]
    pub regions: Option<RegionList>,
    /// Show on the public status page (--public=false to hide).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub public: Option<bool>,
    /// Allow targets on private, loopback or link-local addresses
    /// (--allow-private=false to refuse them again).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_private: Option<bool>,
    /// A label KEY=VALUE (repeatable; update: add or replace).
    #[arg(long, value_name = "KEY=VALUE", value_parser = vantage_core::validate::parse_label)]
    pub label: Vec<(String, String)>,
    /// Acceptable status codes, e.g. 200-299,301 (default 200-399).
    #[arg(long, value_name = "LIST", value_parser = parse_status_list)]
    pub expect_status: Option<String>,
    /// Text the body must contain (repeatable; update: replaces the list).
    #[arg(long, value_name = "TEXT")]
    pub expect_body: Vec<String>,
    /// Regular expression the body must match (repeatable; update:
    /// replaces the list).
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub expect_regex: Vec<String>,
    /// JSON value at a JSON pointer, e.g. /status=ok (repeatable; update:
    /// replaces the list).
    #[arg(long, value_name = "POINTER=VALUE", value_parser = parse_json_expectation)]
    pub expect_json: Vec<String>,
    /// Header the response must carry, optionally matching a regex, e.g.
    /// "content-type: json" (repeatable; update: replaces the list).
    #[arg(long, value_name = "NAME[: REGEX]", value_parser = parse_header_expectation)]
    pub expect_header: Vec<String>,
    /// Fail when the whole check takes longer than this.
    #[arg(long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub max_total: Option<Duration>,
    /// Fail when time to first byte is longer than this.
    #[arg(long, value_name = "DUR", value_parser = parse_positive_duration)]
    pub max_ttfb: Option<Duration>,
    /// Fail when the certificate expires in fewer than N days.
    #[arg(long, value_name = "N")]
    pub min_cert_days: Option<i64>,
}

/// A `--regions` value: the names, possibly none (every region).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionList(pub Vec<String>);

/// `vantagectl region …`.
#[derive(Debug, Clone, Subcommand)]
pub enum RegionCommand {
    /// List regions.
    #[command(visible_alias = "ls")]
    List,
    /// Add regions.
    Add {
        /// Region names, e.g. eu-west.
        #[arg(required = true, value_name = "NAME", value_parser = parse_region_name)]
        names: Vec<String>,
    },
    /// Remove regions no endpoint or probe uses.
    #[command(visible_alias = "remove")]
    Rm {
        /// Region names.
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
}

/// `vantagectl probe …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ProbeCommand {
    /// Probe tokens.
    #[command(subcommand)]
    Token(ProbeTokenCommand),
    /// List probes: region, connection, endpoints assigned, checks/s, lag.
    #[command(visible_alias = "ls")]
    List,
    /// Remove a probe's registration: its token stops working and its
    /// stream ends within one heartbeat.
    Revoke {
        /// The probe's name or id.
        #[arg(value_name = "NAME|ID")]
        probe: String,
    },
    /// Stop assigning endpoints to a probe (it stays connected).
    Drain {
        /// The probe's name or id.
        #[arg(value_name = "NAME|ID")]
        probe: String,
    },
    /// Assign endpoints to a drained probe again.
    Undrain {
        /// The probe's name or id.
        #[arg(value_name = "NAME|ID")]
        probe: String,
    },
}

/// `vantagectl probe token …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ProbeTokenCommand {
    /// Issue a probe's token: registers the probe, or, when a probe with
    /// that name exists in that region, replaces its token (the old one
    /// stops working). The token is printed once and never again.
    Create {
        /// The probe's name (`probe_id` in its probe.toml).
        #[arg(long, value_name = "NAME")]
        probe: String,
        /// Its region (an existing one).
        #[arg(long, value_name = "REGION", value_parser = parse_region_name)]
        region: String,
        /// Its share of the region's endpoints, 1-10000 (default 100; a
        /// rotation keeps the registered weight).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        weight: Option<u32>,
    },
}

const SHARD_HELP: &str = "\
How endpoints are placed: each endpoint is checked from every region it lists
(every region by default) by one probe per region. Within a region the leader
picks the probe by weighted rendezvous hashing over the live, undrained probes,
so the same probes always get the same endpoints, and a probe joining or
leaving moves only its own share. A disconnected probe keeps its endpoints for
probe_grace (15 s by default) so a restart moves nothing.

When to pin: to make one probe check an endpoint in a region (the probe next to
the service, a probe on a special network, reproducing a regional problem). A
pin holds while the probe is connected (or within its grace period) and not
drained; meanwhile the region falls back to hashing and `shard show` says why.
Pins are replicated: they survive leader changes.

When to rebalance: the assignment already follows from its inputs; rebalance
only stops waiting. It ends the grace period of every disconnected probe (you
know it is not coming back soon), so its endpoints move to its region's other
probes now rather than after probe_grace, and reports how many moved per
region. Try --dry-run first.

The assignment lives in the leader's memory: list, show and rebalance are
answered by the leader (vantagectl asks a follower, learns where the leader
is, and asks it once more with the same TLS and token settings).

Examples:
  vantagectl shard list --region eu-west
  vantagectl shard show api --json
  vantagectl shard pin api --region eu-west --probe eu-west-2
  vantagectl shard unpin api --region eu-west
  vantagectl shard rebalance --dry-run";

const CHECK_HELP: &str = "\
The leader sends a check-now to the probe assigned to the endpoint in each
region, waits for their results (at most the endpoint's timeout + 5 s), and
prints one row per region: the outcome and the timing phases in milliseconds
(dns, connect, tls, time to first byte, transfer, total). Regions whose probe
did not answer in time, is disconnected, or that have no probe at all get a row
saying so.

Exit status: 0 every region ok, 1 at least one region failed (or did not
answer), 2 the check could not run (bad usage, coordinator unreachable,
endpoint unknown or paused).

Examples:
  vantagectl check api
  vantagectl check 3 --json";

/// `vantagectl shard …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ShardCommand {
    /// List who checks what: one row per endpoint, region and probe, then
    /// the endpoint regions nobody checks.
    #[command(visible_alias = "ls")]
    List {
        /// Only this region.
        #[arg(long, value_name = "REGION", value_parser = parse_region_name)]
        region: Option<String>,
        /// Only the endpoints of this probe (name or id).
        #[arg(long, value_name = "NAME|ID")]
        probe: Option<String>,
    },
    /// Show one endpoint: its probe in each region, pinned or not,
    /// connected or not, and why a pin is not honoured.
    Show(EndpointRefArgs),
    /// Pin an endpoint in a region to a probe of that region (replaces an
    /// earlier pin in that region). The probe keeps it while connected and
    /// not drained; otherwise the region falls back to hashing.
    Pin {
        /// The endpoint's name or id.
        #[arg(value_name = "NAME|ID")]
        endpoint: String,
        /// A region the endpoint is checked from.
        #[arg(long, value_name = "REGION", value_parser = parse_region_name)]
        region: String,
        /// A probe of that region (name or id).
        #[arg(long, value_name = "NAME|ID")]
        probe: String,
    },
    /// Remove an endpoint's pin in one region, or all its pins; the region
    /// goes back to hashing.
    Unpin {
        /// The endpoint's name or id.
        #[arg(value_name = "NAME|ID")]
        endpoint: String,
        /// Only the pin in this region (default: every region).
        #[arg(long, value_name = "REGION", value_parser = parse_region_name)]
        region: Option<String>,
    },
    /// Move the endpoints of disconnected probes now instead of after
    /// probe_grace, and recompute at once; prints how many endpoints moved
    /// per region.
    Rebalance {
        /// Show what would move; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `vantagectl check`.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The endpoint's name or id.
    #[arg(value_name = "NAME|ID")]
    pub endpoint: String,
}

/// `vantagectl webhook …`.
#[derive(Debug, Clone, Subcommand)]
pub enum WebhookCommand {
    /// Add a webhook.
    Add(WebhookAddArgs),
    /// Change a webhook in place; options not given keep their value.
    ///
    /// The webhook keeps its id; without --secret or --secret-file it keeps
    /// its secret too.
    Update(WebhookUpdateArgs),
    /// List webhooks (secrets are never shown).
    #[command(visible_alias = "ls")]
    List,
    /// Remove a webhook.
    #[command(visible_alias = "remove")]
    Rm {
        /// The webhook's name or id.
        #[arg(value_name = "NAME|ID")]
        webhook: String,
    },
    /// Send a signed `test` event to a webhook now, from the coordinator
    /// answering, and print the receiver's status and the latency (exit 1
    /// when it was not accepted).
    Test {
        /// The webhook's name or id.
        #[arg(value_name = "NAME|ID")]
        webhook: String,
    },
}

/// `vantagectl webhook add`.
#[derive(Debug, Clone, Args)]
pub struct WebhookAddArgs {
    /// A unique name.
    pub name: String,
    /// Where to POST alerts (http:// or https://).
    pub url: String,
    /// The signing secret: whsec_ + base64 (the Standard Webhooks form) or
    /// 16 to 512 printable bytes (visible to other local users in the
    /// process list: prefer --secret-file). Without --secret or
    /// --secret-file the coordinator generates a whsec_ secret and it is
    /// printed once.
    #[arg(long, value_name = "SECRET", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// Read the signing secret from FILE.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The body's shape: standard (signed JSON), slack, or alertmanager
    /// (Alertmanager's API v2; a URL without a path posts to
    /// /api/v2/alerts).
    #[arg(long, default_value = "standard", value_parser = webhook_format_parser())]
    pub format: WebhookFormat,
    /// Deliver even when the URL's host is or resolves to a loopback,
    /// private or link-local address (refused by the SSRF guard otherwise).
    #[arg(long)]
    pub allow_private: bool,
    /// Deliver only this alert event (repeatable; default: all).
    #[arg(long = "event", value_name = "EVENT", value_parser = alert_event_parser())]
    pub events: Vec<AlertEvent>,
    /// Only for endpoints carrying this label KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = vantage_core::validate::parse_label)]
    pub label: Vec<(String, String)>,
}

/// `vantagectl webhook update`.
#[derive(Debug, Clone, Args)]
pub struct WebhookUpdateArgs {
    /// The webhook's name or id.
    #[arg(value_name = "NAME|ID")]
    pub webhook: String,
    /// Deliver to this URL instead (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A new signing secret, 16 to 512 bytes (default: keep the stored one;
    /// visible to other local users in the process list: prefer
    /// --secret-file).
    #[arg(long, value_name = "SECRET", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// Read a new signing secret from FILE.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The body's shape: standard (signed JSON), slack or alertmanager.
    #[arg(long, value_parser = webhook_format_parser())]
    pub format: Option<WebhookFormat>,
    /// Deliver to loopback, private or link-local addresses
    /// (--allow-private=false to refuse them again).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_private: Option<bool>,
    /// Deliver only this alert event (repeatable; replaces the list).
    #[arg(long = "event", value_name = "EVENT", value_parser = alert_event_parser())]
    pub events: Vec<AlertEvent>,
    /// Only for endpoints carrying this label KEY=VALUE (repeatable; adds
    /// or replaces that label).
    #[arg(long, value_name = "KEY=VALUE", value_parser = vantage_core::validate::parse_label)]
    pub label: Vec<(String, String)>,
    /// Deliver every alert event again (drop the event filter).
    #[arg(long, conflicts_with = "events")]
    pub clear_events: bool,
    /// Drop every label before applying the --label options given (with
    /// none: the webhook is for every endpoint).
    #[arg(long)]
    pub clear_labels: bool,
}

/// `vantagectl maintenance …`.
#[derive(Debug, Clone, Subcommand)]
pub enum MaintenanceCommand {
    /// Add a maintenance window.
    Add(MaintenanceAddArgs),
    /// List maintenance windows.
    #[command(visible_alias = "ls")]
    List,
    /// Remove a maintenance window.
    #[command(visible_alias = "remove")]
    Rm {
        /// The window's id (see `maintenance list`).
        id: u64,
    },
}

/// `vantagectl maintenance add`.
#[derive(Debug, Clone, Args)]
pub struct MaintenanceAddArgs {
    /// Start: RFC 3339 (2026-12-01T02:00:00Z), now, or +DUR from now.
    #[arg(long, value_name = "TIME")]
    pub start: String,
    /// End: RFC 3339, now, or +DUR from now (not from --start).
    #[arg(long, value_name = "TIME")]
    pub end: String,
    /// An endpoint covered, by name or id (repeatable; with no --endpoint
    /// and no --label the window covers every endpoint).
    #[arg(long = "endpoint", value_name = "NAME|ID")]
    pub endpoints: Vec<String>,
    /// Endpoints carrying this label KEY=VALUE are covered (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = vantage_core::validate::parse_label)]
    pub label: Vec<(String, String)>,
    /// Why, for the status page and the audit trail.
    #[arg(long, default_value = "", value_name = "TEXT")]
    pub reason: String,
}

/// `vantagectl cluster …`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Show members, roles, the leader and the term.
    Status,
    /// Add a node: as a learner, then as a voter once caught up.
    AddNode {
        /// The new node's id (never reuse a removed node's id).
        id: u64,
        /// Its API address, HOST:PORT.
        #[arg(long = "api", value_name = "ADDR")]
        api_addr: String,
        /// Its Raft address, HOST:PORT.
        #[arg(long = "raft", value_name = "ADDR")]
        raft_addr: String,
        /// Keep it a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Remove a node from the cluster.
    RemoveNode {
        /// The node's id.
        id: u64,
    },
    /// Hand leadership to node ID, or let the cluster choose.
    TransferLeader {
        /// The node to lead next.
        id: Option<u64>,
    },
    /// Build a snapshot now and purge the log behind it.
    Snapshot,
}

/// `vantagectl apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// The YAML file (`-` for standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
    /// Also remove what the file does not mention.
    #[arg(long)]
    pub prune: bool,
    /// Only print the diff.
    #[arg(long)]
    pub dry_run: bool,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `--format`: the names `vantage-core` gives the formats, listed in
/// `--help` and completions.
fn webhook_format_parser() -> impl TypedValueParser<Value = WebhookFormat> {
    PossibleValuesParser::new(WebhookFormat::ALL.iter().map(|f| f.as_str()))
        .try_map(|name: String| WebhookFormat::parse(&name))
}

/// `--event`: the names `vantage-core` gives the alert events.
fn alert_event_parser() -> impl TypedValueParser<Value = AlertEvent> {
    PossibleValuesParser::new(AlertEvent::ALL.iter().map(|e| e.as_str()))
        .try_map(|name: String| AlertEvent::parse(&name))
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = timefmt::parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be above zero".into());
    }
    Ok(duration)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = timefmt::parse_duration(text)?;
    vantage_core::endpoint::check_interval(millis(interval)).map_err(|e| e.to_string())?;
    Ok(interval)
}

fn parse_check_timeout(text: &str) -> Result<Duration, String> {
    let timeout = timefmt::parse_duration(text)?;
    vantage_core::endpoint::check_timeout_alone(millis(timeout)).map_err(|e| e.to_string())?;
    Ok(timeout)
}

fn parse_regions(text: &str) -> Result<RegionList, String> {
    let names: Vec<String> =
        text.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_string).collect();
    names.iter().try_for_each(|r| vantage_core::validate::region_name(r)).map_err(|e| e.to_string())?;
    Ok(RegionList(names))
}

fn parse_region_name(text: &str) -> Result<String, String> {
    vantage_core::validate::region_name(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

fn parse_status_list(text: &str) -> Result<String, String> {
    vantage_core::assert::StatusSet::parse(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

fn parse_regex(text: &str) -> Result<String, String> {
    vantage_core::assert::Pattern::new("expect-regex", text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

fn parse_json_expectation(text: &str) -> Result<String, String> {
    vantage_core::assert::JsonAssertion::parse(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

fn parse_header_expectation(text: &str) -> Result<String, String> {
    vantage_core::assert::HeaderAssertion::parse(text).map_err(|e| e.to_string())?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vantagectl").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_may_follow_the_command() {
        let cli = parse(&["endpoint", "list", "--json", "--server", "http://h:1"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.server, "http://h:1");
    }

    #[test]
    fn bad_values_are_usage_errors_with_exit_code_two() {
        for args in [
            &["endpoint", "add", "api", "https://x", "--interval", "500ms"][..],
            &["endpoint", "add", "api", "https://x", "--interval", "30"],
            &["endpoint", "add", "api", "https://x", "--label", "team"],
            &["endpoint", "add", "api", "https://x", "--expect-status", "abc"],
            &["endpoint", "add", "api", "https://x", "--regions", "EU"],
            &["webhook", "add", "w", "https://x", "--secret", "s", "--secret-file", "f"],
            &["webhook", "add", "w", "https://x", "--secret", "s", "--event", "nope"],
            &["webhook", "add", "w", "https://x", "--format", "pagerduty"],
            &["webhook", "test"],
            &["nonsense"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn boolean_flags_take_an_optional_value() {
        let cli = parse(&["endpoint", "update", "api", "--public", "--allow-private=false"]).unwrap();
        let Command::Endpoint(EndpointCommand::Update(args)) = cli.command else { panic!() };
        assert_eq!(args.settings.public, Some(true));
        assert_eq!(args.settings.allow_private, Some(false));
        assert_eq!(args.settings.regions, None);
        // `--public` does not swallow the positional after it.
        let cli = parse(&["endpoint", "add", "--public", "api", "https://x"]).unwrap();
        let Command::Endpoint(EndpointCommand::Add(args)) = cli.command else { panic!() };
        assert_eq!((args.name.as_str(), args.settings.public), ("api", Some(true)));
    }

    #[test]
    fn an_empty_region_list_means_every_region() {
        let cli = parse(&["endpoint", "update", "api", "--regions", ""]).unwrap();
        let Command::Endpoint(EndpointCommand::Update(args)) = cli.command else { panic!() };
        assert_eq!(args.settings.regions, Some(RegionList(vec![])));
    }
}
