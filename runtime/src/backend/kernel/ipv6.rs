//! IPv6 beyond the addresses a lab gives: turning it on quickly, netlab's router
//! advertisement sender, and the readiness wait for what the kernel configures by
//! itself (duplicate address detection, SLAAC).

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{answered, Lab, NEIGH_RETRANS_MS};
use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};
use crate::model::{AddrState, LinkKind, LinkState, PortState, RouteState, RouterAdvert};
use crate::names::LinkName;
use crate::service::{self, RaSender};

/// netlab's router advertisements on one link.
pub struct Advertiser {
    pub node: String,
    pub ifindex: u32,
    pub ra: RouterAdvert,
    pub sender: RaSender,
    /// When the readiness wait last asked it for an advertisement.
    kicked: std::cell::Cell<Option<Instant>>,
}

/// How often the readiness wait looks again at addresses and routes.
const IPV6_POLL: Duration = Duration::from_millis(5);
/// How often it asks a sender for one more advertisement while a host lacks one.
const KICK_EVERY: Duration = Duration::from_millis(50);

impl Lab {
    /// Before IPv6 goes on for `dev` (a link, `all` or `default`): the kernel starts
    /// duplicate address detection after a random delay of up to
    /// `router_solicitation_delay` (1 s) and waits `retrans_time` (1 s) per probe. Inside the
    /// lab both are made short (0 and 10 ms, per link and per namespace), so a new
    /// link-local address is usable within milliseconds. DAD sends 3 probes instead of
    /// 1 (`dad_transmits`): 30 ms in all, so that a holder of the same address whose
    /// own start-up (joining the solicited-node group, a work item of the kernel's)
    /// lags by a few milliseconds still answers, as it would within the kernel's 1 s.
    pub(super) fn ipv6_fast_start(&self, node: &Node, dev: &str) -> Result<()> {
        self.ipv6_used.set(true);
        let mut devs = vec![dev.to_string()];
        if dev == "all" {
            devs = vec!["default".to_string()];
            let links = self.netlink(node.name.as_str(), || "ip link show".into(), node.links())?;
            devs.extend(links.into_iter().filter(|l| l.kind != LinkKind::Loopback).map(|l| l.name));
        }
        let retrans = NEIGH_RETRANS_MS.to_string();
        for d in &devs {
            // A link whose IPv6 was never on may lack the keys: nothing to speed up.
            let _ = node.write_sysctl(&self.home, &format!("net/ipv6/conf/{d}/router_solicitation_delay"), "0")?;
            let _ = node.write_sysctl(&self.home, &format!("net/ipv6/neigh/{d}/retrans_time_ms"), &retrans)?;
            let _ = node.write_sysctl(&self.home, &format!("net/ipv6/conf/{d}/dad_transmits"), "3")?;
        }
        Ok(())
    }

    /// Once a lab uses IPv6, the links an op made or changed get their fast
    /// neighbour discovery at once, not at the next readiness wait: duplicate address
    /// detection starts with the carrier and waits `retrans_time` as it was then.
    pub(super) fn tune_ipv6_links(&self, nodes: &[&crate::names::NodeName]) -> Result<()> {
        if !self.ipv6_used.get() {
            return Ok(());
        }
        for name in nodes {
            let Ok(node) = self.node(name.as_str()) else { continue };
            if node.is_deleted() {
                continue;
            }
            let links = self.netlink(name.as_str(), || "ip link show".into(), node.links())?;
            let op = || "sysctl net.ipv6.neigh.LINK.retrans_time_ms".to_string();
            self.netlink(name.as_str(), op, self.tune_neighbours(&node, &links))?;
        }
        Ok(())
    }

    /// `advertise()`: IPv6 on for the link, and netlab's sender started on it.
    pub(super) fn start_advertising(&self, node: &Node, link: &LinkName, ra: &RouterAdvert) -> Result<()> {
        let state = self.netlink(node.name.as_str(), || format!("ip link show {link}"), node.link(link))?;
        if self.adverts.borrow().iter().any(|a| a.node == node.name.as_str() && a.ifindex == state.index) {
            let mut e = Error::kernel(
                "advertising on",
                node.name.as_str(),
                link.as_str(),
                std::io::Error::from_raw_os_error(libc::EEXIST),
            );
            if let Error::Kernel { help, .. } = &mut e {
                *help = Some(format!(
                    "{} already advertises on {link}; one advertise() per link, with every prefix",
                    node.name
                ));
            }
            return Err(e);
        }
        let mac = parse_mac(&state.mac).ok_or_else(|| {
            Error::kernel(
                "advertising on",
                node.name.as_str(),
                link.as_str(),
                std::io::Error::other("the link has no Ethernet address"),
            )
        })?;
        self.set_sysctl(node, &format!("net/ipv6/conf/{link}/disable_ipv6"), "0")?;
        let sock = node
            .enter(&self.home, || service::advert_socket(state.index))?
            .map_err(|e| Error::kernel("opening a raw ICMPv6 socket on", node.name.as_str(), link.as_str(), e))?;
        let sender = self.rt.block_on(async { service::start_ra(sock, state.index, mac, ra) }).map_err(|e| {
            Error::io(format!("starting router advertisements in {}", node.name), std::io::Error::other(e.to_string()))
        })?;
        self.adverts.borrow_mut().push(Advertiser {
            node: node.name.to_string(),
            ifindex: state.index,
            ra: ra.clone(),
            sender,
            kicked: Default::default(),
        });
        self.ipv6_used.set(true);
        self.mark_changed();
        Ok(())
    }

    /// A program that turns IPv6 on or adds an IPv6 address (`sysctl -w
    /// net.ipv6.conf.eth0.disable_ipv6=0`, `ip -6 addr add`, as the model reads its
    /// command line): from now on the readiness wait covers DAD, which such an
    /// address goes through unless the program said `nodad`.
    pub(super) fn note_ipv6_in_program(&self, node: &Node, cmd: &super::exec::CommandLine) {
        if self.ipv6_used.get() {
            return;
        }
        let text = cmd.shell.clone().unwrap_or_else(|| cmd.argv.join(" "));
        let uses_ipv6 = crate::model::ops_of(&node.name, &text).iter().any(|op| match op {
            crate::model::Op::AddAddr { cidr, .. } => cidr.addr().is_ipv6(),
            crate::model::Op::SetSysctl { key, value, .. } => key.contains("disable_ipv6") && value.trim() == "0",
            _ => false,
        });
        if uses_ipv6 {
            self.ipv6_used.set(true);
        }
    }

    /// Whether netlab sends router advertisements anywhere in the lab.
    pub(super) fn advertising(&self) -> bool {
        !self.adverts.borrow().is_empty()
    }

    /// The senders of a node that goes stop (their sockets would keep its
    /// namespace alive); so do those of a link that goes.
    pub(super) fn stop_advertising(&self, node: &str, ifindex: Option<u32>) {
        self.adverts.borrow_mut().retain(|a| a.node != node || ifindex.is_some_and(|i| i != a.ifindex));
    }

    /// Waits until no IPv6 address of `nodes` is still tentative (duplicate address
    /// detection has passed, or failed: `dadfailed`), and every link that takes
    /// netlab's router advertisements has configured itself from them: an address
    /// per prefix, DAD done, and the default route via the router. Only once a lab
    /// has turned IPv6 on; with a sender, every node is looked at. Bounded by a
    /// deadline; polled, since the kernel does this on its own timers.
    pub(super) fn settle_ipv6(&self, touched: Vec<Rc<Node>>) -> Result<()> {
        if !self.ipv6_used.get() {
            return Ok(());
        }
        let nodes = if self.adverts.borrow().is_empty() { touched } else { self.nodes() };
        if nodes.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + self.deadline(5.0);
        let result = self.rt.block_on(crate::interrupt::unless_interrupted(async {
            loop {
                if !self.ipv6_pending(&nodes).await? || Instant::now() >= deadline {
                    return Ok::<(), Error>(());
                }
                tokio::time::sleep(IPV6_POLL).await;
            }
        }));
        self.ready_wait.set(self.ready_wait.get() + started.elapsed());
        result?
    }

    /// Whether something of IPv6 is still on its way in `nodes` (see settle_ipv6).
    async fn ipv6_pending(&self, nodes: &[Rc<Node>]) -> Result<bool> {
        let limit = self.netlink_limit();
        let mut seen: Vec<(Rc<Node>, Vec<LinkState>, Vec<AddrState>)> = Vec::new();
        for node in nodes {
            let links = answered(limit, node.name.as_str(), || "ip -d link show".into(), node.links()).await?;
            if !links.iter().any(|l| l.ipv6 && l.kind != LinkKind::Loopback) {
                continue;
            }
            let addrs = answered(limit, node.name.as_str(), || "ip addr show".into(), node.addresses()).await?;
            if addrs.iter().any(|a| a.flags.tentative && !a.flags.dadfailed) {
                return Ok(true);
            }
            seen.push((node.clone(), links, addrs));
        }
        // What each sender advertises, copied: the checks below wait on the kernel.
        let adverts: Vec<(usize, String, u32, RouterAdvert)> = self
            .adverts
            .borrow()
            .iter()
            .enumerate()
            .map(|(i, a)| (i, a.node.clone(), a.ifindex, a.ra.clone()))
            .collect();
        let mut pending = false;
        for (i, router, ifindex, ra) in &adverts {
            let Some((_, router_links, router_addrs)) = seen.iter().find(|(n, _, _)| n.name.as_str() == router) else {
                continue;
            };
            let Some(router_link) = router_links.iter().find(|l| l.index == *ifindex) else { continue };
            if !(router_link.admin_up && router_link.carrier && router_link.ipv6) {
                continue;
            }
            let usable_ll = |a: &&AddrState| a.link_index == *ifindex && is_link_local(a.cidr.addr());
            let Some(router_ll) = router_addrs.iter().find(usable_ll) else { continue };
            if router_ll.flags.dadfailed {
                continue; // no advertisement can leave without a source address
            }
            for (node, link) in segment(&seen, router, router_link) {
                if !self.configured(node, link, &seen, ra, router_ll.cidr.addr()).await? {
                    pending = true;
                    self.kick(*i);
                }
            }
        }
        Ok(pending)
    }

    /// Asks sender `i` for one more advertisement, at most every KICK_EVERY.
    fn kick(&self, i: usize) {
        let adverts = self.adverts.borrow();
        let Some(advert) = adverts.get(i) else { return };
        if advert.kicked.get().is_none_or(|t| t.elapsed() >= KICK_EVERY) {
            advert.sender.kick();
            advert.kicked.set(Some(Instant::now()));
        }
    }

    /// Whether `link` of `node` has what `ra` gives it (nothing, when it does not
    /// take router advertisements).
    async fn configured(
        &self,
        node: &Rc<Node>,
        link: &LinkState,
        seen: &[(Rc<Node>, Vec<LinkState>, Vec<AddrState>)],
        ra: &RouterAdvert,
        router: IpAddr,
    ) -> Result<bool> {
        // A bridge port's frames go to its bridge: its own IPv6 never sees them.
        if !link.ipv6 || !link.carrier || link.kind == LinkKind::Loopback || link.master.is_some() {
            return Ok(true);
        }
        let conf = |key: &str, default: i64| -> Result<i64> {
            let value = node.read_sysctl(&self.home, &format!("net/ipv6/conf/{}/{key}", link.name))?;
            Ok(value.ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default))
        };
        let accept = match conf("accept_ra", 1)? {
            2 => true,
            1 => conf("forwarding", 0)? == 0,
            _ => false,
        };
        if !accept {
            return Ok(true);
        }
        let addrs = seen.iter().find(|(n, _, _)| Rc::ptr_eq(n, node)).map(|(_, _, a)| a.as_slice()).unwrap_or(&[]);
        if conf("autoconf", 1)? != 0 {
            // Any address of the prefix: the EUI-64 one, or what addr_gen_mode makes.
            for prefix in ra.prefixes.iter().filter(|p| p.prefix_len() == 64) {
                if !addrs
                    .iter()
                    .any(|a| a.link_index == link.index && a.flags.dynamic && prefix.contains(&a.cidr.addr()))
                {
                    return Ok(false);
                }
            }
        }
        if ra.default_route && conf("accept_ra_defrtr", 1)? != 0 {
            let routes: Vec<RouteState> =
                answered(self.netlink_limit(), node.name.as_str(), || "ip -6 route".into(), node.routes()).await?;
            let has_default = routes
                .iter()
                .any(|r| r.destination.is_none() && r.gateway == Some(router) && r.device_index == Some(link.index));
            if !has_default {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The links on the Ethernet segment of `from` (in `node`), itself excluded, that
/// pass frames now: veth peers (a lab's ifindexes are distinct across its nodes),
/// bridges and their forwarding ports.
fn segment<'a>(
    seen: &'a [(Rc<Node>, Vec<LinkState>, Vec<AddrState>)],
    node: &str,
    from: &'a LinkState,
) -> Vec<(&'a Rc<Node>, &'a LinkState)> {
    let all: Vec<(&Rc<Node>, &LinkState)> =
        seen.iter().flat_map(|(n, links, _)| links.iter().map(move |l| (n, l))).collect();
    let Some(start) = all.iter().position(|(n, l)| n.name.as_str() == node && std::ptr::eq(*l, from)) else {
        return Vec::new();
    };
    let forwarding = |l: &LinkState| l.port_state == Some(PortState::Forwarding);
    let mut members = vec![start];
    let mut at = 0;
    while at < members.len() {
        let (n, l) = all[members[at]];
        at += 1;
        let next = all.iter().enumerate().filter(|(_, (m, k))| {
            let same_node = Rc::ptr_eq(n, m);
            let peers = l.kind == LinkKind::Veth
                && k.kind == LinkKind::Veth
                && l.carrier
                && k.carrier
                && l.peer_index == Some(k.index)
                && k.peer_index == Some(l.index);
            let my_bridge = same_node && forwarding(l) && l.master == Some(k.index);
            let my_port = same_node && l.kind == LinkKind::Bridge && k.master == Some(l.index) && forwarding(k);
            peers || my_bridge || my_port
        });
        let next: Vec<usize> = next.map(|(i, _)| i).collect();
        for i in next {
            if !members.contains(&i) {
                members.push(i);
            }
        }
    }
    members.into_iter().skip(1).map(|i| all[i]).collect()
}

fn is_link_local(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> =
        text.split(':').map(|h| u8::from_str_radix(h, 16)).collect::<std::result::Result<_, _>>().ok()?;
    bytes.try_into().ok()
}
