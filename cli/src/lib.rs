//! `vantagectl`, the Vantage admin CLI: endpoints, probes, shards and the
//! cluster, managed over the coordinator's AdminService.
//!
//! Nothing is built here yet; see `ARCHITECTURE.md` for what is planned.
