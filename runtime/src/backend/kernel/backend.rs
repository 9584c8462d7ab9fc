//! The kernel backend: the lab's ops applied over netlink (and `iptables-restore`,
//! `nft -f -`) inside the sandbox. Each op marks what it touched, so the readiness
//! wait before the next check knows where to look.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

use super::{Lab, Server, ServerKind};
use crate::backend::kernel::exec::{CommandLine, ExecOutput};
use crate::backend::kernel::node::Node;
use crate::backend::kernel::sockets::Listening;
use crate::backend::{Applied, Backend, SeenRequest, ServerLog};
use crate::error::Result;
use crate::model::{AddrState, EtcFile, Feature, LinkState, Neighbour, Op, RouteState, ServerSpec};
use crate::names::NodeName;
use crate::ping::{PingMode, PingOpts, PingReport};
use crate::render;
use crate::render::iptables::IptTable;
use crate::service::{CurlError, HttpReply, LookupError};

/// A veth whose creation waits for its master and up state (see apply_at).
pub(super) struct HeldVeth {
    node: NodeName,
    name: crate::names::LinkName,
    peer_node: NodeName,
    peer: crate::names::LinkName,
    master: Option<u32>,
    up: bool,
    origin: (u16, u16),
}

impl ServerLog for Server {
    fn node(&self) -> &str {
        &self.node
    }
    fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
    fn requests(&self) -> Vec<SeenRequest> {
        match &self.kind {
            ServerKind::Http(h) => h.requests(),
            ServerKind::Dns(_) | ServerKind::UdpEcho(_) => Vec::new(),
        }
    }
    fn queries(&self) -> Vec<(std::net::SocketAddr, String)> {
        match &self.kind {
            ServerKind::Dns(d) => d.queries(),
            ServerKind::Http(_) | ServerKind::UdpEcho(_) => Vec::new(),
        }
    }
    fn datagrams(&self) -> Vec<std::net::SocketAddr> {
        match &self.kind {
            ServerKind::UdpEcho(u) => u.senders(),
            ServerKind::Http(_) | ServerKind::Dns(_) => Vec::new(),
        }
    }
}

impl Lab {
    fn node_of(&self, name: &NodeName) -> Result<Rc<Node>> {
        self.node(name.as_str())
    }

    /// The netlink requests of `op`, named by its `ip` commands should they time out.
    fn netlink_op<T>(&self, op: &Op, requests: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.netlink(op.node().as_str(), || render::ip::op_commands(op, super::HOST).join("; "), requests)
    }

    /// One op against the kernel, without the bookkeeping.
    fn apply_to_kernel(&self, op: &Op) -> Result<Applied> {
        match op {
            Op::AddNode { node } => self.create_node(node.as_str()).map(|_| ()),
            Op::DelNode { node } => self.delete_node(&self.node_of(node)?),
            Op::AddVeth { node, name, peer_node, peer } => {
                let (a, b) = (self.node_of(node)?, self.node_of(peer_node)?);
                self.netlink_op(op, a.create_veth(name, &b, peer))
            }
            Op::AddBridge { node, name } => self.netlink_op(op, self.node_of(node)?.create_bridge(name)),
            Op::AddLink { node, name, spec: crate::model::LinkSpec::Tuntap { tap }, attrs } => {
                self.create_tuntap(&*self.node_of(node)?, name, *tap, attrs)
            }
            Op::AddLink { node, name, spec, attrs } => {
                self.netlink_op(op, self.node_of(node)?.create_link(name, spec, attrs))
            }
            Op::SetLink { node, link, attrs } => self.netlink_op(op, self.node_of(node)?.set_link_attrs(link, attrs)),
            Op::SetUp { node, link, up } => self.netlink_op(op, self.node_of(node)?.set_link_up(link, *up)),
            Op::SetMaster { node, link, master } => {
                self.netlink_op(op, self.node_of(node)?.set_master(link, master.as_ref()))
            }
            Op::MoveLink { node, link, to, new_name } => {
                let (from, to) = (self.node_of(node)?, self.node_of(to)?);
                // A sender's socket stays in its node: the link it sent on leaves.
                if self.advertising() && from.name != to.name {
                    if let Ok(state) = self.netlink_op(op, from.link(link)) {
                        self.stop_advertising(node.as_str(), Some(state.index));
                    }
                }
                self.netlink_op(op, from.move_link(link, &to, new_name))
            }
            Op::DelLink { node, link } => {
                let n = self.node_of(node)?;
                if self.advertising() {
                    if let Ok(state) = self.netlink_op(op, n.link(link)) {
                        self.stop_advertising(node.as_str(), Some(state.index));
                    }
                }
                self.netlink_op(op, n.delete_link(link))
            }
            Op::Advertise { node, link, ra } => self.start_advertising(&*self.node_of(node)?, link, ra),
            Op::AddAddr { node, link, cidr } => {
                let n = self.node_of(node)?;
                if cidr.addr().is_ipv6() {
                    // Nodes keep IPv6 off on new links until a lab uses it (see node.rs).
                    self.netlink_op(op, n.link(link))?;
                    self.set_sysctl(&n, &format!("net/ipv6/conf/{link}/disable_ipv6"), "0")?;
                }
                self.netlink_op(op, n.add_address(link, *cidr))
            }
            Op::DelAddr { node, link, cidr } => self.netlink_op(op, self.node_of(node)?.delete_address(link, *cidr)),
            Op::AddRoute { node, dest, hop, opts } => {
                self.netlink_op(op, self.node_of(node)?.add_route(*dest, hop, opts))
            }
            Op::AddRule { node, rule } => self.netlink_op(op, self.node_of(node)?.add_rule(rule)),
            Op::AddNeigh { node, dev, ip, mac, state } => {
                self.netlink_op(op, self.node_of(node)?.add_neighbour(dev, *ip, mac, *state))
            }
            Op::DelNeigh { node, dev, ip } => self.netlink_op(op, self.node_of(node)?.delete_neighbour(dev, *ip)),
            Op::FlushNeigh { node, dev } => {
                let n = self.node_of(node)?;
                let index = match dev {
                    Some(d) => Some(self.netlink_op(op, n.link_index(d))?.0),
                    None => None,
                };
                self.netlink_op(op, n.flush_neighbours_of(index))
            }
            Op::SetBridgePort { node, port, opts } => {
                self.netlink_op(op, self.node_of(node)?.set_bridge_port(port, opts))
            }
            Op::SetBridge { node, bridge, opts } => self.netlink_op(op, self.node_of(node)?.set_bridge(bridge, opts)),
            Op::AddBridgeVlan { node, dev, vid, pvid, untagged, bridge_self } => {
                self.netlink_op(op, self.node_of(node)?.bridge_vlan(dev, *vid, Some((*pvid, *untagged)), *bridge_self))
            }
            Op::DelBridgeVlan { node, dev, vid, bridge_self } => {
                self.netlink_op(op, self.node_of(node)?.bridge_vlan(dev, *vid, None, *bridge_self))
            }
            Op::SetWireguard { node, link, config } => {
                self.netlink_op(op, self.node_of(node)?.set_wireguard(link, config))
            }
            Op::DelRoute { node, dest, table } => {
                self.netlink_op(op, self.node_of(node)?.delete_route(*dest, table.unwrap_or(crate::model::MAIN_TABLE)))
            }
            Op::DelRule { node, rule } => self.netlink_op(op, self.node_of(node)?.delete_rule(rule)),
            Op::SetSysctl { node, key, value } => self.set_sysctl(&*self.node_of(node)?, key, value),
            Op::Firewall { node, change } => self.apply_firewall(&*self.node_of(node)?, change),
            Op::WriteFile { node, file, text } => self.set_node_file(&*self.node_of(node)?, file.file_name(), text),
            Op::SetHostname { node, name } => self.set_hostname(&*self.node_of(node)?, name),
            Op::StartServer { node, server } => {
                let n = self.node_of(node)?;
                let started = match server {
                    ServerSpec::Http { addr, body, status } => self.start_http_server(&n, *addr, body, *status)?,
                    ServerSpec::Dns { addr, records } => self.start_dns_server(&n, *addr, records.clone())?,
                    ServerSpec::UdpEcho { addr } => self.start_udp_echo_server(&n, *addr)?,
                };
                return Ok(Applied::Server(started));
            }
            Op::Impair { node, link, impairment } => self.netlink_op(op, self.node_of(node)?.impair(link, impairment)),
            Op::ClearImpair { node, link } => self.netlink_op(op, self.node_of(node)?.clear_impair(link)),
            Op::Exec { node, command } => {
                let line = CommandLine::parse(command)?;
                self.exec(&*self.node_of(node)?, &line, self.deadline(10.0)).map(|_| ())
            }
        }?;
        Ok(Applied::Done)
    }
}

impl Backend for Lab {
    fn evaluates(&self) -> bool {
        true
    }

    fn apply(&self, op: &Op) -> Result<Applied> {
        self.apply_at(op, (0, 0))
    }

    /// Ops are applied at once, except a new veth: it is held until the next op, so
    /// that its master and up state (`master(...)`, `up(...)` right after `veth(...)`)
    /// go into its creation request, as `ip link add ... master br0 up` does: one
    /// request instead of three. Anything else applies it first; every query and
    /// probe too.
    fn apply_at(&self, op: &Op, origin: (u16, u16)) -> Result<Applied> {
        if self.merge_into_held(op)? {
            return Ok(Applied::Done);
        }
        self.flush()?;
        if let Op::AddVeth { node, name, peer_node, peer } = op {
            // The nodes must exist now; the kernel's own checks come with the creation.
            self.node_of(node)?.ns()?;
            self.node_of(peer_node)?.ns()?;
            *self.held.borrow_mut() = Some(HeldVeth {
                node: node.clone(),
                name: name.clone(),
                peer_node: peer_node.clone(),
                peer: peer.clone(),
                master: None,
                up: false,
                origin,
            });
            return Ok(Applied::Done);
        }
        self.apply_now(op)
    }

    fn flush(&self) -> Result<()> {
        let Some(held) = self.held.borrow_mut().take() else { return Ok(()) };
        let (a, b) = (self.node_of(&held.node)?, self.node_of(&held.peer_node)?);
        let created = self.netlink(
            held.node.as_str(),
            || format!("ip link add {} type veth peer name {} netns {}", held.name, held.peer, held.peer_node),
            a.create_veth_with(&held.name, &b, &held.peer, held.master, held.up),
        );
        for node in [&held.node, &held.peer_node] {
            self.touched.borrow_mut().insert(node.to_string());
        }
        self.mark_changed();
        created.map_err(|e| crate::Error::Held { origin: held.origin, source: Box::new(e) })?;
        self.tune_ipv6_links(&[&held.node, &held.peer_node])
    }

    fn node_names(&self) -> Vec<NodeName> {
        self.nodes().iter().map(|n| n.name.clone()).collect()
    }

    fn require_node(&self, node: &str) -> Result<NodeName> {
        self.node(node).map(|n| n.name.clone())
    }

    fn links(&self, node: &NodeName, converged: Option<Option<&str>>) -> Result<Vec<LinkState>> {
        self.flush()?;
        let n = self.node_of(node)?;
        match converged {
            Some(only) => self.settle_links(&n, only)?,
            None => self.settle()?,
        }
        self.netlink(node.as_str(), || "ip -d link show".into(), n.links())
    }

    fn addresses(&self, node: &NodeName) -> Result<Vec<AddrState>> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.settle()?;
        self.netlink(node.as_str(), || "ip addr show".into(), n.addresses())
    }

    fn routes(&self, node: &NodeName, table: u32) -> Result<Vec<RouteState>> {
        self.flush()?;
        let n = self.node_of(node)?;
        // A route's linkdown flags (its own, its paths') follow carrier as linkwatch
        // reports it, as the operstate does.
        self.settle_links(&n, None)?;
        self.netlink(node.as_str(), || format!("ip route show table {table}"), n.routes_in(table))
    }

    fn rules(&self, node: &NodeName) -> Result<Vec<crate::model::RuleState>> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.netlink(node.as_str(), || "ip rule show".into(), n.rules())
    }

    fn fdb(&self, node: &NodeName, bridge: &crate::names::LinkName) -> Result<Vec<crate::model::FdbEntry>> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.netlink(node.as_str(), || format!("bridge fdb show br {bridge}"), n.fdb(bridge))
    }

    fn bridge_vlans(&self, node: &NodeName) -> Result<Vec<crate::model::BridgeVlan>> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.netlink(node.as_str(), || "bridge vlan show".into(), n.bridge_vlans())
    }

    fn wireguard(&self, node: &NodeName, link: &crate::names::LinkName) -> Result<crate::model::WgState> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.netlink(node.as_str(), || format!("wg show {link}"), n.wireguard(link))
    }

    fn neighbours(&self, node: &NodeName) -> Result<Vec<Neighbour>> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.settle()?;
        self.netlink(node.as_str(), || "ip neigh show".into(), n.neighbours())
    }

    fn sysctl(&self, node: &NodeName, key: &str) -> Result<String> {
        self.flush()?;
        self.get_sysctl(&*self.node_of(node)?, key)
    }

    fn file(&self, node: &NodeName, file: EtcFile) -> Result<Option<String>> {
        self.flush()?;
        Ok(self.node_file(&*self.node_of(node)?, file.file_name()))
    }

    fn hostname(&self, node: &NodeName) -> Result<String> {
        self.flush()?;
        Lab::hostname(self, &*self.node_of(node)?)
    }

    fn listening(&self, node: &NodeName) -> Result<Vec<Listening>> {
        self.flush()?;
        Lab::listening(self, &*self.node_of(node)?)
    }

    fn iptables_rules(&self, node: &NodeName, table: IptTable) -> Result<Vec<String>> {
        self.flush()?;
        Lab::iptables_rules(self, &*self.node_of(node)?, table)
    }

    fn nft_ruleset(&self, node: &NodeName) -> Result<String> {
        self.flush()?;
        Lab::nft_ruleset(self, &*self.node_of(node)?)
    }

    fn qdiscs(&self, node: &NodeName) -> Result<Vec<crate::model::QdiscState>> {
        self.flush()?;
        let n = self.node_of(node)?;
        self.netlink(node.as_str(), || "tc qdisc show".into(), n.qdiscs())
    }

    fn throughput(
        &self,
        node: &NodeName,
        server: &NodeName,
        dst: std::net::SocketAddr,
        duration: Duration,
    ) -> Result<std::result::Result<crate::service::throughput::Throughput, CurlError>> {
        self.flush()?;
        Lab::throughput(self, &*self.node_of(node)?, &*self.node_of(server)?, dst, duration)
    }

    fn ping(&self, node: &NodeName, dst: IpAddr, mode: PingMode, opts: &PingOpts) -> Result<PingReport> {
        self.flush()?;
        Lab::ping(self, &*self.node_of(node)?, dst, mode, opts)
    }

    fn ping_many(
        &self,
        nodes: &[NodeName],
        dsts: &[IpAddr],
        mode: PingMode,
        interval: Duration,
    ) -> Result<(Vec<Vec<PingReport>>, usize)> {
        self.flush()?;
        let nodes = nodes.iter().map(|n| self.node_of(n)).collect::<Result<Vec<_>>>()?;
        Lab::ping_many(self, &nodes, dsts, mode, interval)
    }

    fn http_get(
        &self,
        node: &NodeName,
        url: &str,
        timeout: Duration,
    ) -> Result<std::result::Result<HttpReply, CurlError>> {
        self.flush()?;
        Lab::http_get(self, &*self.node_of(node)?, url, timeout)
    }

    fn tcp_connect(
        &self,
        node: &NodeName,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::result::Result<Duration, CurlError>> {
        self.flush()?;
        Lab::tcp_connect(self, &*self.node_of(node)?, addr, timeout)
    }

    fn udp_exchange(
        &self,
        node: &NodeName,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::result::Result<Duration, crate::service::UdpError>> {
        self.flush()?;
        Lab::udp_exchange(self, &*self.node_of(node)?, addr, timeout)
    }

    fn resolve(
        &self,
        node: &NodeName,
        name: &str,
        timeout: Duration,
    ) -> Result<std::result::Result<Vec<IpAddr>, LookupError>> {
        self.flush()?;
        Lab::resolve(self, &*self.node_of(node)?, name, timeout)
    }

    fn clear_probe_leftovers(&self) -> Result<()> {
        self.flush()?;
        Lab::clear_probe_leftovers(self)
    }

    fn exec(&self, node: &NodeName, command: &CommandLine, timeout: Duration) -> Result<ExecOutput> {
        self.flush()?;
        self.forget_link_indexes();
        Lab::exec(self, &*self.node_of(node)?, command, timeout)
    }

    /// Probed in a scratch namespace of its own, once per lab (features.rs).
    fn has_feature(&self, feature: Feature) -> Result<bool> {
        Lab::has_feature(self, feature)
    }

    fn deadline(&self, seconds: f64) -> Duration {
        Lab::deadline(self, seconds)
    }

    fn sleep(&self, duration: Duration) {
        // A stop signal ends the sleep; the script sees the signal at its next step.
        let _ =
            self.rt.block_on(crate::interrupt::unless_interrupted(async move { tokio::time::sleep(duration).await }));
    }
}

impl Lab {
    /// Folds `op` into the held veth when it sets that veth's master or brings it up.
    fn merge_into_held(&self, op: &Op) -> Result<bool> {
        let mut held = self.held.borrow_mut();
        let Some(h) = held.as_mut() else { return Ok(false) };
        match op {
            Op::SetUp { node, link, up: true } if *node == h.node && *link == h.name => {
                h.up = true;
                Ok(true)
            }
            Op::SetMaster { node, link, master: Some(bridge) }
                if *node == h.node && *link == h.name && h.master.is_none() =>
            {
                let n = self.node_of(node)?;
                match self.netlink(node.as_str(), || format!("ip link show {bridge}"), n.link_index(bridge)) {
                    Ok((index, crate::model::LinkKind::Bridge)) => {
                        h.master = Some(index);
                        Ok(true)
                    }
                    // Not a bridge, or no such link: applied in order, so the error
                    // names the master() call.
                    _ => Ok(false),
                }
            }
            _ => Ok(false),
        }
    }

    /// One op now, with its bookkeeping.
    fn apply_now(&self, op: &Op) -> Result<Applied> {
        // A link that goes or is renamed (also a veth's peer elsewhere, or whatever a
        // program does) leaves names pointing nowhere: every node forgets its indexes.
        if matches!(op, Op::DelLink { .. } | Op::MoveLink { .. } | Op::DelNode { .. } | Op::Exec { .. }) {
            self.forget_link_indexes();
        }
        let applied = self.apply_to_kernel(op);
        if applied.is_err() {
            self.forget_link_indexes();
        }
        let applied = applied?;
        for node in op.touched_links() {
            self.touched.borrow_mut().insert(node.to_string());
        }
        if !matches!(op, Op::SetUp { .. } | Op::DelLink { .. } | Op::DelNode { .. }) {
            self.tune_ipv6_links(&op.touched_links())?;
        }
        if let Op::AddBridge { node, .. } = op {
            self.bridge_nodes.borrow_mut().insert(node.to_string());
        }
        self.mark_changed();
        Ok(applied)
    }
}
