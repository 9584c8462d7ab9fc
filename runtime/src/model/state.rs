//! What a node holds, as `ip -d link`, `ip addr`, `ip route` and `ip neigh` show
//! it: typed, so logic compares variants and only renderers make strings.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::names::LinkName;

macro_rules! shown_as {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &'static str {
                match self { $( $ty::$variant => $text, )* }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

/// The kind of a link (`ip -d link`'s "veth", "bridge", ...; "loopback" for lo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    Loopback,
    Veth,
    Bridge,
    Macvlan,
    Vxlan,
    Tun,
    Dummy,
    Vlan,
    Bond,
    Wireguard,
    Other,
}

shown_as!(LinkKind { Loopback => "loopback", Veth => "veth", Bridge => "bridge", Macvlan => "macvlan",
    Vxlan => "vxlan", Tun => "tun", Dummy => "dummy", Vlan => "vlan", Bond => "bond", Wireguard => "wireguard", Other => "" });

impl LinkKind {
    pub fn from_kernel(kind: &str) -> LinkKind {
        match kind {
            "veth" => LinkKind::Veth,
            "bridge" => LinkKind::Bridge,
            "macvlan" => LinkKind::Macvlan,
            "vxlan" => LinkKind::Vxlan,
            "tun" => LinkKind::Tun,
            "dummy" => LinkKind::Dummy,
            "vlan" => LinkKind::Vlan,
            "bond" => LinkKind::Bond,
            "wireguard" => LinkKind::Wireguard,
            _ => LinkKind::Other,
        }
    }
}

/// RFC 2863 operational state, as `ip link` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperState {
    Up,
    Down,
    Unknown,
    LowerLayerDown,
    NotPresent,
    Testing,
    Dormant,
}

shown_as!(OperState { Up => "UP", Down => "DOWN", Unknown => "UNKNOWN", LowerLayerDown => "LOWERLAYERDOWN",
    NotPresent => "NOTPRESENT", Testing => "TESTING", Dormant => "DORMANT" });

/// A bridge port's STP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortState {
    Disabled,
    Listening,
    Learning,
    Forwarding,
    Blocking,
}

shown_as!(PortState { Disabled => "disabled", Listening => "listening", Learning => "learning",
    Forwarding => "forwarding", Blocking => "blocking" });

/// A route's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
}

shown_as!(Scope { Universe => "universe", Site => "site", Link => "link", Host => "host", Nowhere => "nowhere" });

/// A neighbour entry's state (`ip neigh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Noarp,
    Permanent,
    None,
}

shown_as!(NeighState { Incomplete => "INCOMPLETE", Reachable => "REACHABLE", Stale => "STALE", Delay => "DELAY",
    Probe => "PROBE", Failed => "FAILED", Noarp => "NOARP", Permanent => "PERMANENT", None => "NONE" });

/// What `ip -d link show` tells about one link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    pub mac: String,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    pub oper: OperState,
    pub carrier: bool,
    pub mtu: u32,
    /// Index of the bridge this link is a port of.
    pub master: Option<u32>,
    /// For a veth: the peer's ifindex (in the peer's namespace), what `ethtool -S` calls peer_ifindex.
    pub peer_index: Option<u32>,
    /// For a bridge port: its STP state.
    pub port_state: Option<PortState>,
    /// IPv6 is on for the link (its disable_ipv6 is 0).
    pub ipv6: bool,
    pub txqueuelen: u32,
    /// `ip link set LINK alias TEXT`.
    pub alias: Option<String>,
    /// What a vlan, macvlan or vxlan link was made as (`ip -d link`): VLAN id,
    /// macvlan mode, VNI and port; its parent is `peer_index` (IFLA_LINK).
    pub details: Option<LinkDetails>,
    /// For a bridge port: learning, flood and isolated as `bridge -d link` shows them.
    pub port_opts: Option<BridgePortOpts>,
}

/// The kind-specific part of `ip -d link show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum LinkDetails {
    Vlan {
        id: u16,
    },
    Macvlan {
        mode: crate::model::MacvlanMode,
    },
    Vxlan {
        vni: u32,
        dstport: u16,
        remote: Option<std::net::IpAddr>,
        group: Option<std::net::IpAddr>,
    },
    Tun {
        tap: bool,
    },
    Bridge(crate::model::BridgeConf),
    /// A bond's mode and link monitoring; `active` is the active port's ifindex
    /// (active-backup), None while no port is usable.
    Bond {
        mode: crate::model::BondMode,
        miimon: u32,
        active: Option<u32>,
    },
}

impl LinkState {
    pub fn is_oper_up(&self) -> bool {
        self.oper == OperState::Up || (self.oper == OperState::Unknown && self.carrier && self.admin_up)
    }
}

/// One address as `ip -br addr` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AddrState {
    pub link_index: u32,
    pub cidr: IpNet,
    pub broadcast: Option<IpAddr>,
    /// What `ip addr` prints after the scope, as far as netlab reports it.
    pub flags: AddrFlags,
}

/// The address flags `ip addr` shows that a lab may claim something about: how the
/// address came (`dynamic`: from a router advertisement, with a lifetime) and where
/// duplicate address detection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddrFlags {
    /// Not permanent: it has a lifetime (SLAAC).
    pub dynamic: bool,
    /// Added without duplicate address detection (netlab's `addr()` for IPv6).
    pub nodad: bool,
    /// Duplicate address detection found the address in use on the link.
    pub dadfailed: bool,
    /// Duplicate address detection has not finished (or failed): not usable.
    pub tentative: bool,
}

impl AddrFlags {
    /// The names in the order `ip addr` prints them.
    pub fn names(&self) -> Vec<&'static str> {
        [(self.dynamic, "dynamic"), (self.nodad, "nodad"), (self.dadfailed, "dadfailed"), (self.tentative, "tentative")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect()
    }
}

/// One route as `ip route` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteState {
    /// None for the default route.
    pub destination: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    pub device_index: Option<u32>,
    pub scope: Scope,
    pub table: u32,
    pub kind: RouteKind,
    /// The route's priority (`metric`); None where the kernel reports none (0).
    pub metric: Option<u32>,
    /// Who added it: `kernel` (an address's connected route), `boot` (`ip route
    /// add`), `static`, `ra`, ...
    pub proto: String,
    /// The preferred source address (`src`).
    pub src: Option<IpAddr>,
    /// Its link has no carrier (`linkdown`).
    pub linkdown: bool,
    pub onlink: bool,
    /// A multipath route's paths (`nexthop via ...`); empty for one path, which
    /// `gateway` and `device_index` give.
    pub nexthops: Vec<HopState>,
}

/// What a route does with a packet (`ip route add TYPE DEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Local,
    Broadcast,
    Other,
}

shown_as!(RouteKind { Unicast => "unicast", Blackhole => "blackhole", Unreachable => "unreachable",
    Prohibit => "prohibit", Local => "local", Broadcast => "broadcast", Other => "other" });

/// The main table's number (`ip route` without `table`).
pub const MAIN_TABLE: u32 = 254;

/// What `route()` takes besides the destination and next hop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteOpts {
    pub metric: Option<u32>,
    /// None: the main table.
    pub table: Option<u32>,
    pub src: Option<IpAddr>,
    /// `via GW dev DEV`: the link the gateway is reached by.
    pub dev: Option<LinkName>,
    /// `onlink`: the gateway is taken to be on `dev` whatever its addresses say.
    pub onlink: bool,
}

impl RouteOpts {
    pub fn table(&self) -> u32 {
        self.table.unwrap_or(MAIN_TABLE)
    }
}

/// `ip rule add [from PREFIX] [to PREFIX] [iif LINK] [oif LINK] [fwmark N] [priority N] table N`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub v6: bool,
    pub from: Option<IpNet>,
    pub to: Option<IpNet>,
    pub iif: Option<LinkName>,
    pub oif: Option<LinkName>,
    pub fwmark: Option<u32>,
    /// None: the kernel picks one below the first rule after priority 0's.
    pub priority: Option<u32>,
    pub table: u32,
}

/// One rule as `ip rule` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleState {
    pub v6: bool,
    pub priority: u32,
    pub from: Option<IpNet>,
    pub to: Option<IpNet>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub table: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub ip: IpAddr,
    pub mac: Option<String>,
    pub link_index: u32,
    pub state: NeighState,
}

/// `bridge link set dev PORT learning on|off flood on|off isolated on|off`; None
/// leaves the kernel's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BridgePortOpts {
    pub learning: Option<bool>,
    pub flood: Option<bool>,
    pub isolated: Option<bool>,
}

/// One entry of a bridge's forwarding database (`bridge fdb show br BRIDGE`).
#[derive(Debug, Clone, PartialEq)]
pub struct FdbEntry {
    pub mac: String,
    /// The port (or the bridge itself) the MAC address is behind.
    pub port_index: u32,
    pub vlan: Option<u16>,
    pub state: FdbState,
}

/// How an FDB entry got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbState {
    /// Learned from a frame's source address; ages out.
    Learned,
    /// Added by hand (`bridge fdb add ... static`).
    Static,
    /// The bridge's or a port's own address (`permanent`).
    Permanent,
}

shown_as!(FdbState { Learned => "learned", Static => "static", Permanent => "permanent" });

/// Where a route sends packets: a gateway, a link, or nowhere, saying so
/// (`ip route add blackhole|unreachable|prohibit DEST`).
#[derive(Debug, Clone, PartialEq)]
pub enum NextHop {
    Gateway(IpAddr),
    Device(LinkName),
    Blackhole,
    Unreachable,
    Prohibit,
    /// Equal-cost (or weighted) multipath: `nexthop via GW [dev DEV] weight W` for
    /// each path, two or more.
    Multipath(Vec<PathHop>),
}

/// One path of a multipath route.
#[derive(Debug, Clone, PartialEq)]
pub struct PathHop {
    /// None: `nexthop dev DEV`, a path straight onto a link.
    pub gateway: Option<IpAddr>,
    pub dev: Option<LinkName>,
    /// 1 to 256 (`weight`): the share of flows the path gets.
    pub weight: u16,
}

/// A path of a multipath route as the kernel lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct HopState {
    pub gateway: Option<IpAddr>,
    pub device_index: Option<u32>,
    pub weight: u16,
    /// Its link is down (or lost its last address): the path is not used (`dead`).
    pub dead: bool,
    /// Its link has no carrier (`linkdown`).
    pub linkdown: bool,
}

impl NextHop {
    /// Whether the next hop says the route is IPv6 (a gateway's family); None when
    /// it does not (a link, a typed route).
    pub fn family_v6(&self) -> Option<bool> {
        match self {
            NextHop::Gateway(gw) => Some(gw.is_ipv6()),
            NextHop::Multipath(paths) => paths.iter().find_map(|p| p.gateway.map(|g| g.is_ipv6())),
            _ => None,
        }
    }

    /// The word `ip route add` takes before the destination for a typed route.
    pub fn type_word(&self) -> Option<&'static str> {
        match self {
            NextHop::Blackhole => Some("blackhole"),
            NextHop::Unreachable => Some("unreachable"),
            NextHop::Prohibit => Some("prohibit"),
            NextHop::Gateway(_) | NextHop::Device(_) | NextHop::Multipath(_) => None,
        }
    }
}
