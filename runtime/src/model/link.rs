//! Link kinds beyond veth and bridge (`ip link add NAME [link PARENT] type KIND ...`)
//! and the attributes every link has (`mtu`, `address`, `txqueuelen`, `alias`), as
//! values the ops carry.

use std::fmt;
use std::net::IpAddr;

use super::{Feature, LinkKind};
use crate::names::LinkName;

/// What `ip link add NAME ... type KIND` makes, with the kind's own arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkSpec {
    /// `type dummy`: a link that drops everything it sends, always up.
    Dummy,
    /// `link PARENT type vlan id ID`: 802.1Q tagged frames over PARENT.
    Vlan { parent: LinkName, id: u16 },
    /// `link PARENT type macvlan mode MODE`: a second MAC address on PARENT.
    Macvlan { parent: LinkName, mode: MacvlanMode },
    /// `type vxlan id VNI ...`: Ethernet over UDP.
    Vxlan(VxlanSpec),
    /// `ip tuntap add dev NAME mode tun|tap`: a persistent TUN (IP) or TAP (Ethernet)
    /// device; without a program attached it has no carrier.
    Tuntap { tap: bool },
}

/// `ip link add NAME type vxlan id VNI [remote IP | group IP] [local IP] [dev LINK] dstport PORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct VxlanSpec {
    pub vni: u32,
    /// The one other end (point to point).
    pub remote: Option<IpAddr>,
    /// A multicast group of ends (needs `dev`).
    pub group: Option<IpAddr>,
    pub local: Option<IpAddr>,
    /// The link the UDP packets leave by.
    pub dev: Option<LinkName>,
    /// 4789, IANA's VXLAN port, unless the lab says otherwise (the kernel's own
    /// default, 8472, is Linux's pre-standard one; iproute2 warns about it).
    pub dstport: u16,
}

/// The modes of `type macvlan mode MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    Private,
    Vepa,
    Bridge,
    Passthru,
    Source,
}

impl MacvlanMode {
    pub const ALL: [MacvlanMode; 5] =
        [MacvlanMode::Private, MacvlanMode::Vepa, MacvlanMode::Bridge, MacvlanMode::Passthru, MacvlanMode::Source];

    pub fn name(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }

    pub fn parse(text: &str) -> Option<MacvlanMode> {
        MacvlanMode::ALL.into_iter().find(|m| m.name() == text)
    }
}

impl serde::Serialize for MacvlanMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl LinkSpec {
    pub fn kind(&self) -> LinkKind {
        match self {
            LinkSpec::Dummy => LinkKind::Dummy,
            LinkSpec::Vlan { .. } => LinkKind::Vlan,
            LinkSpec::Macvlan { .. } => LinkKind::Macvlan,
            LinkSpec::Vxlan(_) => LinkKind::Vxlan,
            LinkSpec::Tuntap { .. } => LinkKind::Tun,
        }
    }

    /// The kernel feature the kind needs (what the kernel lacks when it refuses).
    pub fn feature(&self) -> Feature {
        match self {
            LinkSpec::Dummy => Feature::Dummy,
            LinkSpec::Vlan { .. } => Feature::Vlan,
            LinkSpec::Macvlan { .. } => Feature::Macvlan,
            LinkSpec::Vxlan(_) => Feature::Vxlan,
            LinkSpec::Tuntap { .. } => Feature::Tun,
        }
    }

    /// The link this one is made on, in the same node.
    pub fn parent(&self) -> Option<&LinkName> {
        match self {
            LinkSpec::Vlan { parent, .. } | LinkSpec::Macvlan { parent, .. } => Some(parent),
            LinkSpec::Vxlan(v) => v.dev.as_ref(),
            LinkSpec::Dummy | LinkSpec::Tuntap { .. } => None,
        }
    }
}

/// Attributes any link has, set when it is made or later (`ip link set`); None
/// leaves the kernel's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkAttrs {
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub txqueuelen: Option<u32>,
    pub alias: Option<String>,
}

impl LinkAttrs {
    pub fn is_empty(&self) -> bool {
        *self == LinkAttrs::default()
    }
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// "02:42:ac:11:00:02" into its six bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_bad_ones_are_refused() {
        let mac = parse_mac("02:42:AC:11:00:02").unwrap();
        assert_eq!(format_mac(&mac), "02:42:ac:11:00:02");
        for bad in ["02:42:ac:11:00", "02:42:ac:11:00:02:03", "0g:42:ac:11:00:02", "2:42:ac:11:00:02", ""] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
