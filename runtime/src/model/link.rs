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
    /// `type bond mode MODE miimon MS`: links joined into one; its ports are
    /// enslaved with `ip link set PORT master BOND` (Op::SetMaster).
    Bond(BondSpec),
    /// `type wireguard`: an encrypted tunnel; its keys and peers come with
    /// Op::SetWireguard (`wg set`).
    Wireguard,
}

/// `ip link add NAME type bond mode MODE miimon MS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BondSpec {
    pub mode: BondMode,
    /// How often (ms) the ports' carrier is looked at; 0: never, so a port that
    /// fails is not noticed.
    pub miimon: u32,
}

/// The bonding driver's modes, as `ip link ... type bond mode` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondMode {
    BalanceRr,
    ActiveBackup,
    BalanceXor,
    Broadcast,
    Ieee8023ad,
    BalanceTlb,
    BalanceAlb,
}

impl BondMode {
    pub const ALL: [BondMode; 7] = [
        BondMode::BalanceRr,
        BondMode::ActiveBackup,
        BondMode::BalanceXor,
        BondMode::Broadcast,
        BondMode::Ieee8023ad,
        BondMode::BalanceTlb,
        BondMode::BalanceAlb,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Ieee8023ad => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }

    /// The kernel's number for the mode (IFLA_BOND_MODE).
    pub fn number(self) -> u8 {
        BondMode::ALL.iter().position(|m| *m == self).unwrap_or(0) as u8
    }

    pub fn from_number(n: u8) -> Option<BondMode> {
        BondMode::ALL.get(usize::from(n)).copied()
    }

    pub fn parse(text: &str) -> Option<BondMode> {
        BondMode::ALL.into_iter().find(|m| m.name() == text)
    }
}

impl fmt::Display for BondMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for BondMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// `ip link set BR type bridge stp_state S ageing_time T forward_delay D
/// vlan_filtering F vlan_default_pvid P`; None leaves the kernel's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeOpts {
    pub stp: Option<bool>,
    /// Seconds a learned address stays in the FDB.
    pub ageing: Option<u32>,
    /// Seconds a port spends listening and again learning under STP.
    pub forward_delay: Option<u32>,
    pub vlan_filtering: Option<bool>,
    /// The VLAN a port gets (pvid, untagged) when it joins; 0: none.
    pub default_pvid: Option<u16>,
}

impl BridgeOpts {
    pub fn is_empty(&self) -> bool {
        *self == BridgeOpts::default()
    }
}

/// A bridge's settings as `ip -d link` shows them (the kernel's defaults first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BridgeConf {
    pub stp: bool,
    pub ageing: u32,
    pub forward_delay: u32,
    pub vlan_filtering: bool,
    pub default_pvid: u16,
}

impl Default for BridgeConf {
    fn default() -> Self {
        BridgeConf { stp: false, ageing: 300, forward_delay: 15, vlan_filtering: false, default_pvid: 1 }
    }
}

impl BridgeConf {
    pub fn apply(&mut self, opts: &BridgeOpts) {
        self.stp = opts.stp.unwrap_or(self.stp);
        self.ageing = opts.ageing.unwrap_or(self.ageing);
        self.forward_delay = opts.forward_delay.unwrap_or(self.forward_delay);
        self.vlan_filtering = opts.vlan_filtering.unwrap_or(self.vlan_filtering);
        self.default_pvid = opts.default_pvid.unwrap_or(self.default_pvid);
    }
}

/// One VLAN of a bridge port (or of the bridge itself), as `bridge vlan show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeVlan {
    /// The port's (or bridge's) ifindex.
    pub link_index: u32,
    pub vid: u16,
    /// Untagged frames arriving on the port belong to this VLAN.
    pub pvid: bool,
    /// Frames of this VLAN leave the port without a tag.
    pub untagged: bool,
}

/// A WireGuard key: 32 bytes, written as base64 (44 characters) as `wg` does.
pub type WgKey = [u8; 32];

/// `wg set DEV private-key FILE listen-port PORT peer KEY endpoint IP:PORT
/// allowed-ips CIDR,... persistent-keepalive S`.
#[derive(Debug, Clone, PartialEq)]
pub struct WgConfig {
    pub private_key: WgKey,
    pub listen_port: Option<u16>,
    pub peers: Vec<WgPeer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WgPeer {
    pub public_key: WgKey,
    pub endpoint: Option<std::net::SocketAddr>,
    pub allowed_ips: Vec<ipnet::IpNet>,
    pub keepalive: Option<u16>,
}

/// The public key of a private one (Curve25519), as `wg pubkey` computes it.
pub fn wg_public_key(private: &WgKey) -> WgKey {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private)).to_bytes()
}

/// The private key netlab gives a WireGuard link the lab gives none: derived from
/// the names (FNV-1a, as link.rs's MAC addresses), so a lab's keys, and what
/// `--explain`, `netlab export` and the reports show, are the same on every run.
/// Known to anyone who reads the names: for labs inside the sandbox, never for a
/// real tunnel.
pub fn wg_lab_key(seed: &str) -> WgKey {
    let mut key = [0u8; 32];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, chunk) in key.chunks_mut(8).enumerate() {
        for b in seed.bytes().chain([0xff, i as u8]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    // Clamped as `wg genkey` clamps (RFC 7748).
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
    key
}

pub fn wg_key_text(key: &WgKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// A key as `wg` writes it: 44 characters of base64.
pub fn parse_wg_key(text: &str) -> Option<WgKey> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

/// What `wg show DEV` tells, read back from the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct WgState {
    pub public_key: Option<WgKey>,
    pub listen_port: u16,
    pub peers: Vec<WgPeerState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WgPeerState {
    pub public_key: WgKey,
    pub endpoint: Option<std::net::SocketAddr>,
    pub allowed_ips: Vec<ipnet::IpNet>,
    pub keepalive: u16,
    /// Seconds since the last handshake; None: never.
    pub handshake_age: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
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
            LinkSpec::Bond(_) => LinkKind::Bond,
            LinkSpec::Wireguard => LinkKind::Wireguard,
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
            LinkSpec::Bond(_) => Feature::Bond,
            LinkSpec::Wireguard => Feature::Wireguard,
        }
    }

    /// The link this one is made on, in the same node.
    pub fn parent(&self) -> Option<&LinkName> {
        match self {
            LinkSpec::Vlan { parent, .. } | LinkSpec::Macvlan { parent, .. } => Some(parent),
            LinkSpec::Vxlan(v) => v.dev.as_ref(),
            LinkSpec::Dummy | LinkSpec::Tuntap { .. } | LinkSpec::Bond(_) | LinkSpec::Wireguard => None,
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
