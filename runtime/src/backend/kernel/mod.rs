//! The kernel backend: netlink, namespaces, sysctls, programs and probes inside the
//! sandbox. Its lab: the tokio runtime, the host node and every node
//! created. Readiness waits are in readiness.rs, pings in probes.rs, kernel feature
//! probes in features.rs, the Backend implementation in backend.rs.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use self::node::Node;
use crate::error::{known_names_help, Error, Result};
use crate::interrupt;
use crate::model::LinkKind;
use crate::names::{LinkName, NodeName};
use exec::{CommandLine, ExecOutput};

pub mod addr;
mod backend;
mod bridge;
mod etc;
pub mod exec;
mod features;
mod firewall;
pub mod ipv6;
mod kinds;
pub mod link;
pub mod neigh;
pub mod node;
pub mod nsenter;
mod probes;
mod qdisc;
pub(crate) mod readiness;
pub mod route;
pub mod rule;
pub mod sandbox;
mod services;
pub mod sockets;
pub mod sysctl;
mod wireguard;

pub use services::{Server, ServerKind};

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Multiplies every deadline, for slow machines.
    pub slow_factor: f64,
    /// Where the lab's programs start (the lab's folder: `exec_in(r, "nft -f office.nft")`
    /// finds the file beside the lab); None: netlab's own working folder.
    pub workdir: Option<std::path::PathBuf>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions { slow_factor: 1.0, workdir: None }
    }
}

pub struct Lab {
    rt: tokio::runtime::Runtime,
    /// The sandbox's own namespace, which the main thread always returns to.
    home: File,
    /// A new veth not created yet (see backend.rs, apply_at).
    held: RefCell<Option<backend::HeldVeth>>,
    /// The nodes' netlink connections (a bounded number open at once).
    pool: Rc<self::node::NetlinkPool>,
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
    tuned: RefCell<std::collections::HashSet<(String, u32, String, bool)>>,
    /// netlab's router advertisement senders (ipv6.rs); they stop with the lab.
    adverts: RefCell<Vec<ipv6::Advertiser>>,
    /// The lab turned IPv6 on somewhere: readiness waits look at DAD and SLAAC.
    ipv6_used: Cell<bool>,
    /// Kernel features probed so far (see features.rs): each is probed once.
    features: RefCell<std::collections::HashMap<crate::model::Feature, bool>>,
    pub options: LabOptions,
}

pub const HOST: &str = "host";

/// The shortest watch of a negative ping: far beyond a round trip between the
/// lab's namespaces (microseconds), and long enough for every hop of the path to
/// have started resolving its next hop if it has to (see Lab::ping).
pub(super) const QUIET_AFTER: Duration = Duration::from_millis(30);
/// ARP/ND retransmit time inside the lab (see tune_neighbours); the kernel's
/// floor is 10 ms (HZ/100).
pub(super) const NEIGH_RETRANS_MS: u64 = 10;
/// Pings in flight at once in a batch (see ping_many).
pub(super) const PING_CONCURRENCY: usize = 8;
/// Neighbour-table entries left free for everything else on the machine.
pub(super) const NEIGH_MARGIN: usize = 16;
/// How long the kernel may leave a netlink request unanswered (× the slow factor)
/// before it is an error: the kernel answers in micro- to milliseconds, a dump of
/// 63 500 links in about a second.
pub(super) const NETLINK_TIMEOUT_S: f64 = 30.0;

impl Lab {
    /// Must run inside the sandbox, on the main thread.
    pub fn new(options: LabOptions) -> Result<Lab> {
        if let Some(dir) = &options.workdir {
            exec::set_workdir(dir.clone());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime", e))?;
        let home = self::nsenter::current_netns()?;
        Self::prepare_etc()?;
        let pool = Rc::new(self::node::NetlinkPool::new(&home)?);
        raise_fd_limit();
        let host_name = NodeName::new(HOST)?;
        let host = Rc::new(rt.block_on(async { Node::host(host_name) })?);
        // A real host has its loopback up; new nodes start with it down, as `ip netns add` does.
        let lo = LinkName::new("lo")?;
        let limit = crate::backend::scaled_deadline(NETLINK_TIMEOUT_S, options.slow_factor);
        rt.block_on(async { tokio::time::timeout(limit, host.set_link_up(&lo, true)).await }).unwrap_or_else(|_| {
            Err(Error::NetlinkTimeout {
                op: "ip link set lo up".into(),
                node: HOST.into(),
                seconds: limit.as_secs_f64(),
            })
        })?;
        let nodes = RefCell::new(BTreeMap::from([(HOST.to_string(), host.clone())]));
        Ok(Lab {
            rt,
            home,
            pool,
            held: RefCell::new(None),
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
            features: Default::default(),
            adverts: Default::default(),
            ipv6_used: Cell::new(false),
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
        self.adverts.borrow_mut().clear();
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

    /// Awaits netlink requests: every netlink wait of the lab goes through here (or
    /// netlink_within), so a kernel that never answers becomes an error naming the
    /// operation (`op`, made only then) and the node, not a hang.
    pub(crate) fn netlink<T>(
        &self,
        node: &str,
        op: impl FnOnce() -> String,
        requests: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.netlink_within(Duration::ZERO, node, op, requests)
    }

    /// netlink() for a wait that may itself last `wait` (a readiness wait): the
    /// kernel gets NETLINK_TIMEOUT_S beyond it.
    pub(crate) fn netlink_within<T>(
        &self,
        wait: Duration,
        node: &str,
        op: impl FnOnce() -> String,
        requests: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let limit = wait.saturating_add(self.netlink_limit());
        self.rt.block_on(answered(limit, node, op, requests))
    }

    /// How long one netlink request may go unanswered.
    pub(crate) fn netlink_limit(&self) -> Duration {
        self.deadline(NETLINK_TIMEOUT_S)
    }
}

/// `requests`, or Error::NetlinkTimeout when they are not answered within `limit`:
/// the async form of Lab::netlink, for loops over many nodes (a limit per node).
pub(crate) async fn answered<T>(
    limit: Duration,
    node: &str,
    op: impl FnOnce() -> String,
    requests: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, requests).await {
        Ok(result) => result,
        Err(_) => Err(Error::NetlinkTimeout { op: op(), node: node.to_string(), seconds: limit.as_secs_f64() }),
    }
}

impl Lab {
    pub fn host(&self) -> Rc<Node> {
        self.host.clone()
    }

    pub fn deadline(&self, seconds: f64) -> Duration {
        crate::backend::scaled_deadline(seconds, self.options.slow_factor)
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
            .netlink(node.name.as_str(), || "ip link show".into(), node.links())?
            .into_iter()
            .filter(|l| l.kind == LinkKind::Veth)
            .filter_map(|l| LinkName::new(&l.name).ok())
            .collect();
        for veth in &veths {
            self.netlink(node.name.as_str(), || format!("ip link del {veth}"), node.delete_link(veth))?;
        }
        remove_netns_name(node.name.as_str())?;
        self.stop_advertising(node.name.as_str(), None);
        etc::unpublish_uts(node.name.as_str());
        self.nodes.borrow_mut().remove(node.name.as_str());
        let name = node.name.to_string();
        self.bridge_nodes.borrow_mut().remove(&name);
        self.touched.borrow_mut().remove(&name);
        self.neigh_warm.borrow_mut().remove(&name);
        self.tuned.borrow_mut().retain(|(n, _, _, _)| *n != name);
        node.release();
        // Peers elsewhere went with the veths: look at every node again.
        self.mark_changed();
        self.check_all.set(true);
        Ok(())
    }

    /// Every node forgets the link indexes it looked up (see Node::link_index).
    pub(crate) fn forget_link_indexes(&self) {
        for node in self.nodes.borrow().values() {
            node.forget_link_indexes();
        }
    }

    pub fn node(&self, name: &str) -> Result<Rc<Node>> {
        if let Some(node) = self.nodes.borrow().get(name).cloned() {
            return Ok(node);
        }
        if let Some(node) = self.adopt(name)? {
            return Ok(node);
        }
        Err(Error::NoSuchNode {
            name: name.to_string(),
            help: known_names_help("nodes", &self.nodes.borrow().keys().cloned().collect::<Vec<_>>()),
        })
    }

    /// A namespace a program of the lab made with `ip netns add NAME` (a student's
    /// solution, an exec_in): /run/netns/NAME in the sandbox, which netlab did not
    /// make. It becomes a node of the lab by that name, read and changed like any
    /// (nothing is set up in it: its sysctls and neighbour timers are the kernel's).
    /// None when there is no such namespace.
    fn adopt(&self, name: &str) -> Result<Option<Rc<Node>>> {
        let Ok(node_name) = crate::names::NodeName::new(name) else { return Ok(None) };
        let path = std::path::Path::new(self::sandbox::NETNS_DIR).join(name);
        let Ok(ns) = File::open(&path) else { return Ok(None) };
        // Anything else under /run/netns (a plain file) is no namespace.
        let is_netns = nix::sys::statfs::fstatfs(&ns).is_ok_and(|s| s.filesystem_type().0 == libc::NSFS_MAGIC);
        if !is_netns {
            return Ok(None);
        }
        let node = {
            let _in_runtime = self.rt.enter(); // Node::attach spawns its connection on it
            Rc::new(Node::attach(node_name, ns)?)
        };
        self.nodes.borrow_mut().insert(name.to_string(), node.clone());
        self.mark_changed();
        self.check_all.set(true);
        Ok(Some(node))
    }

    pub fn nodes(&self) -> Vec<Rc<Node>> {
        self.nodes.borrow().values().cloned().collect()
    }

    /// Writes a net.* sysctl inside `node`.
    pub fn set_sysctl(&self, node: &Node, key: &str, value: &str) -> Result<()> {
        sysctl::path_for_write(key)?;
        let rel = crate::model::topology::sysctl_path(key);
        if let ["net", "ipv6", "conf", dev, "disable_ipv6"] = rel.split('/').collect::<Vec<_>>().as_slice() {
            if value.trim() == "0" {
                self.ipv6_fast_start(node, dev)?;
            }
        }
        node.write_sysctl(&self.home, key, value)?.map_err(|e| {
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
        node.read_sysctl(&self.home, key)?.map_err(|e| {
            missing_module(key, &e)
                .unwrap_or_else(|| Error::BadSysctl { key: key.to_string(), reason: format!("{e} (in {})", node.name) })
        })
    }

    /// Runs a program inside `node` (see exec.rs).
    pub fn exec(&self, node: &Node, cmd: &CommandLine, timeout: Duration) -> Result<ExecOutput> {
        self.settle()?;
        self.note_ipv6_in_program(node, cmd);
        let binds = self.bind_mounts(node);
        let out = self.rt.block_on(interrupt::unless_interrupted(exec::exec_in(node, cmd, &binds, None, timeout)));
        // A program may have changed links or routes behind our back, and probed
        // addresses that do not answer (a failed `ping` leaves INCOMPLETE entries).
        self.mark_changed();
        self.check_all.set(true);
        self.note_unanswered();
        out?
    }
}

/// Undoes `ip netns add`'s name: the bind mount under /run/netns and its file.
fn remove_netns_name(name: &str) -> Result<()> {
    let path = std::path::Path::new(self::sandbox::NETNS_DIR).join(name);
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
