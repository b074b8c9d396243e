//! `vantagectl endpoint add|update|rm|get|list|pause|resume` (`status` is in
//! [`crate::cmd::incident`], `history` in [`crate::cmd::history`]).

use std::io::Write;
use std::time::Duration;

use crate::args::{EndpointAddArgs, EndpointCommand, EndpointSettings, EndpointUpdateArgs};
use crate::cmd::{Context, RemovedJson};
use crate::diff::endpoint_changes;
use crate::error::Error;
use crate::model::{EndpointSpec, Expectations};
use crate::output::{endpoint_details, endpoints_table};
use vantage_core::endpoint::default_timeout_ms;
use vantage_core::validate::ValidationError;

/// Runs an endpoint command.
pub async fn run(ctx: &Context<'_>, command: &EndpointCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    match command {
        EndpointCommand::Add(args) => {
            let spec = spec_from_add(args)?;
            let endpoint = client.add_endpoint(&spec, &ctx.new_key()?).await?;
            let human = format!("added endpoint {} (id {})", endpoint.spec.name, endpoint.id);
            ctx.print(out, &endpoint, &human)
        }
        EndpointCommand::Update(args) => {
            // Read, modify, write: the reply of a consistent read is the
            // base, so options not given keep their current value.
            let current = client.get_endpoint(&args.endpoint, true).await?;
            let spec = spec_from_update(&current.spec, args)?;
            if spec == current.spec {
                let human =
                    format!("endpoint {} (id {}) is already as asked; nothing sent", spec.name, current.id);
                return ctx.print(out, &current, &human);
            }
            let changes = endpoint_changes(&current.spec, &spec).join(", ");
            let (endpoint, _changed) =
                client.update_endpoint(&current.id.to_string(), &spec, &ctx.new_key()?).await?;
            let human = format!("updated endpoint {} (id {}): {changes}", endpoint.spec.name, endpoint.id);
            ctx.print(out, &endpoint, &human)
        }
        EndpointCommand::Rm(args) => {
            let removed = client.remove_endpoint(&args.endpoint, &ctx.new_key()?).await?;
            let human = format!("removed {}", removed.describe("endpoint"));
            ctx.print(out, &RemovedJson { kind: "endpoint", id: removed.id, name: &removed.name }, &human)
        }
        EndpointCommand::Get(args) => {
            let endpoint = client.get_endpoint(&args.endpoint, ctx.consistent).await?;
            ctx.print(out, &endpoint, &endpoint_details(&endpoint))
        }
        EndpointCommand::List => {
            let mut endpoints = client.list_endpoints(ctx.consistent).await?;
            endpoints.sort_by_key(|e| e.id);
            ctx.print(out, &endpoints, &endpoints_table(&endpoints).render())
        }
        EndpointCommand::Pause(args) | EndpointCommand::Resume(args) => {
            let paused = matches!(command, EndpointCommand::Pause(_));
            let (endpoint, changed) =
                client.set_endpoint_paused(&args.endpoint, paused, &ctx.new_key()?).await?;
            let verb = if paused { "paused" } else { "resumed" };
            let human = if changed {
                format!("{verb} endpoint {} (id {})", endpoint.spec.name, endpoint.id)
            } else {
                format!("endpoint {} (id {}) was already {verb}", endpoint.spec.name, endpoint.id)
            };
            ctx.print(out, &endpoint, &human)
        }
        EndpointCommand::Status(args) => crate::cmd::incident::endpoint_status(ctx, args, out).await,
        EndpointCommand::History(args) => crate::cmd::history::run(ctx, args, out).await,
    }
}

/// The specification `endpoint add` sends: defaults, then the options.
/// Without `--timeout`, the timeout is 10 s, or half the interval when
/// that is shorter.
pub fn spec_from_add(args: &EndpointAddArgs) -> Result<EndpointSpec, Error> {
    let mut spec = EndpointSpec::new(&args.name, &args.url);
    if let Some(interval) = args.settings.interval {
        spec.interval_ms = millis(interval);
        spec.timeout_ms = default_timeout_ms(spec.interval_ms);
    }
    apply_settings(&mut spec, &args.settings);
    spec.validate().map_err(|e| Error::usage(e.to_string()))?;
    Ok(spec)
}

/// The specification `endpoint update` sends: `current` with the options
/// given applied, everything else as it was.
pub fn spec_from_update(current: &EndpointSpec, args: &EndpointUpdateArgs) -> Result<EndpointSpec, Error> {
    let mut spec = current.clone();
    if let Some(name) = &args.rename {
        spec.name = name.clone();
    }
    if let Some(url) = &args.url {
        spec.url = url.clone();
    }
    for key in &args.remove_label {
        if spec.labels.remove(key).is_none() {
            return Err(Error::usage(format!(
                "--remove-label {key}: endpoint {} has no such label",
                current.name
            )));
        }
    }
    if args.clear_expect {
        spec.expect = Expectations::default();
    }
    apply_settings(&mut spec, &args.settings);
    spec.validate().map_err(|e| {
        let timeout_not_below_interval = matches!(e, ValidationError::InvalidTimeout { timeout_ms, .. }
            if timeout_ms > 0 && timeout_ms <= vantage_core::endpoint::MAX_TIMEOUT_MS);
        if args.settings.interval.is_some() && args.settings.timeout.is_none() && timeout_not_below_interval {
            Error::usage(format!("{e}; give a shorter --timeout too"))
        } else {
            Error::usage(e.to_string())
        }
    })?;
    Ok(spec)
}

/// Applies the options given; lists given replace the current list.
fn apply_settings(spec: &mut EndpointSpec, settings: &EndpointSettings) {
    if let Some(interval) = settings.interval {
        spec.interval_ms = millis(interval);
    }
    if let Some(timeout) = settings.timeout {
        spec.timeout_ms = millis(timeout);
    }
    if let Some(regions) = &settings.regions {
        spec.regions = regions.0.iter().cloned().collect();
    }
    if let Some(retries) = settings.retries {
        spec.retries = retries;
    }
    if let Some(quorum) = settings.quorum {
        spec.quorum = Some(quorum);
    }
    if let Some(rounds) = settings.recovery_rounds {
        spec.recovery_rounds = rounds;
    }
    if let Some(limit) = settings.min_failure {
        spec.min_failure = Some(limit).filter(|d| !d.is_zero());
    }
    if let Some(public) = settings.public {
        spec.public = public;
    }
    if let Some(allow_private) = settings.allow_private {
        spec.allow_private = allow_private;
    }
    for (key, value) in &settings.label {
        spec.labels.insert(key.clone(), value.clone());
    }
    let e = &mut spec.expect;
    if let Some(status) = &settings.expect_status {
        e.status = Some(status.clone());
    }
    let lists = [
        (&mut e.body_contains, &settings.expect_body),
        (&mut e.body_matches, &settings.expect_regex),
        (&mut e.json, &settings.expect_json),
        (&mut e.headers, &settings.expect_header),
    ];
    for (current, given) in lists {
        if !given.is_empty() {
            current.clone_from(given);
        }
    }
    if let Some(limit) = settings.max_total {
        e.max_total = Some(limit);
    }
    if let Some(limit) = settings.max_ttfb {
        e.max_ttfb = Some(limit);
    }
    if let Some(days) = settings.min_cert_days {
        e.min_cert_days = Some(days);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use vantage_proto::pb;

    use super::*;
    use crate::args::{Cli, Command};

    fn add_args(args: &[&str]) -> EndpointAddArgs {
        let argv = ["vantagectl", "endpoint", "add"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Endpoint(EndpointCommand::Add(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn update_args(args: &[&str]) -> EndpointUpdateArgs {
        let argv = ["vantagectl", "endpoint", "update", "api"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Endpoint(EndpointCommand::Update(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_arguments_map_to_the_request() {
        let args = add_args(&[
            "api",
            "https://api.example.com/health",
            "--interval",
            "30s",
            "--timeout",
            "5s",
            "--regions",
            "eu-west,us-east",
            "--public",
            "--label",
            "team=core",
            "--label",
            "tier=1",
            "--expect-status",
            "200-299",
            "--expect-body",
            "ok",
            "--expect-json",
            "/status=ok",
            "--expect-header",
            "content-type: json",
            "--max-ttfb",
            "800ms",
            "--min-cert-days",
            "14",
        ]);
        let request = pb::EndpointSpec::from(&spec_from_add(&args).unwrap());
        assert_eq!(request.name, "api");
        assert_eq!(request.url, "https://api.example.com/health");
        assert_eq!((request.interval_ms, request.timeout_ms), (30_000, 5_000));
        assert_eq!(request.regions, vec!["eu-west", "us-east"]);
        assert!(request.public && !request.allow_private && !request.paused);
        assert_eq!(request.labels.len(), 2);
        assert_eq!(request.labels["team"], "core");
        let a = request.assertions.unwrap();
        assert_eq!(a.status, "200-299");
        assert_eq!(a.body_contains, vec!["ok"]);
        assert_eq!(a.json, vec!["/status=ok"]);
        assert_eq!(a.headers, vec!["content-type: json"]);
        assert_eq!((a.max_total_ms, a.max_ttfb_ms, a.min_cert_days), (None, Some(800), Some(14)));
    }

    #[test]
    fn add_defaults_and_cross_checks() {
        let spec = spec_from_add(&add_args(&["api", "tcp://db.internal:5432"])).unwrap();
        assert_eq!((spec.interval_ms, spec.timeout_ms), (60_000, 10_000));
        let spec = spec_from_add(&add_args(&["api", "https://x/", "--interval", "4s"])).unwrap();
        assert_eq!(spec.timeout_ms, 2_000, "a short interval gets half as timeout");
        for (args, want) in [
            (&["api", "https://x/", "--interval", "5s", "--timeout", "5s"][..], "below the interval (5s)"),
            (&["api", "ftp://x/"], "unsupported scheme \"ftp\""),
            (&["123", "https://x/"], "all digits"),
        ] {
            let err = spec_from_add(&add_args(args)).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(want), "{args:?}: {err}");
        }
    }

    #[test]
    fn update_keeps_what_is_not_given() {
        let mut current = EndpointSpec::new("api", "https://api.example.com/");
        current.regions = ["eu-west".to_string()].into();
        current.labels.insert("team".into(), "core".into());
        current.labels.insert("old".into(), "x".into());
        current.expect.body_contains = vec!["ok".into()];
        current.paused = true;

        let spec = spec_from_update(&current, &update_args(&["--interval", "30s"])).unwrap();
        assert_eq!(spec, EndpointSpec { interval_ms: 30_000, ..current.clone() });

        let spec = spec_from_update(
            &current,
            &update_args(&[
                "--regions",
                "",
                "--label",
                "tier=1",
                "--remove-label",
                "old",
                "--public",
                "--rename",
                "api2",
            ]),
        )
        .unwrap();
        assert!(spec.regions.is_empty());
        assert_eq!(spec.labels.keys().collect::<Vec<_>>(), ["team", "tier"]);
        assert!(spec.public && spec.paused, "paused is untouched by update");
        assert_eq!(spec.name, "api2");
        assert_eq!(spec.expect.body_contains, vec!["ok"]);

        let spec =
            spec_from_update(&current, &update_args(&["--clear-expect", "--expect-status", "204"])).unwrap();
        assert_eq!(spec.expect, Expectations { status: Some("204".into()), ..Default::default() });

        let err = spec_from_update(&current, &update_args(&["--interval", "5s"])).unwrap_err();
        assert!(err.to_string().ends_with("give a shorter --timeout too"), "{err}");
        let err = spec_from_update(&current, &update_args(&["--remove-label", "nope"])).unwrap_err();
        assert!(err.to_string().contains("has no such label"), "{err}");
    }
}
