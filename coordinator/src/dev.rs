//! `vantage-coordinator dev`: the 30-second way to see Vantage, in one
//! process and with no configuration.
//!
//! It starts a single-node, plaintext coordinator (the real runtime,
//! [`crate::app::run`]) with its data in a fresh temporary directory (or
//! `--data-dir`), serves four demo targets on loopback (healthy, slow,
//! flaky, and one down for 40 s every 3 minutes), preloads regions `dev-eu`, `dev-us` and `dev-ap`, one probe token
//! per region and the demo endpoints through the real AdminService (a gRPC
//! client to its own API address, with the admin token), then runs three
//! probe agents in-process ([`vantage_probe::agent::client::run`]), one per
//! region. It prints the addresses, the admin token and a ready-to-paste
//! `vantagectl` line. Cancelling `shutdown` (SIGTERM, SIGINT) stops the
//! probes, then the coordinator and the targets, within a bound, and
//! removes the temporary directory.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::Channel;
use vantage_proto::pb;
use vantage_proto::pb::admin_service_client::AdminServiceClient;

use crate::auth::{self, AdminAuth};
use crate::config::Config;

/// The regions dev mode creates, one in-process probe in each.
pub const REGIONS: [&str; 3] = ["dev-eu", "dev-us", "dev-ap"];
/// How long the slow demo target waits before sending its headers.
pub const SLOW_DELAY: Duration = Duration::from_millis(300);
/// The flaky demo target answers 500 to one request in this many.
pub const FLAKY_ONE_IN: u64 = 5;
/// The outage demo's cycle: it answers 503 from `OUTAGE_AFTER` to
/// `OUTAGE_AFTER + OUTAGE_FOR` into every cycle since dev mode started.
pub const OUTAGE_CYCLE: Duration = Duration::from_secs(180);
/// When into each cycle the outage demo goes down.
pub const OUTAGE_AFTER: Duration = Duration::from_secs(60);
/// How long the outage demo stays down.
pub const OUTAGE_FOR: Duration = Duration::from_secs(40);
/// How often each demo endpoint is checked.
pub const DEMO_INTERVAL: Duration = Duration::from_secs(2);
/// How long the node may take to elect itself and accept the preload.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long the probes may take to drain their results on shutdown.
const PROBE_GRACE: Duration = Duration::from_secs(3);
/// How long the coordinator may take to stop after the probes.
const COORDINATOR_GRACE: Duration = Duration::from_secs(15);

/// Arguments of `vantage-coordinator dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// The gRPC API address (AdminService for vantagectl, ProbeService).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7400")]
    pub api: SocketAddr,
    /// The HTTP address (`/healthz`, `/api/endpoints`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Keep the data here (created when missing) instead of in a temporary
    /// directory removed on exit. Reusing it keeps the cluster's state and
    /// admin token.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Send every alert (outage opened or resolved, degraded, flapping) to
    /// this URL as signed Standard Webhooks JSON, e.g. a receiver of your
    /// own on http://127.0.0.1:9000/. The signing secret (whsec_…) is
    /// generated and printed once.
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Export every measurement and the agreed states with Prometheus
    /// remote-write to this URL, e.g. http://127.0.0.1:9090/api/v1/write
    /// (a Prometheus started with --web.enable-remote-write-receiver) or
    /// VictoriaMetrics' http://127.0.0.1:8428/api/v1/write. Repeatable.
    #[arg(long = "remote-write", value_name = "URL", value_parser = export_url)]
    pub remote_write: Vec<url::Url>,
    /// Export every measurement to InfluxDB: http://127.0.0.1:8086?db=vantage
    /// (1.x; the database must exist) or
    /// http://127.0.0.1:8086?org=ORG&bucket=BUCKET&token=TOKEN (2.x).
    /// Repeatable.
    #[arg(long, value_name = "URL", value_parser = export_url)]
    pub influx: Vec<url::Url>,
}

fn export_url(text: &str) -> Result<url::Url, String> {
    crate::sinks::export::config::parse_http_url(text)
}

/// One demo endpoint: a name and the path the demo server answers on.
struct Demo {
    name: &'static str,
    path: &'static str,
    what: &'static str,
}

const DEMOS: [Demo; 4] = [
    Demo { name: "demo-healthy", path: "/healthy", what: "200 at once" },
    Demo { name: "demo-slow", path: "/slow", what: "200 after 300 ms" },
    Demo { name: "demo-flaky", path: "/flaky", what: "500 on 1 request in 5" },
    Demo { name: "demo-outage", path: "/outage", what: "down 40 s every 3 min, from 1 min after start" },
];

/// Runs dev mode until `shutdown` is cancelled; returns an error when the
/// coordinator cannot start, the preload fails, or the node stops by itself.
pub async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The data directory: the TempDir removes itself when dropped (at the
    // end of this function, after everything has stopped).
    let (temp, dir) = match &args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            (None, std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?)
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("vantage-dev-")
                .tempdir()
                .context("creating a temporary data directory")?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    let outcome = run_in(&args, &dir, shutdown).await;
    if let Some(temp) = temp {
        if let Err(error) = temp.close() {
            tracing::warn!(%error, dir = %dir.display(), "cannot remove the temporary data directory");
        }
    }
    outcome
}

async fn run_in(args: &DevArgs, dir: &Path, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The in-process probes count into this process's recorder (the
    // binary's), so the coordinator's /metrics shows theirs too, summed.
    vantage_probe::agent::telemetry::describe();
    let config = config(args, dir)?;
    let token_path = config.admin_token_file.clone();
    let bootstrap = auth::load_or_create_bootstrap_token(&token_path)?;
    let token = std::fs::read_to_string(&token_path)
        .with_context(|| format!("reading {}", token_path.display()))?
        .trim()
        .to_string();
    let auth = AdminAuth::new(bootstrap.hash);

    let coordinator_stop = CancellationToken::new();
    let mut coordinator = tokio::spawn(crate::app::run(config, None, auth, coordinator_stop.clone()));
    let targets_stop = CancellationToken::new();
    let targets = DemoServer::start(targets_stop.clone()).await?;
    let probes_stop = CancellationToken::new();
    let probes = TaskTracker::new();

    let api_url = format!("http://{}", connect_addr(args.api));
    let ready = async {
        let mut admin = Admin::connect(&api_url, &token).await?;
        let names = admin.preload(&targets, dir, &api_url, &probes, &probes_stop).await?;
        let webhook = match &args.webhook {
            Some(url) => Some(admin.webhook(url).await?),
            None => None,
        };
        Ok::<_, anyhow::Error>((names, webhook))
    };
    let outcome = tokio::select! {
        outcome = ready => outcome,
        () = shutdown.cancelled() => Ok((Vec::new(), None)),
        stopped = &mut coordinator => {
            targets_stop.cancel();
            return Err(stopped_early(stopped));
        }
    };
    let stopped_by_itself = match outcome {
        Ok((probe_names, webhook)) => {
            if !shutdown.is_cancelled() {
                let banner = Banner { args, dir, token: &token, token_path: &token_path, targets: &targets };
                print_banner(&banner, &probe_names, &api_url, webhook.as_ref());
            }
            tokio::select! {
                () = shutdown.cancelled() => None,
                stopped = &mut coordinator => Some(stopped_early(stopped)),
            }
        }
        Err(error) => Some(error.context("preloading the dev mesh")),
    };

    // Probes first (they drain their results to the coordinator), then the
    // coordinator and the targets.
    probes_stop.cancel();
    probes.close();
    if tokio::time::timeout(PROBE_GRACE, probes.wait()).await.is_err() {
        tracing::warn!(grace = ?PROBE_GRACE, "probes still draining; stopping the coordinator anyway");
    }
    coordinator_stop.cancel();
    targets_stop.cancel();
    if let Some(error) = stopped_by_itself {
        if !coordinator.is_finished() {
            let _ = tokio::time::timeout(COORDINATOR_GRACE, &mut coordinator).await;
        }
        return Err(error);
    }
    match tokio::time::timeout(COORDINATOR_GRACE, coordinator).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(error))) => Err(error.into()),
        Ok(Err(join)) => Err(anyhow::anyhow!("the coordinator task failed: {join}")),
        Err(_) => Err(anyhow::anyhow!("the coordinator did not stop within {COORDINATOR_GRACE:?}")),
    }
}

fn stopped_early(stopped: Result<Result<(), crate::app::AppError>, tokio::task::JoinError>) -> anyhow::Error {
    match stopped {
        Ok(Err(error)) => anyhow::Error::new(error),
        Ok(Ok(())) => anyhow::anyhow!("the coordinator stopped unexpectedly"),
        Err(join) => anyhow::anyhow!("the coordinator task failed: {join}"),
    }
}

/// A single-node, plaintext configuration with short Raft timings, its
/// Raft port a free loopback port.
fn config(args: &DevArgs, dir: &Path) -> anyhow::Result<Config> {
    let raft_port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .context("finding a free port for Raft")?
        .port();
    let raft_addr = (Ipv4Addr::LOCALHOST, raft_port).into();
    let mut config = Config::single_node(dir.join("coordinator"), args.api, raft_addr, args.http);
    config.admin_token_file = dir.join("admin.token");
    // Export: named by position, so two targets on one host stay apart.
    for (i, url) in args.remote_write.iter().enumerate() {
        let mut target = crate::config::RemoteWriteConfig::at(url.clone());
        target.name = Some(format!("remote-write-{}", i + 1));
        config.export.remote_write.push(target);
    }
    for (i, url) in args.influx.iter().enumerate() {
        let mut target = crate::config::InfluxConfig::from_url(url.clone());
        target.name = Some(format!("influx-{}", i + 1));
        config.export.influx.push(target);
    }
    config.validate()?;
    Ok(config)
}

/// The address a local client dials for a listener bound to `addr`
/// (loopback for an unspecified address).
fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// What the banner shows besides the probes and the API address.
struct Banner<'a> {
    args: &'a DevArgs,
    dir: &'a Path,
    token: &'a str,
    token_path: &'a Path,
    targets: &'a DemoServer,
}

/// The webhook dev mode added, and its secret when it was generated now.
struct DevWebhook {
    url: String,
    secret: Option<String>,
}

fn print_banner(banner: &Banner<'_>, probes: &[String], api_url: &str, webhook: Option<&DevWebhook>) {
    let Banner { args, dir, token, token_path, targets } = *banner;
    let http = connect_addr(args.http);
    let kept = if args.data_dir.is_some() { "kept on exit" } else { "removed on exit" };
    let mut text = String::new();
    text.push_str("\nVantage dev mode is running.\n\n");
    text.push_str(&format!("  HTTP          http://{http}  (/healthz, /api/endpoints, /api/endpoints/NAME/history, /api/incidents, /metrics)\n"));
    text.push_str(&format!("  API           {api_url}\n"));
    text.push_str(&format!("  admin token   {token}\n"));
    text.push_str(&format!("  token file    {}\n", token_path.display()));
    text.push_str(&format!("  data dir      {} ({kept})\n", dir.display()));
    text.push_str(&format!("  probes        {}\n", probes.join(", ")));
    for demo in &DEMOS {
        text.push_str(&format!("  endpoint      {:<13} {}  {}\n", demo.name, targets.url(demo), demo.what));
    }
    if let Some(webhook) = webhook {
        text.push_str(&format!(
            "  webhook       {}  (every alert, signed: Standard Webhooks)\n",
            webhook.url
        ));
        match &webhook.secret {
            Some(secret) => {
                text.push_str(&format!("  secret        {secret}  (shown once: verify deliveries with it)\n"))
            }
            None => {
                text.push_str("  secret        the one generated on the first run with this --data-dir\n")
            }
        }
    }
    for url in &args.remote_write {
        text.push_str(&format!("  remote-write  {url}  (every measurement; Prometheus remote-write)\n"));
    }
    for url in &args.influx {
        text.push_str(&format!("  influx        {url}  (every measurement; line protocol)\n"));
    }
    text.push_str("\nTry:\n");
    text.push_str(&format!(
        "  vantagectl --server {api_url} --token-file {} probe list\n",
        token_path.display()
    ));
    text.push_str(&format!("  curl http://{http}/api/endpoints\n"));
    text.push_str(&format!(
        "  vantagectl --server {api_url} --token-file {} incident list   (demo-outage goes down a minute in)\n",
        token_path.display()
    ));
    text.push_str(&format!(
        "  vantagectl --server {api_url} --token-file {} endpoint history demo-slow   (rolled up once a minute)\n",
        token_path.display()
    ));
    text.push_str("\nCtrl-C stops everything.\n");
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The AdminService client dev mode preloads through.
struct Admin {
    client: AdminServiceClient<Channel>,
    token: String,
    /// Makes this run's idempotency keys unique (a reused `--data-dir`
    /// remembers the previous run's keys).
    run_id: String,
}

impl Admin {
    /// Connects to `url` and waits until the node leads (a consistent read
    /// answers), within [`READY_WITHIN`].
    async fn connect(url: &str, token: &str) -> anyhow::Result<Admin> {
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10));
        let run_id = auth::generate_token()?.chars().take(12).collect();
        let mut last_error = String::from("not tried");
        while tokio::time::Instant::now() < deadline {
            match endpoint.connect().await {
                Ok(channel) => {
                    let mut admin =
                        Admin { client: AdminServiceClient::new(channel), token: token.into(), run_id };
                    loop {
                        let request = admin.request(pb::ListRequest { consistent: true });
                        match admin.client.list_regions(request).await {
                            Ok(_) => return Ok(admin),
                            Err(_) if tokio::time::Instant::now() < deadline => {}
                            Err(status) => {
                                anyhow::bail!(
                                    "the node did not become leader within {READY_WITHIN:?}: {status}"
                                )
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("cannot reach the API at {url} within {READY_WITHIN:?}: {last_error}")
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Ok(value) = format!("Bearer {}", self.token).parse() {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// Adds (or, with a reused `--data-dir`, points) the `dev-webhook`
    /// webhook at `url`: every event, standard format, private addresses
    /// allowed (a receiver on this machine); the server generates its
    /// secret.
    async fn webhook(&mut self, url: &str) -> anyhow::Result<DevWebhook> {
        let spec = pb::WebhookSpec {
            name: "dev-webhook".into(),
            url: url.into(),
            format: "standard".into(),
            allow_private: true,
            ..Default::default()
        };
        let request = self
            .request(pb::AddWebhookRequest { mutation: self.mutation("webhook"), spec: Some(spec.clone()) });
        match self.client.add_webhook(request).await {
            Ok(reply) => {
                let secret = Some(reply.into_inner().generated_secret).filter(|s| !s.is_empty());
                Ok(DevWebhook { url: url.into(), secret })
            }
            Err(status) if status.code() == tonic::Code::AlreadyExists => {
                let request = self.request(pb::UpdateWebhookRequest {
                    mutation: self.mutation("webhook-update"),
                    id_or_name: "dev-webhook".into(),
                    spec: Some(spec),
                });
                self.client.update_webhook(request).await.context("pointing dev-webhook at --webhook")?;
                Ok(DevWebhook { url: url.into(), secret: None })
            }
            Err(status) => Err(status).with_context(|| format!("adding the webhook {url}")),
        }
    }

    fn mutation(&self, what: &str) -> Option<pb::Mutation> {
        Some(pb::Mutation { idempotency_key: format!("dev-{}-{what}", self.run_id) })
    }

    /// Creates the regions, the demo endpoints and one probe token per
    /// region, writes the tokens to `<dir>/probes/`, and spawns the probes
    /// on `tasks`. Returns the probes' names. Already existing regions are
    /// kept; existing demo endpoints are updated to this run's targets.
    async fn preload(
        &mut self,
        targets: &DemoServer,
        dir: &Path,
        api_url: &str,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> anyhow::Result<Vec<String>> {
        for region in REGIONS {
            let request = self.request(pb::AddRegionRequest {
                mutation: self.mutation(&format!("region-{region}")),
                name: region.into(),
            });
            match self.client.add_region(request).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::AlreadyExists => {}
                Err(status) => return Err(status).with_context(|| format!("adding region {region}")),
            }
        }
        for demo in &DEMOS {
            let spec = pb::EndpointSpec {
                name: demo.name.into(),
                url: targets.url(demo),
                interval_ms: DEMO_INTERVAL.as_millis() as u64,
                timeout_ms: 1_000,
                allow_private: true,
                labels: [("demo".to_string(), "true".to_string())].into(),
                ..Default::default()
            };
            let request = self.request(pb::AddEndpointRequest {
                mutation: self.mutation(&format!("endpoint-{}", demo.name)),
                spec: Some(spec.clone()),
            });
            match self.client.add_endpoint(request).await {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::AlreadyExists => {
                    let request = self.request(pb::UpdateEndpointRequest {
                        mutation: self.mutation(&format!("update-{}", demo.name)),
                        endpoint: Some(pb::EndpointRef { id_or_name: demo.name.into() }),
                        spec: Some(spec),
                    });
                    self.client
                        .update_endpoint(request)
                        .await
                        .with_context(|| format!("updating endpoint {}", demo.name))?;
                }
                Err(status) => return Err(status).with_context(|| format!("adding endpoint {}", demo.name)),
            }
        }
        let token_dir = dir.join("probes");
        std::fs::create_dir_all(&token_dir).with_context(|| format!("creating {}", token_dir.display()))?;
        let mut names = Vec::new();
        for region in REGIONS {
            let name = format!("{region}-1");
            let request = self.request(pb::CreateProbeTokenRequest {
                mutation: self.mutation(&format!("probe-{name}")),
                probe: name.clone(),
                region: region.into(),
                weight: 0,
            });
            let reply = self
                .client
                .create_probe_token(request)
                .await
                .with_context(|| format!("creating a token for probe {name}"))?
                .into_inner();
            let token_file = token_dir.join(format!("{name}.token"));
            write_secret(&token_file, &reply.token)?;
            let config = probe_config(&name, region, api_url, token_file);
            config.validate().with_context(|| format!("probe {name}'s configuration"))?;
            let tuning = vantage_probe::agent::client::Tuning {
                backoff_max: Duration::from_secs(2),
                shutdown_grace: Duration::from_secs(2),
                ..Default::default()
            };
            let stop = stop.child_token();
            let probe = name.clone();
            tasks.spawn(async move {
                if let Err(error) = vantage_probe::agent::client::run(config, tuning, stop).await {
                    tracing::error!(probe, error = %error, "dev probe stopped");
                }
            });
            names.push(format!("{name} ({region})"));
        }
        Ok(names)
    }
}

/// The agent configuration of one in-process probe: plaintext to this
/// process's API, results spooled in memory.
fn probe_config(
    name: &str,
    region: &str,
    api_url: &str,
    token_file: PathBuf,
) -> vantage_probe::agent::config::Config {
    vantage_probe::agent::config::Config {
        probe_id: name.into(),
        region: region.into(),
        coordinators: vec![api_url.into()],
        token_file,
        ca_file: None,
        insecure: true,
        weight: 100,
        max_concurrency: 16,
        resolvers: Vec::new(),
        spool_dir: None,
        orphan_ttl: Duration::from_secs(60),
        canary_urls: Vec::new(),
        canary_interval: Duration::from_secs(10),
        // Their metrics go to this process's recorder, on the coordinator's
        // /metrics.
        metrics_addr: None,
    }
}

/// Writes `secret` to `path` with mode 0600, replacing it.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The demo targets: one HTTP/1.1 server on a free loopback port answering
/// `/healthy`, `/slow` and `/flaky`.
struct DemoServer {
    addr: SocketAddr,
}

impl DemoServer {
    async fn start(stop: CancellationToken) -> anyhow::Result<DemoServer> {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.context("binding the demo targets")?;
        let addr = listener.local_addr()?;
        let flaky_count = Arc::new(AtomicU64::new(0));
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            let connections = TaskTracker::new();
            loop {
                let stream = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let flaky_count = flaky_count.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let flaky_count = flaky_count.clone();
                        async move {
                            Ok::<_, Infallible>(demo_route(&request, &flaky_count, started.elapsed()).await)
                        }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
            connections.close();
            connections.wait().await;
        });
        Ok(DemoServer { addr })
    }

    fn url(&self, demo: &Demo) -> String {
        format!("http://{}{}", self.addr, demo.path)
    }
}

async fn demo_route<B>(
    request: &HttpRequest<B>,
    flaky_count: &AtomicU64,
    uptime: Duration,
) -> HttpResponse<Full<Bytes>> {
    let (status, body) = match request.uri().path() {
        "/healthy" => (StatusCode::OK, "ok\n"),
        "/slow" => {
            tokio::time::sleep(SLOW_DELAY).await;
            (StatusCode::OK, "ok, slowly\n")
        }
        "/flaky" => {
            // Deterministic but spread: a SplitMix-style scramble of a counter.
            let n = flaky_count.fetch_add(1, Ordering::Relaxed);
            let mixed = n.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            if (mixed >> 33) % FLAKY_ONE_IN == 0 {
                (StatusCode::INTERNAL_SERVER_ERROR, "failing now and then\n")
            } else {
                (StatusCode::OK, "ok, this time\n")
            }
        }
        "/outage" if outage_now(uptime) => {
            (StatusCode::SERVICE_UNAVAILABLE, "down for a while (a demo outage)\n")
        }
        "/outage" => (StatusCode::OK, "ok, for now\n"),
        _ => (StatusCode::NOT_FOUND, "not found; try /healthy, /slow, /flaky or /outage\n"),
    };
    let mut response = HttpResponse::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// Whether the outage demo is down `uptime` after dev mode started.
fn outage_now(uptime: Duration) -> bool {
    let into_cycle = Duration::from_millis((uptime.as_millis() % OUTAGE_CYCLE.as_millis()) as u64);
    (OUTAGE_AFTER..OUTAGE_AFTER + OUTAGE_FOR).contains(&into_cycle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_demo_is_down_from_one_minute_for_forty_seconds_every_three() {
        let s = Duration::from_secs;
        for (at, down) in
            [(0, false), (59, false), (60, true), (99, true), (100, false), (240, true), (280, false)]
        {
            assert_eq!(outage_now(s(at)), down, "{at} s");
        }
    }

    #[test]
    fn an_unspecified_address_is_dialled_on_loopback() {
        assert_eq!(connect_addr("0.0.0.0:7400".parse().unwrap()), "127.0.0.1:7400".parse().unwrap());
        assert_eq!(connect_addr("[::]:7400".parse().unwrap()), "[::1]:7400".parse().unwrap());
        assert_eq!(connect_addr("10.0.0.1:7400".parse().unwrap()), "10.0.0.1:7400".parse().unwrap());
    }

    #[test]
    fn the_flaky_target_fails_about_one_request_in_five() {
        let count = AtomicU64::new(0);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let failures = runtime.block_on(async {
            let mut failures = 0;
            for _ in 0..1000 {
                let request = HttpRequest::get("/flaky").body(()).unwrap();
                if demo_route(&request, &count, Duration::ZERO).await.status() != StatusCode::OK {
                    failures += 1;
                }
            }
            failures
        });
        assert!((120..=280).contains(&failures), "{failures} of 1000 failed");
    }
}
