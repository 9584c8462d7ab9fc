//! What the Backend queries answer, derived from the topology as the kernel
//! reports it: carrier and operstate from both ends of a veth and a bridge's
//! ports, link-local addresses once a link with IPv6 has carrier, and the order
//! of the kernel's dumps.

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{sysctl_path, Link, NodeState, Topology, HOST};
use crate::backend::kernel::sockets::Listening;
use crate::error::{Error, Result};
use crate::model::op::EtcFile;
use crate::model::state::{
    AddrFlags, AddrState, HopState, LinkKind, LinkState, OperState, PortState, RouteKind, RouteState, RuleState, Scope,
    MAIN_TABLE,
};

impl Topology {
    /// Whether the link has carrier: lo always; a veth when both ends are up; a
    /// bridge when up with a forwarding port; anything else when up.
    pub fn carrier(&self, node: &NodeState, link: &Link) -> bool {
        match link.kind {
            LinkKind::Loopback => true,
            LinkKind::Veth => link.admin_up && self.peer_of(link).is_some_and(|(_, p)| p.admin_up),
            // No program has the device open: no carrier (NO-CARRIER), as after `ip tuntap add`.
            LinkKind::Tun => false,
            // They follow the link they are made on (its carrier, through the stack).
            LinkKind::Vlan | LinkKind::Macvlan => {
                link.admin_up && self.parent_of(link).is_some_and(|p| self.carrier_anywhere(p))
            }
            LinkKind::Bridge => {
                link.admin_up && node.links.iter().any(|p| p.master == Some(link.index) && self.forwarding(node, p))
            }
            // A bond has carrier while one of its ports has.
            LinkKind::Bond => {
                link.admin_up && node.links.iter().any(|p| p.master == Some(link.index) && self.carrier(node, p))
            }
            _ => link.admin_up,
        }
    }

    /// A link's carrier, given only the link (its node looked up).
    fn carrier_anywhere(&self, link: &Link) -> bool {
        let node = self.nodes.values().find(|n| n.links.iter().any(|l| std::ptr::eq(l, link)));
        node.is_some_and(|n| self.carrier(n, link))
    }

    /// A bridge port forwards (no STP) when it and its bridge are up and it has carrier.
    fn forwarding(&self, node: &NodeState, port: &Link) -> bool {
        let bridge_up = port.master.and_then(|m| node.by_index(m)).is_some_and(|b| b.admin_up);
        bridge_up && port.kind != LinkKind::Bridge && self.carrier(node, port)
    }

    /// The link as `ip -d link show` reports it.
    pub fn link_state(&self, node: &NodeState, link: &Link) -> LinkState {
        let carrier = self.carrier(node, link);
        let oper = match (link.kind, link.admin_up, carrier) {
            (_, false, _) => OperState::Down,
            // Neither has a lower layer to report on.
            (LinkKind::Loopback | LinkKind::Wireguard, true, _) => OperState::Unknown,
            (_, true, true) => OperState::Up,
            // A veth's lower device is its peer (iflink differs from its own index);
            // a vlan's or macvlan's is its parent.
            (LinkKind::Veth | LinkKind::Vlan | LinkKind::Macvlan, true, false) => OperState::LowerLayerDown,
            (_, true, false) => OperState::Down,
        };
        let bridge_port = link.master.and_then(|m| node.by_index(m)).is_some_and(|m| m.kind == LinkKind::Bridge);
        let port_state =
            bridge_port.then(|| if self.forwarding(node, link) { PortState::Forwarding } else { PortState::Disabled });
        LinkState {
            index: link.index,
            name: link.name.to_string(),
            kind: link.kind,
            // A TUN device or a WireGuard link has no link-layer address at all.
            mac: if matches!(link.kind, LinkKind::Tun | LinkKind::Wireguard) && link.mac == [0; 6] {
                String::new()
            } else {
                crate::backend::kernel::link::format_mac(&link.mac)
            },
            admin_up: link.admin_up,
            oper,
            carrier,
            mtu: link.mtu,
            master: link.master,
            peer_index: self
                .peer_of(link)
                .map(|(_, p)| p.index)
                .or_else(|| matches!(link.kind, LinkKind::Vlan | LinkKind::Macvlan).then_some(link.parent.as_ref()?.1)),
            port_state,
            ipv6: link.ipv6,
            txqueuelen: link.txqueuelen,
            alias: link.alias.clone(),
            port_opts: bridge_port.then(|| link.port_opts.clone()),
            details: if link.kind == LinkKind::Bridge {
                Some(crate::model::LinkDetails::Bridge(link.extra.bridge))
            } else {
                link.spec.as_ref().and_then(|spec| match spec {
                    crate::model::LinkSpec::Vlan { id, .. } => Some(crate::model::LinkDetails::Vlan { id: *id }),
                    crate::model::LinkSpec::Macvlan { mode, .. } => {
                        Some(crate::model::LinkDetails::Macvlan { mode: *mode })
                    }
                    crate::model::LinkSpec::Vxlan(v) => Some(crate::model::LinkDetails::Vxlan {
                        vni: v.vni,
                        dstport: v.dstport,
                        remote: v.remote,
                        group: v.group,
                    }),
                    crate::model::LinkSpec::Tuntap { tap } => Some(crate::model::LinkDetails::Tun { tap: *tap }),
                    crate::model::LinkSpec::Bond(b) => Some(crate::model::LinkDetails::Bond {
                        mode: b.mode,
                        miimon: b.miimon,
                        active: link.extra.bond_active,
                    }),
                    crate::model::LinkSpec::Dummy | crate::model::LinkSpec::Wireguard => None,
                })
            },
        }
    }

    /// The link a vlan or macvlan is made on, wherever it is now.
    fn parent_of(&self, link: &Link) -> Option<&Link> {
        let (node, index) = link.parent.as_ref()?;
        self.nodes.get(node.as_str())?.by_index(*index)
    }

    pub fn links(&self, node: &str) -> Result<Vec<LinkState>> {
        let n = self.node(node)?;
        Ok(n.links.iter().map(|l| self.link_state(n, l)).collect())
    }

    /// The fe80::/64 address the kernel gives a link with IPv6 once it has carrier
    /// (EUI-64 from the MAC, addr_gen_mode 0).
    pub fn link_local(&self, node: &NodeState, link: &Link) -> Option<IpNet> {
        if !link.ipv6 || link.kind == LinkKind::Loopback || !self.carrier(node, link) {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..2].copy_from_slice(&[0xfe, 0x80]);
        bytes[8..].copy_from_slice(&eui64(&link.mac));
        IpNet::new(IpAddr::V6(Ipv6Addr::from(bytes)), 64).ok()
    }

    /// Every address, in the kernel's dump order: IPv4 of all links, then IPv6 (per
    /// link: global ones, those from router advertisements first, then link-local).
    pub fn addresses(&self, node: &str) -> Result<Vec<AddrState>> {
        let n = self.node(node)?;
        let mut all = Vec::new();
        for v6 in [false, true] {
            for l in &n.links {
                // The kernel lists a link's newest global address first.
                let slaac = if v6 { self.slaac(n, l).addresses } else { Vec::new() };
                for cidr in slaac.into_iter().rev() {
                    let failed = self.duplicate_on_segment(n, l, cidr);
                    let flags = AddrFlags { dynamic: true, dadfailed: failed, tentative: failed, ..Default::default() };
                    all.push(AddrState { link_index: l.index, cidr, broadcast: None, flags });
                }
                let own = l.addrs.iter().copied().filter(|a| a.addr().is_ipv6() == v6);
                for cidr in own {
                    // netlab adds IPv6 addresses without DAD; lo's ::1 is the kernel's.
                    let nodad = v6 && l.kind != LinkKind::Loopback;
                    let flags = AddrFlags { nodad, ..Default::default() };
                    all.push(AddrState { link_index: l.index, cidr, broadcast: broadcast(l, cidr), flags });
                }
                if let Some(cidr) = self.link_local(n, l).filter(|_| v6) {
                    let failed = self.duplicate_on_segment(n, l, cidr);
                    let flags = AddrFlags { dadfailed: failed, tentative: failed, ..Default::default() };
                    all.push(AddrState { link_index: l.index, cidr, broadcast: None, flags });
                }
            }
        }
        Ok(all)
    }

    /// Whether duplicate address detection of an address the kernel makes (link-local,
    /// SLAAC) fails: another link of its segment holds it, added by the lab (without
    /// DAD, so it answers at once). Two kernel-made duplicates race: the model does
    /// not guess the winner.
    fn duplicate_on_segment(&self, node: &NodeState, link: &Link, cidr: IpNet) -> bool {
        self.segment(node, link)
            .into_iter()
            .filter(|(_, l)| !std::ptr::eq(*l, link))
            .any(|(_, l)| l.ipv6 && l.addrs.iter().any(|a| a.addr() == cidr.addr()))
    }

    /// The links on the same Ethernet segment as `link` (itself included) that
    /// pass frames now: a veth's peer, a bridge and its forwarding ports.
    fn segment<'a>(&'a self, node: &'a NodeState, link: &'a Link) -> Vec<(&'a NodeState, &'a Link)> {
        let mut seen: Vec<(&NodeState, &Link)> = vec![(node, link)];
        let mut at = 0;
        while at < seen.len() {
            let (n, l) = seen[at];
            at += 1;
            let mut next: Vec<(&NodeState, &Link)> = Vec::new();
            if l.kind == LinkKind::Veth && self.carrier(n, l) {
                next.extend(self.peer_of(l).filter(|(pn, p)| self.carrier(pn, p)));
            }
            if let Some(bridge) = l.master.and_then(|m| n.by_index(m)).filter(|_| self.forwarding(n, l)) {
                next.push((n, bridge));
            }
            if l.kind == LinkKind::Bridge && l.admin_up {
                next.extend(
                    n.links.iter().filter(|p| p.master == Some(l.index) && self.forwarding(n, p)).map(|p| (n, p)),
                );
            }
            for (pn, p) in next {
                if !seen.iter().any(|(sn, sl)| sn.name == pn.name && sl.index == p.index) {
                    seen.push((pn, p));
                }
            }
        }
        seen
    }

    /// What router advertisements netlab sends on the link's segment give the link
    /// (SLAAC, RFC 4862): an address per prefix from the EUI-64 of its MAC
    /// (addr_gen_mode 0), the prefix's route and a default route via the router's
    /// link-local address, as the kernel does with `accept_ra` and `autoconf`.
    pub fn slaac(&self, node: &NodeState, link: &Link) -> Slaac {
        let mut out = Slaac::default();
        let (accept, autoconf) = node.takes_ra(&link.name);
        // A bridge port's frames go to its bridge: its own IPv6 never sees them.
        let port = link.master.is_some();
        if !link.ipv6 || !accept || port || link.kind == LinkKind::Loopback || !self.carrier(node, link) {
            return out;
        }
        for (rn, rl) in self.segment(node, link) {
            if std::ptr::eq(rl, link) {
                continue;
            }
            // An advertisement's source is the router's link-local address.
            let Some(router) = self.link_local(rn, rl) else { continue };
            for (_, ra) in rn.adverts.iter().filter(|(i, _)| *i == rl.index) {
                for prefix in &ra.prefixes {
                    if autoconf && prefix.prefix_len() == 64 {
                        let mut bytes = match prefix.addr() {
                            IpAddr::V6(a) => a.octets(),
                            IpAddr::V4(_) => continue,
                        };
                        bytes[8..].copy_from_slice(&eui64(&link.mac));
                        let cidr = IpNet::new(IpAddr::V6(Ipv6Addr::from(bytes)), 64).expect("a /64");
                        if !out.addresses.contains(&cidr) {
                            out.addresses.push(cidr);
                        }
                    }
                    if !out.prefixes.contains(&prefix.trunc()) {
                        out.prefixes.push(prefix.trunc());
                    }
                }
                if ra.default_route && out.default_via.is_none() {
                    out.default_via = Some(router.addr());
                }
            }
        }
        out
    }

    /// The main table as `ip route` and `ip -6 route` list it: IPv4 first, by
    /// destination, a longer prefix before a shorter one of the same address.
    pub fn routes(&self, node: &str) -> Result<Vec<RouteState>> {
        self.routes_in(node, MAIN_TABLE)
    }

    /// One table's routes, in the kernel's dump order.
    pub fn routes_in(&self, node: &str, table: u32) -> Result<Vec<RouteState>> {
        let n = self.node(node)?;
        let linkdown = |dev: u32| n.by_index(dev).is_some_and(|l| !self.carrier(n, l));
        let mut all: Vec<(bool, u32, RouteState)> = n
            .routes
            .iter()
            .filter(|r| r.table == table)
            .map(|r| {
                let state = RouteState {
                    destination: r.dest,
                    gateway: r.gateway,
                    device_index: (r.dev != 0).then_some(r.dev),
                    scope: r.scope,
                    table: r.table,
                    kind: r.kind,
                    // The kernel reports IPv4's metric only when it is not 0.
                    metric: (r.v6 || r.metric != 0).then_some(r.metric),
                    proto: if r.connected { "kernel" } else { "boot" }.to_string(),
                    src: r.src.or_else(|| {
                        // A connected IPv4 route's preferred source is its address.
                        let l = n.by_index(r.dev)?;
                        let own = l.addrs.iter().find(|a| r.connected && !r.v6 && Some(a.trunc()) == r.dest)?;
                        Some(own.addr())
                    }),
                    linkdown: r.dev != 0 && linkdown(r.dev),
                    onlink: r.onlink,
                    nexthops: r
                        .hops
                        .iter()
                        .map(|h| HopState {
                            gateway: h.gateway,
                            device_index: Some(h.dev),
                            weight: h.weight,
                            dead: h.dead,
                            // A dead path's link is down: it has no carrier either.
                            linkdown: h.dead || linkdown(h.dev),
                        })
                        .collect(),
                };
                (r.v6, r.metric, state)
            })
            .collect();
        if table == MAIN_TABLE {
            for l in &n.links {
                let slaac = self.slaac(n, l);
                let ra_route = |destination: Option<IpNet>, gateway: Option<IpAddr>, metric: u32| RouteState {
                    destination,
                    gateway,
                    device_index: Some(l.index),
                    scope: Scope::Universe,
                    table: MAIN_TABLE,
                    kind: RouteKind::Unicast,
                    metric: Some(metric),
                    proto: "ra".to_string(),
                    src: None,
                    linkdown: false,
                    onlink: false,
                    nexthops: Vec::new(),
                };
                // The kernel marks an advertised prefix's route proto kernel (with an
                // expiry); only the default router's is proto ra.
                for prefix in &slaac.prefixes {
                    let route = RouteState { proto: "kernel".to_string(), ..ra_route(Some(*prefix), None, 256) };
                    all.push((true, 256, route));
                }
                if let Some(router) = slaac.default_via {
                    all.push((true, 1024, ra_route(None, Some(router), 1024)));
                }
                if let Some(local) = self.link_local(n, l) {
                    let state = RouteState {
                        destination: Some(local.trunc()),
                        gateway: None,
                        device_index: Some(l.index),
                        scope: Scope::Universe,
                        table: MAIN_TABLE,
                        kind: RouteKind::Unicast,
                        metric: Some(256),
                        proto: "kernel".to_string(),
                        src: None,
                        linkdown: false,
                        onlink: false,
                        nexthops: Vec::new(),
                    };
                    all.push((true, 256, state));
                }
            }
        }
        // IPv4's default route comes first, IPv6's last (the kernel walks its fib6 tree).
        all.sort_by_key(|(v6, metric, r)| {
            let unspecified = if *v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
            let dest = r.destination.map_or(unspecified, |d| d.addr());
            let v6_default = *v6 && r.destination.is_none();
            (*v6, v6_default, dest, Reverse(r.destination.map_or(0, |d| d.prefix_len())), *metric)
        });
        Ok(all.into_iter().map(|(_, _, r)| r).collect())
    }

    /// `tc qdisc show`: the qdiscs impair() put on the node's links.
    pub fn qdiscs(&self, node: &str) -> Result<Vec<crate::model::QdiscState>> {
        let n = self.node(node)?;
        Ok(n.links.iter().filter_map(|l| l.qdisc.as_ref().map(|q| q.state(l.name.as_str()))).collect())
    }

    /// `ip rule` and `ip -6 rule`.
    pub fn rules(&self, node: &str) -> Result<Vec<RuleState>> {
        Ok(self.node(node)?.rule_list())
    }

    /// The value the lab set, else the one netlab or the kernel starts a node with;
    /// anything else depends on the machine.
    pub fn sysctl(&self, node: &str, key: &str) -> Result<String> {
        crate::backend::kernel::sysctl::path_for(key)?;
        let n = self.node(node)?;
        let path = sysctl_path(key);
        let parts: Vec<&str> = path.split('/').collect();
        if let ["net", "ipv4" | "ipv6", "conf" | "neigh", dev, ..] = parts.as_slice() {
            if !matches!(*dev, "all" | "default") && !n.links.iter().any(|l| l.name.as_str() == *dev) {
                return Err(Error::BadSysctl { key: key.to_string(), reason: format!("no such sysctl (in {node})") });
            }
        }
        if let ["net", "ipv6", "conf", dev, "disable_ipv6"] = parts.as_slice() {
            if let Some(l) = n.links.iter().find(|l| l.name.as_str() == *dev) {
                return Ok(if l.ipv6 { "0" } else { "1" }.to_string());
            }
        }
        if let Some(value) = n.sysctl_set(key) {
            return Ok(value.trim().to_string());
        }
        let ip_forward = || n.sysctl_set("net.ipv4.ip_forward").unwrap_or("0").trim().to_string();
        let known = match parts.as_slice() {
            ["net", "ipv4", "ip_forward"] | ["net", "ipv4", "conf", _, "forwarding"] => Some(ip_forward()),
            ["net", "ipv6", "conf", "default", "disable_ipv6"] => {
                Some(n.latest_sysctl(&["net.ipv6.conf.all.disable_ipv6"]).unwrap_or("1").trim().to_string())
            }
            ["net", "ipv6", "conf", "all", "disable_ipv6"] => Some("0".to_string()),
            // A new namespace's own default: netlab pings over raw sockets (ping.rs).
            ["net", "ipv4", "ping_group_range"] => Some("1\t0".to_string()),
            _ => None,
        };
        known.ok_or_else(|| Error::NotInPlan { what: format!("{key}'s value in {node}") })
    }

    /// The node's /etc/FILE as its programs see it: its own, else the host's (the
    /// sandbox's /etc), else netlab's resolv.conf without a nameserver. The
    /// machine's /etc/hosts the model cannot know.
    pub fn file(&self, node: &str, file: EtcFile) -> Result<Option<String>> {
        let n = self.node(node)?;
        let host = self.node(HOST)?;
        if let Some(text) = n.files.get(&file).or_else(|| host.files.get(&file)) {
            return Ok(Some(text.clone()));
        }
        match file {
            EtcFile::ResolvConf => Ok(Some(crate::backend::kernel::sandbox::NO_NAMESERVER.to_string())),
            EtcFile::Hosts => Err(Error::NotInPlan { what: format!("/etc/hosts of {node} (the machine's)") }),
        }
    }

    /// The hostname the lab set; else "netlab" stands for the machine's.
    pub fn hostname(&self, node: &str) -> Result<String> {
        Ok(self.node(node)?.hostname.clone().unwrap_or_else(|| "netlab".to_string()))
    }

    /// The built-in servers' sockets, sorted like sockets.rs sorts the kernel's.
    pub fn listening(&self, node: &str) -> Result<Vec<Listening>> {
        let mut all: Vec<Listening> =
            self.node(node)?.servers.iter().map(|s| Listening { proto: s.proto(), local: s.addr() }).collect();
        all.sort_by_key(|l| (l.proto, l.local.port(), l.local.ip()));
        Ok(all)
    }
}

/// What router advertisements give a link (see Topology::slaac).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slaac {
    pub addresses: Vec<IpNet>,
    /// On-link prefixes: a route each (`proto ra`).
    pub prefixes: Vec<IpNet>,
    /// The advertising router's link-local address, for the default route.
    pub default_via: Option<IpAddr>,
}

/// The modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A).
pub fn eui64(m: &[u8; 6]) -> [u8; 8] {
    [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
}

/// What the kernel backend's `ip addr add` sets: a broadcast for IPv4 prefixes
/// shorter than /31 (rtnetlink's builder does), none for lo's own 127.0.0.1/8.
fn broadcast(link: &Link, cidr: IpNet) -> Option<IpAddr> {
    let IpNet::V4(net) = cidr else { return None };
    let lo_own = link.kind == LinkKind::Loopback && cidr == IpNet::new(Ipv4Addr::LOCALHOST.into(), 8).ok()?;
    (net.prefix_len() < 31 && !lo_own).then(|| IpAddr::V4(net.broadcast()))
}
