//! Name resolution with hickory, cache off, `/etc/hosts` honoured.
//!
//! Every lookup goes to the network (or the hosts file): a monitor that
//! answered from a cache would measure the cache. The resolver is shared
//! between checks only for its configuration and sockets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType as HickoryType;
use hickory_resolver::TokioResolver;
use vantage_core::result::{CheckError, ErrorKind};
use vantage_core::spec::{AddressFamily, RecordType};

use super::CheckerError;

/// A DNS resolver for checks.
#[derive(Clone)]
pub(crate) struct DnsResolver {
    inner: TokioResolver,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver").finish_non_exhaustive()
    }
}

impl DnsResolver {
    /// A resolver using `servers`, or the system's configuration
    /// (`/etc/resolv.conf`) when `servers` is empty.
    pub(crate) fn new(servers: &[SocketAddr]) -> Result<Self, CheckerError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder(provider)
                .map_err(|e| CheckerError::Resolver { reason: format!("reading /etc/resolv.conf: {e}") })?
        } else {
            let name_servers = servers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    ns.connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                        .into_iter()
                        .map(|mut c| {
                            c.port = addr.port();
                            c
                        })
                        .collect();
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], name_servers),
                provider,
            )
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        // No cache: capacity zero, and every answer expires at once.
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.use_hosts_file = ResolveHosts::Always;
        opts.attempts = 1;
        opts.timeout = Duration::from_secs(5);
        let inner = builder.build().map_err(|e| CheckerError::Resolver { reason: e.to_string() })?;
        Ok(Self { inner })
    }

    /// The addresses of `name`, in the order `family` prefers.
    pub(crate) async fn resolve(&self, name: &str, family: AddressFamily) -> Result<Vec<IpAddr>, CheckError> {
        let (v4, v6) = (self.addresses(name, HickoryType::A), self.addresses(name, HickoryType::AAAA));
        let (first, second) = match family {
            AddressFamily::Ipv4 => (v4.await, Ok(vec![])),
            AddressFamily::Ipv6 => (v6.await, Ok(vec![])),
            AddressFamily::PreferIpv4 => tokio::join!(v4, v6),
            AddressFamily::PreferIpv6 => {
                let (b, a) = tokio::join!(v4, v6);
                (a, b)
            }
        };
        match (first, second) {
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                if a.is_empty() {
                    Err(CheckError::new(
                        ErrorKind::Dns,
                        format!("{name} has no {} address", family_name(family)),
                    ))
                } else {
                    Ok(a)
                }
            }
            (Ok(a), Err(_)) | (Err(_), Ok(a)) if !a.is_empty() => Ok(a),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    async fn addresses(&self, name: &str, record_type: HickoryType) -> Result<Vec<IpAddr>, CheckError> {
        match self.inner.lookup(name.to_string(), record_type).await {
            Ok(lookup) => Ok(lookup.answers().iter().filter_map(|r| r.data.ip_addr()).collect()),
            Err(e) if is_no_records(&e) => Ok(vec![]),
            Err(e) => Err(lookup_error(name, &e)),
        }
    }

    /// The answers to a `record_type` query for `name`, as text.
    pub(crate) async fn query(&self, name: &str, record_type: RecordType) -> Result<Vec<String>, CheckError> {
        let wanted = hickory_type(record_type);
        match self.inner.lookup(name.to_string(), wanted).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == wanted)
                .map(|r| r.data.to_string())
                .collect()),
            Err(e) => Err(lookup_error(name, &e)),
        }
    }
}

fn family_name(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::Ipv4 => "IPv4",
        AddressFamily::Ipv6 => "IPv6",
        _ => "IPv4 or IPv6",
    }
}

fn hickory_type(t: RecordType) -> HickoryType {
    match t {
        RecordType::A => HickoryType::A,
        RecordType::Aaaa => HickoryType::AAAA,
        RecordType::Cname => HickoryType::CNAME,
        RecordType::Mx => HickoryType::MX,
        RecordType::Ns => HickoryType::NS,
        RecordType::Txt => HickoryType::TXT,
        RecordType::Soa => HickoryType::SOA,
        RecordType::Srv => HickoryType::SRV,
        RecordType::Caa => HickoryType::CAA,
        RecordType::Ptr => HickoryType::PTR,
    }
}

/// NOERROR with no records of the asked type (the name exists).
fn is_no_records(e: &NetError) -> bool {
    matches!(e, NetError::Dns(DnsError::NoRecordsFound(nr)) if nr.response_code == ResponseCode::NoError)
}

fn lookup_error(name: &str, e: &NetError) -> CheckError {
    let message = match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) if nr.response_code == ResponseCode::NXDomain => {
            format!("{name} does not exist (NXDOMAIN)")
        }
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            format!("no {} records for {name} ({})", nr.query.query_type(), nr.response_code)
        }
        NetError::Dns(DnsError::ResponseCode(code)) => format!("resolver answered {code} for {name}"),
        NetError::Timeout => format!("no answer from the resolver for {name}"),
        NetError::NoConnections => format!("no resolver reachable to look up {name}"),
        other => format!("looking up {name}: {other}"),
    };
    CheckError::new(ErrorKind::Dns, message)
}
