//! A node is one network namespace of the lab (the sandbox's own one is the "host"),
//! with its own rtnetlink connection opened from inside it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::rc::Rc;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::backend::kernel::nsenter::{current_netns, in_netns_file};
use crate::backend::kernel::sandbox::NETNS_DIR;
use crate::backend::kernel::sysctl;
use crate::error::{Error, Result};
use crate::names::NodeName;

pub struct Node {
    pub name: NodeName,
    /// Handle on the namespace; keeps it alive until the lab ends or deletes the
    /// node (None then).
    ns: RefCell<Option<File>>,
    /// This node's rtnetlink connection, opened on first use from inside the node and
    /// closed again when many nodes are open (see `handle()`).
    netlink: Rc<RefCell<Option<rtnetlink::Handle>>>,
    /// The lab's pool of open connections; None for a node whose connection is
    /// never closed (the host, an attached namespace).
    pool: Option<Rc<NetlinkPool>>,
    /// Link indexes by name this node has looked up (see Node::link_index).
    pub(super) known_links: RefCell<std::collections::HashMap<String, (u32, crate::model::LinkKind)>>,
    /// The node's UTS namespace once it has a hostname of its own.
    pub uts: std::cell::RefCell<Option<File>>,
    /// The forwarding filter for bridged frames netlab keeps for this node (see
    /// firewall.rs); its iptables rules live in the kernel only.
    pub bridge_filter: std::cell::RefCell<crate::model::firewall::BridgeFilter>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.name)
    }
}

impl Node {
    /// A node on the namespace `ns`, with its connection open already (`handle`) or
    /// opened on first use from `pool` (None: the connection is never closed).
    fn new(name: NodeName, ns: File, handle: Option<rtnetlink::Handle>, pool: Option<Rc<NetlinkPool>>) -> Node {
        Node {
            name,
            ns: RefCell::new(Some(ns)),
            netlink: Rc::new(RefCell::new(handle)),
            pool,
            known_links: Default::default(),
            uts: Default::default(),
            bridge_filter: Default::default(),
        }
    }

    /// The sandbox's own namespace. Must be called inside a tokio runtime context.
    pub fn host(name: NodeName) -> Result<Node> {
        let ns = current_netns()?;
        let handle = open_netlink(&name)?;
        setup_defaults(&name)?;
        Ok(Node::new(name, ns, Some(handle), None))
    }

    /// A new named namespace, bind-mounted under /run/netns so `ip netns exec` finds it.
    /// The calling thread returns to the pool's home namespace.
    pub fn create(name: NodeName, pool: &Rc<NetlinkPool>) -> Result<Node> {
        let home = &pool.home;
        let path = PathBuf::from(NETNS_DIR).join(name.as_str());
        if path.exists() {
            return Err(Error::NodeExists { name: name.to_string() });
        }
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::io(format!("creating namespace {name}"), e.into()))?;
        // From here the thread is inside the new namespace: finish and always go home.
        let inside = (|| {
            let ns = current_netns()?;
            File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            mount(Some("/proc/thread-self/ns/net"), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::io(format!("bind-mounting {}", path.display()), e.into()))?;
            setup_defaults(&name)?;
            Ok(Node::new(name.clone(), ns, None, Some(pool.clone())))
        })();
        nix::sched::setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("returning to the lab host's namespace", e.into()))?;
        inside
    }

    /// A namespace netlab did not make (a script's `ip netns add`, or the sandbox's
    /// own), to read it back (snapshot.rs): its netlink connection is opened from
    /// inside it at once, and closed when the Node is dropped. Nothing is set up in it.
    /// Must be called inside a tokio runtime context.
    pub fn attach(name: NodeName, ns: File) -> Result<Node> {
        let home = current_netns()?;
        let handle = in_netns_file(&home, &ns, || open_netlink(&name))??;
        Ok(Node::new(name, ns, Some(handle), None))
    }

    /// The node's rtnetlink handle. A connection costs a socket and ~70 KiB of
    /// buffers, so at most `OPEN_CONNECTIONS` nodes keep one open; the oldest is
    /// closed (its connection ends once in-flight requests finish) and reopened from
    /// inside the node on next use. Must run inside the tokio runtime.
    pub fn handle(&self) -> Result<rtnetlink::Handle> {
        if let Some(h) = self.netlink.borrow().as_ref() {
            return Ok(h.clone());
        }
        let Some(pool) = &self.pool else {
            return Err(Error::io(
                "reopening netlink",
                std::io::Error::other(format!("{} lost its connection", self.name)),
            ));
        };
        let handle = self.enter(&pool.home, || open_netlink(&self.name))??;
        *self.netlink.borrow_mut() = Some(handle.clone());
        pool.opened(&self.netlink);
        Ok(handle)
    }

    /// The namespace handle, unless the node was deleted.
    pub fn ns(&self) -> Result<std::cell::Ref<'_, File>> {
        std::cell::Ref::filter_map(self.ns.borrow(), |ns| ns.as_ref()).map_err(|_| Error::NoSuchNode {
            name: self.name.to_string(),
            help: Some(format!("{} was deleted (del_netns); netns(\"{}\") makes a new one", self.name, self.name)),
        })
    }

    /// Whether del_netns() released this node.
    pub fn is_deleted(&self) -> bool {
        self.ns.borrow().is_none()
    }

    /// Drops netlab's hold on the namespace (its handle and netlink connection), so
    /// the kernel destroys it once nothing else holds it, as after `ip netns delete`.
    pub fn release(&self) {
        self.netlink.borrow_mut().take();
        self.ns.borrow_mut().take();
    }

    /// Runs `f` inside this node's network namespace.
    pub fn enter<T>(&self, home: &File, f: impl FnOnce() -> T) -> Result<T> {
        in_netns_file(home, &*self.ns()?, f)
    }
}

/// How many nodes keep a netlink connection open at once.
const OPEN_CONNECTIONS: usize = 32;

/// The nodes' open netlink connections, oldest first, and the namespace the main
/// thread returns to after opening one inside a node.
pub struct NetlinkPool {
    home: File,
    open: RefCell<VecDeque<Rc<RefCell<Option<rtnetlink::Handle>>>>>,
}

impl NetlinkPool {
    pub fn new(home: &File) -> Result<NetlinkPool> {
        let home = home.try_clone().map_err(|e| Error::io("duplicating the host namespace handle", e))?;
        Ok(NetlinkPool { home, open: RefCell::default() })
    }

    /// A connection was opened: the oldest goes when there are too many.
    fn opened(&self, slot: &Rc<RefCell<Option<rtnetlink::Handle>>>) {
        let mut open = self.open.borrow_mut();
        open.push_back(slot.clone());
        while open.len() > OPEN_CONNECTIONS {
            if let Some(oldest) = open.pop_front() {
                oldest.borrow_mut().take();
            }
        }
    }

    /// Closes every pooled connection (at teardown).
    pub fn close_all(&self) {
        for slot in self.open.borrow_mut().drain(..) {
            slot.borrow_mut().take();
        }
    }
}

/// Opens an rtnetlink socket in the calling thread's namespace and spawns its
/// connection on the current tokio runtime.
fn open_netlink(name: &NodeName) -> Result<rtnetlink::Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::io(format!("opening netlink in {name}"), e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Settings every node gets, applied from inside it.
fn setup_defaults(name: &NodeName) -> Result<()> {
    let net = sysctl::NetSysctls::open().map_err(|e| Error::io(format!("opening /proc/sys/net in {name}"), e))?;
    net.protect_machine_wide().map_err(|e| Error::io(format!("making machine-wide sysctls read-only in {name}"), e))?;
    let set = |key: &str, value: &str, why: &str| {
        net.write(key, value).map_err(|e| Error::io(format!("{why} in {name} ({key})"), e))
    };
    // New namespaces have ping_group_range "1 0": unprivileged ICMP sockets (our
    // in-process ping) would be refused. Group 0 (the sandbox's root, the only
    // group its user namespace maps) may open them.
    set("net.ipv4.ping_group_range", "0 0", "enabling ICMP sockets")?;
    // IPv6 stays off on new links until the lab gives one an IPv6 address: every new
    // link's autoconfiguration (DAD, MLD, router solicitations) is multicast that a
    // bridge floods to all ports, O(N^2) packets (shared/bench/RESULTS.md).
    set("net.ipv6.conf.default.disable_ipv6", "1", "keeping IPv6 off on new links")?;
    // A new namespace takes ip_forward from the machine's initial namespace, not from
    // its parent: start every node from the same known state (off), like a fresh host.
    // Where it is off there already, the write is skipped.
    if !new_namespaces_start_unforwarded() {
        set("net.ipv4.ip_forward", "0", "resetting ip_forward")?;
    }
    Ok(())
}

/// Whether a new network namespace starts with ip_forward 0 whatever its parent's:
/// it copies the machine's initial namespace (devconf_inherit_init_net 0, whose
/// ip_forward is 0) or the kernel's defaults (2, 3). Read before the sandbox.
static STARTS_UNFORWARDED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Reads, in the machine's own namespace, what new namespaces start with.
pub fn remember_machine_defaults() {
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).ok();
    let inherit = read("/proc/sys/net/core/devconf_inherit_init_net");
    let forward = read("/proc/sys/net/ipv4/ip_forward");
    let unforwarded = match inherit.as_deref() {
        Some("2") | Some("3") => true,
        Some("0") | None => forward.as_deref() == Some("0"),
        _ => false,
    };
    let _ = STARTS_UNFORWARDED.set(unforwarded);
}

fn new_namespaces_start_unforwarded() -> bool {
    STARTS_UNFORWARDED.get().copied().unwrap_or(false)
}
