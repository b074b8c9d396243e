//! `vantagectl cluster status|add-node|remove-node|transfer-leader|snapshot`.

use std::io::Write;

use serde::Serialize;

use crate::args::ClusterCommand;
use crate::cmd::Context;
use crate::error::Error;
use crate::output::cluster_status_text;

/// Runs a cluster command. Membership changes print the cluster status
/// the coordinator answers with.
pub async fn run(ctx: &Context<'_>, command: &ClusterCommand, out: &mut dyn Write) -> Result<(), Error> {
    let client = &ctx.client;
    let (status, note) = match command {
        ClusterCommand::Status => (client.cluster_status().await?, String::new()),
        ClusterCommand::AddNode { id, api_addr, raft_addr, learner } => {
            let status = client.add_node(*id, api_addr, raft_addr, *learner).await?;
            let role = if *learner { "learner" } else { "voter (after catching up as a learner)" };
            (status, format!("added node {id} as {role}\n"))
        }
        ClusterCommand::RemoveNode { id } => (client.remove_node(*id).await?, format!("removed node {id}\n")),
        ClusterCommand::TransferLeader { id } => {
            let status = client.transfer_leader(*id).await?;
            let note = match id {
                Some(id) => format!("asked node {id} to take over leadership\n"),
                None => "asked the cluster to elect another leader\n".to_string(),
            };
            (status, note)
        }
        ClusterCommand::Snapshot => {
            let index = client.trigger_snapshot().await?;
            #[derive(Serialize)]
            struct SnapshotJson {
                last_included_index: u64,
            }
            let human = format!("snapshot built; it covers the log up to index {index}");
            return ctx.print(out, &SnapshotJson { last_included_index: index }, &human);
        }
    };
    ctx.print(out, &status, &format!("{note}{}", cluster_status_text(&status)))
}
