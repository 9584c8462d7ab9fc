//! Readiness: before a check, wait until what the lab brought up is usable, woken
//! by the kernel's link events; and give new links fast neighbour resolution.

use std::fs::File;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{Lab, NEIGH_RETRANS_MS};
use crate::backend::kernel::neigh::NeighTable;
use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};
use crate::model::{LinkKind, LinkState, OperState, PortState};

impl Lab {
    /// Waits until what the lab brought up is usable: every veth with carrier and
    /// every bridge with a live port has been activated by the kernel's linkwatch
    /// worker (until then its queue drops packets; that is when its operstate turns
    /// UP), and bridge ports with carrier are forwarding. Only the nodes whose links
    /// changed, and those with a bridge, are looked at. Bounded by a deadline.
    pub fn settle(&self) -> Result<()> {
        if !self.dirty.get() {
            return Ok(());
        }
        let nodes: Vec<Rc<Node>> = if self.check_all.get() {
            self.nodes()
        } else {
            let (bridges, touched) = (self.bridge_nodes.borrow(), self.touched.borrow());
            self.nodes()
                .into_iter()
                .filter(|n| bridges.contains(n.name.as_str()) || touched.contains(n.name.as_str()))
                .collect()
        };
        self.wait_links(nodes.clone(), links_ready, 5.0)?;
        self.settle_ipv6(nodes)?;
        // A probe made before this change may have left entries that the kernel
        // would only retry later: the network changed, so start afresh.
        self.clear_probe_leftovers()?;
        self.dirty.set(false);
        self.check_all.set(false);
        self.touched.borrow_mut().clear();
        Ok(())
    }

    /// Before reading link state back (link(), links()): like settle(), and also wait
    /// until the operstate of the node's links (or of one link) agrees with its
    /// carrier, so a lab that checks "veth0 is DOWN" sees what `ip link` shows once
    /// the kernel is done. Only the links asked about are waited for.
    pub fn settle_links(&self, node: &Rc<Node>, link: Option<&str>) -> Result<()> {
        self.settle()?;
        let converged = |links: &[LinkState]| {
            links
                .iter()
                .filter(|l| link.is_none_or(|name| l.name == name))
                .all(|l| l.kind == LinkKind::Loopback || operstate_converged(l))
        };
        self.wait_links(vec![node.clone()], converged, 3.0)
    }

    /// Waits until `ready` holds for the links of each of `nodes`, woken by their link
    /// events (RTNLGRP_LINK, subscribed inside each pending node before it is looked
    /// at again, so no change can slip between a look and the wait), not by polling.
    fn wait_links(&self, nodes: Vec<Rc<Node>>, ready: impl Fn(&[LinkState]) -> bool, seconds: f64) -> Result<()> {
        use futures::StreamExt;
        let started = Instant::now();
        let deadline = started + self.deadline(seconds);
        let result = self.rt.block_on(crate::interrupt::unless_interrupted(async {
            let mut watchers: std::collections::HashMap<String, LinkWatcher> = Default::default();
            let mut pending = nodes;
            loop {
                pending = self.not_ready(pending, &ready).await?;
                if pending.is_empty() || Instant::now() >= deadline {
                    return Ok::<(), Error>(());
                }
                let mut opened = false;
                for node in &pending {
                    if !watchers.contains_key(node.name.as_str()) {
                        watchers.insert(node.name.to_string(), LinkWatcher::open(node, &self.home)?);
                        opened = true;
                    }
                }
                if opened {
                    continue; // look again now that events cannot be missed
                }
                let names: std::collections::HashSet<&str> = pending.iter().map(|n| n.name.as_str()).collect();
                let events = watchers
                    .iter_mut()
                    .filter(|(name, _)| names.contains(name.as_str()))
                    .map(|(_, w)| Box::pin(w.events.next()))
                    .collect::<Vec<_>>();
                let left = deadline.saturating_duration_since(Instant::now());
                // The timeout only bounds the wait; a ready node is seen at its event.
                let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), futures::future::select_all(events))
                    .await;
            }
        }));
        self.ready_wait.set(self.ready_wait.get() + started.elapsed());
        result?
    }

    /// Those of `nodes` whose links do not satisfy `ready` yet.
    async fn not_ready(&self, nodes: Vec<Rc<Node>>, ready: &impl Fn(&[LinkState]) -> bool) -> Result<Vec<Rc<Node>>> {
        // A few at a time: each dump may (re)open that node's netlink connection,
        // and a thousand of them at once would hold a thousand socket buffers.
        use futures::StreamExt;
        let limit = self.netlink_limit();
        let dumps: Vec<Result<Vec<LinkState>>> = futures::stream::iter(
            nodes.iter().map(|n| super::answered(limit, n.name.as_str(), || "ip -d link show".into(), n.links())),
        )
        .buffered(8)
        .collect()
        .await;
        let mut pending = Vec::new();
        for (node, links) in nodes.iter().zip(dumps) {
            let links = links?;
            let op = || "sysctl net.ipv4.neigh.LINK.retrans_time_ms".to_string();
            super::answered(limit, node.name.as_str(), op, self.tune_neighbours(node, &links)).await?;
            // A bond's state follows its ports, which another node can take down (a
            // veth's peer): looked at like a bridge's, every time.
            if links.iter().any(|l| matches!(l.kind, LinkKind::Bridge | LinkKind::Bond)) {
                self.record_bridge(node);
            }
            if !ready(&links) {
                pending.push(node.clone());
            }
        }
        Ok(pending)
    }

    /// Gives every new link of `node` a fast neighbour resolution: ARP/ND probes
    /// every 10 ms instead of every second (`net.ipv4.neigh.LINK.retrans_time_ms`,
    /// per link and per namespace, so nothing outside the lab changes). A link
    /// brought up after a failed probe is then usable at once, instead of after
    /// the kernel's next retry up to a second later, and a negative probe's short
    /// window covers a full resolution (ucast_solicit + mcast_solicit = 6 probes,
    /// 60 ms, then FAILED).
    pub(super) async fn tune_neighbours(&self, node: &Node, links: &[LinkState]) -> Result<()> {
        let fresh: Vec<&LinkState> = {
            let tuned = self.tuned.borrow();
            links
                .iter()
                .filter(|l| l.kind != LinkKind::Loopback)
                .filter(|l| !tuned.contains(&(node.name.to_string(), l.index, l.name.clone(), l.ipv6)))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        for l in &fresh {
            node.set_neighbour_retrans(NeighTable::Arp, l.index, NEIGH_RETRANS_MS).await?;
            // Where IPv6 is off there are no ND parameters; a link whose IPv6 is turned
            // on later is fresh again (the key below holds the flag).
            if l.ipv6 {
                node.set_neighbour_retrans(NeighTable::Ndisc, l.index, NEIGH_RETRANS_MS).await?;
            }
        }
        self.tuned.borrow_mut().extend(fresh.iter().map(|l| (node.name.to_string(), l.index, l.name.clone(), l.ipv6)));
        Ok(())
    }

    /// A bridge was found in `node`: readiness waits look there.
    fn record_bridge(&self, node: &Node) {
        self.bridge_nodes.borrow_mut().insert(node.name.to_string());
    }
}

/// With carrier the operstate becomes UP (a veth passes through UNKNOWN on the way;
/// other devices may stay UNKNOWN when they report none); without, anything but UP.
/// An administratively up device whose carrier went off (a bridge without ports, a
/// TUN/TAP device nobody has open) starts UNKNOWN — `ip link` shows it UNKNOWN,
/// without NO-CARRIER — until linkwatch sets it DOWN (or LOWERLAYERDOWN), up to a
/// second later (more under emulation): UNKNOWN is not converged there.
pub(crate) fn operstate_converged(l: &LinkState) -> bool {
    match (l.admin_up && l.carrier, l.kind) {
        (true, LinkKind::Veth) => l.oper == OperState::Up,
        (true, _) => matches!(l.oper, OperState::Up | OperState::Unknown),
        (false, _) if l.admin_up => !matches!(l.oper, OperState::Up | OperState::Unknown),
        (false, _) => l.oper != OperState::Up,
    }
}

/// Whether a node's links are usable.
fn links_ready(links: &[LinkState]) -> bool {
    // A veth with carrier passes packets only once linkwatch has activated it (until
    // then its queue discipline drops them): that is when its operstate turns UP.
    if links.iter().any(|l| l.kind == LinkKind::Veth && l.admin_up && l.carrier && l.oper != OperState::Up) {
        return false;
    }
    for bridge in links.iter().filter(|l| l.kind == LinkKind::Bridge && l.admin_up) {
        let live: Vec<&LinkState> =
            links.iter().filter(|l| l.master == Some(bridge.index) && l.admin_up && l.carrier).collect();
        if live.iter().any(|p| p.port_state != Some(PortState::Forwarding)) {
            return false;
        }
        // Like a veth, a bridge drops what the host sends through it until linkwatch
        // has attached its queue, which is when it turns oper-UP (this can take up to
        // a second when the bridge was up before its ports).
        let activated = bridge.carrier && bridge.oper == OperState::Up;
        if !live.is_empty() && !activated {
            return false;
        }
    }
    links.iter().filter(|l| l.kind == LinkKind::Bond && l.admin_up).all(|bond| bond_settled(bond, links))
}

/// A bond notices its ports' carrier every miimon: until then it may keep an
/// active port that has failed (and drop what arrives on the one that took over),
/// or lack carrier with a live port. Settled when its carrier is its ports' and
/// the active port (active-backup) is a live one, if any is.
fn bond_settled(bond: &LinkState, links: &[LinkState]) -> bool {
    let Some(crate::model::LinkDetails::Bond { mode, miimon, active }) = &bond.details else { return true };
    if *miimon == 0 {
        return true; // it never looks: nothing to wait for
    }
    let live: Vec<u32> =
        links.iter().filter(|l| l.master == Some(bond.index) && l.admin_up && l.carrier).map(|l| l.index).collect();
    let has_live = !live.is_empty();
    if bond.carrier != has_live || (bond.carrier && bond.oper != OperState::Up) {
        return false;
    }
    *mode != crate::model::BondMode::ActiveBackup || live.is_empty() || active.is_some_and(|a| live.contains(&a))
}

/// Link events of one node, from a multicast netlink socket opened inside it.
pub(crate) struct LinkWatcher {
    events: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    task: tokio::task::JoinHandle<()>,
    _handle: rtnetlink::Handle,
}

impl LinkWatcher {
    pub(crate) fn open(node: &Node, home: &File) -> Result<LinkWatcher> {
        let (conn, handle, events) = node
            .enter(home, || rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link]))?
            .map_err(|e| Error::io(format!("watching the links of {}", node.name), e))?;
        Ok(LinkWatcher { events, task: tokio::spawn(conn), _handle: handle })
    }

    /// Waits for the node's next link event, at most until `deadline`.
    pub(crate) async fn next_until(&mut self, deadline: Instant) {
        use futures::StreamExt;
        let _ = tokio::time::timeout_at(deadline.into(), self.events.next()).await;
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: LinkKind, admin_up: bool, carrier: bool, oper: OperState) -> LinkState {
        LinkState {
            index: 3,
            name: "docker0".into(),
            kind,
            mac: String::new(),
            admin_up,
            oper,
            carrier,
            mtu: 1500,
            master: None,
            peer_index: None,
            port_state: None,
            ipv6: false,
            txqueuelen: 1000,
            alias: None,
            details: None,
            port_opts: None,
        }
    }

    /// Seen under Debian's 6.1 kernel in a slow VM: a bridge without ports, just up,
    /// its carrier off and linkwatch not there yet — `ip link` says UNKNOWN, without
    /// NO-CARRIER. Not what the lab must read: linkwatch makes it DOWN.
    #[test]
    fn an_up_device_without_carrier_is_settled_only_once_down() {
        use OperState::{Down, LowerLayerDown, Unknown, Up};
        assert!(!operstate_converged(&link(LinkKind::Bridge, true, false, Unknown)));
        assert!(!operstate_converged(&link(LinkKind::Bridge, true, false, Up)));
        assert!(operstate_converged(&link(LinkKind::Bridge, true, false, Down)));
        assert!(operstate_converged(&link(LinkKind::Macvlan, true, false, LowerLayerDown)));
        assert!(!operstate_converged(&link(LinkKind::Tun, true, false, Unknown)));
        // With carrier a bridge may stay UNKNOWN (no port yet); administratively down
        // anything but UP will do.
        assert!(operstate_converged(&link(LinkKind::Bridge, true, true, Unknown)));
        assert!(operstate_converged(&link(LinkKind::Veth, false, false, Down)));
        assert!(!operstate_converged(&link(LinkKind::Veth, true, true, Unknown)));
    }
}
