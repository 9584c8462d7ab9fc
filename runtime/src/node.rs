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

use crate::error::{Error, Result};
use crate::names::NodeName;
use crate::nsenter::{current_netns, in_netns_file};
use crate::sandbox::NETNS_DIR;
use crate::sysctl;

pub struct Node {
    pub name: NodeName,
    /// Handle on the namespace; keeps it alive until the lab ends or deletes the
    /// node (None then).
    ns: RefCell<Option<File>>,
    /// This node's rtnetlink connection, opened on first use from inside the node and
    /// closed again when many nodes are open (see `handle()`).
    netlink: Rc<RefCell<Option<rtnetlink::Handle>>>,
    /// The host's connection is never closed.
    pinned: bool,
    /// The node's UTS namespace once it has a hostname of its own.
    pub uts: std::cell::RefCell<Option<File>>,
    /// The forwarding filter for bridged frames netlab keeps for this node (see
    /// firewall.rs); its iptables rules live in the kernel only.
    pub bridge_filter: std::cell::RefCell<crate::firewall::BridgeFilter>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.name)
    }
}

impl Node {
    /// The sandbox's own namespace. Must be called inside a tokio runtime context.
    pub fn host(name: NodeName) -> Result<Node> {
        let ns = current_netns()?;
        let handle = open_netlink(&name)?;
        setup_defaults(&name)?;
        Ok(Node {
            name,
            ns: RefCell::new(Some(ns)),
            netlink: Rc::new(RefCell::new(Some(handle))),
            pinned: true,
            uts: Default::default(),
            bridge_filter: Default::default(),
        })
    }

    /// A new named namespace, bind-mounted under /run/netns so `ip netns exec` finds it.
    /// `home` is the namespace the calling thread returns to.
    pub fn create(name: NodeName, home: &File) -> Result<Node> {
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
            Ok(Node {
                name: name.clone(),
                ns: RefCell::new(Some(ns)),
                netlink: Default::default(),
                pinned: false,
                uts: Default::default(),
                bridge_filter: Default::default(),
            })
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
        Ok(Node {
            name,
            ns: RefCell::new(Some(ns)),
            netlink: Rc::new(RefCell::new(Some(handle))),
            pinned: true,
            uts: Default::default(),
            bridge_filter: Default::default(),
        })
    }

    /// The node's rtnetlink handle. A connection costs a socket and ~70 KiB of
    /// buffers, so at most `OPEN_CONNECTIONS` nodes keep one open; the oldest is
    /// closed (its connection ends once in-flight requests finish) and reopened from
    /// inside the node on next use. Must run inside the tokio runtime.
    pub fn handle(&self) -> Result<rtnetlink::Handle> {
        if let Some(h) = self.netlink.borrow().as_ref() {
            return Ok(h.clone());
        }
        let home = HOME_NS.with(|h| h.borrow().as_ref().map(|f| f.try_clone()));
        let home = match home {
            Some(Ok(f)) => f,
            _ => {
                return Err(Error::io(
                    "reopening netlink",
                    std::io::Error::other("the lab's host namespace is unknown"),
                ))
            }
        };
        let handle = self.enter(&home, || open_netlink(&self.name))??;
        *self.netlink.borrow_mut() = Some(handle.clone());
        if !self.pinned {
            OPEN.with(|open| {
                let mut open = open.borrow_mut();
                open.push_back(self.netlink.clone());
                while open.len() > OPEN_CONNECTIONS {
                    if let Some(oldest) = open.pop_front() {
                        oldest.borrow_mut().take();
                    }
                }
            });
        }
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

thread_local! {
    /// The lab host's namespace, which the main thread returns to after entering a node.
    static HOME_NS: RefCell<Option<File>> = const { RefCell::new(None) };
    /// Open connections of non-host nodes, oldest first.
    static OPEN: RefCell<VecDeque<Rc<RefCell<Option<rtnetlink::Handle>>>>> = const { RefCell::new(VecDeque::new()) };
}

/// Remembers the namespace the main thread lives in (the lab's host).
pub fn set_home(home: &File) -> Result<()> {
    let dup = home.try_clone().map_err(|e| Error::io("duplicating the host namespace handle", e))?;
    HOME_NS.with(|h| *h.borrow_mut() = Some(dup));
    Ok(())
}

/// Closes every pooled connection (at teardown).
pub fn close_connections() {
    OPEN.with(|open| {
        for slot in open.borrow_mut().drain(..) {
            slot.borrow_mut().take();
        }
    });
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
    let set = |key: &str, value: &str, why: &str| {
        sysctl::write_current(key, value).map_err(|e| Error::io(format!("{why} in {name} ({key})"), e))
    };
    // New namespaces have ping_group_range "1 0": unprivileged ICMP sockets (our
    // in-process ping) would be refused.
    set("net.ipv4.ping_group_range", "0 2147483647", "enabling ICMP sockets")?;
    // IPv6 stays off on new links until the lab gives one an IPv6 address: every new
    // link's autoconfiguration (DAD, MLD, router solicitations) is multicast that a
    // bridge floods to all ports, O(N^2) packets (shared/bench/RESULTS.md).
    set("net.ipv6.conf.default.disable_ipv6", "1", "keeping IPv6 off on new links")?;
    // A new namespace takes ip_forward from the machine's initial namespace, not from
    // its parent: start every node from the same known state (off), like a fresh host.
    set("net.ipv4.ip_forward", "0", "resetting ip_forward")
}
