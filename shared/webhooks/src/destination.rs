//! Where a webhook may deliver: its URL, and the addresses its host may
//! resolve to. A tenant names the URL, so without a policy a webhook could
//! make Atlas post to its own VPC, a database, or the instance metadata
//! service (SSRF).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses a deployment delivers to. Production refuses every
/// address that is not globally routable. Local runs and tests allow
/// loopback (`ATLAS_WEBHOOK_ALLOW_LOOPBACK`), so that a receiver on the
/// same machine can be registered; private and metadata addresses stay
/// refused even then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow_loopback: bool,
}

const LOOPBACK: &str = "loopback";
const PRIVATE: &str = "private";
const LINK_LOCAL: &str = "link-local";
const METADATA: &str = "cloud metadata";
const RESERVED: &str = "reserved or non-unicast";

impl AddressPolicy {
    /// What kind of address `ip` is, if a delivery may not go there.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        match kind(ip) {
            Some(LOOPBACK) if self.allow_loopback => None,
            other => other,
        }
    }
}

/// The kind of every address that is not globally routable unicast.
fn kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => kind_v4(v4),
        IpAddr::V6(v6) if v6.is_loopback() => Some(LOOPBACK),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(RESERVED),
        // An IPv4 address inside an IPv6 one reaches that IPv4 address.
        IpAddr::V6(v6) => embedded_v4(v6).map_or_else(|| kind_v6(v6), kind_v4),
    }
}

fn kind_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some(LOOPBACK)
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some(METADATA)
    } else if ip.is_link_local() {
        Some(LINK_LOCAL)
    } else if ip.is_private() || (a == 100 && (b & 0xc0) == 64) {
        // RFC 1918, and RFC 6598's carrier-grade NAT space.
        Some(PRIVATE)
    } else if a == 0
        || a >= 224
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
        || ip.is_documentation()
    {
        // "This network", multicast, 240/4 and broadcast, IETF protocol
        // assignments, benchmarking, documentation.
        Some(RESERVED)
    } else {
        None
    }
}

fn kind_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some(METADATA)
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some(LINK_LOCAL)
    } else if (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfec0 {
        // Unique local, and the deprecated site-local.
        Some(PRIVATE)
    } else if ip.is_multicast() || (s[0] == 0x2001 && s[1] == 0x0db8) || s[..4] == [0x100, 0, 0, 0]
    {
        // Multicast, documentation, discard-only.
        Some(RESERVED)
    } else {
        None
    }
}

/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64
/// (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = || Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0; 6] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low())
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::from(((s[1] as u32) << 16) | s[2] as u32))
    } else {
        None
    }
}

/// Why a URL cannot be a webhook's destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("url {0:?} is not an absolute URL")]
    Invalid(String),
    #[error("url is longer than {} bytes", Destination::MAX_URL_BYTES)]
    TooLong,
    #[error(
        "url must use https (plain http only to a loopback receiver, where the deployment allows loopback)"
    )]
    Scheme,
    #[error("url must not carry a user name or password: secrets belong in the signing secret")]
    Credentials,
    #[error("url must not have a #fragment")]
    Fragment,
    #[error("url's host {host} did not resolve: {detail}")]
    Unresolvable { host: String, detail: String },
    #[error(
        "url's host {host} resolves to {addr}, a {kind} address: webhooks go to public addresses only"
    )]
    Refused {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
}

/// A webhook's URL, parsed; `check` has also resolved it under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination(Url);

/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

impl Destination {
    pub const MAX_URL_BYTES: usize = 2048;

    /// The URL's form alone, and its host if that is an address literal.
    pub fn parse(raw: &str, policy: AddressPolicy) -> Result<Self, DestinationError> {
        if raw.len() > Self::MAX_URL_BYTES {
            return Err(DestinationError::TooLong);
        }
        let url = Url::parse(raw).map_err(|_| DestinationError::Invalid(raw.to_owned()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(DestinationError::Fragment);
        }
        let host = url
            .host_str()
            .ok_or_else(|| DestinationError::Invalid(raw.to_owned()))?
            .to_owned();
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        let loopback = literal.map_or(host == "localhost", |ip| kind(ip) == Some(LOOPBACK));
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_loopback && loopback => {}
            _ => return Err(DestinationError::Scheme),
        }
        if let Some(addr) = literal {
            refuse(&policy, &host, addr)?;
        }
        Ok(Self(url))
    }

    /// `parse`, then every address the host resolves to must be allowed:
    /// the resolver may hand out any of them.
    pub async fn check(raw: &str, policy: AddressPolicy) -> Result<Self, DestinationError> {
        let this = Self::parse(raw, policy)?;
        if let Some(url::Host::Domain(name)) = this.0.host() {
            let addrs = resolve(name)
                .await
                .map_err(|detail| DestinationError::Unresolvable {
                    host: name.to_owned(),
                    detail,
                })?;
            for addr in addrs {
                refuse(&policy, name, addr)?;
            }
        }
        Ok(this)
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

fn refuse(policy: &AddressPolicy, host: &str, addr: IpAddr) -> Result<(), DestinationError> {
    match policy.refuses(addr) {
        Some(kind) => Err(DestinationError::Refused {
            host: host.to_owned(),
            addr,
            kind,
        }),
        None => Ok(()),
    }
}

async fn resolve(name: &str) -> Result<Vec<IpAddr>, String> {
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0)))
        .await
        .map_err(|_| format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    let addrs: Vec<IpAddr> = found.map(|a| a.ip()).collect();
    if addrs.is_empty() {
        return Err("no addresses".into());
    }
    Ok(addrs)
}

/// The sender's resolver: at delivery, only allowed addresses are
/// connected to, whatever the name resolves to by then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyResolver(pub AddressPolicy);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str();
            let mut allowed = Vec::new();
            let mut refused = None;
            for addr in resolve(host).await? {
                match refuse(&policy, host, addr) {
                    Ok(()) => allowed.push(std::net::SocketAddr::new(addr, 0)),
                    Err(e) => refused = Some(e),
                }
            }
            match refused {
                // One refused address refuses the name, as at registration.
                Some(e) => Err(e.into()),
                None => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: AddressPolicy = AddressPolicy {
        allow_loopback: false,
    };
    const LOCAL: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    fn kind_of(raw: &str) -> Option<&'static str> {
        PUBLIC.refuses(raw.parse().unwrap())
    }

    #[test]
    fn addresses_that_are_not_public_are_refused_by_kind() {
        for (addr, expected) in [
            ("127.0.0.1", Some(LOOPBACK)),
            ("127.255.0.9", Some(LOOPBACK)),
            ("::1", Some(LOOPBACK)),
            ("::ffff:127.0.0.1", Some(LOOPBACK)),
            ("10.1.2.3", Some(PRIVATE)),
            ("172.16.0.1", Some(PRIVATE)),
            ("172.31.255.255", Some(PRIVATE)),
            ("192.168.1.1", Some(PRIVATE)),
            ("100.64.0.1", Some(PRIVATE)),
            ("fd12:3456::1", Some(PRIVATE)),
            ("::ffff:10.0.0.1", Some(PRIVATE)),
            ("64:ff9b::a00:1", Some(PRIVATE)),
            ("2002:c0a8:0101::1", Some(PRIVATE)),
            ("169.254.169.254", Some(METADATA)),
            ("fd00:ec2::254", Some(METADATA)),
            ("::ffff:169.254.169.254", Some(METADATA)),
            ("169.254.1.1", Some(LINK_LOCAL)),
            ("fe80::1", Some(LINK_LOCAL)),
            ("0.0.0.0", Some(RESERVED)),
            ("::", Some(RESERVED)),
            ("255.255.255.255", Some(RESERVED)),
            ("224.0.0.1", Some(RESERVED)),
            ("ff02::1", Some(RESERVED)),
            ("192.0.2.1", Some(RESERVED)),
            ("2001:db8::1", Some(RESERVED)),
            ("8.8.8.8", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("2606:4700:4700::1111", None),
        ] {
            assert_eq!(kind_of(addr), expected, "{addr}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_where_the_deployment_says_so() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(PUBLIC.refuses(lo), Some(LOOPBACK));
        assert_eq!(LOCAL.refuses(lo), None);
        // Nothing else opens with it.
        assert_eq!(LOCAL.refuses("10.0.0.1".parse().unwrap()), Some(PRIVATE));
        assert_eq!(
            LOCAL.refuses("169.254.169.254".parse().unwrap()),
            Some(METADATA)
        );
    }

    #[test]
    fn urls_are_refused_for_their_form() {
        use DestinationError::*;
        let e = |raw: &str, policy| Destination::parse(raw, policy).unwrap_err();
        assert!(matches!(e("not a url", PUBLIC), Invalid(_)));
        assert_eq!(e("http://example.com/hook", PUBLIC), Scheme);
        assert_eq!(e("ftp://example.com/hook", LOCAL), Scheme);
        // Plain http is for a loopback receiver only, and only locally.
        assert_eq!(e("http://example.com/hook", LOCAL), Scheme);
        assert!(matches!(
            e("http://127.0.0.1:9/hook", PUBLIC),
            Scheme | Refused { .. }
        ));
        assert_eq!(e("https://user:pw@example.com/", PUBLIC), Credentials);
        assert_eq!(e("https://example.com/#x", PUBLIC), Fragment);
        let long = format!("https://example.com/{}", "a".repeat(2048));
        assert_eq!(e(&long, PUBLIC), TooLong);
        assert!(matches!(
            e("https://[fd00:ec2::254]/latest/meta-data", LOCAL),
            Refused { kind: METADATA, .. }
        ));
        assert!(matches!(
            e("https://10.0.0.8/hook", PUBLIC),
            Refused { kind: PRIVATE, .. }
        ));
        // Decimal and hex spellings of an address are addresses too.
        assert!(matches!(
            e("https://2130706433/hook", PUBLIC),
            Refused { kind: LOOPBACK, .. }
        ));
        assert!(matches!(
            e("https://0x7f.1/hook", PUBLIC),
            Refused { kind: LOOPBACK, .. }
        ));
        assert!(Destination::parse("https://example.com/hook?a=1", PUBLIC).is_ok());
        assert!(Destination::parse("http://127.0.0.1:8080/hook", LOCAL).is_ok());
        assert!(Destination::parse("http://localhost:8080/hook", LOCAL).is_ok());
    }

    #[tokio::test]
    async fn a_name_is_refused_for_what_it_resolves_to() {
        let err = Destination::check("https://localhost/hook", PUBLIC)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DestinationError::Refused { kind: LOOPBACK, .. }),
            "{err}"
        );
        assert!(
            Destination::check("http://localhost:9/hook", LOCAL)
                .await
                .is_ok()
        );
        let err = Destination::check("https://no-such-host.invalid/hook", PUBLIC)
            .await
            .unwrap_err();
        assert!(
            matches!(err, DestinationError::Unresolvable { .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_senders_resolver_refuses_a_name_that_now_points_inside() {
        let refused = PolicyResolver(PUBLIC)
            .resolve("localhost".parse().unwrap())
            .await;
        let err = refused.err().expect("localhost is refused").to_string();
        assert!(err.contains("loopback"), "{err}");
        let allowed = PolicyResolver(LOCAL)
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("allowed locally: {e}"));
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
