//! Per-node /etc files and hostnames, like `/etc/netns/NAME/` and a UTS namespace.
//! Everything lives under the sandbox's private /run; the machine's /etc is never
//! written.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};

use super::Lab;
use crate::error::{Error, Result};
use crate::exec::BindMounts;
use crate::node::Node;
use crate::sandbox::NODE_ETC_DIR;

/// The files a node can have its own copy of.
pub const NODE_FILES: &[&str] = &["resolv.conf", "hosts"];

/// What a node sees as /etc/resolv.conf until the lab gives it one: no nameserver,
/// so nothing ever tries to resolve a name outside the lab.
const DEFAULT_RESOLV_CONF: &str = "# netlab: no nameserver until the lab sets one with resolv_conf()\n";

fn default_file(file: &str) -> PathBuf {
    PathBuf::from(NODE_ETC_DIR).join("_default").join(file)
}

impl Lab {
    /// Writes the node's own copy of /etc/FILE (resolv.conf or hosts).
    pub fn set_node_file(&self, node: &Node, file: &str, text: &str) -> Result<()> {
        if !NODE_FILES.contains(&file) {
            return Err(Error::io(format!("/etc/{file} per node"), std::io::ErrorKind::Unsupported.into()));
        }
        let path = node.ensure_etc_dir()?.join(file);
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The node's /etc/FILE as its programs see it.
    pub fn node_file(&self, node: &Node, file: &str) -> Option<String> {
        let own = node.etc_dir().join(file);
        let path = if own.exists() { own } else { default_file(file) };
        std::fs::read_to_string(path).ok()
    }

    /// Files to mount over the machine's /etc inside a node's programs.
    pub(super) fn bind_mounts(&self, node: &Node) -> BindMounts {
        let mut binds = Vec::new();
        for file in NODE_FILES {
            let own = node.etc_dir().join(file);
            let src = if own.exists() { own } else { default_file(file) };
            if src.exists() {
                binds.push((src, PathBuf::from("/etc").join(file)));
            }
        }
        binds
    }

    /// Prepares the defaults once, right after the sandbox exists.
    pub(super) fn prepare_etc() -> Result<()> {
        let dir = default_file("resolv.conf");
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating the default /etc files", e))?;
        }
        std::fs::write(&dir, DEFAULT_RESOLV_CONF).map_err(|e| Error::io("writing the default resolv.conf", e))?;
        Ok(())
    }

    /// `hostname NAME` inside the node: its own UTS namespace on first use (the
    /// host's is the sandbox's own), so the machine's hostname never changes.
    pub fn set_hostname(&self, node: &Node, name: &str) -> Result<()> {
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(Error::BadNodeName { name: name.to_string(), reason: "not a valid hostname".into() });
        }
        let set = || {
            nix::unistd::sethostname(name)
                .map_err(|e| Error::io(format!("setting hostname of {}", node.name), e.into()))
        };
        if std::ptr::eq(node, &*self.host) {
            return set();
        }
        let home = File::open("/proc/thread-self/ns/uts").map_err(|e| Error::io("opening the UTS namespace", e))?;
        let existing = node.uts.borrow().as_ref().map(|f| f.try_clone());
        match existing {
            Some(uts) => {
                let uts = uts.map_err(|e| Error::io("duplicating a UTS handle", e))?;
                setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS)
                    .map_err(|e| Error::io("entering a UTS namespace", e.into()))?;
            }
            None => {
                unshare(CloneFlags::CLONE_NEWUTS).map_err(|e| Error::io("creating a UTS namespace", e.into()))?;
                let uts =
                    File::open("/proc/thread-self/ns/uts").map_err(|e| Error::io("opening the UTS namespace", e))?;
                *node.uts.borrow_mut() = Some(uts);
            }
        }
        let result = set();
        setns(home.as_fd(), CloneFlags::CLONE_NEWUTS)
            .map_err(|e| Error::io("returning to the sandbox's UTS namespace", e.into()))?;
        result
    }

    /// The node's hostname.
    pub fn hostname(&self, node: &Node) -> Result<String> {
        let read = || {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .map_err(|e| Error::io("reading the hostname", e.into()))
        };
        let uts = node.uts.borrow().as_ref().map(|f| f.try_clone());
        let Some(uts) = uts else { return read() };
        let uts = uts.map_err(|e| Error::io("duplicating a UTS handle", e))?;
        let home = File::open("/proc/thread-self/ns/uts").map_err(|e| Error::io("opening the UTS namespace", e))?;
        setns(uts.as_fd(), CloneFlags::CLONE_NEWUTS).map_err(|e| Error::io("entering a UTS namespace", e.into()))?;
        let name = read();
        setns(home.as_fd(), CloneFlags::CLONE_NEWUTS)
            .map_err(|e| Error::io("returning to the sandbox's UTS namespace", e.into()))?;
        name
    }
}
