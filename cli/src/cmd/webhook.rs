//! `vantagectl webhook add|update|list|rm|test`.

use std::io::Write;
use std::path::Path;

use tonic::Code;

use crate::args::{WebhookAddArgs, WebhookCommand, WebhookUpdateArgs};
use crate::cmd::{Context, RemovedJson};
use crate::diff::webhook_changes;
use crate::error::Error;
use crate::model::{Webhook, WebhookSpec, WebhookTestReport};
use crate::output::webhooks_table;
use vantage_core::webhook::WebhookSecret;

/// Runs a webhook command.
pub async fn run(ctx: &Context<'_>, command: &WebhookCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    match command {
        WebhookCommand::Add(args) => {
            let (spec, secret) = spec_from_add(args)?;
            // An empty secret asks the coordinator to generate one.
            let secret = secret.unwrap_or_default();
            let webhook = client.add_webhook(&spec, &secret, &ctx.new_key()?).await?;
            let mut human = format!("added webhook {} (id {})", webhook.spec.name, webhook.id);
            if let Some(generated) = &webhook.generated_secret {
                human.push_str(&format!(
                    "\nsigning secret (shown only now; give it to the receiver): {generated}"
                ));
            }
            ctx.print(out, &webhook, &human)
        }
        WebhookCommand::Update(args) => {
            // The new secret first: a bad one is a usage error, nothing read.
            let secret = read_secret(args.secret.as_deref(), args.secret_file.as_deref())?;
            // Read, modify, write: the webhook as a consistent read sees it
            // is the base, so options not given keep their current value.
            let webhooks = client.list_webhooks(true).await?;
            let current = find(&webhooks, &args.webhook)?;
            let spec = spec_from_update(&current.spec, args)?;
            if spec == current.spec && secret.is_none() {
                let human =
                    format!("webhook {} (id {}) is already as asked; nothing sent", spec.name, current.id);
                return ctx.print(out, current, &human);
            }
            let mut changes = webhook_changes(&current.spec, &spec);
            if secret.is_some() {
                changes.push("secret replaced".into());
            }
            // An empty secret keeps the stored one.
            let secret = secret.unwrap_or_default();
            let webhook =
                client.update_webhook(&current.id.to_string(), &spec, &secret, &ctx.new_key()?).await?;
            let human =
                format!("updated webhook {} (id {}): {}", webhook.spec.name, webhook.id, changes.join(", "));
            ctx.print(out, &webhook, &human)
        }
        WebhookCommand::List => {
            let mut webhooks = client.list_webhooks(ctx.consistent).await?;
            webhooks.sort_by_key(|w| w.id);
            ctx.print(out, &webhooks, &webhooks_table(&webhooks).render())
        }
        WebhookCommand::Rm { webhook } => {
            let removed = client.remove_webhook(webhook, &ctx.new_key()?).await?;
            let human = format!("removed {}", removed.describe("webhook"));
            ctx.print(out, &RemovedJson { kind: "webhook", id: removed.id, name: &removed.name }, &human)
        }
        WebhookCommand::Test { webhook } => {
            let report = client.test_webhook(webhook).await?;
            ctx.print(out, &report, &test_text(&report))?;
            if !report.delivered {
                out.flush()?;
                return Err(Error::WebhookTestFailed { name: report.name });
            }
            Ok(())
        }
    }
}

/// `webhook test`'s human answer: one line with the status and latency,
/// and the error on a second when it was not accepted.
pub fn test_text(report: &WebhookTestReport) -> String {
    let status = report.status_code.map_or_else(|| "no answer".to_string(), |code| format!("HTTP {code}"));
    let verdict = if report.delivered { "delivered" } else { "not delivered" };
    let mut text = format!(
        "{verdict}: test event {} to webhook {} ({}): {status} in {:.1} ms (sent by node {})",
        report.message_id, report.name, report.url, report.latency_ms, report.node_id
    );
    if let Some(error) = &report.error {
        text.push_str(&format!("\nerror: {error}"));
    }
    text
}

/// The specification and secret `webhook add` sends; no secret: the
/// coordinator generates one.
pub fn spec_from_add(args: &WebhookAddArgs) -> Result<(WebhookSpec, Option<String>), Error> {
    let secret = read_secret(args.secret.as_deref(), args.secret_file.as_deref())?;
    let spec = WebhookSpec {
        name: args.name.clone(),
        url: args.url.clone(),
        secret: WebhookSecret::default(),
        format: args.format,
        events: args.events.iter().copied().collect(),
        labels: args.label.iter().cloned().collect(),
        allow_private: args.allow_private,
    };
    spec.validate().map_err(|e| Error::usage(e.to_string()))?;
    Ok((spec, secret))
}

/// The specification `webhook update` sends: `current` with the options
/// given applied, everything else as it was. The secret is separate (see
/// [`read_secret`]): it cannot be read back.
pub fn spec_from_update(current: &WebhookSpec, args: &WebhookUpdateArgs) -> Result<WebhookSpec, Error> {
    let mut spec = current.clone();
    if let Some(url) = &args.url {
        spec.url = url.clone();
    }
    if let Some(format) = args.format {
        spec.format = format;
    }
    if let Some(allow_private) = args.allow_private {
        spec.allow_private = allow_private;
    }
    if args.clear_events {
        spec.events.clear();
    }
    if !args.events.is_empty() {
        spec.events = args.events.iter().copied().collect();
    }
    if args.clear_labels {
        spec.labels.clear();
    }
    for (key, value) in &args.label {
        spec.labels.insert(key.clone(), value.clone());
    }
    spec.validate().map_err(|e| Error::usage(e.to_string()))?;
    Ok(spec)
}

/// The secret given with `--secret` or in `--secret-file` (without the
/// file's trailing newline), checked; `None` when neither is given.
pub fn read_secret(secret: Option<&str>, secret_file: Option<&Path>) -> Result<Option<String>, Error> {
    let secret = match (secret, secret_file) {
        (Some(secret), _) => secret.to_string(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::File {
                what: "--secret-file",
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            // Files usually end in a newline that is not part of the secret.
            text.trim_end_matches(['\r', '\n']).to_string()
        }
        (None, None) => return Ok(None),
    };
    let secret = WebhookSecret(secret);
    secret.validate().map_err(|e| Error::usage(e.to_string()))?;
    Ok(Some(secret.0))
}

/// The webhook named by `reference`, resolved as the coordinator does: an
/// id when it is one, else a name.
fn find<'a>(webhooks: &'a [Webhook], reference: &str) -> Result<&'a Webhook, Error> {
    let text = reference.trim();
    let by_id = text.parse::<u64>().ok().and_then(|id| webhooks.iter().find(|w| w.id == id));
    by_id.or_else(|| webhooks.iter().find(|w| w.spec.name == text)).ok_or_else(|| Error::Refused {
        code: Code::NotFound,
        message: format!("no webhook named {text:?} (list them with: vantagectl webhook list)"),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use vantage_proto::pb;

    use super::*;
    use crate::args::{Cli, Command};
    use crate::model::{AlertEvent, WebhookFormat};
    use crate::wire::webhook_spec_to_wire;

    fn add_args(args: &[&str]) -> WebhookAddArgs {
        let argv = ["vantagectl", "webhook", "add"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Webhook(WebhookCommand::Add(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn update_args(args: &[&str]) -> WebhookUpdateArgs {
        let argv = ["vantagectl", "webhook", "update", "oncall"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Webhook(WebhookCommand::Update(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn current() -> WebhookSpec {
        WebhookSpec {
            name: "oncall".into(),
            url: "https://hooks.example.com/x".into(),
            secret: Default::default(),
            format: WebhookFormat::Standard,
            events: [AlertEvent::OutageOpened].into(),
            labels: [("team".to_string(), "core".to_string())].into(),
            allow_private: false,
        }
    }

    #[test]
    fn update_keeps_what_is_not_given() {
        let spec = spec_from_update(&current(), &update_args(&[])).unwrap();
        assert_eq!(spec, current(), "no option: nothing changes");

        let spec =
            spec_from_update(&current(), &update_args(&["--url", "https://hooks.example.com/y"])).unwrap();
        assert_eq!(spec, WebhookSpec { url: "https://hooks.example.com/y".into(), ..current() });

        let args = update_args(&[
            "--format", "slack", "--event", "degraded", "--event", "flapping", "--label", "tier=1",
        ]);
        let spec = spec_from_update(&current(), &args).unwrap();
        assert_eq!(spec.format, WebhookFormat::Slack);
        assert_eq!(
            spec.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            ["degraded", "flapping"],
            "--event replaces the list"
        );
        assert_eq!(spec.labels.keys().collect::<Vec<_>>(), ["team", "tier"], "--label adds");
        assert_eq!(spec.url, current().url);

        let spec = spec_from_update(&current(), &update_args(&["--clear-events", "--clear-labels"])).unwrap();
        assert!(spec.events.is_empty() && spec.labels.is_empty());
        let spec =
            spec_from_update(&current(), &update_args(&["--clear-labels", "--label", "team=edge"])).unwrap();
        assert_eq!(spec.labels, [("team".to_string(), "edge".to_string())].into());
    }

    #[test]
    fn update_usage_errors() {
        let err = spec_from_update(&current(), &update_args(&["--url", "dns://x"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("use http:// or https://"), "{err}");
        let err = read_secret(Some("short"), None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(read_secret(None, None).unwrap(), None, "no secret given: the stored one stays");
        for args in [
            &["webhook", "update", "oncall", "--clear-events", "--event", "degraded"][..],
            &["webhook", "update", "oncall", "--secret", "0123456789abcdef", "--secret-file", "f"],
            &["webhook", "update", "oncall", "--format", "teams"],
        ] {
            let err =
                Cli::try_parse_from(std::iter::once("vantagectl").chain(args.iter().copied())).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn webhooks_are_found_by_id_or_name() {
        let hook = |id, name: &str| Webhook {
            id,
            spec: WebhookSpec { name: name.into(), ..current() },
            secret_set: true,
            created_at_unix_ms: 0,
            generated_secret: None,
        };
        let hooks = [hook(3, "oncall"), hook(7, "ops")];
        assert_eq!(find(&hooks, "7").unwrap().spec.name, "ops");
        assert_eq!(find(&hooks, " oncall ").unwrap().id, 3);
        let err = find(&hooks, "9").unwrap_err();
        assert_eq!(err.to_string(), "no webhook named \"9\" (list them with: vantagectl webhook list)");
    }

    #[test]
    fn add_arguments_map_to_the_request() {
        let args = add_args(&[
            "oncall",
            "https://hooks.example.com/x",
            "--secret",
            "0123456789abcdef",
            "--format",
            "slack",
            "--event",
            "outage_opened",
            "--event",
            "degraded",
            "--label",
            "team=core",
        ]);
        let (spec, secret) = spec_from_add(&args).unwrap();
        let request: pb::WebhookSpec = webhook_spec_to_wire(&spec, secret.as_deref().unwrap());
        assert_eq!(request.name, "oncall");
        assert_eq!(request.secret, "0123456789abcdef");
        assert_eq!(request.format, "slack");
        assert_eq!(request.events, vec!["degraded", "outage_opened"]);
        assert_eq!(request.labels["team"], "core");
        assert!(!request.allow_private);

        let args =
            add_args(&["local", "http://127.0.0.1:9000/hook", "--allow-private", "--format", "alertmanager"]);
        let (spec, secret) = spec_from_add(&args).unwrap();
        assert_eq!(secret, None, "no secret given: the coordinator generates one");
        assert!(spec.allow_private);
        assert_eq!(spec.format, WebhookFormat::Alertmanager);
        let err = spec_from_add(&add_args(&["local", "http://127.0.0.1:9000/hook"])).unwrap_err();
        assert!(err.to_string().contains("--allow-private"), "{err}");
        let spec = spec_from_update(&current(), &update_args(&["--allow-private"])).unwrap();
        assert!(spec.allow_private);
        let spec = spec_from_update(&spec, &update_args(&["--allow-private=false"])).unwrap();
        assert!(!spec.allow_private);
    }

    #[test]
    fn the_test_report_reads_as_one_line_and_the_error() {
        let mut report = WebhookTestReport {
            webhook_id: 3,
            name: "oncall".into(),
            url: "https://hooks.example.com/x".into(),
            delivered: true,
            status_code: Some(204),
            latency_ms: 12.34,
            error: None,
            message_id: "msg_vantage_test_1".into(),
            node_id: 2,
        };
        assert_eq!(
            test_text(&report),
            "delivered: test event msg_vantage_test_1 to webhook oncall (https://hooks.example.com/x): HTTP 204 \
             in 12.3 ms (sent by node 2)"
        );
        report.delivered = false;
        report.status_code = None;
        report.error = Some("connection refused by 203.0.113.9:443".into());
        let text = test_text(&report);
        assert!(text.starts_with("not delivered: ") && text.contains(": no answer in 12.3 ms"), "{text}");
        assert!(text.ends_with("\nerror: connection refused by 203.0.113.9:443"), "{text}");
    }

    #[test]
    fn short_secrets_and_bad_urls_are_usage_errors() {
        let err = spec_from_add(&add_args(&["w", "https://x/", "--secret", "short"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = spec_from_add(&add_args(&["w", "dns://x", "--secret", "0123456789abcdef"])).unwrap_err();
        assert!(err.to_string().contains("use http:// or https://"), "{err}");
    }
}
