//! The history call: one endpoint's uptime and latency over a window,
//! read from the answering node's replicated state (any node answers).

use vantage_proto::history::history_request;

use super::AdminClient;
use crate::error::Error;
use crate::model::{EndpointHistory, Window};

impl AdminClient {
    /// `endpoint`'s (name or id) history over `window`; `consistent`
    /// reads it through the leader.
    pub async fn endpoint_history(
        &self,
        endpoint: &str,
        window: Window,
        consistent: bool,
    ) -> Result<EndpointHistory, Error> {
        let request = history_request(endpoint, window, consistent);
        let reply = self.call(request, |mut c, r| async move { c.endpoint_history(r).await }).await?;
        EndpointHistory::try_from(&reply).map_err(|e| Error::BadReply { reason: e.to_string() })
    }
}
