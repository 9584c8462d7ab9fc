//! Applying one op: the kernel's checks, with the errors the kernel backend gives
//! for them (same variants, same op words, same errno).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{sysctl_path, Hop, Link, NodeState, Route, Topology, HOST};
use crate::backend::kernel::link::stable_mac;
use crate::error::{Error, Result};
use crate::model::op::{Op, ServerSpec};
use crate::model::programs::{self, Conn, Extra, Item, Step};
use crate::model::state::{LinkKind, NeighState, NextHop, Scope};
use crate::model::{LinkAttrs, LinkSpec, RouteKind, RouteOpts, RuleSpec, RuleState, MAIN_TABLE};
use crate::names::{LinkName, NodeName};

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Error::kernel with its help line replaced.
fn kernel_with_help(op: &'static str, node: &str, object: String, code: i32, help: String) -> Error {
    let mut err = Error::kernel(op, node, object, errno(code));
    if let Error::Kernel { help: h, .. } = &mut err {
        *h = Some(help);
    }
    err
}

impl Topology {
    /// Applies one op, or fails as the kernel would, leaving the topology as the
    /// kernel would leave it (unchanged, except where the kernel backend's own two
    /// steps fail at the second: a move whose rename clashes).
    pub fn apply(&mut self, op: &Op) -> Result<()> {
        let applied = self.apply_op(op);
        self.reselect_bonds();
        applied
    }

    fn apply_op(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::AddNode { node } => self.add_node(node),
            Op::DelNode { node } => self.del_node(node),
            Op::AddVeth { node, name, peer_node, peer } => self.add_veth(node, name, peer_node, peer),
            Op::AddBridge { node, name } => self.add_bridge(node, name),
            Op::AddLink { node, name, spec, attrs } => self.add_link(node, name, spec, attrs),
            Op::SetLink { node, link, attrs } => self.set_link(node, link, attrs),
            Op::SetUp { node, link, up } => {
                let n = self.node_mut(node.as_str())?;
                let index = n.link(link)?.index;
                n.set_up(index, *up);
                Ok(())
            }
            Op::SetMaster { node, link, master } => self.node_mut(node.as_str())?.set_master(link, master.as_ref()),
            Op::MoveLink { node, link, to, new_name } => self.move_link(node, link, to, new_name),
            Op::DelLink { node, link } => self.del_link(node, link),
            Op::AddAddr { node, link, cidr } => self.node_mut(node.as_str())?.add_addr(link, *cidr),
            Op::DelAddr { node, link, cidr } => self.node_mut(node.as_str())?.del_addr(link, *cidr),
            Op::AddRoute { node, dest, hop, opts } => self.node_mut(node.as_str())?.add_route(*dest, hop, opts),
            Op::AddRule { node, rule } => self.node_mut(node.as_str())?.add_rule(rule),
            Op::AddNeigh { node, dev, ip, mac, state } => {
                self.node_mut(node.as_str())?.add_neigh(dev, *ip, mac, *state)
            }
            Op::DelNeigh { node, dev, ip } => self.node_mut(node.as_str())?.del_neigh(dev, *ip),
            Op::FlushNeigh { node, dev } => {
                let n = self.node_mut(node.as_str())?;
                let index = dev.as_ref().map(|d| n.link(d).map(|l| l.index)).transpose()?;
                n.neighbours.retain(|e| {
                    matches!(e.state, NeighState::Permanent | NeighState::Noarp)
                        || index.is_some_and(|i| e.link_index != i)
                });
                Ok(())
            }
            Op::SetBridgePort { node, port, opts } => self.node_mut(node.as_str())?.set_bridge_port(port, opts),
            Op::SetBridge { node, bridge, opts } => self.set_bridge(node, bridge, opts),
            Op::AddBridgeVlan { node, dev, vid, pvid, untagged, .. } => {
                self.bridge_vlan(node, dev, *vid, Some((*pvid, *untagged)))
            }
            Op::DelBridgeVlan { node, dev, vid, .. } => self.bridge_vlan(node, dev, *vid, None),
            Op::SetWireguard { node, link, config } => self.set_wireguard(node, link, config),
            Op::DelRoute { node, dest, table } => {
                self.node_mut(node.as_str())?.del_route(*dest, table.unwrap_or(MAIN_TABLE))
            }
            Op::DelRule { node, rule } => self.node_mut(node.as_str())?.del_rule(rule),
            Op::SetSysctl { node, key, value } => self.node_mut(node.as_str())?.set_sysctl(key, value),
            Op::Firewall { node, change } => {
                self.node_mut(node.as_str())?.firewall.push(change.clone());
                Ok(())
            }
            Op::WriteFile { node, file, text } => {
                // As the kernel backend writes it (and so reads it back).
                let mut text = text.clone();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                self.node_mut(node.as_str())?.files.insert(*file, text);
                Ok(())
            }
            Op::SetHostname { node, name } => {
                let n = self.node_mut(node.as_str())?;
                if name.is_empty()
                    || name.len() > 64
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                {
                    return Err(Error::BadNodeName { name: name.clone(), reason: "not a valid hostname".into() });
                }
                n.hostname = Some(name.clone());
                Ok(())
            }
            Op::StartServer { node, server } => self.node_mut(node.as_str())?.start_server(server),
            Op::Impair { node, link, impairment } => {
                let n = self.node_mut(node.as_str())?;
                let index = n.link(link)?.index;
                n.by_index_mut(index).expect("link exists").qdisc = Some(impairment.clone());
                Ok(())
            }
            Op::ClearImpair { node, link } => {
                let n = self.node_mut(node.as_str())?;
                let index = n.link(link)?.index;
                let l = n.by_index_mut(index).expect("link exists");
                if l.qdisc.take().is_none() {
                    return Err(crate::model::impair::nothing_to_clear(node.as_str(), link.as_str()));
                }
                Ok(())
            }
            Op::Advertise { node, link, ra } => self.node_mut(node.as_str())?.advertise(link, ra),
            Op::Exec { node, command } => {
                self.node_mut(node.as_str())?.execs.push(command.clone());
                self.run_leniently(&programs::parse(node, command));
                Ok(())
            }
        }
    }

    /// What a program run in a node changed (its `ip`, `brctl`, `sysctl -w`), as the
    /// shell runs its list: `&&` and `||` go by the previous command's success, and
    /// an op the kernel would refuse is skipped (the real program fails, which does
    /// not fail exec_in). Returns whether the list succeeded.
    fn run_leniently(&mut self, item: &Item) -> bool {
        match item {
            Item::Step(step) => self.apply_step(step).is_ok(),
            Item::List(items) => {
                let mut ok = true;
                for (conn, item) in items {
                    let runs = match conn {
                        Conn::Seq => true,
                        Conn::And => ok,
                        Conn::Or => !ok,
                    };
                    if runs {
                        ok = self.run_leniently(item);
                    }
                }
                ok
            }
        }
    }

    fn apply_step(&mut self, step: &Step) -> Result<()> {
        match (&step.op, &step.extra) {
            (Op::AddRoute { node, dest, hop: NextHop::Gateway(gw), opts }, Extra::Dev { dev, onlink }) => {
                let opts = RouteOpts { dev: Some(dev.clone()), onlink: *onlink, ..opts.clone() };
                self.node_mut(node.as_str())?.add_route(*dest, &NextHop::Gateway(*gw), &opts)
            }
            (Op::MoveLink { node, link, new_name, .. }, Extra::Rename) => {
                // The kernel renames only a link that is down (EBUSY).
                let n = self.node(node.as_str())?;
                if n.link(link)?.admin_up {
                    let what = format!("{link} to {new_name}");
                    return Err(Error::kernel("renaming", node.as_str(), what, errno(libc::EBUSY)));
                }
                self.rename(node, link, new_name)
            }
            (op, _) => self.apply(op),
        }
    }

    fn add_node(&mut self, node: &NodeName) -> Result<()> {
        if self.nodes.contains_key(node.as_str()) {
            return Err(Error::NodeExists { name: node.to_string() });
        }
        self.nodes.insert(node.to_string(), NodeState::new(node.clone()));
        Ok(())
    }

    /// Its veths go first, taking their peers in other nodes with them.
    fn del_node(&mut self, node: &NodeName) -> Result<()> {
        if node.as_str() == HOST {
            return Err(Error::BadNodeName {
                name: node.to_string(),
                reason: "the host is the sandbox's own namespace; it cannot be deleted".into(),
            });
        }
        let veths: Vec<LinkName> = self
            .node(node.as_str())?
            .links
            .iter()
            .filter(|l| l.kind == LinkKind::Veth)
            .map(|l| l.name.clone())
            .collect();
        for veth in &veths {
            self.del_link(node, veth)?;
        }
        self.nodes.remove(node.as_str());
        Ok(())
    }

    fn add_veth(&mut self, node: &NodeName, name: &LinkName, peer_node: &NodeName, peer: &LinkName) -> Result<()> {
        let exists = || errno(libc::EEXIST);
        if self.node(node.as_str())?.link_named(name).is_some() {
            return Err(Error::kernel("creating veth", node.as_str(), name.as_str(), exists()));
        }
        // Both ends with one name in one node clash at the second end registered.
        if self.node(peer_node.as_str())?.link_named(peer).is_some() || (node == peer_node && name == peer) {
            return Err(Error::kernel("creating veth peer", peer_node.as_str(), peer.as_str(), exists()));
        }
        // The peer gets the lower index, as the kernel registers it first (link.rs).
        let index = self.take_index(2);
        let (here, there) = (self.node(node.as_str())?, self.node(peer_node.as_str())?);
        let far = there.new_link(index, peer, LinkKind::Veth, Some((node.clone(), name.clone())));
        let near = here.new_link(index + 1, name, LinkKind::Veth, Some((peer_node.clone(), peer.clone())));
        self.node_mut(peer_node.as_str())?.insert_link(far);
        self.node_mut(node.as_str())?.insert_link(near);
        Ok(())
    }

    fn add_bridge(&mut self, node: &NodeName, name: &LinkName) -> Result<()> {
        if self.node(node.as_str())?.link_named(name).is_some() {
            return Err(Error::kernel("creating bridge", node.as_str(), name.as_str(), errno(libc::EEXIST)));
        }
        let index = self.take_index(1);
        let n = self.node_mut(node.as_str())?;
        let mut bridge = n.new_link(index, name, LinkKind::Bridge, None);
        // The bridge's own port joins its default VLAN as it registers.
        bridge.extra.vlans = vec![(bridge.extra.bridge.default_pvid, true, true)];
        n.insert_link(bridge);
        Ok(())
    }

    /// `ip link set LINK netns TO`, then the rename as a second step, as the kernel
    /// backend does. The link arrives down, without addresses or master, with the
    /// target's IPv6 default (the kernel unregisters it from the old namespace).
    fn move_link(&mut self, node: &NodeName, link: &LinkName, to: &NodeName, new_name: &LinkName) -> Result<()> {
        let from = self.node(node.as_str())?;
        let target = self.node(to.as_str())?;
        let l = from.link(link)?.clone();
        if matches!(l.kind, LinkKind::Loopback | LinkKind::Bridge) {
            // NETIF_F_NETNS_LOCAL: these stay in the namespace they were made in.
            let help = format!("a {} link cannot leave its node; make a new one in {to}", l.kind);
            return Err(kernel_with_help("moving", node.as_str(), link.to_string(), libc::EINVAL, help));
        }
        if node == to {
            // The kernel accepts a move into the namespace the link is in, and does nothing.
            return if new_name == link { Ok(()) } else { self.rename(to, link, new_name) };
        }
        if target.link_named(link).is_some() {
            return Err(Error::kernel("moving", node.as_str(), link.as_str(), errno(libc::EEXIST)));
        }
        let ipv6 = target.new_links_ipv6();
        let from = self.node_mut(node.as_str())?;
        from.remove_link(l.index);
        // Leaving its namespace, a link loses its qdiscs (dev_shutdown), as it comes down.
        let moved = Link { admin_up: false, master: None, addrs: Vec::new(), ipv6, qdisc: None, ..l };
        self.node_mut(to.as_str())?.insert_link(moved.clone());
        self.repoint_peer(&moved, to);
        if new_name != link {
            self.rename(to, link, new_name)?;
        }
        Ok(())
    }

    fn rename(&mut self, node: &NodeName, old: &LinkName, new: &LinkName) -> Result<()> {
        let n = self.node_mut(node.as_str())?;
        if n.link_named(new).is_some() {
            let what = format!("{old} to {new}");
            return Err(Error::kernel("renaming", node.as_str(), what, errno(libc::EEXIST)));
        }
        let index = n.link(old)?.index;
        let l = n.by_index_mut(index).expect("link exists");
        l.name = new.clone();
        let renamed = l.clone();
        self.repoint_peer(&renamed, node);
        Ok(())
    }

    /// Tells a veth's peer where its other end now is.
    fn repoint_peer(&mut self, link: &Link, node: &NodeName) {
        let Some((peer_node, peer_name)) = &link.peer else { return };
        let Some(n) = self.nodes.get_mut(peer_node.as_str()) else { return };
        if let Some(p) = n.links.iter_mut().find(|p| p.name == *peer_name) {
            p.peer = Some((node.clone(), link.name.clone()));
        }
    }

    /// `ip link del`: a veth takes its peer with it, a bridge releases its ports.
    fn del_link(&mut self, node: &NodeName, link: &LinkName) -> Result<()> {
        let l = self.node(node.as_str())?.link(link)?.clone();
        if l.kind == LinkKind::Loopback {
            return Err(Error::kernel("deleting", node.as_str(), link.as_str(), errno(libc::EOPNOTSUPP)));
        }
        self.node_mut(node.as_str())?.remove_link(l.index);
        self.remove_children(node, l.index);
        if let Some((peer_node, peer_name)) = &l.peer {
            if let Some(n) = self.nodes.get_mut(peer_node.as_str()) {
                if let Some(index) = n.link_named(peer_name).map(|p| p.index) {
                    n.remove_link(index);
                    self.remove_children(&peer_node.clone(), index);
                }
            }
        }
        Ok(())
    }

    /// The kernel deletes the vlan and macvlan links made on a link that goes (a
    /// vxlan only loses its dev), wherever they are now.
    fn remove_children(&mut self, node: &NodeName, index: u32) {
        let parent = Some((node.clone(), index));
        let mut gone = Vec::new();
        for (name, n) in self.nodes.iter_mut() {
            for l in n.links.iter_mut().filter(|l| l.parent == parent) {
                if l.kind == LinkKind::Vxlan {
                    l.parent = None;
                } else {
                    gone.push((name.clone(), l.index));
                }
            }
        }
        for (name, index) in gone {
            if let Some(n) = self.nodes.get_mut(&name) {
                n.remove_link(index);
            }
            if let Ok(node) = NodeName::new(&name) {
                self.remove_children(&node, index);
            }
        }
    }

    /// `ip link add NAME [link PARENT] type KIND ...`, failing as the kernel would.
    fn add_link(&mut self, node: &NodeName, name: &LinkName, spec: &LinkSpec, attrs: &LinkAttrs) -> Result<()> {
        let n = self.node(node.as_str())?;
        let op = match spec.kind() {
            LinkKind::Vlan => "creating VLAN link",
            LinkKind::Macvlan => "creating macvlan link",
            LinkKind::Vxlan => "creating VXLAN link",
            LinkKind::Bond => "creating bond",
            LinkKind::Wireguard => "creating WireGuard link",
            _ => "creating dummy link",
        };
        if n.link_named(name).is_some() {
            return Err(Error::kernel(op, node.as_str(), name.as_str(), errno(libc::EEXIST)));
        }
        let parent = match spec.parent() {
            Some(p) => Some(n.link(p)?.clone()),
            None => None,
        };
        let invalid = |help: String| Err(kernel_with_help(op, node.as_str(), name.to_string(), libc::EINVAL, help));
        match spec {
            LinkSpec::Vlan { id, .. } => {
                let parent = parent.as_ref().expect("a vlan has a parent");
                let index = parent.index;
                let twin = n.links.iter().find(|l| {
                    l.parent == Some((node.clone(), index))
                        && matches!(l.spec, Some(LinkSpec::Vlan { id: other, .. }) if other == *id)
                });
                if let Some(twin) = twin {
                    let help = format!("{} is VLAN {id} on {} already", twin.name, parent.name);
                    return Err(kernel_with_help(op, node.as_str(), name.to_string(), libc::EEXIST, help));
                }
                if attrs.mtu.is_some_and(|m| m > parent.mtu) {
                    return invalid(format!("a VLAN link's MTU is at most its parent's ({})", parent.mtu));
                }
            }
            LinkSpec::Macvlan { .. } => {
                let parent = parent.as_ref().expect("a macvlan has a parent");
                if matches!(parent.kind, LinkKind::Loopback | LinkKind::Macvlan) {
                    return invalid(format!("a macvlan cannot be made on {} ({})", parent.name, parent.kind));
                }
                if attrs.mtu.is_some_and(|m| m > parent.mtu) {
                    return invalid(format!("a macvlan's MTU is at most its parent's ({})", parent.mtu));
                }
            }
            LinkSpec::Vxlan(v) => {
                if v.group.is_some() && v.dev.is_none() {
                    return invalid("a multicast group needs the link to send on: dev".into());
                }
                let twin = n
                    .links
                    .iter()
                    .find(|l| matches!(&l.spec, Some(LinkSpec::Vxlan(o)) if o.vni == v.vni && o.dstport == v.dstport));
                if let Some(twin) = twin {
                    let help = format!("{} has VNI {} on port {} already", twin.name, v.vni, v.dstport);
                    return Err(kernel_with_help(op, node.as_str(), name.to_string(), libc::EEXIST, help));
                }
            }
            LinkSpec::Dummy | LinkSpec::Tuntap { .. } | LinkSpec::Bond(_) | LinkSpec::Wireguard => {}
        }
        let mtu = match (spec, &parent) {
            (LinkSpec::Vxlan(v), Some(dev)) => {
                let v6 = v.remote.or(v.group).or(v.local).is_some_and(|a| a.is_ipv6());
                dev.mtu.saturating_sub(if v6 { 70 } else { 50 })
            }
            (LinkSpec::Vxlan(_), None) | (LinkSpec::Dummy, _) => 1500,
            // Room for WireGuard's 80 bytes over IPv6 on a 1500-byte path.
            (LinkSpec::Wireguard, _) => 1420,
            (_, Some(p)) => p.mtu,
            (_, None) => 1500,
        };
        let index = self.take_index(1);
        let n = self.node_mut(node.as_str())?;
        let mut link = n.new_link(index, name, spec.kind(), None);
        link.spec = Some(spec.clone());
        if matches!(spec, LinkSpec::Vlan { .. }) {
            link.mac = parent.as_ref().map(|p| p.mac).unwrap_or(link.mac);
        }
        if matches!(spec, LinkSpec::Wireguard) {
            // IP only: no MAC address, no queue.
            link.mac = [0; 6];
            link.txqueuelen = 1000;
        }
        if matches!(spec, LinkSpec::Tuntap { tap: false }) {
            // A TUN device carries IP, not Ethernet: no MAC address, a queue of 500.
            link.mac = [0; 6];
            link.txqueuelen = 500;
        }
        link.parent = parent.map(|p| (node.clone(), p.index));
        link.mtu = mtu;
        link.apply_attrs(attrs);
        n.insert_link(link);
        Ok(())
    }

    /// `ip link set LINK mtu ... address ... txqueuelen ... alias ...`.
    fn set_link(&mut self, node: &NodeName, link: &LinkName, attrs: &LinkAttrs) -> Result<()> {
        let l = self.node(node.as_str())?.link(link)?.clone();
        if let Some(mtu) = attrs.mtu {
            // A vlan or macvlan carries at most its parent's MTU; a vxlan its dev's
            // minus the encapsulation (50 bytes over IPv4, 70 over IPv6).
            let overhead = match &l.spec {
                Some(LinkSpec::Vxlan(v)) if v.remote.or(v.group).or(v.local).is_some_and(|a| a.is_ipv6()) => 70,
                Some(LinkSpec::Vxlan(_)) => 50,
                _ => 0,
            };
            let parent_mtu = l
                .parent
                .as_ref()
                .and_then(|(pn, pi)| self.nodes.get(pn.as_str())?.by_index(*pi))
                .map(|p| p.mtu.saturating_sub(overhead));
            let capped = matches!(l.kind, LinkKind::Vlan | LinkKind::Macvlan | LinkKind::Vxlan)
                && parent_mtu.is_some_and(|p| mtu > p);
            if capped || mtu < 68 && l.kind != LinkKind::Loopback {
                let help = match parent_mtu {
                    Some(p) if capped => {
                        format!("{link}'s MTU is at most {p} here (its parent's, less any encapsulation)")
                    }
                    _ => "an IPv4 link's MTU is at least 68".to_string(),
                };
                return Err(kernel_with_help("changing", node.as_str(), link.to_string(), libc::EINVAL, help));
            }
        }
        let n = self.node_mut(node.as_str())?;
        let index = l.index;
        n.by_index_mut(index).expect("link exists").apply_attrs(attrs);
        Ok(())
    }
}

impl Link {
    fn apply_attrs(&mut self, attrs: &LinkAttrs) {
        if let Some(mtu) = attrs.mtu {
            self.mtu = mtu;
        }
        if let Some(mac) = attrs.mac {
            self.mac = mac;
        }
        if let Some(q) = attrs.txqueuelen {
            self.txqueuelen = q;
        }
        if let Some(alias) = &attrs.alias {
            self.alias = Some(alias.clone()).filter(|a| !a.is_empty());
        }
    }
}

impl NodeState {
    fn new_link(&self, index: u32, name: &LinkName, kind: LinkKind, peer: Option<(NodeName, LinkName)>) -> Link {
        Link {
            spec: None,
            parent: None,
            txqueuelen: 1000,
            alias: None,
            port_opts: Default::default(),
            extra: Default::default(),
            qdisc: None,
            index,
            name: name.clone(),
            kind,
            mac: stable_mac(self.name.as_str(), name.as_str()),
            admin_up: false,
            mtu: 1500,
            master: None,
            peer,
            addrs: Vec::new(),
            ipv6: self.new_links_ipv6(),
        }
    }

    /// netlab's router advertisements on a link (one sender per link), which turns
    /// IPv6 on for it first (see ModelBackend::apply).
    fn advertise(&mut self, link: &LinkName, ra: &crate::model::RouterAdvert) -> Result<()> {
        let index = self.link(link)?.index;
        if self.adverts.iter().any(|(i, _)| *i == index) {
            let help =
                format!("{} already advertises on {link}; one advertise() per link, with every prefix", self.name);
            return Err(kernel_with_help("advertising on", self.name.as_str(), link.to_string(), libc::EEXIST, help));
        }
        self.adverts.push((index, ra.clone()));
        Ok(())
    }

    /// The link leaves the node: its routes go, its ports are released.
    fn remove_link(&mut self, index: u32) {
        self.adverts.retain(|(i, _)| *i != index);
        self.routes.retain(|r| r.dev != index);
        // A link that goes takes an IPv4 multipath route with it; IPv6 keeps the
        // other paths (one left is an ordinary route again).
        self.routes.retain(|r| r.v6 || !r.uses(index));
        for r in self.routes.iter_mut().filter(|r| r.uses(index)) {
            r.hops.retain(|h| h.dev != index);
            if let [only] = r.hops.as_slice() {
                (r.gateway, r.dev) = (only.gateway, only.dev);
                r.hops.clear();
            }
        }
        self.neighbours.retain(|e| e.link_index != index);
        let ports: Vec<u32> = self.links.iter().filter(|p| p.master == Some(index)).map(|p| p.index).collect();
        for port in ports {
            // Released as by `ip link set PORT nomaster` (a bridge's VLANs, a bond's
            // address and open state go).
            self.joined(port, Some(index), None);
        }
        self.links.retain(|l| l.index != index);
        for port in self.links.iter_mut().filter(|p| p.master == Some(index)) {
            port.master = None;
        }
    }

    /// `ip link set up|down`. Up: lo gets its loopback addresses, and every address
    /// its connected route. Down: every route through the link goes, and so do its
    /// IPv6 addresses (keep_addr_on_down is 0).
    pub(super) fn set_up(&mut self, index: u32, up: bool) {
        let Some(l) = self.by_index_mut(index) else { return };
        if l.admin_up == up {
            return;
        }
        l.admin_up = up;
        if up {
            if l.kind == LinkKind::Loopback {
                let mut own = vec![IpNet::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8).expect("valid prefix")];
                if l.ipv6 {
                    own.push(IpNet::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).expect("valid prefix"));
                }
                for a in own {
                    if !l.addrs.contains(&a) {
                        l.addrs.push(a);
                    }
                }
            }
            for a in l.addrs.clone() {
                self.add_connected(index, a);
            }
            for h in self.routes.iter_mut().flat_map(|r| r.hops.iter_mut()).filter(|h| h.dev == index) {
                h.dead = false;
            }
        } else {
            l.addrs.retain(|a| a.addr().is_ipv4());
            self.routes.retain(|r| r.dev != index);
            self.kill_paths(index, |_| true);
            // The kernel forgets every neighbour entry of a link taken down, permanent too.
            self.neighbours.retain(|e| e.link_index != index);
        }
    }

    /// The route the kernel adds for an address on an up link (none for a host
    /// prefix, none on lo: those live in the local table).
    fn add_connected(&mut self, index: u32, cidr: IpNet) {
        let Some(l) = self.by_index(index) else { return };
        if !l.admin_up || l.kind == LinkKind::Loopback || cidr.prefix_len() == cidr.max_prefix_len() {
            return;
        }
        let dest = Some(cidr.trunc());
        if self.routes.iter().any(|r| r.connected && r.dev == index && r.dest == dest) {
            return; // a secondary address of the same subnet
        }
        let v6 = cidr.addr().is_ipv6();
        let scope = if v6 { Scope::Universe } else { Scope::Link };
        self.routes.push(Route::connected(dest, v6, index, scope));
    }

    fn set_master(&mut self, link: &LinkName, master: Option<&LinkName>) -> Result<()> {
        let node = self.name.to_string();
        // As the kernel backend: the bridge is looked up first.
        let bridge = match master {
            Some(name) => {
                let b = self.link(name)?;
                if !matches!(b.kind, LinkKind::Bridge | LinkKind::Bond) {
                    let why = io::Error::other(format!("{name} is not a bridge (kind {})", b.kind));
                    return Err(Error::kernel("attaching to", &node, name.as_str(), why));
                }
                Some(b.index)
            }
            None => None,
        };
        let port = self.link(link)?;
        if bridge.is_some() {
            match port.kind {
                LinkKind::Bridge => {
                    let help = format!("{link} is a bridge; a bridge cannot be a port of a bridge");
                    return Err(kernel_with_help("setting master of", &node, link.to_string(), libc::ELOOP, help));
                }
                LinkKind::Loopback => {
                    return Err(Error::kernel("setting master of", &node, link.as_str(), errno(libc::EINVAL)))
                }
                _ if port.admin_up
                    && bridge.and_then(|b| self.by_index(b)).is_some_and(|b| b.kind == LinkKind::Bond) =>
                {
                    return Err(crate::backend::kernel::link::bond_port_up(&self.name, link));
                }
                _ => {}
            }
        }
        let index = port.index;
        let l = self.by_index_mut(index).expect("link exists");
        let old = l.master;
        if l.master != bridge {
            // A new port starts with the kernel's defaults: learning and flooding, not isolated.
            let on = bridge.map(|_| true);
            l.port_opts = crate::model::BridgePortOpts { learning: on, flood: on, isolated: bridge.map(|_| false) };
        }
        l.master = bridge;
        if old != bridge {
            self.joined(index, old, bridge);
        }
        Ok(())
    }

    fn add_addr(&mut self, link: &LinkName, cidr: IpNet) -> Result<()> {
        let l = self.link(link)?;
        let what = format!("{link} ({cidr})");
        let v6 = cidr.addr().is_ipv6();
        if v6 && !l.ipv6 {
            let help = format!("IPv6 is off on {link} (net.ipv6.conf.{link}.disable_ipv6 = 1)");
            return Err(kernel_with_help("adding address to", self.name.as_str(), what, libc::EACCES, help));
        }
        // IPv4 clashes on address and prefix, IPv6 on the address alone; both per link.
        if l.addrs.iter().any(|a| a.addr() == cidr.addr() && (v6 || a.prefix_len() == cidr.prefix_len())) {
            return Err(Error::kernel("adding address to", self.name.as_str(), what, errno(libc::EEXIST)));
        }
        let index = l.index;
        self.by_index_mut(index).expect("link exists").addrs.push(cidr);
        self.add_connected(index, cidr);
        Ok(())
    }

    /// `ip addr del`. Deleting an IPv4 primary deletes its secondaries too
    /// (promote_secondaries is 0), and once a link has no IPv4 address left the
    /// kernel drops every IPv4 route through it.
    fn del_addr(&mut self, link: &LinkName, cidr: IpNet) -> Result<()> {
        let l = self.link(link)?;
        if !l.addrs.contains(&cidr) {
            return Err(Error::BadAddress {
                value: cidr.to_string(),
                expected: "address",
                reason: format!("{link} in {} does not have it", self.name),
                help: None,
            });
        }
        let index = l.index;
        let same_subnet = |a: &IpNet| a.prefix_len() == cidr.prefix_len() && a.trunc() == cidr.trunc();
        let primary = l.addrs.iter().find(|a| same_subnet(a)) == Some(&cidr);
        let l = self.by_index_mut(index).expect("link exists");
        if primary && cidr.addr().is_ipv4() {
            l.addrs.retain(|a| !same_subnet(a));
        } else {
            l.addrs.retain(|a| *a != cidr);
        }
        let subnet_left = l.addrs.iter().any(same_subnet);
        let v4_left = l.addrs.iter().any(|a| a.addr().is_ipv4());
        if !subnet_left {
            self.routes.retain(|r| !(r.connected && r.dev == index && r.dest == Some(cidr.trunc())));
        }
        if cidr.addr().is_ipv4() && !v4_left {
            self.routes.retain(|r| r.dev != index || r.v6);
            self.kill_paths(index, |r| !r.v6);
        }
        Ok(())
    }

    /// `ip route add [TYPE] DEST ...`: a gateway must be reached in the route's table
    /// (or the main one); with `dev` only through that link, or with onlink
    /// (`via GW dev DEV onlink`) taken to be on it: the kernel then wants the link
    /// up and GW not one of the node's own.
    fn add_route(&mut self, dest: Option<IpNet>, hop: &NextHop, opts: &RouteOpts) -> Result<()> {
        let v6 = match (dest, hop) {
            (Some(net), _) => net.addr().is_ipv6(),
            (None, hop) => hop.family_v6().or(opts.src.map(|s| s.is_ipv6())).unwrap_or(false),
        };
        let node = self.name.to_string();
        let what = crate::backend::kernel::route::describe(dest, hop);
        let table = opts.table();
        let mismatch = |what: String| Error::BadAddress {
            value: what,
            expected: "route",
            reason: "the destination, the gateway and the source are of different IP versions".into(),
            help: None,
        };
        if let Some(src) = opts.src {
            if src.is_ipv6() != v6 {
                return Err(mismatch(format!("{what} src {src}")));
            }
            if !self.links.iter().any(|l| l.addrs.iter().any(|a| a.addr() == src)) {
                let help = format!("src must be one of {node}'s own addresses");
                return Err(kernel_with_help("adding route", &node, what, libc::EINVAL, help));
            }
        }
        let mut hops = Vec::new();
        let (gateway, dev, scope) = match hop {
            NextHop::Gateway(gw) => {
                if gw.is_ipv6() != v6 {
                    return Err(mismatch(what));
                }
                let found = match opts.dev.as_ref().map(|d| (d, opts.onlink)) {
                    Some((name, true)) => {
                        let l = self.link(name)?;
                        if !l.admin_up {
                            return Err(Error::kernel("adding route", &node, what, errno(libc::ENETDOWN)));
                        }
                        let own = self.links.iter().any(|l| l.addrs.iter().any(|a| a.addr() == *gw));
                        if own {
                            Err(libc::EINVAL)
                        } else {
                            Ok(l.index)
                        }
                    }
                    Some((name, false)) => {
                        let index = self.link(name)?.index;
                        self.gateway_dev(*gw, Some(index), table)
                    }
                    None => self.gateway_dev(*gw, None, table),
                };
                let dev = match found {
                    Ok(dev) => dev,
                    Err(libc::ENETUNREACH) => {
                        let help = format!(
                            "the gateway is not on any subnet of {node}: give its link an address in that subnet first"
                        );
                        return Err(kernel_with_help("adding route", &node, what, libc::ENETUNREACH, help));
                    }
                    Err(code) => return Err(Error::kernel("adding route", &node, what, errno(code))),
                };
                (Some(*gw), dev, Scope::Universe)
            }
            NextHop::Device(name) => {
                let l = self.link(name)?;
                if !l.admin_up {
                    return Err(Error::kernel("adding route", &node, what, errno(libc::ENETDOWN)));
                }
                (None, l.index, if v6 { Scope::Universe } else { Scope::Link })
            }
            NextHop::Blackhole | NextHop::Unreachable | NextHop::Prohibit => (None, 0, Scope::Universe),
            NextHop::Multipath(paths) => {
                for path in paths {
                    let dev = match (path.gateway, &path.dev) {
                        (Some(gw), dev) => {
                            if gw.is_ipv6() != v6 {
                                return Err(mismatch(what));
                            }
                            let oif = dev.as_ref().map(|d| self.link(d).map(|l| l.index)).transpose()?;
                            match self.gateway_dev(gw, oif, table) {
                                Ok(dev) => dev,
                                Err(libc::ENETUNREACH) => {
                                    let help = format!(
                                        "a path's gateway, {gw}, is not on any subnet of {node}: give its link an address in that subnet first"
                                    );
                                    return Err(kernel_with_help("adding route", &node, what, libc::ENETUNREACH, help));
                                }
                                Err(code) => return Err(Error::kernel("adding route", &node, what, errno(code))),
                            }
                        }
                        (None, Some(name)) => {
                            let l = self.link(name)?;
                            if !l.admin_up {
                                return Err(Error::kernel("adding route", &node, what, errno(libc::ENETDOWN)));
                            }
                            l.index
                        }
                        (None, None) => return Err(Error::kernel("adding route", &node, what, errno(libc::EINVAL))),
                    };
                    hops.push(Hop { gateway: path.gateway, dev, weight: path.weight, dead: false });
                }
                (None, 0, Scope::Universe)
            }
        };
        let metric = opts.metric.unwrap_or(if v6 { 1024 } else { 0 });
        // Routes of one table, prefix and metric clash, whatever their next hop.
        let clash = |r: &Route| r.v6 == v6 && r.dest == dest && r.table == table && r.metric == metric;
        if self.routes.iter().any(clash) {
            return Err(Error::kernel("adding route", &node, what, errno(libc::EEXIST)));
        }
        let kind = match hop {
            NextHop::Blackhole => RouteKind::Blackhole,
            NextHop::Unreachable => RouteKind::Unreachable,
            NextHop::Prohibit => RouteKind::Prohibit,
            _ => RouteKind::Unicast,
        };
        let onlink = opts.onlink && matches!(hop, NextHop::Gateway(_));
        let connected = false;
        self.routes.push(Route {
            dest,
            v6,
            gateway,
            dev,
            scope,
            connected,
            table,
            metric,
            kind,
            src: opts.src,
            onlink,
            hops,
        });
        Ok(())
    }

    /// `ip neigh add IP lladdr MAC dev DEV nud STATE`: EEXIST for an entry there already.
    fn add_neigh(&mut self, dev: &LinkName, ip: IpAddr, mac: &[u8; 6], state: NeighState) -> Result<()> {
        let index = self.link(dev)?.index;
        if self.neighbours.iter().any(|e| e.link_index == index && e.ip == ip) {
            return Err(Error::kernel(
                "adding neighbour",
                self.name.as_str(),
                format!("{ip} dev {dev}"),
                errno(libc::EEXIST),
            ));
        }
        let mac = Some(crate::backend::kernel::link::format_mac(mac));
        self.neighbours.push(crate::model::Neighbour { ip, mac, link_index: index, state });
        Ok(())
    }

    /// `ip neigh del IP dev DEV`: ENOENT for none.
    fn del_neigh(&mut self, dev: &LinkName, ip: IpAddr) -> Result<()> {
        let index = self.link(dev)?.index;
        let Some(at) = self.neighbours.iter().position(|e| e.link_index == index && e.ip == ip) else {
            return Err(Error::kernel(
                "deleting neighbour",
                self.name.as_str(),
                format!("{ip} dev {dev}"),
                errno(libc::ENOENT),
            ));
        };
        self.neighbours.remove(at);
        Ok(())
    }

    /// `bridge link set dev PORT ...`: only a bridge's port has these options.
    fn set_bridge_port(&mut self, port: &LinkName, opts: &crate::model::BridgePortOpts) -> Result<()> {
        let l = self.link(port)?;
        if l.master.is_none() {
            return Err(Error::kernel(
                "setting bridge port options of",
                self.name.as_str(),
                port.as_str(),
                io::Error::other(format!("{port} is not a port of a bridge: master(node, \"{port}\", BRIDGE) first")),
            ));
        }
        let index = l.index;
        let o = &mut self.by_index_mut(index).expect("link exists").port_opts;
        o.learning = opts.learning.or(o.learning);
        o.flood = opts.flood.or(o.flood);
        o.isolated = opts.isolated.or(o.isolated);
        Ok(())
    }

    /// `ip rule add ...`: a priority the lab leaves out is the kernel's: one below
    /// the second rule of the family (32765 first, as the defaults are 0, 32766,
    /// 32767); the same rule twice is EEXIST.
    fn add_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        let all = self.rule_list();
        let family: Vec<&RuleState> = all.iter().filter(|r| r.v6 == rule.v6).collect();
        let priority = rule
            .priority
            .unwrap_or_else(|| family.get(1).map(|r| r.priority.saturating_sub(1)).filter(|p| *p > 0).unwrap_or(0));
        let state = RuleState {
            v6: rule.v6,
            priority,
            from: rule.from,
            to: rule.to,
            iif: rule.iif.as_ref().map(|l| l.to_string()),
            oif: rule.oif.as_ref().map(|l| l.to_string()),
            fwmark: rule.fwmark,
            table: rule.table,
        };
        if family.iter().any(|r| **r == state) {
            let what = crate::backend::kernel::rule::describe_rule(rule);
            return Err(Error::kernel("adding rule", self.name.as_str(), what, errno(libc::EEXIST)));
        }
        self.rules.push(state);
        Ok(())
    }

    /// `ip rule del ...`: the first of the lab's rules that matches (the kernel's
    /// defaults can go too, as with `ip rule del`; ENOENT for none).
    fn del_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        let listed = self.rule_list();
        let Some(found) = listed.iter().find(|r| crate::backend::kernel::rule::rule_matches(r, rule)) else {
            let what = crate::backend::kernel::rule::describe_rule(rule);
            return Err(Error::kernel("deleting rule", self.name.as_str(), what, errno(libc::ENOENT)));
        };
        match self.rules.iter().position(|r| r == found) {
            Some(at) => {
                self.rules.remove(at);
                Ok(())
            }
            None => {
                self.deleted_default_rules.push(found.clone());
                Ok(())
            }
        }
    }

    /// The rules as `ip rule` lists them: the kernel's defaults and the lab's, by
    /// priority (a new rule goes after those of its priority), IPv4 first.
    pub fn rule_list(&self) -> Vec<RuleState> {
        let default = |v6, priority, table| RuleState {
            v6,
            priority,
            from: None,
            to: None,
            iif: None,
            oif: None,
            fwmark: None,
            table,
        };
        let mut all = vec![default(false, 0, 255), default(false, 32766, 254), default(false, 32767, 253)];
        all.extend([default(true, 0, 255), default(true, 32766, 254)]);
        all.retain(|r| !self.deleted_default_rules.contains(r));
        all.extend(self.rules.iter().cloned());
        // A stable sort: defaults first among equal priorities, then in the order added.
        all.sort_by_key(|r| (r.v6, r.priority));
        all
    }

    /// The device a gateway is reached by, or the errno the kernel refuses it with:
    /// the longest prefix route to it must be on-link (IPv4 only looks at link-scope
    /// routes), and it must not be the node's own address.
    /// With `oif`, only routes through that link count (`via GW dev DEV`).
    fn gateway_dev(&self, gw: IpAddr, oif: Option<u32>, table: u32) -> std::result::Result<u32, i32> {
        if table != MAIN_TABLE {
            // The kernel looks in the route's own table first, then everywhere.
            if let Ok(dev) = self.gateway_dev_in(gw, oif, table) {
                return Ok(dev);
            }
        }
        self.gateway_dev_in(gw, oif, MAIN_TABLE)
    }

    fn gateway_dev_in(&self, gw: IpAddr, oif: Option<u32>, table: u32) -> std::result::Result<u32, i32> {
        if self.links.iter().any(|l| l.addrs.iter().any(|a| a.addr() == gw)) {
            return Err(libc::EINVAL); // "Nexthop has invalid gateway"
        }
        let v6 = gw.is_ipv6();
        let mut best: Option<&Route> = None;
        let candidates = self
            .routes
            .iter()
            .filter(|r| r.table == table && r.kind == RouteKind::Unicast && oif.is_none_or(|i| r.dev == i));
        for r in candidates.filter(|r| r.v6 == v6 && (v6 || r.scope == Scope::Link)) {
            let len = r.dest.map(|d| d.prefix_len());
            if r.dest.is_none_or(|d| d.contains(&gw)) && best.is_none_or(|b| b.dest.map(|d| d.prefix_len()) < len) {
                best = Some(r);
            }
        }
        match best {
            None => Err(libc::ENETUNREACH),
            Some(r) if r.gateway.is_some() => Err(libc::EINVAL),
            Some(r) => Ok(r.dev),
        }
    }

    /// `ip route del DEST`: the first route of that destination as listed (IPv4 first).
    fn del_route(&mut self, dest: Option<IpNet>, table: u32) -> Result<()> {
        let found = [false, true]
            .iter()
            .find_map(|v6| self.routes.iter().position(|r| r.v6 == *v6 && r.dest == dest && r.table == table));
        let Some(at) = found else {
            let what = dest.map(|d| d.to_string()).unwrap_or_else(|| "default".into());
            return Err(Error::kernel("deleting route", self.name.as_str(), what, errno(libc::ESRCH)));
        };
        self.routes.remove(at);
        Ok(())
    }

    /// Records the value; a per-link key needs the link, and IPv6 on or off takes
    /// effect on the link as in the kernel.
    fn set_sysctl(&mut self, key: &str, value: &str) -> Result<()> {
        crate::backend::kernel::sysctl::path_for_write(key)?;
        let path = sysctl_path(key);
        let parts: Vec<&str> = path.split('/').collect();
        if let ["net", family @ ("ipv4" | "ipv6"), "conf" | "neigh", dev, rest @ ..] = parts.as_slice() {
            let off = value.trim() != "0";
            let disable_ipv6 = *family == "ipv6" && rest == ["disable_ipv6"];
            match *dev {
                "default" => {}
                "all" if disable_ipv6 => {
                    let all: Vec<u32> = self.links.iter().map(|l| l.index).collect();
                    all.into_iter().for_each(|i| self.set_ipv6(i, !off));
                }
                "all" => {}
                dev => {
                    let Some(index) = self.links.iter().find(|l| l.name.as_str() == dev).map(|l| l.index) else {
                        return Err(Error::BadSysctl {
                            key: key.to_string(),
                            reason: format!("no such sysctl (in {})", self.name),
                        });
                    };
                    if disable_ipv6 {
                        self.set_ipv6(index, !off);
                    }
                }
            }
        }
        self.sysctls.push((key.to_string(), value.to_string()));
        Ok(())
    }

    fn set_ipv6(&mut self, index: u32, on: bool) {
        let Some(l) = self.by_index_mut(index) else { return };
        l.ipv6 = on;
        if !on {
            l.addrs.retain(|a| a.addr().is_ipv4());
            self.routes.retain(|r| !(r.dev == index && r.v6));
            self.kill_paths(index, |r| r.v6);
        }
    }

    /// The paths of multipath routes (those `which` picks) through link `index` go
    /// dead; a route whose paths are all dead goes.
    fn kill_paths(&mut self, index: u32, which: impl Fn(&Route) -> bool) {
        for r in self.routes.iter_mut().filter(|r| which(r)) {
            for h in r.hops.iter_mut().filter(|h| h.dev == index) {
                h.dead = true;
            }
        }
        self.routes.retain(|r| r.hops.is_empty() || r.hops.iter().any(|h| !h.dead));
    }

    /// Binding as the kernel backend's servers bind: to one of the node's addresses
    /// or the wildcard, and not where a server of the same protocol already is.
    fn start_server(&mut self, server: &ServerSpec) -> Result<()> {
        let addr = server.addr();
        let fail = |code: i32, help: String| {
            let what = format!("{} on {addr}", server.what());
            kernel_with_help("binding", self.name.as_str(), what, code, help)
        };
        // An address of the node's, or one of a prefix on an up lo: the kernel makes
        // such a prefix (127.0.0.0/8) a local route, and binds to any of it.
        let own = self.links.iter().any(|l| {
            let local_prefix =
                |a: &IpNet| l.kind == LinkKind::Loopback && l.admin_up && a.addr().is_ipv4() && a.contains(&addr.ip());
            l.addrs.iter().any(|a| a.addr() == addr.ip() || local_prefix(a))
        });
        if !addr.ip().is_unspecified() && !own {
            let help = format!("{} has no address {}: add it with addr() first", self.name, addr.ip());
            return Err(fail(libc::EADDRNOTAVAIL, help));
        }
        let clash = self.servers.iter().map(|s| (s.proto(), s.addr())).any(|(proto, other)| {
            proto == server.proto()
                && other.port() == addr.port()
                && other.is_ipv6() == addr.is_ipv6()
                && (other.ip() == addr.ip() || other.ip().is_unspecified() || addr.ip().is_unspecified())
        });
        if clash {
            return Err(fail(libc::EADDRINUSE, format!("something in {} already listens on {addr}", self.name)));
        }
        self.servers.push(server.clone());
        Ok(())
    }
}
