//! The SSRF address policy: which resolved addresses a check (or a webhook)
//! may connect to.
//!
//! A monitor that accepts URLs from many users must not become a way to reach
//! the networks it runs in: cloud metadata at 169.254.169.254, services on
//! loopback, or private ranges. The policy is applied after name resolution
//! and again on every redirect hop, so neither a DNS name nor a redirect can
//! route around it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// 127.0.0.0/8 or ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), 100.64/10 (CGNAT) or fc00::/7.
    Private,
    /// 169.254.0.0/16 (including cloud metadata) or fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 or ::.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// 224.0.0.0/4 or ff00::/8.
    Multicast,
}

impl Forbidden {
    /// A short human description, used in `blocked` error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Forbidden::Loopback => "loopback",
            Forbidden::Private => "private",
            Forbidden::LinkLocal => "link-local (cloud metadata range)",
            Forbidden::Unspecified => "unspecified",
            Forbidden::Broadcast => "broadcast",
            Forbidden::Multicast => "multicast",
        }
    }
}

/// Classifies `ip`: `Some(reason)` when the default policy refuses it.
///
/// IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) IPv6
/// addresses are judged by the IPv4 address they carry, so `::ffff:127.0.0.1`
/// is loopback.
pub fn classify(ip: IpAddr) -> Option<Forbidden> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// An IP network in CIDR notation, e.g. `10.1.0.0/16` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX`, or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = addr.trim().parse().map_err(|_| format!("{text:?} is not ADDR/PREFIX"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: prefix must be 0-{max}"))?
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `ip` is inside the network. IPv4-mapped IPv6 addresses match
    /// IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (bytes, bits) = (prefix as usize / 8, prefix % 8);
    a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
}

/// What the guard lets through besides public addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Lift the guard entirely.
    pub allow_private: bool,
    /// Networks allowed even though the guard would refuse them.
    pub allow: Vec<Cidr>,
}

/// `Ok(())` when a check may connect to `ip` under `policy`, otherwise the
/// reason it is refused.
pub fn check(ip: IpAddr, policy: &Policy) -> Result<(), Forbidden> {
    match classify(ip) {
        Some(_) if policy.allow_private || policy.allow.iter().any(|c| c.contains(ip)) => Ok(()),
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Forbidden> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(Forbidden::Loopback)
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Some(Forbidden::Private)
    } else if ip.is_link_local() {
        Some(Forbidden::LinkLocal)
    } else if a == 0 {
        Some(Forbidden::Unspecified)
    } else if ip.is_broadcast() {
        Some(Forbidden::Broadcast)
    } else if ip.is_multicast() {
        Some(Forbidden::Multicast)
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Forbidden> {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some(Forbidden::Loopback)
    } else if ip.is_unspecified() {
        Some(Forbidden::Unspecified)
    } else if first & 0xfe00 == 0xfc00 {
        Some(Forbidden::Private)
    } else if first & 0xffc0 == 0xfe80 {
        Some(Forbidden::LinkLocal)
    } else if ip.is_multicast() {
        Some(Forbidden::Multicast)
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`) or
/// IPv4-compatible (`::/96`, excluding `::` and `::1`) IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let compatible = s[..6].iter().all(|&x| x == 0) && !(s[6] == 0 && s[7] <= 1);
    compatible.then(|| Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let cases: &[(&str, Option<Forbidden>)] = &[
            ("127.0.0.1", Some(Forbidden::Loopback)),
            ("127.255.0.9", Some(Forbidden::Loopback)),
            ("::1", Some(Forbidden::Loopback)),
            ("10.0.0.1", Some(Forbidden::Private)),
            ("172.16.5.4", Some(Forbidden::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Forbidden::Private)),
            ("100.64.0.1", Some(Forbidden::Private)),
            ("fd00::1", Some(Forbidden::Private)),
            ("fc00::1", Some(Forbidden::Private)),
            ("169.254.169.254", Some(Forbidden::LinkLocal)),
            ("fe80::1", Some(Forbidden::LinkLocal)),
            ("0.0.0.0", Some(Forbidden::Unspecified)),
            ("::", Some(Forbidden::Unspecified)),
            ("255.255.255.255", Some(Forbidden::Broadcast)),
            ("224.0.0.1", Some(Forbidden::Multicast)),
            ("ff02::1", Some(Forbidden::Multicast)),
            ("::ffff:127.0.0.1", Some(Forbidden::Loopback)),
            ("::ffff:10.1.2.3", Some(Forbidden::Private)),
            ("::ffff:169.254.169.254", Some(Forbidden::LinkLocal)),
            ("::127.0.0.1", Some(Forbidden::Loopback)),
            ("::10.0.0.1", Some(Forbidden::Private)),
            ("93.184.216.34", None),
            ("2606:2800:220:1::1", None),
            ("::ffff:93.184.216.34", None),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(classify(ip), *want, "{ip}");
        }
    }

    #[test]
    fn allow_private_lifts_every_refusal() {
        let open = Policy { allow_private: true, ..Default::default() };
        for ip in ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(check(ip, &Policy::default()).is_err(), "{ip} refused by default");
            assert!(check(ip, &open).is_ok(), "{ip} allowed with allow_private");
        }
    }

    #[test]
    fn allowed_networks_lift_only_themselves() {
        let policy = Policy {
            allow_private: false,
            allow: vec![Cidr::parse("127.0.0.1").unwrap(), Cidr::parse("10.1.0.0/16").unwrap()],
        };
        let cases = [
            ("127.0.0.1", true),
            ("::ffff:127.0.0.1", true),
            ("127.0.0.2", false),
            ("::1", false),
            ("10.1.200.3", true),
            ("10.2.0.1", false),
            ("169.254.169.254", false),
            ("93.184.216.34", true),
        ];
        for (ip, allowed) in cases {
            assert_eq!(check(ip.parse().unwrap(), &policy).is_ok(), allowed, "{ip}");
        }
    }

    #[test]
    fn cidrs_parse_and_match_prefixes() {
        let c = Cidr::parse("fd00::/8").unwrap();
        assert!(c.contains("fdab::1".parse().unwrap()));
        assert!(!c.contains("fc00::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/12").unwrap().contains("10.15.255.255".parse().unwrap()));
        assert!(!Cidr::parse("10.0.0.0/12").unwrap().contains("10.16.0.0".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("1.2.3.4".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.0/33").unwrap_err(), "\"10.0.0.0/33\": prefix must be 0-32");
        assert!(Cidr::parse("nope/8").is_err());
    }
}
