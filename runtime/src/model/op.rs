//! Every change a lab makes, as a value: built by the bindings, applied by a
//! backend (the kernel, or the in-memory model), rendered as the commands a reader
//! of the tutorial would type (`--explain`, `netlab export`).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::link::{BridgeOpts, LinkAttrs, LinkSpec, WgConfig};
use super::state::{BridgePortOpts, NeighState, NextHop, RouteOpts, RuleSpec};
use crate::model::firewall::FirewallChange;
use crate::names::{LinkName, NodeName};

/// One mutation of the lab's network.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `ip netns add NODE`.
    AddNode { node: NodeName },
    /// `ip netns delete NODE`.
    DelNode { node: NodeName },
    /// `ip link add NAME type veth peer name PEER netns PEER_NODE`, NAME in NODE.
    AddVeth { node: NodeName, name: LinkName, peer_node: NodeName, peer: LinkName },
    /// `ip link add NAME type bridge`.
    AddBridge { node: NodeName, name: LinkName },
    /// `ip link add NAME [link PARENT] type KIND ... [mtu M] [address MAC] ...`: the
    /// other kinds (dummy, vlan, macvlan, vxlan).
    AddLink { node: NodeName, name: LinkName, spec: LinkSpec, attrs: LinkAttrs },
    /// `ip link set LINK mtu M address MAC txqueuelen Q alias A`.
    SetLink { node: NodeName, link: LinkName, attrs: LinkAttrs },
    /// `ip link set LINK up|down`.
    SetUp { node: NodeName, link: LinkName, up: bool },
    /// `ip link set LINK master BRIDGE` / `nomaster`.
    SetMaster { node: NodeName, link: LinkName, master: Option<LinkName> },
    /// `ip link set LINK netns TO [name NEW_NAME]`.
    MoveLink { node: NodeName, link: LinkName, to: NodeName, new_name: LinkName },
    /// `ip link del LINK`.
    DelLink { node: NodeName, link: LinkName },
    /// `ip addr add CIDR dev LINK`.
    AddAddr { node: NodeName, link: LinkName, cidr: IpNet },
    /// `ip addr del CIDR dev LINK`.
    DelAddr { node: NodeName, link: LinkName, cidr: IpNet },
    /// `ip route add [TYPE] DEST via GW | dev LINK [metric M] [table T] [src S]
    /// [onlink]`, or `DEST nexthop via GW1 weight W1 nexthop via GW2 ...`; DEST None
    /// is the default route.
    AddRoute { node: NodeName, dest: Option<IpNet>, hop: NextHop, opts: RouteOpts },
    /// `ip route del DEST [table T]` (None: the main table).
    DelRoute { node: NodeName, dest: Option<IpNet>, table: Option<u32> },
    /// `ip rule del ...`: the first rule matching what is given.
    DelRule { node: NodeName, rule: RuleSpec },
    /// `ip neigh add IP lladdr MAC dev DEV nud STATE`: a neighbour entry by hand.
    AddNeigh { node: NodeName, dev: LinkName, ip: IpAddr, mac: [u8; 6], state: NeighState },
    /// `ip neigh del IP dev DEV`.
    DelNeigh { node: NodeName, dev: LinkName, ip: IpAddr },
    /// `ip neigh flush all` / `ip neigh flush dev DEV`: the learned entries go, those
    /// added as permanent or noarp stay.
    FlushNeigh { node: NodeName, dev: Option<LinkName> },
    /// `bridge link set dev PORT learning on|off flood on|off isolated on|off`.
    SetBridgePort { node: NodeName, port: LinkName, opts: BridgePortOpts },
    /// `ip link set BRIDGE type bridge stp_state ... ageing_time ... vlan_filtering ...`.
    SetBridge { node: NodeName, bridge: LinkName, opts: BridgeOpts },
    /// `bridge vlan add dev DEV vid VID [pvid] [untagged] [self]`: `self` (DEV is the
    /// bridge itself) for the bridge's own port, where its addresses live.
    AddBridgeVlan { node: NodeName, dev: LinkName, vid: u16, pvid: bool, untagged: bool, bridge_self: bool },
    /// `bridge vlan del dev DEV vid VID [self]`.
    DelBridgeVlan { node: NodeName, dev: LinkName, vid: u16, bridge_self: bool },
    /// `wg set DEV private-key FILE listen-port PORT peer KEY ...`: the peers given
    /// are added or updated (their allowed IPs replaced); others stay.
    SetWireguard { node: NodeName, link: LinkName, config: WgConfig },
    /// `ip rule add ...`: policy routing.
    AddRule { node: NodeName, rule: RuleSpec },
    /// `sysctl -w KEY=VALUE` inside the node.
    SetSysctl { node: NodeName, key: String, value: String },
    /// An iptables rule or policy (NAT, FORWARD).
    Firewall { node: NodeName, change: FirewallChange },
    /// /etc/netns/NODE/FILE (the host's: /etc/FILE).
    WriteFile { node: NodeName, file: EtcFile, text: String },
    /// The node's hostname, in a UTS namespace of its own.
    SetHostname { node: NodeName, name: String },
    /// One of netlab's built-in servers.
    StartServer { node: NodeName, server: ServerSpec },
    /// A real program run in the node (`ip netns exec NODE CMD`): what it changes
    /// only the kernel knows.
    Exec { node: NodeName, command: String },
    /// `tc qdisc replace dev LINK root netem ... | tbf ...`: the link's egress impaired.
    Impair { node: NodeName, link: LinkName, impairment: super::impair::Impairment },
    /// `tc qdisc del dev LINK root`: back to the kernel's default qdisc.
    ClearImpair { node: NodeName, link: LinkName },
    /// Router advertisements on LINK (what radvd sends): netlab's own sender, for
    /// SLAAC on the hosts of the link.
    Advertise { node: NodeName, link: LinkName, ra: RouterAdvert },
}

/// What a router advertises on a link (RFC 4861 4.2, the prefix option of 4.6.2).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterAdvert {
    /// Prefixes for SLAAC (on-link and autonomous), each a /64.
    pub prefixes: Vec<IpNet>,
    /// The router offers itself as the default router (router lifetime 1800 s).
    pub default_route: bool,
}

impl RouterAdvert {
    /// The router lifetime it announces: 0 means "not a default router".
    pub fn router_lifetime(&self) -> u16 {
        if self.default_route {
            1800
        } else {
            0
        }
    }
}

/// The per-node files `ip netns exec` puts in place of /etc's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EtcFile {
    ResolvConf,
    Hosts,
}

impl EtcFile {
    pub fn file_name(self) -> &'static str {
        match self {
            EtcFile::ResolvConf => "resolv.conf",
            EtcFile::Hosts => "hosts",
        }
    }
}

/// A built-in server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerSpec {
    /// Answers every request with the status and body.
    Http { addr: SocketAddr, body: String, status: u16 },
    /// Answers A/AAAA for the names given, NXDOMAIN for others.
    Dns { addr: SocketAddr, records: Vec<(String, IpAddr)> },
    /// Sends every datagram back to its sender (the echo service, RFC 862).
    UdpEcho { addr: SocketAddr },
}

impl ServerSpec {
    pub fn addr(&self) -> SocketAddr {
        match self {
            ServerSpec::Http { addr, .. } | ServerSpec::Dns { addr, .. } | ServerSpec::UdpEcho { addr } => *addr,
        }
    }

    /// The socket's protocol as `ss` names it.
    pub fn proto(&self) -> &'static str {
        match self {
            ServerSpec::Http { .. } => "tcp",
            ServerSpec::Dns { .. } | ServerSpec::UdpEcho { .. } => "udp",
        }
    }

    /// What the server is, for messages ("HTTP server").
    pub fn what(&self) -> &'static str {
        match self {
            ServerSpec::Http { .. } => "HTTP server",
            ServerSpec::Dns { .. } => "DNS server",
            ServerSpec::UdpEcho { .. } => "UDP echo server",
        }
    }
}

impl Op {
    /// The node the op runs in.
    pub fn node(&self) -> &NodeName {
        match self {
            Op::AddNode { node }
            | Op::DelNode { node }
            | Op::AddVeth { node, .. }
            | Op::AddBridge { node, .. }
            | Op::AddLink { node, .. }
            | Op::SetLink { node, .. }
            | Op::SetUp { node, .. }
            | Op::SetMaster { node, .. }
            | Op::MoveLink { node, .. }
            | Op::DelLink { node, .. }
            | Op::AddAddr { node, .. }
            | Op::DelAddr { node, .. }
            | Op::AddRoute { node, .. }
            | Op::DelRoute { node, .. }
            | Op::AddRule { node, .. }
            | Op::DelRule { node, .. }
            | Op::AddNeigh { node, .. }
            | Op::DelNeigh { node, .. }
            | Op::FlushNeigh { node, .. }
            | Op::SetBridgePort { node, .. }
            | Op::SetBridge { node, .. }
            | Op::AddBridgeVlan { node, .. }
            | Op::DelBridgeVlan { node, .. }
            | Op::SetWireguard { node, .. }
            | Op::SetSysctl { node, .. }
            | Op::Firewall { node, .. }
            | Op::WriteFile { node, .. }
            | Op::SetHostname { node, .. }
            | Op::StartServer { node, .. }
            | Op::Exec { node, .. }
            | Op::Impair { node, .. }
            | Op::ClearImpair { node, .. }
            | Op::Advertise { node, .. } => node,
        }
    }

    /// Nodes whose links the op changes (what a readiness wait must look at).
    pub fn touched_links(&self) -> Vec<&NodeName> {
        match self {
            Op::AddVeth { node, peer_node, .. } => vec![node, peer_node],
            Op::MoveLink { node, to, .. } => vec![node, to],
            Op::AddBridge { node, .. }
            | Op::AddLink { node, .. }
            | Op::SetLink { node, .. }
            | Op::SetUp { node, .. }
            | Op::SetMaster { node, .. }
            | Op::DelLink { node, .. }
            | Op::AddAddr { node, .. }
            | Op::DelAddr { node, .. }
            | Op::AddRoute { node, .. }
            | Op::DelRoute { node, .. }
            | Op::SetBridge { node, .. }
            | Op::AddBridgeVlan { node, .. }
            | Op::DelBridgeVlan { node, .. }
            | Op::SetWireguard { node, .. } => vec![node],
            _ => vec![],
        }
    }
}

/// What a check or a probe asks of the network, for rendering (`--explain`,
/// `netlab export`); the outcome comes from the backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// `ping DST` from the node; `expect` None when only the result is used.
    Ping { node: NodeName, dst: IpAddr, expect: Option<Expect>, opts: crate::ping::PingOpts },
    /// Many nodes ping DST at once.
    PingAll { nodes: Vec<NodeName>, dst: IpAddr, expect: Option<Expect> },
    /// `curl URL` from the node.
    Http { node: NodeName, url: String, expect: Option<Expect>, status: u16, body: Option<String> },
    /// `nc -z IP PORT` from the node: a TCP handshake.
    Tcp { node: NodeName, addr: SocketAddr, expect: Option<Expect> },
    /// `echo x | nc -u -w1 IP PORT` from the node: a datagram and its echo.
    Udp { node: NodeName, addr: SocketAddr, expect: Option<Expect> },
    /// `getent hosts NAME` from the node.
    Resolve { node: NodeName, name: String, expect: Option<Expect> },
    /// `traceroute -n -I DST` from the node: `hops` the routers on the way, then DST
    /// (empty when only the result is used).
    Path { node: NodeName, dst: IpAddr, hops: Vec<IpAddr>, expect: Option<Expect> },
    /// `ping -c COUNT DST`: the median round trip between `min` and `max` (ns).
    Rtt { node: NodeName, dst: IpAddr, count: u32, min: Option<u64>, max: Option<u64> },
    /// TCP sent from the node to `dst` for `seconds`, received by netlab's sink in
    /// `server`; with `check`, the rate (bit/s) between `min` and `max`.
    Throughput {
        node: NodeName,
        server: NodeName,
        dst: SocketAddr,
        seconds: f64,
        check: bool,
        min: Option<u64>,
        max: Option<u64>,
    },
}

impl Probe {
    /// Whether this probe is a check (expect_*), not a value the lab uses.
    pub fn is_check(&self) -> bool {
        match self {
            Probe::Ping { expect, .. }
            | Probe::PingAll { expect, .. }
            | Probe::Http { expect, .. }
            | Probe::Tcp { expect, .. }
            | Probe::Udp { expect, .. }
            | Probe::Resolve { expect, .. }
            | Probe::Path { expect, .. } => expect.is_some(),
            Probe::Rtt { .. } => true,
            Probe::Throughput { check, .. } => *check,
        }
    }
}

/// Whether a check wants an answer or wants none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Answer,
    NoAnswer,
}

/// One entry of the journal of a run: what ran, in order, under which step.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Step {
        title: String,
    },
    Op {
        op: Op,
        line: usize,
    },
    Probe {
        probe: Probe,
        line: usize,
    },
    /// A check on a value the lab computed (expect, expect_eq): only its claim.
    Claim {
        title: String,
        line: usize,
    },
}
