//! The model's network: ops folded into nodes, links, addresses, routes, rules
//! and files, validated as the kernel would and failing with the errors the
//! kernel backend gives. Derived state (carrier, operstate, connected routes
//! shown, link-local addresses) is computed when asked, like the kernel reports it.

mod apply;
mod kinds;
mod lint;
mod query;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::op::{EtcFile, ServerSpec};
use super::state::{LinkKind, Scope};
use crate::error::{known_names_help, Error, Result};
use crate::model::firewall::FirewallChange;
use crate::names::{LinkName, NodeName};

pub use lint::{Lint, LintKind};
pub use query::{eui64, Slaac};

/// The node netlab starts with: the sandbox's own namespace.
pub const HOST: &str = "host";
/// The kernel backend's first ifindex for links a lab makes (link.rs): the same
/// numbers here, so a plan shows what a run shows.
const FIRST_INDEX: u32 = 1000;

/// The lab's network as the ops built it.
#[derive(Debug, Clone)]
pub struct Topology {
    nodes: BTreeMap<String, NodeState>,
    next_index: u32,
}

/// One node (network namespace) and what the lab did in it.
#[derive(Debug, Clone)]
pub struct NodeState {
    pub name: NodeName,
    /// In ifindex order, as `ip link` lists them.
    pub links: Vec<Link>,
    /// The main table, connected routes included (the kernel adds and removes
    /// those as addresses and links change, and a lab may delete one).
    pub routes: Vec<Route>,
    /// Sysctls the lab set, in order, keys as written.
    pub sysctls: Vec<(String, String)>,
    pub firewall: Vec<FirewallChange>,
    pub files: BTreeMap<EtcFile, String>,
    pub hostname: Option<String>,
    pub servers: Vec<ServerSpec>,
    /// Programs run in the node: what they changed only the kernel knows.
    pub execs: Vec<String>,
    /// Policy routing rules the lab added (the kernel's three defaults are implied).
    pub rules: Vec<crate::model::RuleState>,
    /// The kernel's default rules the lab deleted.
    pub deleted_default_rules: Vec<crate::model::RuleState>,
    /// Neighbour entries added by hand (`ip neigh add`); learned ones need traffic,
    /// which the model does not send.
    pub neighbours: Vec<crate::model::Neighbour>,
    /// Router advertisements netlab sends from this node: (link index, what).
    pub adverts: Vec<(u32, crate::model::RouterAdvert)>,
}

/// One link as the lab made it; carrier and operstate are derived (query.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub index: u32,
    pub name: LinkName,
    pub kind: LinkKind,
    pub mac: [u8; 6],
    pub admin_up: bool,
    pub mtu: u32,
    /// The ifindex of the bridge this link is a port of (same node).
    pub master: Option<u32>,
    /// The other end of a veth: its node and name, kept in step with moves and renames.
    pub peer: Option<(NodeName, LinkName)>,
    /// In the order added.
    pub addrs: Vec<IpNet>,
    /// IPv6 on (net.ipv6.conf.LINK.disable_ipv6 = 0).
    pub ipv6: bool,
    /// For a vlan, macvlan or vxlan link: what it was made as (`ip -d link`).
    pub spec: Option<crate::model::LinkSpec>,
    /// The link it is made on (vlan, macvlan; a vxlan's dev): its node and ifindex,
    /// which stay when either moves to another node.
    pub parent: Option<(NodeName, u32)>,
    pub txqueuelen: u32,
    pub alias: Option<String>,
    /// As a bridge port: learning, flood, isolated (the kernel's defaults on
    /// attaching: on, on, off).
    pub port_opts: crate::model::BridgePortOpts,
    /// What only some kinds have: a bridge's settings and VLANs, a bond's ports.
    pub extra: LinkExtra,
    /// The root qdisc impair() put on its egress (None: the kernel's default).
    pub qdisc: Option<crate::model::Impairment>,
}

/// The kind-specific state of a link (kinds.rs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkExtra {
    /// A bridge's own settings (`ip -d link`).
    pub bridge: crate::model::BridgeConf,
    /// A bridge's or a bridge port's VLANs (`bridge vlan show`): vid, pvid, untagged,
    /// by vid.
    pub vlans: Vec<(u16, bool, bool)>,
    /// A bond's ports, in the order they were enslaved, and the active one.
    pub bond_ports: Vec<u32>,
    pub bond_active: Option<u32>,
    /// A bond port's own MAC address, which the bond replaced with its own.
    pub mac_before_bond: Option<[u8; 6]>,
    /// A WireGuard link's keys and peers.
    pub wireguard: Option<crate::model::WgConfig>,
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// None for the default route.
    pub dest: Option<IpNet>,
    /// The family, which a default route's destination does not tell.
    pub v6: bool,
    pub gateway: Option<IpAddr>,
    pub dev: u32,
    pub scope: Scope,
    /// Added by the kernel for an address (`proto kernel`).
    pub connected: bool,
    pub table: u32,
    /// As the kernel keeps it: IPv4's default 0, IPv6's 1024 (256 for connected).
    pub metric: u32,
    pub kind: crate::model::RouteKind,
    pub src: Option<IpAddr>,
    pub onlink: bool,
    /// A multipath route's paths (then `gateway` is None and `dev` 0).
    pub hops: Vec<Hop>,
}

/// A path of a multipath route.
#[derive(Debug, Clone, PartialEq)]
pub struct Hop {
    pub gateway: Option<IpAddr>,
    pub dev: u32,
    pub weight: u16,
    /// Its link went down (or lost its last IPv4 address): not used until it is up.
    pub dead: bool,
}

impl Route {
    /// Whether the route goes through link `index` (its only one, or one of its paths).
    pub fn uses(&self, index: u32) -> bool {
        self.dev == index || self.hops.iter().any(|h| h.dev == index)
    }

    /// A connected route of an address (`proto kernel`).
    pub fn connected(dest: Option<IpNet>, v6: bool, dev: u32, scope: Scope) -> Route {
        Route {
            dest,
            v6,
            gateway: None,
            dev,
            scope,
            connected: true,
            table: crate::model::MAIN_TABLE,
            metric: if v6 { 256 } else { 0 },
            kind: crate::model::RouteKind::Unicast,
            src: None,
            onlink: false,
            hops: Vec::new(),
        }
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Topology {
    /// The host alone, with its loopback up as netlab brings it up at start.
    pub fn new() -> Topology {
        let host = NodeName::new(HOST).expect("valid node name");
        let mut t = Topology { nodes: BTreeMap::new(), next_index: FIRST_INDEX };
        t.nodes.insert(HOST.to_string(), NodeState::new(host));
        t.nodes.get_mut(HOST).expect("host exists").set_up(1, true);
        t
    }

    /// The nodes, the host first, then by name.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeState> {
        let host = self.nodes.get(HOST);
        host.into_iter().chain(self.nodes.values().filter(|n| n.name.as_str() != HOST))
    }

    pub fn node_names(&self) -> Vec<NodeName> {
        self.nodes().map(|n| n.name.clone()).collect()
    }

    /// The node, or NoSuchNode listing the known ones.
    pub fn node(&self, name: &str) -> Result<&NodeState> {
        self.nodes.get(name).ok_or_else(|| self.no_such_node(name))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut NodeState> {
        let err = self.no_such_node(name);
        self.nodes.get_mut(name).ok_or(err)
    }

    fn no_such_node(&self, name: &str) -> Error {
        let known: Vec<String> = self.nodes.keys().cloned().collect();
        Error::NoSuchNode { name: name.to_string(), help: known_names_help("nodes", &known) }
    }

    /// The link a veth end's peer reference names, if it is still there.
    pub fn peer_of(&self, link: &Link) -> Option<(&NodeState, &Link)> {
        let (node, name) = link.peer.as_ref()?;
        let node = self.nodes.get(node.as_str())?;
        Some((node, node.link_named(name)?))
    }

    fn take_index(&mut self, count: u32) -> u32 {
        let first = self.next_index;
        self.next_index += count;
        first
    }
}

impl NodeState {
    /// A fresh namespace: only `lo`, down, with IPv6 on (it exists before netlab
    /// turns IPv6 off for new links).
    fn new(name: NodeName) -> NodeState {
        let lo = Link {
            index: 1,
            name: LinkName::new("lo").expect("valid link name"),
            kind: LinkKind::Loopback,
            mac: [0; 6],
            admin_up: false,
            mtu: 65536,
            master: None,
            peer: None,
            addrs: Vec::new(),
            ipv6: true,
            spec: None,
            parent: None,
            txqueuelen: 1000,
            alias: None,
            port_opts: Default::default(),
            extra: Default::default(),
            qdisc: None,
        };
        NodeState {
            name,
            links: vec![lo],
            routes: Vec::new(),
            sysctls: Vec::new(),
            firewall: Vec::new(),
            files: BTreeMap::new(),
            hostname: None,
            servers: Vec::new(),
            execs: Vec::new(),
            rules: Vec::new(),
            deleted_default_rules: Vec::new(),
            neighbours: Vec::new(),
            adverts: Vec::new(),
        }
    }

    pub fn link_named(&self, name: &LinkName) -> Option<&Link> {
        self.links.iter().find(|l| l.name == *name)
    }

    pub fn by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    fn by_index_mut(&mut self, index: u32) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.index == index)
    }

    /// The link, or NoSuchLink listing the node's links.
    pub fn link(&self, name: &LinkName) -> Result<&Link> {
        self.link_named(name).ok_or_else(|| {
            let known: Vec<String> = self.links.iter().map(|l| l.name.to_string()).collect();
            Error::NoSuchLink {
                node: self.name.to_string(),
                link: name.to_string(),
                help: known_names_help(&format!("links in {}", self.name), &known),
            }
        })
    }

    /// Keeps `links` in ifindex order.
    fn insert_link(&mut self, link: Link) {
        let at = self.links.partition_point(|l| l.index < link.index);
        self.links.insert(at, link);
    }

    /// The value the lab set for a sysctl, keys compared as paths
    /// ("net.ipv4.ip_forward" is "net/ipv4/ip_forward").
    pub fn sysctl_set(&self, key: &str) -> Option<&str> {
        let path = sysctl_path(key);
        self.sysctls.iter().rev().find(|(k, _)| sysctl_path(k) == path).map(|(_, v)| v.as_str())
    }

    /// Whether links made now start with IPv6 off (netlab sets the default to 1;
    /// writing `all` sets `default` too, as the kernel does).
    fn new_links_ipv6(&self) -> bool {
        let keys = ["net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"];
        self.latest_sysctl(&keys).map(|v| v.trim() == "0").unwrap_or(false)
    }

    /// The value last set for any of `keys` (compared as paths).
    pub fn latest_sysctl(&self, keys: &[&str]) -> Option<&str> {
        let paths: Vec<String> = keys.iter().map(|k| sysctl_path(k)).collect();
        self.sysctls.iter().rev().find(|(k, _)| paths.contains(&sysctl_path(k))).map(|(_, v)| v.as_str())
    }

    /// An IPv6 setting of a link as the kernel keeps it: the link's own value, else
    /// the `default` one it was made with (`all` too for `forwarding`, which the
    /// kernel copies to every link), else the kernel's default.
    pub fn ipv6_conf(&self, link: &LinkName, key: &str, kernel_default: i64) -> i64 {
        let own = format!("net/ipv6/conf/{link}/{key}");
        let dflt = format!("net/ipv6/conf/default/{key}");
        let all = format!("net/ipv6/conf/all/{key}");
        let value = if key == "forwarding" {
            self.latest_sysctl(&[&own, &all]).or_else(|| self.sysctl_set(&dflt))
        } else {
            self.sysctl_set(&own).or_else(|| self.sysctl_set(&dflt))
        };
        value.and_then(|v| v.trim().parse().ok()).unwrap_or(kernel_default)
    }

    /// Whether the link takes router advertisements (`accept_ra` 1 on a host, not a
    /// router, or 2) and configures addresses from them (`autoconf`).
    pub fn takes_ra(&self, link: &LinkName) -> (bool, bool) {
        let accept = match self.ipv6_conf(link, "accept_ra", 1) {
            2 => true,
            1 => self.ipv6_conf(link, "forwarding", 0) == 0,
            _ => false,
        };
        (accept, accept && self.ipv6_conf(link, "autoconf", 1) != 0)
    }
}

/// A sysctl key as its /proc/sys path relative part: dots become slashes unless
/// the key is written with slashes already (then dots are part of a link's name).
pub(crate) fn sysctl_path(key: &str) -> String {
    if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    }
}
