//! A normalized snapshot of a sandbox's kernel state: the same JSON whoever built
//! the network (a netlab lab, or a bash script of `ip` commands), so two ways of
//! building "the same" network can be compared (`diff`).
//!
//! Taken from inside the sandbox: the nodes are its own namespace ("host") and every
//! entry of /run/netns. Everything is read from the kernel (netlink from inside each
//! node, /proc/sys, nft), never from what netlab thinks it made. Normalized: no
//! ifindexes and no MACs (a veth's peer is "node/link", a master is a name, an
//! EUI-64 link-local address is "fe80::mac/64"), everything sorted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
use rtnetlink::packet_route::route::{RouteAttribute, RouteType};
use rtnetlink::packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};

use crate::backend::kernel::exec::{self, CommandLine};
use crate::backend::kernel::node::Node;
use crate::backend::kernel::nsenter::current_netns;
use crate::backend::kernel::readiness::LinkWatcher;
use crate::backend::kernel::sandbox::{etc_overlaid, ETC_NETNS_DIR, NETNS_DIR, NODE_ETC_DIR, UTS_DIR};
use crate::backend::kernel::sysctl;
use crate::backend::kernel::HOST;
use crate::error::{Error, Result};
use crate::model::{AddrState, LinkKind, LinkState, PortState, RouteState};
use crate::names::NodeName;
use crate::render::iptables::{IptTable, Ruleset};

/// The JSON format's version; bump it when a field changes meaning.
pub const VERSION: u32 = 1;
/// How long `take` waits for link states to settle (linkwatch runs up to a second
/// after a change; see Lab::settle_links).
const SETTLE: Duration = Duration::from_secs(3);
/// The bridge table netlab keeps per node (firewall.rs).
const BRIDGE_TABLE: &str = "netlab_bridge";
const MAIN_TABLE: u32 = 254;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// By node name; "host" is the sandbox's own namespace.
    pub nodes: BTreeMap<String, NodeState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub hostname: String,
    /// By name.
    pub links: Vec<Link>,
    /// By device, then address.
    pub addresses: Vec<Address>,
    /// The main table, IPv4 then IPv6, by destination.
    pub routes: Vec<Route>,
    /// The sysctls asked for in this node; None when the key does not exist here.
    pub sysctls: BTreeMap<String, Option<String>>,
    /// /etc/netns/NODE/resolv.conf (the host: /etc/resolv.conf); None if missing.
    pub resolv_conf: Option<String>,
    /// /etc/netns/NODE/hosts (the host: /etc/hosts); None if missing.
    pub hosts: Option<String>,
    /// None when nft is not installed.
    pub firewall: Option<Firewall>,
    /// `tc qdisc show`: the qdiscs configured (impair()), one line each.
    #[serde(default)]
    pub qdiscs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    /// "veth", "bridge", "loopback", ... as `ip -d link` names it.
    pub kind: String,
    pub admin_up: bool,
    /// Operational state: "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", ...
    pub oper: String,
    pub mtu: u32,
    /// The bridge this link is a port of.
    pub master: Option<String>,
    /// For a veth: "node/link" of its peer ("?" when the peer is in no node).
    pub peer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    pub dev: String,
    /// "10.0.0.1/24"; a link-local address made from the MAC is "fe80::mac/64".
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// A prefix, or "default".
    pub dst: String,
    pub via: Option<String>,
    pub dev: Option<String>,
    pub scope: String,
    /// RTA_PRIORITY when set (IPv6 routes always have one).
    pub metric: Option<u32>,
    /// "unicast", "blackhole", "unreachable", ...
    #[serde(rename = "type")]
    pub kind: String,
    /// A multipath route's paths, as `ip route` prints them: "via GW dev LINK weight W".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    /// `iptables -S`.
    pub filter: Vec<String>,
    /// `iptables -t nat -S`.
    pub nat: Vec<String>,
    /// `ip6tables -S`, once the node has an IPv6 filter table (empty before).
    #[serde(default)]
    pub filter6: Vec<String>,
    /// `ip6tables -t nat -S`, once the node has an IPv6 nat table (empty before).
    #[serde(default)]
    pub nat6: Vec<String>,
    /// `nft list table bridge netlab_bridge`, if the table exists.
    pub bridge_table: Option<String>,
}

impl Snapshot {
    /// Pretty JSON, ending with a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a snapshot always serializes");
        text.push('\n');
        text
    }

    pub fn from_json(text: &str) -> std::result::Result<Snapshot, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl Route {
    /// As `ip route` prints it (without the default scope and type).
    pub fn describe(&self) -> String {
        let mut s = if self.kind == "unicast" { String::new() } else { format!("{} ", self.kind) };
        s += &self.dst;
        if let Some(via) = &self.via {
            s += &format!(" via {via}");
        }
        if let Some(dev) = &self.dev {
            s += &format!(" dev {dev}");
        }
        if self.scope != "universe" {
            s += &format!(" scope {}", self.scope);
        }
        if let Some(m) = self.metric {
            s += &format!(" metric {m}");
        }
        for hop in &self.nexthops {
            s += &format!(" nexthop {hop}");
        }
        s
    }
}

/// Takes a snapshot and writes it as JSON to `path`. For `netlab run --state`: call
/// it inside the sandbox, with `path` made absolute before `sandbox::enter()`; note
/// that /run, /etc, /proc and /sys are the sandbox's own there (open the file before
/// entering and write to it instead, as `netlab sh` does, to reach any path).
pub fn write_state(path: &Path, sysctls: &[(String, String)]) -> Result<()> {
    let text = take(sysctls)?.to_json();
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads the kernel state of the sandbox. Call it inside the sandbox, on a thread in
/// the sandbox's own network namespace, and not from inside a tokio runtime (it runs
/// its own). `sysctls` are (node, key) pairs to include.
pub fn take(sysctls: &[(String, String)]) -> Result<Snapshot> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))?;
    let _in_runtime = rt.enter(); // Node::attach spawns its connection on it
    let home = current_netns()?;
    let namespaces = namespaces(&home)?;
    for (node, key) in sysctls {
        sysctl::path_for(key)?;
        if !namespaces.iter().any(|(name, _)| name == node) {
            let known: Vec<String> = namespaces.iter().map(|(n, _)| n.clone()).collect();
            return Err(Error::NoSuchNode {
                name: node.clone(),
                help: crate::error::known_names_help("nodes", &known),
            });
        }
    }
    let deadline = Instant::now() + SETTLE;
    let mut raw = Vec::with_capacity(namespaces.len());
    for (name, ns) in &namespaces {
        let node = attach(name, ns)?;
        let asked: Vec<&str> = sysctls.iter().filter(|(n, _)| n == name).map(|(_, k)| k.as_str()).collect();
        raw.push(rt.block_on(read_node(&node, &home, &asked, deadline))?);
        // Dropping the node closes its connection: one open at a time, however many nodes.
    }
    let peers = rt.block_on(resolve_peers(&namespaces, &raw))?;
    let mut nodes = BTreeMap::new();
    for (i, (name, _)) in namespaces.iter().enumerate() {
        nodes.insert(name.clone(), normalize(&raw[i], &peers[i]));
    }
    Ok(Snapshot { version: VERSION, nodes })
}

/// The sandbox's namespace as "host", then /run/netns's entries by name. Entries
/// that are not namespaces (a file left after an unmount) are skipped.
fn namespaces(home: &File) -> Result<Vec<(String, File)>> {
    let host = home.try_clone().map_err(|e| Error::io("duplicating the host namespace handle", e))?;
    let mut found = vec![(HOST.to_string(), host)];
    let mut names: Vec<String> = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(format!("listing {NETNS_DIR}"), e)),
    };
    names.sort();
    for name in names {
        if name == HOST {
            return Err(Error::BadNodeName {
                name,
                reason: format!("{NETNS_DIR}/host clashes with the snapshot's name of the sandbox's own namespace"),
            });
        }
        let path = Path::new(NETNS_DIR).join(&name);
        let file = File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if is_netns(&file) {
            found.push((name, file));
        }
    }
    Ok(found)
}

fn is_netns(file: &File) -> bool {
    use nix::sys::statfs::{fstatfs, NSFS_MAGIC};
    fstatfs(file.as_fd()).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

fn attach(name: &str, ns: &File) -> Result<Node> {
    let ns = ns.try_clone().map_err(|e| Error::io(format!("duplicating the handle of {name}"), e))?;
    Node::attach(NodeName::new(name)?, ns)
}

struct RawLink {
    state: LinkState,
    kind: String,
    /// IFLA_LINK_NETNSID: the peer's namespace, as this node numbers it (absent when
    /// the peer is in the same namespace).
    netnsid: Option<i32>,
}

struct RawRoute {
    state: RouteState,
    kind: RouteType,
    metric: Option<u32>,
}

struct RawNode {
    links: Vec<RawLink>,
    addresses: Vec<AddrState>,
    routes: Vec<RawRoute>,
    sysctls: BTreeMap<String, Option<String>>,
    resolv_conf: Option<String>,
    hosts: Option<String>,
    hostname: String,
    firewall: Option<Firewall>,
    qdiscs: Vec<String>,
}

async fn read_node(node: &Node, home: &File, sysctls: &[&str], deadline: Instant) -> Result<RawNode> {
    let links = settled_links(node, home, deadline).await?;
    // After the links settled: IPv6 link-local addresses and their routes come
    // with the carrier, when linkwatch gets to the link.
    let addresses = node.addresses().await?;
    let routes = node
        .route_messages()
        .await?
        .iter()
        .map(|m| RawRoute {
            state: crate::backend::kernel::route::route_state(m),
            kind: m.header.kind,
            metric: m.attributes.iter().find_map(|a| match a {
                RouteAttribute::Priority(p) => Some(*p),
                _ => None,
            }),
        })
        .filter(|r| r.state.table == MAIN_TABLE)
        .collect();
    let mut values = BTreeMap::new();
    for key in sysctls {
        let value = node.read_sysctl(home, key)?;
        let value = match value {
            Ok(v) => Some(v),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("reading {key} in {}", node.name), e)),
        };
        values.insert(key.to_string(), value);
    }
    let host = node.name.as_str() == HOST;
    Ok(RawNode {
        links,
        addresses,
        routes,
        sysctls: values,
        resolv_conf: node_file(node.name.as_str(), host, "resolv.conf"),
        hosts: node_file(node.name.as_str(), host, "hosts"),
        hostname: hostname(node.name.as_str(), host)?,
        firewall: firewall(node).await?,
        qdiscs: node.qdiscs().await?.iter().map(|q| q.describe()).collect(),
    })
}

/// The node's links once their operational states agree with their carriers (as
/// `ip link` shows them when the kernel is done), or at the deadline.
/// Woken by the node's link events, not by polling.
async fn settled_links(node: &Node, home: &File, deadline: Instant) -> Result<Vec<RawLink>> {
    let mut watcher = None;
    loop {
        let msgs = node.link_messages().await?;
        let links: Vec<RawLink> = msgs.iter().map(raw_link).collect();
        let states: Vec<LinkState> = links.iter().map(|l| l.state.clone()).collect();
        if settled(&states) || Instant::now() >= deadline {
            return Ok(links);
        }
        match watcher.as_mut() {
            // Subscribed before the next look, so no change slips in between.
            None => watcher = Some(LinkWatcher::open(node, home)?),
            Some(w) => w.next_until(deadline).await,
        }
    }
}

/// Whether linkwatch is done with the node's links (their operstates follow their
/// flags). A veth with carrier and a bridge with a forwarding port end UP (a
/// bridge passes through UNKNOWN on the way); lo or a dummy (carrier, no operstate
/// of their own) may stay UNKNOWN; without carrier, every device ends DOWN.
fn settled(links: &[LinkState]) -> bool {
    use crate::model::OperState::{Down, LowerLayerDown, Unknown, Up};
    let forwarding_port = |bridge: &LinkState| {
        links.iter().any(|p| {
            p.master == Some(bridge.index) && p.admin_up && p.carrier && p.port_state == Some(PortState::Forwarding)
        })
    };
    links.iter().all(|l| match (l.kind, l.admin_up, l.carrier) {
        (_, false, _) => l.oper != Up,
        (LinkKind::Veth, true, true) => l.oper == Up,
        (LinkKind::Veth, true, false) => matches!(l.oper, Down | LowerLayerDown),
        (LinkKind::Bridge, true, true) if forwarding_port(l) => l.oper == Up,
        (_, true, true) => matches!(l.oper, Up | Unknown),
        // Carrier off: UNKNOWN until linkwatch sets it DOWN (readiness::operstate_converged).
        (_, true, false) => !matches!(l.oper, Up | Unknown),
    })
}

fn raw_link(msg: &LinkMessage) -> RawLink {
    let state = LinkState::from(msg);
    let mut kind = state.kind.as_str().to_string();
    let mut netnsid = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) if state.kind == LinkKind::Other => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        kind = k.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    RawLink { state, kind, netnsid }
}

/// The node's own /etc/FILE: /etc/netns/NODE/FILE (the host: /etc/FILE), or where
/// netlab keeps it when the sandbox's /etc is not an overlay (lab/etc.rs).
fn node_file(node: &str, host: bool, file: &str) -> Option<String> {
    let path = match (etc_overlaid(), host) {
        (true, true) => PathBuf::from("/etc").join(file),
        (true, false) => Path::new(ETC_NETNS_DIR).join(node).join(file),
        (false, _) => {
            let own = Path::new(NODE_ETC_DIR).join(node).join(file);
            match (own.exists(), host) {
                (true, _) | (false, false) => own,
                (false, true) => PathBuf::from("/etc").join(file),
            }
        }
    };
    std::fs::read_to_string(path).ok()
}

/// The node's hostname: from its own UTS namespace if it has one (bind-mounted at
/// UTS_DIR/NODE), else the sandbox's.
fn hostname(node: &str, host: bool) -> Result<String> {
    let read = || {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .map_err(|e| Error::io("reading the hostname", e.into()))
    };
    let path = Path::new(UTS_DIR).join(node);
    if host || !path.exists() {
        return read();
    }
    let uts = File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let home = File::open("/proc/thread-self/ns/uts").map_err(|e| Error::io("opening the UTS namespace", e))?;
    let enter = |ns: &File, what: &str| {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWUTS).map_err(|e| Error::io(what, e.into()))
    };
    enter(&uts, "entering a node's UTS namespace")?;
    let name = read();
    enter(&home, "returning to the sandbox's UTS namespace")?;
    name
}

/// The node's IPv4 rules as `iptables -S` and `iptables -t nat -S` print them, its
/// IPv6 rules as ip6tables prints them (for the tables the node has: listing one it
/// has not would make it), and netlab's bridge table; None when nft is not installed.
async fn firewall(node: &Node) -> Result<Option<Firewall>> {
    if exec::find_program("nft").is_none() {
        return Ok(None);
    }
    let json = run_in(node, "nft -j list ruleset").await?;
    let ruleset = Ruleset::parse(&json).map_err(|e| {
        Error::kernel("reading nftables rules", node.name.as_str(), "ruleset", std::io::Error::other(e))
    })?;
    let mut lines = Vec::new();
    for table in [IptTable::Filter, IptTable::Nat] {
        let listing = if ruleset.needs_iptables_listing(table) {
            Some(run_in(node, &format!("iptables-nft -t {} -S", table.name())).await?)
        } else {
            None
        };
        lines.push(ruleset.iptables_lines(table, listing.as_deref()));
    }
    let doc = serde_json::from_str::<serde_json::Value>(&json).ok();
    let has_table = |family: &str, name: &str| {
        doc.as_ref().is_some_and(|doc| {
            doc["nftables"]
                .as_array()
                .is_some_and(|items| items.iter().any(|i| i["table"]["family"] == family && i["table"]["name"] == name))
        })
    };
    let mut v6 = Vec::new();
    for table in [IptTable::Filter, IptTable::Nat] {
        let lines = if has_table("ip6", table.name()) && exec::find_program("ip6tables-nft").is_some() {
            let listing = run_in(node, &format!("ip6tables-nft -t {} -S", table.name())).await?;
            listing.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect()
        } else {
            Vec::new()
        };
        v6.push(lines);
    }
    let nat6 = v6.pop().unwrap_or_default();
    let filter6 = v6.pop().unwrap_or_default();
    let bridge_table = if has_table("bridge", BRIDGE_TABLE) {
        Some(run_in(node, &format!("nft list table bridge {BRIDGE_TABLE}")).await?)
    } else {
        None
    };
    let nat = lines.pop().unwrap_or_default();
    let filter = lines.pop().unwrap_or_default();
    Ok(Some(Firewall { filter, nat, filter6, nat6, bridge_table }))
}

/// Runs a listing command in the node; its stdout.
async fn run_in(node: &Node, line: &str) -> Result<String> {
    let cmd = CommandLine::parse(line)?;
    let out = exec::exec_in(node, &cmd, &Vec::new(), None, Duration::from_secs(10)).await?;
    if out.code != Some(0) {
        let why = std::io::Error::other(out.stderr.trim().to_string());
        return Err(Error::kernel("listing", node.name.as_str(), line.to_string(), why));
    }
    out.whole_stdout(node.name.as_str(), line)
}

/// Each link's veth peer as "node/link" (None for non-veths). The peer is the link
/// with the peer ifindex in the namespace IFLA_LINK_NETNSID names (this node when
/// absent); when that does not single one out, the link with that ifindex that
/// points back at this one.
async fn resolve_peers(namespaces: &[(String, File)], raw: &[RawNode]) -> Result<Vec<Vec<Option<String>>>> {
    let mut by_index: HashMap<u32, Vec<(usize, usize)>> = HashMap::new();
    for (n, node) in raw.iter().enumerate() {
        for (l, link) in node.links.iter().enumerate() {
            if link.state.kind == LinkKind::Veth {
                by_index.entry(link.state.index).or_default().push((n, l));
            }
        }
    }
    let mut peers = Vec::with_capacity(raw.len());
    for (n, node) in raw.iter().enumerate() {
        // nsids are per namespace: ask this node (lazily, on its own connection).
        let mut conn: Option<Node> = None;
        let mut nsids: HashMap<usize, Option<i32>> = HashMap::new();
        let mut found = Vec::with_capacity(node.links.len());
        for link in &node.links {
            let Some(peer_index) = link.state.peer_index.filter(|_| link.state.kind == LinkKind::Veth) else {
                found.push(None);
                continue;
            };
            let candidates: Vec<(usize, usize)> = by_index
                .get(&peer_index)
                .into_iter()
                .flatten()
                .copied()
                .filter(|(m, _)| (*m == n) == link.netnsid.is_none())
                .collect();
            let mut by_nsid = Vec::new();
            for (m, l) in &candidates {
                let id = match link.netnsid {
                    None => None,
                    Some(_) => {
                        if !nsids.contains_key(m) {
                            if conn.is_none() {
                                conn = Some(attach(&namespaces[n].0, &namespaces[n].1)?);
                            }
                            let handle = conn.as_ref().map(|c| c.handle()).transpose()?;
                            let id = match handle {
                                Some(h) => nsid_of(h, &namespaces[*m].1).await,
                                None => None,
                            };
                            nsids.insert(*m, id);
                        }
                        nsids[m]
                    }
                };
                if id == link.netnsid {
                    by_nsid.push((*m, *l));
                }
            }
            let chosen = if by_nsid.len() == 1 {
                Some(by_nsid[0])
            } else {
                let back: Vec<(usize, usize)> = candidates
                    .iter()
                    .copied()
                    .filter(|(m, l)| raw[*m].links[*l].state.peer_index == Some(link.state.index))
                    .collect();
                (back.len() == 1).then(|| back[0])
            };
            found.push(Some(match chosen {
                Some((m, l)) => format!("{}/{}", namespaces[m].0, raw[m].links[l].state.name),
                None => "?".to_string(),
            }));
        }
        peers.push(found);
    }
    Ok(peers)
}

/// The id the namespace of `handle`'s socket gives the namespace `target`
/// (RTM_GETNSID, as `ip netns list-id` shows), if it has given it one.
async fn nsid_of(mut handle: rtnetlink::Handle, target: &File) -> Option<i32> {
    let mut msg = NsidMessage::default();
    msg.attributes = vec![NsidAttribute::Fd(target.as_raw_fd() as u32)];
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut responses = handle.request(req).ok()?;
    let mut id = None;
    while let Some(resp) = responses.next().await {
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) = resp.payload {
            for attr in m.attributes {
                if let NsidAttribute::Id(i) = attr {
                    id = (i >= 0).then_some(i);
                }
            }
        }
    }
    id
}

fn normalize(raw: &RawNode, peers: &[Option<String>]) -> NodeState {
    let name_of: HashMap<u32, &str> = raw.links.iter().map(|l| (l.state.index, l.state.name.as_str())).collect();
    let dev = |index: u32| name_of.get(&index).map(|n| n.to_string()).unwrap_or_else(|| format!("if{index}"));
    let mut links: Vec<Link> = raw
        .links
        .iter()
        .zip(peers)
        .map(|(l, peer)| Link {
            name: l.state.name.clone(),
            kind: l.kind.clone(),
            admin_up: l.state.admin_up,
            oper: l.state.oper.as_str().to_string(),
            mtu: l.state.mtu,
            master: l.state.master.map(dev),
            peer: peer.clone(),
        })
        .collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));

    let macs: HashMap<u32, &str> = raw.links.iter().map(|l| (l.state.index, l.state.mac.as_str())).collect();
    let mut addresses: Vec<(String, IpNet)> = raw.addresses.iter().map(|a| (dev(a.link_index), a.cidr)).collect();
    addresses.sort_by(|a, b| (&a.0, a.1.addr().is_ipv6(), a.1).cmp(&(&b.0, b.1.addr().is_ipv6(), b.1)));
    let by_index: HashMap<&str, u32> = raw.links.iter().map(|l| (l.state.name.as_str(), l.state.index)).collect();
    let addresses = addresses
        .into_iter()
        .map(|(d, cidr)| {
            let mac = by_index.get(d.as_str()).and_then(|i| macs.get(i)).copied().unwrap_or("");
            Address { cidr: cidr_text(cidr, mac), dev: d }
        })
        .collect();

    let mut routes: Vec<&RawRoute> = raw.routes.iter().collect();
    let key = |r: &RawRoute| {
        let s = &r.state;
        let v6 = s.destination.map(|d| d.addr().is_ipv6()).or(s.gateway.map(|g| g.is_ipv6())).unwrap_or(false);
        (v6, s.destination, r.metric, s.gateway, s.device_index.map(dev), route_type(r.kind))
    };
    routes.sort_by_key(|r| key(r));
    let routes = routes
        .into_iter()
        .map(|r| Route {
            dst: r.state.destination.map(|d| d.to_string()).unwrap_or_else(|| "default".into()),
            via: r.state.gateway.map(gateway_text),
            dev: r.state.device_index.map(dev),
            scope: r.state.scope.as_str().to_string(),
            metric: r.metric,
            kind: route_type(r.kind),
            nexthops: r
                .state
                .nexthops
                .iter()
                .map(|h| {
                    let mut text = h.gateway.map(|g| format!("via {g} ")).unwrap_or_default();
                    if let Some(d) = h.device_index {
                        text += &format!("dev {} ", dev(d));
                    }
                    text += &format!("weight {}", h.weight);
                    if h.dead {
                        text += " dead";
                    }
                    text
                })
                .collect(),
        })
        .collect();

    NodeState {
        hostname: raw.hostname.clone(),
        links,
        addresses,
        routes,
        sysctls: raw.sysctls.clone(),
        resolv_conf: raw.resolv_conf.clone(),
        hosts: raw.hosts.clone(),
        firewall: raw.firewall.clone(),
        qdiscs: raw.qdiscs.clone(),
    }
}

/// The address as text; an IPv6 address whose interface id is the EUI-64 of the
/// link's MAC (a link-local one, usually) shows "mac" in its place, since MACs of
/// veths and bridges are random.
fn cidr_text(cidr: IpNet, mac: &str) -> String {
    if let (IpAddr::V6(ip), Some(eui)) = (cidr.addr(), eui64(mac)) {
        let o = ip.octets();
        if o[8..] == eui {
            let mut upper = [0u8; 16];
            upper[..8].copy_from_slice(&o[..8]);
            let prefix = std::net::Ipv6Addr::from(upper).to_string();
            let prefix = prefix.trim_end_matches(':');
            return format!("{prefix}::mac/{}", cidr.prefix_len());
        }
    }
    cidr.to_string()
}

/// A gateway as text; a link-local one made from a MAC (a router advertisement's
/// source) is "fe80::mac", since the MACs of veths and bridges are random.
fn gateway_text(gw: IpAddr) -> String {
    match gw {
        IpAddr::V6(ip) if ip.segments()[0] == 0xfe80 && ip.octets()[11..13] == [0xff, 0xfe] => "fe80::mac".into(),
        _ => gw.to_string(),
    }
}

/// The modified EUI-64 interface id of a MAC ("aa:bb:cc:dd:ee:ff").
fn eui64(mac: &str) -> Option<[u8; 8]> {
    let b: Vec<u8> = mac.split(':').map(|h| u8::from_str_radix(h, 16)).collect::<std::result::Result<_, _>>().ok()?;
    if b.len() != 6 || b.iter().all(|x| *x == 0) {
        return None;
    }
    Some([b[0] ^ 0x02, b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]])
}

fn route_type(kind: RouteType) -> String {
    match kind {
        RouteType::Unicast => "unicast".into(),
        RouteType::Local => "local".into(),
        RouteType::Broadcast => "broadcast".into(),
        RouteType::Anycast => "anycast".into(),
        RouteType::Multicast => "multicast".into(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        RouteType::Nat => "nat".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The differences between two snapshots, one line each, e.g.
/// "container4: link veth4: oper UP vs DOWN" or
/// "host: route 10.0.0.0/24 dev br0 scope link only in the first". Empty when equal.
pub fn diff(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    if a.version != b.version {
        out.push(format!("version {} vs {}", a.version, b.version));
    }
    let names: BTreeSet<&String> = a.nodes.keys().chain(b.nodes.keys()).collect();
    for name in names {
        match (a.nodes.get(name), b.nodes.get(name)) {
            (Some(x), Some(y)) => diff_node(&mut out, name, x, y),
            (Some(_), None) => out.push(format!("node {name} only in the first")),
            (None, Some(_)) => out.push(format!("node {name} only in the second")),
            (None, None) => {}
        }
    }
    out
}

fn diff_node(out: &mut Vec<String>, node: &str, a: &NodeState, b: &NodeState) {
    if a.hostname != b.hostname {
        out.push(format!("{node}: hostname {} vs {}", a.hostname, b.hostname));
    }
    diff_links(out, node, &a.links, &b.links);
    let addr = |x: &Address| format!("address {} dev {}", x.cidr, x.dev);
    only_in(
        out,
        node,
        &a.addresses.iter().map(addr).collect::<Vec<_>>(),
        &b.addresses.iter().map(addr).collect::<Vec<_>>(),
    );
    let route = |r: &Route| format!("route {}", r.describe());
    only_in(
        out,
        node,
        &a.routes.iter().map(route).collect::<Vec<_>>(),
        &b.routes.iter().map(route).collect::<Vec<_>>(),
    );
    let keys: BTreeSet<&String> = a.sysctls.keys().chain(b.sysctls.keys()).collect();
    let shown = |v: Option<&Option<String>>| match v {
        Some(Some(v)) => v.clone(),
        Some(None) => "(no such key)".into(),
        None => "(not read)".into(),
    };
    for key in keys {
        let (x, y) = (a.sysctls.get(key), b.sysctls.get(key));
        if x != y {
            out.push(format!("{node}: sysctl {key} {} vs {}", shown(x), shown(y)));
        }
    }
    for (file, x, y) in [("resolv.conf", &a.resolv_conf, &b.resolv_conf), ("hosts", &a.hosts, &b.hosts)] {
        if x != y {
            out.push(format!("{node}: {file} {} vs {}", file_text(x), file_text(y)));
        }
    }
    only_in(out, node, &a.qdiscs, &b.qdiscs);
    match (&a.firewall, &b.firewall) {
        (Some(x), Some(y)) => {
            for (tool, table, p, q) in [
                ("iptables", "filter", &x.filter, &y.filter),
                ("iptables", "nat", &x.nat, &y.nat),
                ("ip6tables", "filter", &x.filter6, &y.filter6),
                ("ip6tables", "nat", &x.nat6, &y.nat6),
            ] {
                let prefix = format!("{node}: {tool} -t {table}");
                only_in(out, &prefix, p, q);
                let (ps, qs): (BTreeSet<&String>, BTreeSet<&String>) = (p.iter().collect(), q.iter().collect());
                if p != q && ps == qs {
                    out.push(format!("{prefix}: the same rules in another order"));
                }
            }
            if x.bridge_table != y.bridge_table {
                out.push(format!(
                    "{node}: nft table bridge {BRIDGE_TABLE} {} vs {}",
                    file_text(&x.bridge_table),
                    file_text(&y.bridge_table)
                ));
            }
        }
        (None, None) => {}
        (x, _) => out.push(format!(
            "{node}: firewall {} vs {}",
            if x.is_some() { "read" } else { "not read (no nft)" },
            if x.is_some() { "not read (no nft)" } else { "read" }
        )),
    }
}

fn diff_links(out: &mut Vec<String>, node: &str, a: &[Link], b: &[Link]) {
    let by_name = |links: &[Link]| links.iter().map(|l| (l.name.clone(), l.clone())).collect::<BTreeMap<_, _>>();
    let (a, b) = (by_name(a), by_name(b));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    for name in names {
        let (x, y) = match (a.get(name), b.get(name)) {
            (Some(x), Some(y)) => (x, y),
            (Some(x), None) => {
                out.push(format!("{node}: link {name} ({}) only in the first", x.kind));
                continue;
            }
            (None, Some(y)) => {
                out.push(format!("{node}: link {name} ({}) only in the second", y.kind));
                continue;
            }
            (None, None) => continue,
        };
        let mut field = |what: &str, p: String, q: String| {
            if p != q {
                out.push(format!("{node}: link {name}: {what} {p} vs {q}"));
            }
        };
        field("kind", x.kind.clone(), y.kind.clone());
        let updown = |up: bool| if up { "up".to_string() } else { "down".to_string() };
        field("admin", updown(x.admin_up), updown(y.admin_up));
        field("state", x.oper.clone(), y.oper.clone());
        field("mtu", x.mtu.to_string(), y.mtu.to_string());
        field("master", opt(&x.master), opt(&y.master));
        field("peer", opt(&x.peer), opt(&y.peer));
    }
}

/// Lines for the items of `a` not in `b` and the reverse, in their order.
fn only_in(out: &mut Vec<String>, prefix: &str, a: &[String], b: &[String]) {
    let (sa, sb): (BTreeSet<&String>, BTreeSet<&String>) = (a.iter().collect(), b.iter().collect());
    out.extend(a.iter().filter(|x| !sb.contains(x)).map(|x| format!("{prefix}: {x} only in the first")));
    out.extend(b.iter().filter(|x| !sa.contains(x)).map(|x| format!("{prefix}: {x} only in the second")));
}

fn file_text(text: &Option<String>) -> String {
    match text {
        Some(t) => format!("{t:?}"),
        None => "(missing)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeState {
        NodeState {
            hostname: "lab".into(),
            links: vec![Link {
                name: "veth4".into(),
                kind: "veth".into(),
                admin_up: true,
                oper: "UP".into(),
                mtu: 1500,
                master: None,
                peer: Some("host/veth4h".into()),
            }],
            addresses: vec![Address { dev: "veth4".into(), cidr: "10.0.0.4/24".into() }],
            routes: vec![Route {
                dst: "10.0.0.0/24".into(),
                via: None,
                dev: Some("veth4".into()),
                scope: "link".into(),
                metric: None,
                kind: "unicast".into(),
                nexthops: Vec::new(),
            }],
            sysctls: BTreeMap::from([("net.ipv4.ip_forward".to_string(), Some("0".to_string()))]),
            resolv_conf: None,
            hosts: None,
            firewall: Some(Firewall {
                filter: vec!["-P INPUT ACCEPT".into()],
                nat: vec![],
                filter6: vec![],
                nat6: vec![],
                bridge_table: None,
            }),
            qdiscs: vec![],
        }
    }

    fn snapshot(node: NodeState) -> Snapshot {
        Snapshot { version: VERSION, nodes: BTreeMap::from([("container4".to_string(), node)]) }
    }

    #[test]
    fn equal_snapshots_have_no_differences_and_survive_json() {
        let a = snapshot(node());
        let text = a.to_json();
        assert!(text.contains("\"version\": 1"), "{text}");
        let b = Snapshot::from_json(&text).unwrap();
        assert_eq!(a, b);
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn differences_are_named() {
        let a = snapshot(node());
        let mut n = node();
        n.links[0].oper = "DOWN".into();
        n.addresses[0].cidr = "10.0.0.5/24".into();
        n.routes.clear();
        n.sysctls.insert("net.ipv4.ip_forward".into(), Some("1".into()));
        n.resolv_conf = Some("nameserver 192.0.2.1\n".into());
        n.firewall.as_mut().unwrap().nat.push("-A POSTROUTING -j MASQUERADE".into());
        n.firewall.as_mut().unwrap().filter6.push("-P FORWARD DROP".into());
        let d = diff(&a, &snapshot(n));
        assert_eq!(
            d,
            vec![
                "container4: link veth4: state UP vs DOWN",
                "container4: address 10.0.0.4/24 dev veth4 only in the first",
                "container4: address 10.0.0.5/24 dev veth4 only in the second",
                "container4: route 10.0.0.0/24 dev veth4 scope link only in the first",
                "container4: sysctl net.ipv4.ip_forward 0 vs 1",
                "container4: resolv.conf (missing) vs \"nameserver 192.0.2.1\\n\"",
                "container4: iptables -t nat: -A POSTROUTING -j MASQUERADE only in the second",
                "container4: ip6tables -t filter: -P FORWARD DROP only in the second",
            ]
        );
    }

    #[test]
    fn link_local_addresses_hide_the_mac() {
        let mac = "16:a0:3b:01:02:03";
        assert_eq!(cidr_text("fe80::14a0:3bff:fe01:203/64".parse().unwrap(), mac), "fe80::mac/64");
        assert_eq!(cidr_text("fd00::14a0:3bff:fe01:203/64".parse().unwrap(), mac), "fd00::mac/64");
        assert_eq!(cidr_text("fe80::1/64".parse().unwrap(), mac), "fe80::1/64");
        assert_eq!(cidr_text("10.0.0.1/24".parse().unwrap(), mac), "10.0.0.1/24");
    }
}
