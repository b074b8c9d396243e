//! What a probe reports for one slot of one endpoint: the check's result
//! (or that the slot was skipped) with the slot's schedule and the probe's
//! health around it. The probe builds these, the wire carries them
//! (`ProbeResult`, converted in `vantage-proto`), the coordinator validates
//! and fans them out to its consumers.

use std::time::{Duration, SystemTime};

use crate::result::CheckResult;

/// One slot's outcome as the probe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The probe's sequence number for it: increasing, never repeated
    /// (the coordinator de-duplicates by it).
    pub seq: u64,
    /// The endpoint checked.
    pub endpoint_id: u64,
    /// The slot round `k` (`start = k * interval + offset`).
    pub round: u64,
    /// The probe's canaries failed when the check ran: its own network is
    /// suspect, so the result says nothing about the endpoint.
    pub probe_unhealthy: bool,
    /// When the slot was planned to start.
    pub planned_start: SystemTime,
    /// Actual start minus planned start.
    pub lag: Duration,
    /// Run on request (check-now), outside the slot grid.
    pub out_of_slot: bool,
    /// The check-now request it answers, if any.
    pub request_id: Option<String>,
    /// The check's outcome; `None` when the slot was skipped (the previous
    /// check was still running).
    pub result: Option<CheckResult>,
}

impl Observation {
    /// The slot was skipped: no check ran.
    pub fn skipped(&self) -> bool {
        self.result.is_none()
    }
}
