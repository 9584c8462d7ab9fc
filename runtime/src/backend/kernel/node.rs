//! A node is one network namespace of the lab (the sandbox's own one is the "host"),
//! with its own rtnetlink connection opened from inside it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
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
    /// The node's /proc/sys/net folders opened so far (see sysctl::NetDirs).
    sysctl_dirs: RefCell<sysctl::NetDirs>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.name)
    }
}

impl Node {
    /// A node on the namespace `ns`, with its connection open already (`handle`) or
    /// opened on first use from `pool` (None: the connection is never closed).
    fn new(
        name: NodeName,
        ns: File,
        handle: Option<rtnetlink::Handle>,
        pool: Option<Rc<NetlinkPool>>,
        sysctl_dirs: sysctl::NetDirs,
    ) -> Node {
        Node {
            name,
            ns: RefCell::new(Some(ns)),
            netlink: Rc::new(RefCell::new(handle)),
            pool,
            known_links: Default::default(),
            uts: Default::default(),
            bridge_filter: Default::default(),
            sysctl_dirs: RefCell::new(sysctl_dirs),
        }
    }

    /// The sandbox's own namespace. Must be called inside a tokio runtime context.
    pub fn host(name: NodeName) -> Result<Node> {
        let ns = current_netns()?;
        let handle = open_netlink(&name)?;
        let dirs = setup_defaults().map_err(|(what, e)| Error::io(format!("{what} in {name}"), e))?;
        Ok(Node::new(name, ns, Some(handle), None, dirs))
    }

    /// A new named namespace, bind-mounted under /run/netns so `ip netns exec` finds it.
    /// The calling thread returns to the pool's home namespace.
    pub fn create(name: NodeName, pool: &Rc<NetlinkPool>) -> Result<Node> {
        let home = &pool.home;
        let path = PathBuf::from(NETNS_DIR).join(name.as_str());
        if path.exists() {
            return Err(Error::NodeExists { name: name.to_string() });
        }
        if let Some((ns, dirs)) = pool.spare(&name)? {
            // Made ahead on the spares thread, defaults set: only the name is new.
            let source = format!("/proc/self/fd/{}", ns.as_raw_fd());
            File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            mount(Some(source.as_str()), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::io(format!("bind-mounting {}", path.display()), e.into()))?;
            return Ok(Node::new(name, ns, None, Some(pool.clone()), dirs));
        }
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::io(format!("creating namespace {name}"), e.into()))?;
        // From here the thread is inside the new namespace: finish and always go home.
        let inside = (|| {
            let ns = current_netns()?;
            File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            mount(Some("/proc/thread-self/ns/net"), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(|e| Error::io(format!("bind-mounting {}", path.display()), e.into()))?;
            let dirs = setup_defaults().map_err(|(what, e)| Error::io(format!("{what} in {name}"), e))?;
            Ok(Node::new(name.clone(), ns, None, Some(pool.clone()), dirs))
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
        Ok(Node::new(name, ns, Some(handle), None, Default::default()))
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

    /// Runs `f` inside this node's network namespace, back home after.
    pub(super) fn enter_home<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let Some(pool) = &self.pool else {
            return Err(Error::io("entering", std::io::Error::other(format!("{} is not netlab's", self.name))));
        };
        self.enter(&pool.home, f)
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
        self.sysctl_dirs.borrow_mut().clear();
        self.ns.borrow_mut().take();
    }

    /// Runs `f` inside this node's network namespace.
    pub fn enter<T>(&self, home: &File, f: impl FnOnce() -> T) -> Result<T> {
        in_netns_file(home, &*self.ns()?, f)
    }

    /// Runs `f` on the node's /proc/sys/net folder of `key` and the key's path below
    /// it; the folder is opened from inside the node the first time (see
    /// sysctl::NetDirs). The outer error is netlab's (a bad key, a deleted node),
    /// the inner one the kernel's.
    fn at_sysctl<T>(
        &self,
        home: &File,
        key: &str,
        f: impl Fn(&std::os::fd::OwnedFd, &std::path::Path) -> std::io::Result<T>,
    ) -> Result<std::io::Result<T>> {
        let (top, rest) = sysctl::split(key)?;
        let cached = self.sysctl_dirs.borrow().contains_key(&top);
        if !cached {
            // Opened from inside the node: /proc/sys/net is the opener's namespace's.
            let opened = self.enter(home, || sysctl::dir(&mut self.sysctl_dirs.borrow_mut(), &top).map(|_| ()))?;
            if let Err(e) = opened {
                return Ok(Err(e));
            }
        }
        let out = f(&self.sysctl_dirs.borrow()[&top], &rest);
        match out {
            // The kernel drops a folder once its last key goes (a module's keys): a
            // handle kept from before sees nothing there, a fresh one may.
            Err(e) if cached && e.kind() == std::io::ErrorKind::NotFound => {
                self.sysctl_dirs.borrow_mut().remove(&top);
                self.at_sysctl(home, key, f)
            }
            out => Ok(out),
        }
    }

    /// Writes a net.* sysctl of the node (not a MACHINE_WIDE one).
    pub fn write_sysctl(&self, home: &File, key: &str, value: &str) -> Result<std::io::Result<()>> {
        sysctl::path_for_write(key)?;
        self.at_sysctl(home, key, |dir, rest| sysctl::write_at(dir, rest, value))
    }

    /// Reads a net.* sysctl of the node.
    pub fn read_sysctl(&self, home: &File, key: &str) -> Result<std::io::Result<String>> {
        self.at_sysctl(home, key, sysctl::read_at)
    }
}

/// How many nodes keep a netlink connection open at once.
const OPEN_CONNECTIONS: usize = 32;

/// The nodes' open netlink connections, oldest first, and the namespace the main
/// thread returns to after opening one inside a node; and, for labs that make many
/// nodes, the thread that makes their namespaces ahead of time.
pub struct NetlinkPool {
    home: File,
    open: RefCell<VecDeque<Rc<RefCell<Option<rtnetlink::Handle>>>>>,
    /// Nodes made so far.
    made: std::cell::Cell<usize>,
    spares: RefCell<Option<Spares>>,
}

impl NetlinkPool {
    pub fn new(home: &File) -> Result<NetlinkPool> {
        let home = home.try_clone().map_err(|e| Error::io("duplicating the host namespace handle", e))?;
        Ok(NetlinkPool { home, open: RefCell::default(), made: Default::default(), spares: RefCell::default() })
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

    /// A namespace made ahead of time for the node `name`, once the lab has made
    /// `SPARES_AFTER` nodes itself (None before: the caller makes it).
    fn spare(&self, name: &NodeName) -> Result<Option<(File, sysctl::NetDirs)>> {
        self.made.set(self.made.get() + 1);
        if self.made.get() <= SPARES_AFTER {
            return Ok(None);
        }
        let mut spares = self.spares.borrow_mut();
        let spares = match &mut *spares {
            Some(s) => s,
            None => spares.insert(Spares::start().map_err(|e| Error::io("starting the namespace thread", e))?),
        };
        match spares.next.as_ref().map(|next| next.recv()) {
            Some(Ok(Ok(made))) => Ok(Some(made)),
            Some(Ok(Err((what, e)))) => Err(Error::io(format!("{what} for {name}"), e)),
            _ => Err(Error::io(
                format!("creating namespace {name}"),
                std::io::Error::other("the namespace thread ended"),
            )),
        }
    }

    /// Closes every pooled connection and stops the namespace thread (at teardown).
    pub fn close_all(&self) {
        for slot in self.open.borrow_mut().drain(..) {
            slot.borrow_mut().take();
        }
        self.spares.borrow_mut().take();
    }
}

/// After how many nodes of a lab the next ones come from the spares thread.
const SPARES_AFTER: usize = 16;
/// Namespaces the spares thread keeps ready (it makes one more while the lab
/// takes one): at most this many + 1 are made in vain when the lab stops.
const SPARES_READY: usize = 2;

/// What failed on the spares thread, and why.
type SpareError = (&'static str, std::io::Error);

/// A thread that makes new network namespaces with every node default set
/// (`setup_defaults`), ahead of the lab asking for them. Making one costs the
/// kernel ~0.5 ms plus a lookup under /proc/sys/net per folder the defaults touch,
/// which grows with the number of namespaces of the machine (all their `ipv4`,
/// `ipv6`, `netfilter` entries hash together: ~1 ms each at 1000 namespaces); done
/// here, it overlaps with the lab's netlink work on the main thread. Only labs
/// that make many nodes start it (`SPARES_AFTER`).
struct Spares {
    next: Option<std::sync::mpsc::Receiver<std::result::Result<(File, sysctl::NetDirs), SpareError>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spares {
    fn start() -> std::io::Result<Spares> {
        let (tx, next) = std::sync::mpsc::sync_channel(SPARES_READY);
        let thread = std::thread::Builder::new().name("netlab-netns".into()).spawn(move || loop {
            // Each unshare leaves this thread in the namespace it made: nothing else
            // runs here, and the handle keeps the namespace once the thread moves on.
            let made = unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| ("creating a namespace", e.into()))
                .and_then(|()| File::open("/proc/thread-self/ns/net").map_err(|e| ("opening a new namespace", e)))
                .and_then(|ns| setup_defaults().map(|dirs| (ns, dirs)));
            let failed = made.is_err();
            if tx.send(made).is_err() || failed {
                return;
            }
        })?;
        Ok(Spares { next: Some(next), thread: Some(thread) })
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        // Dropping the receiver ends the thread at its next send; the namespaces it
        // still held go with it.
        self.next.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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

/// Settings every node gets, applied from inside it (on any thread); returns the
/// /proc/sys/net folders it opened, for the node's later sysctls. An error says
/// what failed, for the caller to name the node.
fn setup_defaults() -> std::result::Result<sysctl::NetDirs, SpareError> {
    let mut dirs = sysctl::NetDirs::new();
    sysctl::protect_machine_wide(&mut dirs).map_err(|e| ("making machine-wide sysctls read-only", e))?;
    let mut set = |key: &str, value: &str, why: &'static str| -> std::result::Result<(), SpareError> {
        let (top, rest) = sysctl::split(key).map_err(|e| (why, std::io::Error::other(e.to_string())))?;
        let dir = sysctl::dir(&mut dirs, &top).map_err(|e| (why, e))?;
        sysctl::write_at(dir, &rest, value).map_err(|e| (why, e))
    };
    // IPv6 stays off on new links until the lab gives one an IPv6 address: every new
    // link's autoconfiguration (DAD, MLD, router solicitations) is multicast that a
    // bridge floods to all ports, O(N^2) packets (shared/bench/RESULTS.md).
    set(
        "net.ipv6.conf.default.disable_ipv6",
        "1",
        "keeping IPv6 off on new links (net.ipv6.conf.default.disable_ipv6)",
    )?;
    // A new namespace takes ip_forward from the machine's initial namespace, not from
    // its parent: start every node from the same known state (off), like a fresh host.
    // Where it is off there already, the write is skipped.
    if !new_namespaces_start_unforwarded() {
        set("net.ipv4.ip_forward", "0", "resetting net.ipv4.ip_forward")?;
    }
    Ok(dirs)
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
