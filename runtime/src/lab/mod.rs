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
use crate::link::LinkState;
use crate::names::{LinkName, NodeName};
use crate::node::Node;
use crate::ping::{self, PingMode, PingReport};
use crate::sysctl;

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
    host: Rc<Node>,
    nodes: RefCell<BTreeMap<String, Rc<Node>>>,
    /// veth pairs the lab made: readiness waits for both ends when both are up.
    veths: RefCell<Vec<VethPair>>,
    /// Something changed since the last readiness wait for probes / for state queries.
    dirty: Cell<bool>,
    dirty_state: Cell<bool>,
    /// Time spent in readiness waits, for the benchmark line.
    ready_wait: Cell<Duration>,
    /// Built-in servers; they stop when the lab ends.
    servers: RefCell<Vec<Rc<Server>>>,
    pub options: LabOptions,
}

pub const HOST: &str = "host";

/// Both ends of a veth pair: (node, name) and (peer node, peer name).
type VethPair = (Rc<Node>, LinkName, Rc<Node>, LinkName);

impl Lab {
    /// Must run inside the sandbox, on the main thread.
    pub fn new(options: LabOptions) -> Result<Lab> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        let home = crate::nsenter::current_netns()?;
        Self::prepare_etc()?;
        raise_fd_limit();
        let host_name = NodeName::new(HOST)?;
        let host = Rc::new(rt.block_on(async { Node::host(host_name) })?);
        // A real host has its loopback up; new nodes start with it down, as `ip netns add` does.
        rt.block_on(host.set_link_up(&LinkName::new("lo")?, true))?;
        let nodes = RefCell::new(BTreeMap::from([(HOST.to_string(), host.clone())]));
        Ok(Lab {
            rt,
            home,
            host,
            nodes,
            veths: Default::default(),
            dirty: Cell::new(false),
            dirty_state: Cell::new(false),
            ready_wait: Default::default(),
            servers: Default::default(),
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
            let path = std::path::Path::new(crate::sandbox::NETNS_DIR).join(name);
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&path);
        }
        self.nodes.borrow_mut().retain(|name, _| name == HOST);
        self.veths.borrow_mut().clear();
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

    pub fn mark_changed(&self) {
        self.dirty.set(true);
        self.dirty_state.set(true);
    }

    /// `ip netns add NAME`.
    pub fn create_node(&self, name: &str) -> Result<Rc<Node>> {
        let name = NodeName::new(name)?;
        if self.nodes.borrow().contains_key(name.as_str()) {
            return Err(Error::NodeExists { name: name.to_string() });
        }
        let node = Rc::new(self.rt.block_on(async { Node::create(name.clone(), &self.home) })?);
        self.nodes.borrow_mut().insert(name.to_string(), node.clone());
        Ok(node)
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

    pub fn record_veth(&self, a: &Rc<Node>, a_name: &LinkName, b: &Rc<Node>, b_name: &LinkName) {
        self.veths.borrow_mut().push((a.clone(), a_name.clone(), b.clone(), b_name.clone()));
    }

    /// Writes a net.* sysctl inside `node`.
    pub fn set_sysctl(&self, node: &Node, key: &str, value: &str) -> Result<()> {
        sysctl::path_for(key)?;
        node.enter(&self.home, || sysctl::write_current(key, value))?.map_err(|e| {
            let reason =
                if e.kind() == std::io::ErrorKind::NotFound { "no such sysctl".to_string() } else { e.to_string() };
            Error::BadSysctl { key: key.to_string(), reason: format!("{reason} (in {})", node.name) }
        })?;
        self.mark_changed();
        Ok(())
    }

    pub fn get_sysctl(&self, node: &Node, key: &str) -> Result<String> {
        sysctl::path_for(key)?;
        node.enter(&self.home, || sysctl::read_current(key))?
            .map_err(|e| Error::BadSysctl { key: key.to_string(), reason: format!("{e} (in {})", node.name) })
    }

    /// Waits until what the lab brought up is usable: veth pairs with both ends up
    /// have carrier, bridge ports with carrier are forwarding, bridges with a
    /// forwarding port have carrier. Bounded by a deadline; never a blind sleep.
    /// Carrier (IFF_LOWER_UP) is what lets packets through; the RFC 2863 operstate
    /// follows later from the kernel's linkwatch worker, up to a second later for a
    /// veth whose ifindex equals its peer's (a "non-urgent" event), so waiting for it
    /// would only add time.
    pub fn settle(&self) -> Result<()> {
        if !self.dirty.get() {
            return Ok(());
        }
        self.wait_until()?;
        self.dirty.set(false);
        Ok(())
    }

    /// Before reading link state back (link(), links()): like settle(), and also wait
    /// until the operstate of the node's links (or of one link) agrees with its
    /// carrier, so a lab that checks "veth0 is UP" sees what `ip link` shows once the
    /// kernel is done. Only the links asked about are waited for.
    pub fn settle_links(&self, node: &Node, link: Option<&str>) -> Result<()> {
        self.settle()?;
        if !self.dirty_state.get() {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + self.deadline(3.0);
        let mut pause = Duration::from_millis(1);
        let result = self.rt.block_on(async {
            loop {
                let links = node.links().await?;
                let pending = links
                    .iter()
                    .filter(|l| link.is_none_or(|name| l.name == name))
                    .any(|l| l.kind != "loopback" && !operstate_converged(l));
                if !pending || Instant::now() >= deadline {
                    return Ok::<(), Error>(());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        });
        self.ready_wait.set(self.ready_wait.get() + started.elapsed());
        result
    }

    fn wait_until(&self) -> Result<()> {
        let started = Instant::now();
        let result = self.wait_until_inner();
        self.ready_wait.set(self.ready_wait.get() + started.elapsed());
        result
    }

    fn wait_until_inner(&self) -> Result<()> {
        let deadline = Instant::now() + self.deadline(5.0);
        let mut pause = Duration::from_millis(1);
        self.rt.block_on(async {
            loop {
                if self.is_ready().await? || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Ok::<(), Error>(())
        })
    }

    async fn is_ready(&self) -> Result<bool> {
        let nodes = self.nodes();
        let dumps = futures::future::try_join_all(nodes.iter().map(|n| n.links())).await?;
        let by_node: BTreeMap<&str, &Vec<LinkState>> =
            nodes.iter().map(|n| n.name.as_str()).zip(dumps.iter()).collect();
        let find = |node: &Node, name: &LinkName| {
            by_node.get(node.name.as_str()).and_then(|links| links.iter().find(|l| l.name == name.as_str()))
        };
        for (a, a_name, b, b_name) in self.veths.borrow().iter() {
            if let (Some(x), Some(y)) = (find(a, a_name), find(b, b_name)) {
                if x.admin_up && y.admin_up && !(x.carrier && y.carrier) {
                    return Ok(false);
                }
            }
        }
        for links in &dumps {
            for bridge in links.iter().filter(|l| l.kind == "bridge" && l.admin_up) {
                let ports: Vec<&LinkState> = links.iter().filter(|l| l.master == Some(bridge.index)).collect();
                let live: Vec<&&LinkState> = ports.iter().filter(|p| p.admin_up && p.carrier).collect();
                if live.iter().any(|p| p.port_state.as_deref() != Some("forwarding")) {
                    return Ok(false);
                }
                if !live.is_empty() && !bridge.carrier {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// In-process ping from `node` to `dst`.
    pub fn ping(&self, node: &Node, dst: IpAddr, mode: PingMode) -> Result<PingReport> {
        self.settle()?;
        let sock = node
            .enter(&self.home, || ping::icmp_socket(dst))?
            .map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
        self.rt
            .block_on(ping::ping(sock, dst, mode, Duration::from_millis(100)))
            .map_err(|e| Error::kernel("pinging from", node.name.as_str(), dst.to_string(), e))
    }

    /// Pings from many nodes at once (one request stream each); returns each report.
    pub fn ping_many(&self, sources: &[Rc<Node>], dst: IpAddr, mode: PingMode) -> Result<Vec<PingReport>> {
        self.settle()?;
        let mut socks = Vec::with_capacity(sources.len());
        for node in sources {
            let sock = node
                .enter(&self.home, || ping::icmp_socket(dst))?
                .map_err(|e| Error::kernel("opening an ICMP socket", node.name.as_str(), "", e))?;
            socks.push(sock);
        }
        let probes = socks.into_iter().map(|s| ping::ping(s, dst, mode, Duration::from_millis(100)));
        self.rt
            .block_on(futures::future::try_join_all(probes))
            .map_err(|e| Error::kernel("pinging", "several nodes", dst.to_string(), e))
    }

    /// Runs a program inside `node` (see exec.rs).
    pub fn exec(&self, node: &Node, cmd: &CommandLine, timeout: Duration) -> Result<ExecOutput> {
        self.settle()?;
        let binds = self.bind_mounts(node);
        let out = self.rt.block_on(exec::exec_in(node, cmd, &binds, None, timeout));
        // A program may have changed links or routes behind our back.
        self.mark_changed();
        out
    }
}

/// Each node holds a namespace handle and a netlink socket, and a batch ping one
/// ICMP socket per node: raise the soft limit on open files to the hard limit.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// With carrier the operstate becomes UP (or UNKNOWN, for devices that do not report
/// one); without, anything but UP.
fn operstate_converged(l: &LinkState) -> bool {
    match l.admin_up && l.carrier {
        true => l.oper == "UP" || l.oper == "UNKNOWN",
        false => l.oper != "UP",
    }
}
