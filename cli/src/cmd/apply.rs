//! `vantagectl apply -f FILE [--prune] [--dry-run]`: read the file, read
//! the mesh (consistent reads), print the diff, send it.
//!
//! Idempotency: each change's key is derived from the file's bytes and the
//! exact change, so re-running an apply that was interrupted after a change
//! was committed but before its reply arrived sends the same key, and the
//! coordinator answers from memory instead of applying twice. The flip side:
//! if that change was later undone by hand, applying the same file again
//! is also answered from memory (or refused as "removed by another
//! change"), and nothing happens. So after sending, apply reads the mesh
//! again; whatever still differs was not in effect, and is sent once more
//! with fresh random keys. Those keys are safe: the coordinator remembered
//! the earlier key, so that change is committed and cannot land a second
//! time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;
use tonic::Code;

use crate::args::ApplyArgs;
use crate::client::AdminClient;
use crate::cmd::Context;
use crate::diff::{self, Change, Plan};
use crate::document::{self, Desired, DesiredMaintenance, SecretSource};
use crate::error::Error;
use crate::keys::IdempotencyKey;
use crate::model::{LiveState, MaintenanceSpec};
use crate::timefmt::unix_ms;

/// Runs `apply`.
pub async fn run(ctx: &Context<'_>, args: &ApplyArgs, out: &mut dyn Write) -> Result<(), Error> {
    let (path, bytes) = read_input(&args.file)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::File {
        what: "-f",
        path: path.clone(),
        reason: "the file is not UTF-8 text".into(),
    })?;
    let desired = document::parse(&path, text)?.into_desired(&path)?;

    let live = ctx.client.live_state(true).await?;
    let plan = make_plan(ctx, &path, &desired, &live, args.prune)?;
    let secrets = resolve_secrets(&plan, ctx.env, &path);

    if ctx.json {
        write_plan_json(out, &plan, args.dry_run)?;
    } else {
        write_plan(out, &plan, args.prune)?;
    }
    if plan.changes.is_empty() {
        return Ok(());
    }
    if args.dry_run {
        if !ctx.json {
            if let Err(error) = &secrets {
                writeln!(out, "note: {error}")?;
            }
            writeln!(out, "dry run: nothing sent")?;
        }
        return Ok(());
    }
    let secrets = secrets?;

    let mut applied = execute(&ctx.client, &plan, &live, &secrets, Keys::Derived(&bytes)).await?.applied;

    let after = ctx.client.live_state(true).await?;
    let rest = make_plan(ctx, &path, &desired, &after, args.prune)?;
    if !rest.changes.is_empty() {
        if !ctx.json {
            writeln!(
                out,
                "note: {} change(s) are not in effect after applying (an earlier apply of this same file made \
                 them and they were undone since, or someone changed them meanwhile); sending them again with new \
                 keys",
                rest.changes.len()
            )?;
        }
        let secrets = resolve_secrets(&rest, ctx.env, &path)?;
        applied += execute(&ctx.client, &rest, &after, &secrets, Keys::Random).await?.applied;
        let last = ctx.client.live_state(true).await?;
        let left = make_plan(ctx, &path, &desired, &last, args.prune)?;
        if let Some(first) = left.changes.first() {
            return Err(Error::NotConverged { remaining: left.changes.len(), first: first.to_string() });
        }
    }
    if !ctx.json {
        writeln!(out, "applied {applied} change(s)")?;
    }
    Ok(())
}

fn make_plan(
    ctx: &Context<'_>,
    path: &str,
    desired: &Desired,
    live: &LiveState,
    prune: bool,
) -> Result<Plan, Error> {
    diff::plan(desired, live, prune, unix_ms(ctx.clock.now()))
        .map_err(|message| Error::Document { path: path.to_string(), message })
}

/// Reads the file, or standard input for `-`.
fn read_input(file: &Path) -> Result<(String, Vec<u8>), Error> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map_err(|e| Error::File {
            what: "-f",
            path: "<stdin>".into(),
            reason: e.to_string(),
        })?;
        return Ok(("<stdin>".into(), bytes));
    }
    let path = file.display().to_string();
    let bytes = std::fs::read(file).map_err(|e| Error::File {
        what: "-f",
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok((path, bytes))
}

/// The diff for humans: one line per change, then what stays.
fn write_plan(out: &mut dyn Write, plan: &Plan, prune: bool) -> Result<(), Error> {
    for change in &plan.changes {
        writeln!(out, "{change}")?;
    }
    for skipped in &plan.skipped {
        writeln!(out, "  skipped: {skipped}")?;
    }
    if plan.changes.is_empty() {
        writeln!(out, "no changes")?;
    }
    if !prune && !plan.kept.is_empty() {
        writeln!(out, "  kept (not in the file; --prune removes them): {}", plan.kept.join(", "))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct PlanJson<'a> {
    dry_run: bool,
    changes: Vec<ChangeJson>,
    kept: &'a [String],
    skipped: &'a [String],
}

#[derive(Serialize)]
struct ChangeJson {
    op: &'static str,
    kind: &'static str,
    name: String,
    summary: String,
}

fn write_plan_json(out: &mut dyn Write, plan: &Plan, dry_run: bool) -> Result<(), Error> {
    let changes = plan
        .changes
        .iter()
        .map(|c| ChangeJson { op: c.op(), kind: c.kind(), name: c.name(), summary: c.to_string() })
        .collect();
    crate::output::write_json(out, &PlanJson { dry_run, changes, kept: &plan.kept, skipped: &plan.skipped })
}

/// The secrets of the webhooks the plan adds or updates, by webhook name.
/// Fails, before anything is sent, when one is missing or invalid.
fn resolve_secrets(
    plan: &Plan,
    env: &dyn Fn(&str) -> Option<String>,
    path: &str,
) -> Result<HashMap<String, String>, Error> {
    let mut secrets = HashMap::new();
    for change in &plan.changes {
        let (name, source) = match change {
            Change::AddWebhook { spec, secret } => (&spec.name, secret),
            Change::UpdateWebhook { to, secret, .. } => (&to.name, secret),
            _ => continue,
        };
        let invalid = |message: String| Error::Document { path: path.to_string(), message };
        let secret = match source {
            SecretSource::Inline(secret) => secret.clone(),
            SecretSource::Env(var) => env(var).ok_or_else(|| {
                invalid(format!(
                    "webhook {name}: secret_env {var} is not set (export {var}=SECRET, or write secret: in the file)"
                ))
            })?,
        };
        vantage_core::webhook::WebhookSecret(secret.clone())
            .validate()
            .map_err(|e| invalid(format!("webhook {name}: {e}")))?;
        secrets.insert(name.clone(), secret);
    }
    Ok(secrets)
}

/// Where the idempotency keys of a run come from.
#[derive(Clone, Copy)]
enum Keys<'a> {
    /// Derived from the file's bytes and each change.
    Derived(&'a [u8]),
    /// Fresh random keys.
    Random,
}

impl Keys<'_> {
    /// The key for one request: `what` names it (`add-endpoint`), `payload`
    /// is exactly what is sent.
    fn key(self, what: &str, payload: &impl Serialize) -> Result<IdempotencyKey, Error> {
        match self {
            Keys::Derived(file) => {
                let payload = serde_json::to_vec(payload).unwrap_or_default();
                Ok(IdempotencyKey::derived("apply", &[file, what.as_bytes(), &payload]))
            }
            Keys::Random => IdempotencyKey::random(),
        }
    }
}

/// What one round of sending did.
#[derive(Debug, Default)]
struct Sent {
    /// Changes applied.
    applied: usize,
    /// Changes left for the check after the round (see [`execute`]).
    deferred: usize,
}

/// Sends the plan's changes in order. A failure names the change and how
/// many before it were applied.
///
/// With derived keys, the coordinator may answer a change from its memory
/// of an earlier apply of the same file although the object has been
/// removed since; it then says so ("… was removed by another change", code
/// `Aborted`). Such changes, and windows naming an endpoint whose addition
/// was deferred, are left for the check after the round, which sends what
/// still differs with fresh keys.
async fn execute(
    client: &AdminClient,
    plan: &Plan,
    live: &LiveState,
    secrets: &HashMap<String, String>,
    keys: Keys<'_>,
) -> Result<Sent, Error> {
    let mut endpoint_ids: BTreeMap<String, u64> =
        live.endpoints.iter().map(|e| (e.spec.name.clone(), e.id)).collect();
    let mut sent = Sent::default();
    for change in &plan.changes {
        match send(client, change, &mut endpoint_ids, secrets, keys).await {
            Ok(()) => sent.applied += 1,
            Err(error) if matches!(keys, Keys::Derived(_)) && deferrable(&error, sent.deferred) => {
                sent.deferred += 1;
            }
            Err(source) => {
                return Err(Error::Apply {
                    change: change.to_string(),
                    done: sent.applied,
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(sent)
}

fn deferrable(error: &Error, deferred_so_far: usize) -> bool {
    match error {
        Error::Refused { code: Code::Aborted, .. } => true,
        Error::UnresolvedEndpoint { .. } => deferred_so_far > 0,
        _ => false,
    }
}

async fn send(
    client: &AdminClient,
    change: &Change,
    endpoint_ids: &mut BTreeMap<String, u64>,
    secrets: &HashMap<String, String>,
    keys: Keys<'_>,
) -> Result<(), Error> {
    let secret_of = |name: &str| {
        secrets
            .get(name)
            .cloned()
            .ok_or_else(|| Error::BadReply { reason: format!("no secret for webhook {name}") })
    };
    match change {
        Change::AddRegion { name } => {
            client.add_region(name, &keys.key("add-region", name)?).await?;
        }
        Change::AddEndpoint { spec } => {
            let endpoint = client.add_endpoint(spec, &keys.key("add-endpoint", spec)?).await?;
            endpoint_ids.insert(endpoint.spec.name, endpoint.id);
        }
        Change::UpdateEndpoint { id, to, .. } => {
            client.update_endpoint(&id.to_string(), to, &keys.key("update-endpoint", &(id, to))?).await?;
        }
        Change::AddWebhook { spec, .. } => {
            let secret = secret_of(&spec.name)?;
            client.add_webhook(spec, &secret, &keys.key("add-webhook", &(spec, &secret))?).await?;
        }
        Change::UpdateWebhook { id, to, .. } => {
            // In place, by id: the webhook keeps its id, and the file's
            // secret goes with the update (see `diff` on secrets).
            let secret = secret_of(&to.name)?;
            let key = keys.key("update-webhook", &(id, to, &secret))?;
            client.update_webhook(&id.to_string(), to, &secret, &key).await?;
        }
        Change::AddMaintenance { window } => {
            let spec = resolve_window(window, endpoint_ids)?;
            client.add_maintenance(&spec, &keys.key("add-maintenance", &spec)?).await?;
        }
        Change::ReplaceMaintenance { id, to, .. } => {
            let spec = resolve_window(to, endpoint_ids)?;
            client.remove_maintenance(*id, &keys.key("remove-maintenance", id)?).await?;
            client.add_maintenance(&spec, &keys.key("add-maintenance", &spec)?).await?;
        }
        Change::RemoveMaintenance { id, .. } => {
            client.remove_maintenance(*id, &keys.key("remove-maintenance", id)?).await?;
        }
        Change::RemoveWebhook { id, .. } => {
            client.remove_webhook(&id.to_string(), &keys.key("remove-webhook", id)?).await?;
        }
        Change::RemoveEndpoint { id, .. } => {
            client.remove_endpoint(&id.to_string(), &keys.key("remove-endpoint", id)?).await?;
        }
        Change::RemoveRegion { name } => {
            client.remove_region(name, &keys.key("remove-region", name)?).await?;
        }
    }
    Ok(())
}

/// A window with its endpoint names turned into ids (the plan checked
/// that each exists or is added before).
fn resolve_window(
    window: &DesiredMaintenance,
    ids: &BTreeMap<String, u64>,
) -> Result<MaintenanceSpec, Error> {
    let endpoints = window
        .endpoints
        .iter()
        .map(|name| {
            ids.get(name)
                .copied()
                .ok_or_else(|| Error::BadReply { reason: format!("endpoint {name:?} has no id") })
        })
        .collect::<Result<BTreeSet<u64>, Error>>()?;
    let mut spec = window.to_shape().map_err(|reason| Error::BadReply { reason })?;
    spec.endpoints = endpoints.into_iter().map(vantage_core::ids::EndpointId).collect();
    Ok(spec)
}
