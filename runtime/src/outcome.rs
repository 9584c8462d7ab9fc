//! How a probe ended without the answer it wanted: one vocabulary for ping, HTTP
//! and name lookups, so a negative check can say (and require) *why* nothing got
//! through — the difference between "connect: Network is unreachable" and a ping
//! that just waits is often the tutorial's point.

use std::fmt;
use std::net::IpAddr;

/// Why a probe got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No route: refused at once by the local kernel, or ICMP "net unreachable"
    /// from a router (`from`).
    NetUnreachable { from: Option<IpAddr> },
    /// Nobody answered ARP / neighbour discovery for the next hop ("Destination
    /// Host Unreachable"), locally or at a router.
    HostUnreachable { from: Option<IpAddr> },
    /// A firewall rejected it (ICMP administratively prohibited, or EPERM from a
    /// local output rule).
    Prohibited { from: Option<IpAddr> },
    /// A router on the way decremented the TTL (hop limit) to 0 ("Time to live
    /// exceeded").
    TtlExceeded { from: Option<IpAddr> },
    /// Too big for a link on the way, and not to be fragmented (DF): "Frag needed
    /// and DF set (mtu = 1400)" from a router, or refused by the local kernel
    /// ("local error: message too long, mtu=1450"). `mtu` as the kernel said it.
    FragNeeded { mtu: u32, from: Option<IpAddr> },
    /// Nothing came back at all (dropped by a firewall or a policy, no route back...).
    Silence,
    /// The address answered, but nothing listens on the port (TCP RST, ICMP port
    /// unreachable).
    Refused,
    /// The connection was reset after it was made.
    Reset,
    /// The node's resolv.conf names no nameserver.
    NoNameserver,
    /// A nameserver answered that the name does not exist (or has no address).
    NoSuchName,
    /// Something else, with its text.
    Other(String),
}

/// The keywords a lab may require with `#{error: "..."}`.
pub const KEYWORDS: &[(&str, &str)] = &[
    ("unreachable", "no route (\"Network is unreachable\")"),
    ("host-unreachable", "no neighbour answered ARP/ND (\"Destination Host Unreachable\")"),
    ("prohibited", "rejected by a firewall (ICMP administratively prohibited)"),
    ("ttl-exceeded", "a router on the way found the TTL spent (\"Time to live exceeded\")"),
    ("frag-needed", "too big for a link on the way and not to be fragmented (DF, \"Frag needed\")"),
    ("silence", "nothing came back at all"),
    ("refused", "connection refused: nothing listens on that port"),
    ("reset", "connection reset"),
    ("no-nameserver", "the node's resolv.conf names no nameserver"),
    ("no-such-name", "the nameserver says the name does not exist"),
    ("resolve", "any name-resolution failure"),
];

impl Reason {
    /// The keyword a lab uses for this reason.
    pub fn keyword(&self) -> &'static str {
        match self {
            Reason::NetUnreachable { .. } => "unreachable",
            Reason::HostUnreachable { .. } => "host-unreachable",
            Reason::Prohibited { .. } => "prohibited",
            Reason::TtlExceeded { .. } => "ttl-exceeded",
            Reason::FragNeeded { .. } => "frag-needed",
            Reason::Silence => "silence",
            Reason::Refused => "refused",
            Reason::Reset => "reset",
            Reason::NoNameserver => "no-nameserver",
            Reason::NoSuchName => "no-such-name",
            Reason::Other(_) => "other",
        }
    }

    /// Whether this reason is what `keyword` asks for.
    pub fn is(&self, keyword: &str) -> bool {
        match keyword {
            "resolve" => matches!(self, Reason::NoNameserver | Reason::NoSuchName),
            k => self.keyword() == k,
        }
    }

    /// The reason for an errno the kernel returned on send/connect.
    pub fn from_errno(errno: i32, text: &str) -> Reason {
        match errno {
            libc::ENETUNREACH => Reason::NetUnreachable { from: None },
            libc::EHOSTUNREACH => Reason::HostUnreachable { from: None },
            libc::EPERM | libc::EACCES => Reason::Prohibited { from: None },
            libc::ECONNREFUSED => Reason::Refused,
            libc::ECONNRESET => Reason::Reset,
            _ => Reason::Other(text.to_string()),
        }
    }

    /// The reason for an ICMP (v4) or ICMPv6 error of `kind`/`code` sent by `from`.
    pub fn from_icmp(v6: bool, kind: u8, code: u8, from: Option<IpAddr>) -> Reason {
        match (v6, kind, code) {
            (false, 3, 0 | 6 | 11) | (true, 1, 0) => Reason::NetUnreachable { from },
            (false, 3, 1 | 7 | 12) | (true, 1, 3) => Reason::HostUnreachable { from },
            (false, 3, 9 | 10 | 13) | (true, 1, 1 | 5 | 6) => Reason::Prohibited { from },
            (false, 3, 3) | (true, 1, 4) => Reason::Refused,
            (false, 11, 0) | (true, 3, 0) => Reason::TtlExceeded { from },
            _ => Reason::Other(format!("ICMP{} type {kind} code {code}", if v6 { "v6" } else { "" })),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = |f: &mut fmt::Formatter<'_>, from: &Option<IpAddr>| match from {
            Some(ip) => write!(f, " (from {ip})"),
            None => Ok(()),
        };
        match self {
            Reason::NetUnreachable { from: None } => f.write_str("Network is unreachable"),
            Reason::NetUnreachable { from: at } => {
                f.write_str("Destination Net Unreachable")?;
                from(f, at)
            }
            Reason::HostUnreachable { from: at } => {
                f.write_str("Destination Host Unreachable")?;
                from(f, at)
            }
            Reason::Prohibited { from: at } => {
                f.write_str("Packet filtered")?;
                from(f, at)
            }
            Reason::TtlExceeded { from: at } => {
                f.write_str("Time to live exceeded")?;
                from(f, at)
            }
            Reason::FragNeeded { mtu, from: None } => write!(f, "local error: message too long, mtu={mtu}"),
            Reason::FragNeeded { mtu, from: at } => {
                write!(f, "Frag needed and DF set (mtu = {mtu})")?;
                from(f, at)
            }
            Reason::Silence => f.write_str("no answer"),
            Reason::Refused => f.write_str("Connection refused"),
            Reason::Reset => f.write_str("Connection reset by peer"),
            Reason::NoNameserver => f.write_str("no nameserver configured"),
            Reason::NoSuchName => f.write_str("no such name"),
            Reason::Other(text) => f.write_str(text),
        }
    }
}

/// What a lab asked for with `#{error: ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A keyword of KEYWORDS.
    Keyword(String),
    /// Text the error message must contain (e.g. "Network is unreachable").
    Text(String),
}

impl Wanted {
    /// Parses the option: "" means silence; a lower-case word must be a known
    /// keyword (a typo is the lab's mistake, not a failed check); anything else is
    /// text to find in the error.
    pub fn parse(value: &str) -> Result<Wanted, String> {
        if value.is_empty() {
            return Ok(Wanted::Keyword("silence".into()));
        }
        let lower = value.to_ascii_lowercase();
        let looks_like_keyword = value.chars().all(|c| c.is_ascii_alphabetic() || c == '-' || c == '_');
        if let Some((k, _)) = KEYWORDS.iter().find(|(k, _)| *k == lower.replace('_', "-")) {
            Ok(Wanted::Keyword(k.to_string()))
        } else if looks_like_keyword {
            let known: Vec<&str> = KEYWORDS.iter().map(|(k, _)| *k).collect();
            Err(format!("unknown reason {value:?}; the reasons are {}", known.join(", ")))
        } else {
            Ok(Wanted::Text(value.into()))
        }
    }

    /// Whether a probe that ended for `reasons` (none: silence) is what was asked.
    pub fn satisfied_by(&self, reasons: &[Reason]) -> bool {
        match self {
            Wanted::Keyword(k) if k == "silence" => reasons.iter().all(|r| *r == Reason::Silence),
            Wanted::Keyword(k) => reasons.iter().any(|r| r.is(k)),
            Wanted::Text(t) => reasons.iter().any(|r| r.to_string().contains(t.as_str())),
        }
    }
}

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wanted::Keyword(k) => write!(f, "{k}"),
            Wanted::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// "a; b" of distinct reasons, or "no answer".
pub fn describe(reasons: &[Reason]) -> String {
    if reasons.is_empty() {
        return Reason::Silence.to_string();
    }
    reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_text() {
        let unreachable = [Reason::NetUnreachable { from: None }];
        assert!(Wanted::parse("unreachable").unwrap().satisfied_by(&unreachable));
        assert!(Wanted::parse("Network is unreachable").unwrap().satisfied_by(&unreachable));
        assert!(!Wanted::parse("silence").unwrap().satisfied_by(&unreachable));
        assert!(Wanted::parse("").unwrap().satisfied_by(&[]));
        assert!(Wanted::parse("resolve").unwrap().satisfied_by(&[Reason::NoNameserver]));
        assert!(Wanted::parse("unreachble").unwrap_err().contains("unknown reason"));
        assert_eq!(Wanted::parse("Silence").unwrap(), Wanted::Keyword("silence".into()));
        assert_eq!(Wanted::parse("no_nameserver").unwrap(), Wanted::Keyword("no-nameserver".into()));
        assert!(Wanted::parse("Timeout").unwrap_err().contains("unknown reason"));
    }

    #[test]
    fn icmp_codes() {
        let r = Reason::from_icmp(false, 3, 1, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(r.to_string(), "Destination Host Unreachable (from 10.0.0.1)");
        assert!(r.is("host-unreachable"));
        assert!(Reason::from_icmp(false, 3, 13, None).is("prohibited"));
        assert!(Reason::from_icmp(true, 1, 4, None).is("refused"));
    }
}
