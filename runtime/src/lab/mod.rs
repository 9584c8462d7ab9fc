//! The running lab: the tokio runtime, the host node and every node created, and the
//! readiness wait that runs before each check.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::{known_names_help, Error, Result};
use crate::exec::{self, CommandLine, ExecOutput};
use crate::model::{LinkKind, LinkState, OperState, PortState};
use crate::names::{LinkName, NodeName};
use crate::node::Node;
use crate::ping::{self, PingMode, PingReport};
use crate::sysctl;

mod backend;
mod etc;
mod firewall;
mod services;

pub use services::{Server, ServerKind};

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Multiplies every deadline, for slow machines.
    pub slow_factor: f64,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions { slow_factor: 1.0 }
    }
}

pub struct Lab {
    rt: tokio::runtime::Runtime,
    /// The sandbox's own namespace, which the main thread always returns to.
    home: File,
    /// The nodes' netlink connections (a bounded number open at once).
    pool: Rc<crate::node::NetlinkPool>,
    host: Rc<Node>,
    nodes: RefCell<BTreeMap<String, Rc<Node>>>,
    /// veth pairs the lab made: readiness waits for both ends when both are up.
    /// Nodes that pinged since the last neighbour flush (their entries exist).
    neigh_warm: RefCell<std::collections::HashSet<String>>,
    /// Nodes that have a bridge: the only ones whose readiness is asynchronous.
    bridge_nodes: RefCell<std::collections::BTreeSet<String>>,
    /// Nodes whose links changed since the last readiness wait.
    touched: RefCell<std::collections::BTreeSet<String>>,
    /// A program ran in a node and may have made bridges: check every node once.
    check_all: Cell<bool>,
    /// Something changed since the last readiness wait.
    dirty: Cell<bool>,
    /// Time spent in readiness waits, for the benchmark line.
    ready_wait: Cell<Duration>,
    /// Built-in servers; they stop when the lab ends.
    servers: RefCell<Vec<Rc<Server>>>,
    /// A probe went unanswered since the last flush of unresolved neighbour entries.
    unanswered: Cell<bool>,
    /// Links whose neighbour timing netlab has set: (node, ifindex, name).
    tuned: RefCell<std::collections::HashSet<(String, u32, String)>>,
    pub options: LabOptions,
}

pub const HOST: &str = "host";

/// The shortest watch of a negative ping: far beyond a round trip between the
/// lab's namespaces (microseconds), and long enough for every hop of the path to
/// have started resolving its next hop if it has to (see Lab::ping).
const QUIET_AFTER: Duration = Duration::from_millis(30);
/// ARP/ND retransmit time inside the lab (see tune_neighbours); the kernel's
/// floor is 10 ms (HZ/100).
const NEIGH_RETRANS_MS: &str = "10";
/// Pings in flight at once in a batch (see ping_many).
const PING_CONCURRENCY: usize = 8;
/// Neighbour-table entries left free for everything else on the machine.
const NEIGH_MARGIN: usize = 16;

impl Lab {
    /// Must run inside the sandbox, on the main thread.
    pub fn new(options: LabOptions) -> Result<Lab> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        let home = crate::nsenter::current_netns()?;
        Self::prepare_etc()?;
        let pool = Rc::new(crate::node::NetlinkPool::new(&home)?);
        raise_fd_limit();
        let host_name = NodeName::new(HOST)?;
        let host = Rc::new(rt.block_on(async { Node::host(host_name) })?);
        // A real host has its loopback up; new nodes start with it down, as `ip netns add` does.
        rt.block_on(host.set_link_up(&LinkName::new("lo")?, true))?;
        let nodes = RefCell::new(BTreeMap::from([(HOST.to_string(), host.clone())]));
        Ok(Lab {
            rt,
            home,
            pool,
            host,
            nodes,
            bridge_nodes: Default::default(),
            neigh_warm: Default::default(),
            touched: Default::default(),
            check_all: Cell::new(false),
            dirty: Cell::new(false),
            ready_wait: Default::default(),
            servers: Default::default(),
            tuned: Default::default(),
            unanswered: Cell::new(false),
            options,
        })
    }

    /// Total time spent waiting for readiness so far.
    pub fn ready_wait(&self) -> Duration {
        self.ready_wait.get()
    }

    /// Ends the lab: stops the servers and releases every namespace (their bind
    /// mounts go; the kernel frees them and their devices in the background). The
    /// process exit would do the same; doing it here lets the run time it.
    pub fn teardown(&self) {
        self.servers.borrow_mut().clear();
        for name in self.nodes.borrow().keys().filter(|n| n.as_str() != HOST) {
            let _ = remove_netns_name(name);
        }
        self.nodes.borrow_mut().retain(|name, _| name == HOST);
        self.pool.close_all();
        self.bridge_nodes.borrow_mut().clear();
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn host(&self) -> Rc<Node> {
        self.host.clone()
    }

    pub fn deadline(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds * self.options.slow_factor)
    }

    fn mark_changed(&self) {
        self.dirty.set(true);
    }

    /// `ip netns add NAME`.
    pub fn create_node(&self, name: &str) -> Result<Rc<Node>> {
        let name = NodeName::new(name)?;
        if self.nodes.borrow().contains_key(name.as_str()) {
            return Err(Error::NodeExists { name: name.to_string() });
        }
        let node = Rc::new(self.rt.block_on(async { Node::create(name.clone(), &self.pool) })?);
        self.nodes.borrow_mut().insert(name.to_string(), node.clone());
        Ok(node)
    }

    /// `ip netns delete NAME`: the name goes from /run/netns and netlab lets go of
    /// the namespace, so the kernel destroys it with its links. Its veths are
    /// deleted first, taking their peers in other nodes with them at once (the
    /// kernel would do that a little later, in the background). A server started
    /// in the node keeps its socket, like a process keeps a deleted namespace alive.
    pub fn delete_node(&self, node: &Rc<Node>) -> Result<()> {
        if self.is_host(node) {
            return Err(Error::BadNodeName {
                name: node.name.to_string(),
                reason: "the host is the sandbox's own namespace; it cannot be deleted".into(),
            });
        }
        let veths: Vec<LinkName> = self
            .rt
            .block_on(node.links())?
            .into_iter()
            .filter(|l| l.kind == LinkKind::Veth)
            .filter_map(|l| LinkName::new(&l.name).ok())
            .collect();
        for veth in &veths {
            self.rt.block_on(node.delete_link(veth))?;
        }
        remove_netns_name(node.name.as_str())?;
        etc::unpublish_uts(node.name.as_str());
        self.nodes.borrow_mut().remove(node.name.as_str());
        let name = node.name.to_string();
        self.bridge_nodes.borrow_mut().remove(&name);
        self.touched.borrow_mut().remove(&name);
        self.neigh_warm.borrow_mut().remove(&name);
        self.tuned.borrow_mut().retain(|(n, _, _)| *n != name);
        node.release();
        // Peers elsewhere went with the veths: look at every node again.
        self.mark_changed();
        self.check_all.set(true);
        Ok(())
    }

    pub fn node(&self, name: &str) -> Result<Rc<Node>> {
        self.nodes.borrow().get(name).cloned().ok_or_else(|| Error::NoSuchNode {
            name: name.to_string(),
            help: known_names_help("nodes", &self.nodes.borrow().keys().cloned().collect::<Vec<_>>()),
        })
    }

    pub fn nodes(&self) -> Vec<Rc<Node>> {
        self.nodes.borrow().values().cloned().collect()
    }

    /// A bridge was found in `node`: readiness waits look there.
    fn record_bridge(&self, node: &Node) {
        self.bridge_nodes.borrow_mut().insert(node.name.to_string());
    }

    /// Writes a net.* sysctl inside `node`.
    pub fn set_sysctl(&self, node: &Node, key: &str, value: &str) -> Result<()> {
        sysctl::path_for(key)?;
        node.enter(&self.home, || sysctl::write_current(key, value))?.map_err(|e| {
            if let Some(missing) = missing_module(key, &e) {
                return missing;
            }
            let reason =
                if e.kind() == std::io::ErrorKind::NotFound { "no such sysctl".to_string() } else { e.to_string() };
            Error::BadSysctl { key: key.to_string(), reason: format!("{reason} (in {})", node.name) }
        })?;
        self.mark_changed();
        Ok(())
    }

    pub fn get_sysctl(&self, node: &Node, key: &str) -> Result<String> {
        sysctl::path_for(key)?;
        node.enter(&self.home, || sysctl::read_current(key))?.map_err(|e| {
            missing_module(key, &e)
                .unwrap_or_else(|| Error::BadSysctl { key: key.to_string(), reason: format!("{e} (in {})", node.name) })
        })
    }

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
        self.wait_links(nodes, links_ready, 5.0)?;
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
        let result = self.rt.block_on(async {
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
        });
        self.ready_wait.set(self.ready_wait.get() + started.elapsed());
        result
    }

    /// Those of `nodes` whose links do not satisfy `ready` yet.
    async fn not_ready(&self, nodes: Vec<Rc<Node>>, ready: &impl Fn(&[LinkState]) -> bool) -> Result<Vec<Rc<Node>>> {
        // A few at a time: each dump may (re)open that node's netlink connection,
        // and a thousand of them at once would hold a thousand socket buffers.
        use futures::StreamExt;
        let dumps: Vec<Result<Vec<LinkState>>> =
            futures::stream::iter(nodes.iter().map(|n| n.links())).buffered(8).collect().await;
        let mut pending = Vec::new();
        for (node, links) in nodes.iter().zip(dumps) {
            let links = links?;
            self.tune_neighbours(node, &links)?;
            if links.iter().any(|l| l.kind == LinkKind::Bridge) {
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
    fn tune_neighbours(&self, node: &Node, links: &[LinkState]) -> Result<()> {
        let fresh: Vec<&LinkState> = {
            let tuned = self.tuned.borrow();
            links
                .iter()
                .filter(|l| l.kind != LinkKind::Loopback)
                .filter(|l| !tuned.contains(&(node.name.to_string(), l.index, l.name.clone())))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        node.enter(&self.home, || {
            for l in &fresh {
                // A dot in a link name is a slash in the sysctl path (eth0.10 -> eth0/10).
                let dir = l.name.replace('.', "/");
                for family in ["ipv4", "ipv6"] {
                    let path = format!("/proc/sys/net/{family}/neigh/{dir}/retrans_time_ms");
                    // IPv6 may be off for the link (no neigh directory): nothing to tune.
                    let _ = std::fs::write(path, NEIGH_RETRANS_MS);
                }
            }
        })?;
        self.tuned.borrow_mut().extend(fresh.iter().map(|l| (node.name.to_string(), l.index, l.name.clone())));
        Ok(())
    }

    /// Before a negative probe: the neighbour state a fresh command would meet, not
    /// the leftovers of an earlier probe that went unanswered (settle() may already
    /// have cleared them).
    pub fn clear_probe_leftovers(&self) -> Result<()> {
        if self.unanswered.get() {
            self.forget_unresolved_neighbours()?;
        }
        Ok(())
    }

    /// Deletes the neighbour entries of every node that are still being resolved
    /// or have failed (INCOMPLETE, FAILED).
    fn forget_unresolved_neighbours(&self) -> Result<()> {
        self.unanswered.set(false);
        let nodes = self.nodes();
        self.rt.block_on(async {
            for node in &nodes {
                node.forget_unresolved_neighbours().await?;
            }
            Ok(())
        })
    }

    /// Whether any node is resolving a neighbour (an INCOMPLETE entry): a packet
    /// may be waiting for it, and its answer may still come.
    async fn resolution_in_progress(&self, nodes: &[Rc<Node>]) -> Result<bool> {
        for node in nodes {
            if node.resolving_neighbours().await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A probe got no answer: it may have left INCOMPLETE/FAILED neighbour
    /// entries behind, which the next change of the network clears.
    pub fn note_unanswered(&self) {
        self.unanswered.set(true);
    }

    /// In-process ping from `node` to `dst`: one request every 100 ms until the
    /// first reply, or, watching a window, one every 10 ms from a clean neighbour
    /// state (see forget_unresolved_neighbours).
    pub fn ping(&self, node: &Node, dst: IpAddr, mode: PingMode) -> Result<PingReport> {
        self.settle()?;
        let interval = match mode {
            PingMode::UntilReply { .. } => Duration::from_millis(100),
            PingMode::Watch { .. } => {
                self.clear_probe_leftovers()?;
                Duration::from_millis(10)
            }
        };
        let sock = node
            .enter(&self.home, || ping::icmp_socket(dst))?
            .map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
        let (_, fulls_before) = crate::neigh::arp_stats();
        // A watch needs to last only while something can still come back: once no
        // neighbour resolution is in progress anywhere in the lab (none INCOMPLETE),
        // a request is answered within microseconds or not at all.
        let nodes = self.nodes();
        let quiet = || async { !self.resolution_in_progress(&nodes).await.unwrap_or(true) };
        let mut report = self
            .rt
            .block_on(ping::ping_until_quiet(sock, dst, mode, interval, Some((QUIET_AFTER, quiet))))
            .map_err(|e| Error::kernel("pinging from", node.name.as_str(), dst.to_string(), e))?;
        report.neigh_table_full = crate::neigh::arp_stats().1 > fulls_before;
        if report.received < report.sent {
            self.note_unanswered();
        }
        Ok(report)
    }

    /// Pings from many nodes at once (a bounded number in flight); returns each
    /// report and how many times the neighbour tables were flushed on the way.
    ///
    /// The kernel's neighbour table is one for the whole machine (see neigh.rs): a
    /// ping from a node whose entries are not there yet adds about two (the sender's
    /// for its next hop, the next hop's for the sender). Before a chunk that would
    /// not fit, the learned entries are flushed; and if the kernel still refused an
    /// entry during a chunk (its table_fulls counter rose), the entries are flushed
    /// and that chunk's unanswered pings are made again. So no ping is lost to
    /// "neighbour table overflow", and small labs never flush anything.
    pub fn ping_many(
        &self,
        sources: &[Rc<Node>],
        dst: IpAddr,
        mode: PingMode,
        interval: Duration,
    ) -> Result<(Vec<PingReport>, usize)> {
        self.settle()?;
        let mut reports = Vec::with_capacity(sources.len());
        let mut flushes = 0;
        let limit = crate::neigh::capacity().saturating_sub(NEIGH_MARGIN);
        for chunk in sources.chunks(PING_CONCURRENCY * 4) {
            let cold = chunk.iter().filter(|n| !self.neigh_warm.borrow().contains(n.name.as_str())).count();
            // The kernel's count when it can be read (not from inside another tool's
            // network namespace), and at least what our own pings since the last
            // flush have added.
            let in_use = crate::neigh::entries_in_use().max(2 * self.neigh_warm.borrow().len());
            if in_use + 2 * cold > limit {
                self.flush_neighbours()?;
                flushes += 1;
            }
            let (_, fulls_before) = crate::neigh::arp_stats();
            let mut done = self.ping_chunk(chunk, dst, mode, interval)?;
            let (_, fulls_after) = crate::neigh::arp_stats();
            if fulls_after > fulls_before {
                self.flush_neighbours()?;
                flushes += 1;
                let again: Vec<usize> = (0..chunk.len()).filter(|i| done[*i].received == 0).collect();
                let retry: Vec<Rc<Node>> = again.iter().map(|i| chunk[*i].clone()).collect();
                for (i, report) in again.into_iter().zip(self.ping_chunk(&retry, dst, mode, interval)?) {
                    done[i] = report;
                }
            }
            self.neigh_warm.borrow_mut().extend(chunk.iter().map(|n| n.name.to_string()));
            if done.iter().any(|r| r.received == 0) {
                self.note_unanswered();
            }
            reports.extend(done);
        }
        Ok((reports, flushes))
    }

    fn ping_chunk(
        &self,
        chunk: &[Rc<Node>],
        dst: IpAddr,
        mode: PingMode,
        interval: Duration,
    ) -> Result<Vec<PingReport>> {
        use futures::StreamExt;
        let mut socks = Vec::with_capacity(chunk.len());
        for node in chunk {
            let sock = node
                .enter(&self.home, || ping::icmp_socket(dst))?
                .map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
            socks.push(sock);
        }
        // A bounded number in flight: a burst of first packets means a burst of ARP
        // broadcasts, each flooded to every port of a bridge, which overflows the
        // kernel's input backlog and costs ARP retries (seconds).
        let probes = socks.into_iter().map(|s| ping::ping(s, dst, mode, interval));
        let done: Vec<std::io::Result<PingReport>> =
            self.rt.block_on(futures::stream::iter(probes).buffered(PING_CONCURRENCY).collect());
        done.into_iter()
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::kernel("pinging", "several nodes", dst.to_string(), e))
    }

    /// Flushes every node's learned neighbour entries.
    fn flush_neighbours(&self) -> Result<()> {
        let nodes = self.nodes();
        self.neigh_warm.borrow_mut().clear();
        self.rt.block_on(async {
            for node in &nodes {
                node.flush_neighbours().await?;
            }
            Ok(())
        })
    }

    /// Runs a program inside `node` (see exec.rs).
    pub fn exec(&self, node: &Node, cmd: &CommandLine, timeout: Duration) -> Result<ExecOutput> {
        self.settle()?;
        let binds = self.bind_mounts(node);
        let out = self.rt.block_on(exec::exec_in(node, cmd, &binds, None, timeout));
        // A program may have changed links or routes behind our back, and probed
        // addresses that do not answer (a failed `ping` leaves INCOMPLETE entries).
        self.mark_changed();
        self.check_all.set(true);
        self.note_unanswered();
        out
    }
}

/// Undoes `ip netns add`'s name: the bind mount under /run/netns and its file.
fn remove_netns_name(name: &str) -> Result<()> {
    let path = std::path::Path::new(crate::sandbox::NETNS_DIR).join(name);
    nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| Error::io(format!("unmounting {}", path.display()), e.into()))?;
    std::fs::remove_file(&path).map_err(|e| Error::io(format!("removing {}", path.display()), e))
}

/// A missing key of a family that exists only with its kernel module loaded.
fn missing_module(key: &str, e: &std::io::Error) -> Option<Error> {
    missing_module_in(key, e, |dir| std::path::Path::new(dir).exists())
}

fn missing_module_in(key: &str, e: &std::io::Error, dir_exists: impl Fn(&str) -> bool) -> Option<Error> {
    if e.kind() != std::io::ErrorKind::NotFound {
        return None;
    }
    let (module, dir) = match key {
        k if k.starts_with("net.bridge.") => ("br_netfilter", "/proc/sys/net/bridge"),
        k if k.starts_with("net.netfilter.") => ("nf_conntrack", "/proc/sys/net/netfilter"),
        _ => return None,
    };
    // With the module loaded its folder exists: then the key itself is wrong.
    if dir_exists(dir) {
        return None;
    }
    Some(Error::MissingModule {
        key: key.to_string(),
        module,
        help: Some(format!("load it on the machine (modprobe {module}); netlab never loads kernel modules")),
    })
}

/// Each node holds a namespace handle and a netlink socket, and a batch ping one
/// ICMP socket per node: raise the soft limit on open files to the hard limit.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// With carrier the operstate becomes UP (a veth passes through UNKNOWN on the way;
/// other devices may stay UNKNOWN when they report none); without, anything but UP.
pub(crate) fn operstate_converged(l: &LinkState) -> bool {
    match (l.admin_up && l.carrier, l.kind) {
        (true, LinkKind::Veth) => l.oper == OperState::Up,
        (true, _) => matches!(l.oper, OperState::Up | OperState::Unknown),
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
    true
}

/// Link events of one node, from a multicast netlink socket opened inside it.
struct LinkWatcher {
    events: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    task: tokio::task::JoinHandle<()>,
    _handle: rtnetlink::Handle,
}

impl LinkWatcher {
    fn open(node: &Node, home: &File) -> Result<LinkWatcher> {
        let (conn, handle, events) = node
            .enter(home, || rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link]))?
            .map_err(|e| Error::io(format!("watching the links of {}", node.name), e))?;
        Ok(LinkWatcher { events, task: tokio::spawn(conn), _handle: handle })
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

    #[test]
    fn a_missing_module_is_the_machines_lack_and_a_typo_the_labs() {
        let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = missing_module_in("net.bridge.bridge-nf-call-iptables", &gone, |_| false).expect("module missing");
        assert_eq!(err.class(), crate::ErrorClass::Environment);
        assert!(err.to_string().contains("br_netfilter is not loaded"), "{err}");
        assert!(missing_module_in("net.bridge.bridge-nf-call-nope", &gone, |_| true).is_none());
        assert!(missing_module_in("net.ipv4.nope", &gone, |_| false).is_none());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(missing_module_in("net.bridge.bridge-nf-call-iptables", &denied, |_| false).is_none());
    }
}
