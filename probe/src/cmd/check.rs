//! `vantage-probe check`: run checks now and report them, like `curl -w` but
//! cold and strict. Results stream as they finish; the exit code says
//! whether all passed (0), any failed (1), or the invocation was wrong (2).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::task::JoinSet;
use vantage_core::assert::{HeaderAssertion, JsonAssertion, Pattern, StatusSet};
use vantage_core::netguard::{Cidr, Policy};
use vantage_core::result::{duration_ms, CheckResult, Phase};
use vantage_core::spec::{AddressFamily, CheckSpec};

use crate::check::{Checker, CheckerConfig};

/// Arguments of `vantage-probe check`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct CheckArgs {
    /// URLs to check: http://, https://, tcp://host:port, tls://host:port,
    /// dns://name?type=A&expect=VALUE.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Read more URLs from FILE, one per line (`#` starts a comment; `-` is
    /// standard input).
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print one JSON object per check, one per line.
    #[arg(long)]
    pub json: bool,
    /// How many checks run at once.
    #[arg(long, short = 'c', default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Time limit of each whole check (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Time limit of one phase inside the check, as PHASE=DUR with PHASE one
    /// of dns, connect, tls, ttfb, transfer (repeatable).
    #[arg(long, value_name = "PHASE=DUR", value_parser = parse_phase_timeout)]
    pub phase_timeout: Vec<(Phase, Duration)>,
    /// DNS server to ask instead of /etc/resolv.conf (repeatable).
    #[arg(long, value_name = "IP:PORT")]
    pub resolver: Vec<SocketAddr>,
    /// Trust the CA certificates in this PEM file, besides the public roots
    /// (repeatable).
    #[arg(long, value_name = "FILE")]
    pub ca: Vec<PathBuf>,
    /// Skip certificate verification; the certificate is still reported.
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Allow targets that resolve to loopback, private or link-local
    /// addresses (refused by default: SSRF guard).
    #[arg(long)]
    pub allow_private: bool,
    /// Allow targets in this network although the SSRF guard would refuse
    /// them, e.g. 10.1.0.0/16 or 127.0.0.1 (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow_cidr: Vec<Cidr>,
    /// Follow up to N redirects (default: none); phases are summed over
    /// hops and each hop is reported.
    #[arg(long, short = 'L', default_value_t = 0, value_name = "N")]
    pub follow_redirects: u32,
    /// Check a failure again at once, cold, up to N times (0 to 3) and
    /// report the last run with its attempts (default: none).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=3))]
    pub retries: u32,
    /// Stop reading the body after this many bytes and fail with
    /// body_too_large.
    #[arg(long, default_value_t = vantage_core::spec::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    pub max_body: u64,
    /// Acceptable status codes, e.g. 200-299,301 (default 200-399).
    #[arg(long, value_name = "LIST")]
    pub expect_status: Option<String>,
    /// Text the body must contain (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub expect_body: Vec<String>,
    /// Regular expression the body must match (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub expect_regex: Vec<String>,
    /// JSON value the body must hold at a JSON pointer, e.g. /status=ok
    /// (repeatable).
    #[arg(long, value_name = "POINTER=VALUE")]
    pub expect_json: Vec<String>,
    /// Header the response must carry, optionally matching a regex, e.g.
    /// "content-type: json" (repeatable).
    #[arg(long, value_name = "NAME[: REGEX]")]
    pub expect_header: Vec<String>,
    /// Fail when the whole check takes longer than this.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_total: Option<Duration>,
    /// Fail when time to first byte is longer than this.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_ttfb: Option<Duration>,
    /// Fail when the certificate expires in fewer than N days.
    #[arg(long, value_name = "N")]
    pub min_cert_days: Option<i64>,
    /// Use IPv4 only.
    #[arg(long, short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use IPv6 only.
    #[arg(long, short = '6')]
    pub ipv6: bool,
    /// Try IPv6 addresses before IPv4 ones (default: IPv4 first).
    #[arg(long, conflicts_with_all = ["ipv4", "ipv6"])]
    pub prefer_ipv6: bool,
}

const AFTER_HELP: &str = "\
Every check is cold: a fresh DNS lookup (no cache), a new TCP connection and a
full TLS handshake (no resumption).

Phases, in milliseconds with microsecond resolution, and their curl -w names:
  dns       time_namelookup                    (0 for an IP literal)
  connect   time_connect - time_namelookup
  tls       time_appconnect - time_connect
  ttfb      time_starttransfer - time_pretransfer
  transfer  time_total - time_starttransfer
  total     time_total

Error kinds: dns, connect_refused, connect_timeout, tls (unknown_issuer,
expired, hostname_mismatch, handshake), timeout (names its phase), http_status,
assertion, body_too_large, blocked (SSRF guard), protocol.

Exit status: 0 every check passed, 1 a check failed, 2 bad usage.

Examples:
  vantage-probe check https://example.com/
  vantage-probe check --json --allow-private http://127.0.0.1:8080/health
  vantage-probe check -f urls.txt -c 64 --json > results.jsonl
  vantage-probe check 'dns://example.com?type=AAAA' --resolver 127.0.0.1:5353
  vantage-probe check tls://db.internal:5432 --min-cert-days 14";

/// How `check` ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed.
    AllPassed,
    /// At least one check failed.
    SomeFailed,
}

/// Builds the check specifications from the arguments, validating all of
/// them before any check runs.
pub fn specs(args: &CheckArgs) -> anyhow::Result<Vec<CheckSpec>> {
    let mut urls = args.urls.clone();
    if let Some(path) = &args.file {
        urls.extend(read_url_file(path)?);
    }
    if urls.is_empty() {
        bail!("no URL to check: give URLs as arguments or --file FILE");
    }
    let mut template = CheckSpec::parse("http://template.invalid/")?;
    template.timeout = args.timeout;
    for (phase, limit) in &args.phase_timeout {
        template.phase_timeouts.set(*phase, *limit);
    }
    template.follow_redirects = args.follow_redirects;
    template.retries = args.retries;
    template.max_body_bytes = args.max_body;
    template.guard = Policy { allow_private: args.allow_private, allow: args.allow_cidr.clone() };
    template.tls_verify = !args.insecure;
    template.family = match (args.ipv4, args.ipv6, args.prefer_ipv6) {
        (true, _, _) => AddressFamily::Ipv4,
        (_, true, _) => AddressFamily::Ipv6,
        (_, _, true) => AddressFamily::PreferIpv6,
        _ => AddressFamily::PreferIpv4,
    };
    let a = &mut template.assertions;
    if let Some(list) = &args.expect_status {
        a.status = StatusSet::parse(list)?;
    }
    a.body_contains = args.expect_body.clone();
    a.body_matches =
        args.expect_regex.iter().map(|r| Pattern::new("expect-regex", r)).collect::<Result<_, _>>()?;
    a.json = args.expect_json.iter().map(|j| JsonAssertion::parse(j)).collect::<Result<_, _>>()?;
    a.headers = args.expect_header.iter().map(|h| HeaderAssertion::parse(h)).collect::<Result<_, _>>()?;
    a.max_total = args.max_total;
    a.max_ttfb = args.max_ttfb;
    a.min_cert_days = args.min_cert_days;
    template.validate()?;
    urls.iter()
        .map(|url| {
            let parsed = CheckSpec::parse(url)?;
            Ok(CheckSpec { url: parsed.url, target: parsed.target, ..template.clone() })
        })
        .collect()
}

/// The shared checker for the arguments (resolvers, extra CAs).
pub fn checker(args: &CheckArgs) -> anyhow::Result<Checker> {
    let mut extra_roots = Vec::new();
    for path in &args.ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading --ca {}", path.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing --ca {}", path.display()))?;
        if certs.is_empty() {
            bail!("--ca {}: no PEM certificate in the file", path.display());
        }
        extra_roots.extend(certs);
    }
    Ok(Checker::new(CheckerConfig {
        resolvers: args.resolver.clone(),
        extra_roots,
        ..CheckerConfig::default()
    })?)
}

/// Runs the checks with `args.concurrency` in flight, writing each result
/// to `out` as it finishes.
pub async fn run(
    args: &CheckArgs,
    specs: Vec<CheckSpec>,
    checker: Checker,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let checker = Arc::new(checker);
    let total = specs.len();
    let mut pending = specs.into_iter();
    let mut running = JoinSet::new();
    let (mut passed, mut failed) = (0usize, 0usize);
    loop {
        while running.len() < args.concurrency as usize {
            let Some(spec) = pending.next() else { break };
            let checker = checker.clone();
            running.spawn(async move { checker.check(&spec).await });
        }
        let Some(done) = running.join_next().await else { break };
        let result = done.context("a check task panicked")?;
        if result.ok {
            passed += 1;
        } else {
            failed += 1;
        }
        if args.json {
            serde_json::to_writer(&mut *out, &result)?;
            writeln!(out)?;
        } else {
            write_human(out, &result)?;
        }
        out.flush()?;
    }
    if !args.json && total > 1 {
        writeln!(out, "{total} checks: {passed} passed, {failed} failed")?;
    }
    Ok(if failed == 0 { Outcome::AllPassed } else { Outcome::SomeFailed })
}

/// Writes one result as a curl-style timing breakdown with a bar per phase.
pub fn write_human(out: &mut impl Write, r: &CheckResult) -> std::io::Result<()> {
    let verdict = if r.ok { "ok  " } else { "FAIL" };
    write!(out, "{verdict} {}", r.url)?;
    if let Some(code) = r.status_code {
        write!(out, "  {code}")?;
    }
    if let Some(v) = &r.http_version {
        write!(out, " {v}")?;
    }
    if let Some(addr) = r.remote_addr {
        write!(out, "  {addr}")?;
    }
    writeln!(out, "  {:.1} ms", duration_ms(r.phases_ms.total))?;
    let p = &r.phases_ms;
    let total = p.total.as_secs_f64().max(1e-9);
    for (name, d) in
        [("dns", p.dns), ("connect", p.connect), ("tls", p.tls), ("ttfb", p.ttfb), ("transfer", p.transfer)]
    {
        writeln!(out, "    {name:<9}{:>11.3} ms  {}", duration_ms(d), bar(d.as_secs_f64() / total, 40))?;
    }
    writeln!(out, "    {:<9}{:>11.3} ms", "total", duration_ms(p.total))?;
    if let Some(t) = &r.tls {
        let expiry = humantime::format_rfc3339_seconds(t.cert_not_after);
        let session =
            if t.version.is_empty() { String::new() } else { format!("{} {}, ", t.version, t.cipher) };
        writeln!(
            out,
            "    tls      {session}cert {:?} expires {expiry} ({} days)",
            t.subject, t.cert_days_left
        )?;
    }
    for hop in &r.hops {
        let status = hop.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        writeln!(out, "    hop      {status} {} ({:.1} ms)", hop.url, duration_ms(hop.phases_ms.total))?;
    }
    if !r.dns_answers.is_empty() {
        writeln!(out, "    answers  {}", r.dns_answers.join(", "))?;
    }
    if r.body_bytes > 0 {
        writeln!(out, "    body     {} bytes", r.body_bytes)?;
    }
    if let Some(e) = &r.error {
        writeln!(out, "    error    {e}")?;
    }
    Ok(())
}

/// A bar of `fraction` × `width` cells, with eighth-cell resolution.
fn bar(fraction: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let eighths = (fraction.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if eighths % 8 != 0 {
        s.push(PARTS[eighths % 8]);
    }
    s
}

fn read_url_file(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading URLs from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading --file {}", path.display()))?
    };
    Ok(text
        .lines()
        .map(|line| line.split_once('#').map_or(line, |(before, _)| before).trim())
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 500ms, 1m)"))
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    Cidr::parse(s)
}

fn parse_phase_timeout(s: &str) -> Result<(Phase, Duration), String> {
    let (phase, limit) = s.split_once('=').ok_or("expected PHASE=DUR, e.g. connect=2s")?;
    let phase = match phase.trim() {
        "dns" => Phase::Dns,
        "connect" => Phase::Connect,
        "tls" => Phase::Tls,
        "ttfb" => Phase::Ttfb,
        "transfer" => Phase::Transfer,
        other => return Err(format!("unknown phase {other:?} (dns, connect, tls, ttfb, transfer)")),
    };
    Ok((phase, parse_duration(limit.trim())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_eighth_resolution() {
        assert_eq!(bar(0.0, 10), "");
        assert_eq!(bar(1.0, 10), "█".repeat(10));
        assert_eq!(bar(0.5, 2), "█");
        assert_eq!(bar(1.0 / 16.0, 2), "▏");
    }

    #[test]
    fn phase_timeouts_parse() {
        assert_eq!(parse_phase_timeout("connect=2s"), Ok((Phase::Connect, Duration::from_secs(2))));
        assert!(parse_phase_timeout("bogus=1s").unwrap_err().contains("unknown phase"));
        assert!(parse_phase_timeout("ttfb").is_err());
    }
}
