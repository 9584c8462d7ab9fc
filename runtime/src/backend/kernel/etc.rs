//! Per-node /etc files and hostnames, like `/etc/netns/NAME/` and a UTS namespace.
//!
//! Inside the sandbox /etc is an overlay with a tmpfs upper layer (sandbox.rs), so
//! a node's files live where `ip netns exec` looks for them, /etc/netns/NAME/, and
//! the lab's host (the tutorials' default namespace) has /etc itself. The machine's
//! /etc is never written. Where the overlay is not possible, the files live in a
//! private folder that only netlab's exec_in applies.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};

use super::Lab;
use crate::backend::kernel::exec::BindMounts;
use crate::backend::kernel::node::Node;
use crate::backend::kernel::sandbox::{etc_overlaid, ETC_NETNS_DIR, NODE_ETC_DIR, NO_NAMESERVER};
use crate::error::{Error, Result};

/// The files a node can have its own copy of.
pub const NODE_FILES: &[&str] = &["resolv.conf", "hosts"];

impl Lab {
    pub(crate) fn is_host(&self, node: &Node) -> bool {
        std::ptr::eq(node, &*self.host)
    }

    /// The folder of the node's own files: /etc/netns/NAME (the host: /etc).
    fn node_etc_dir(&self, node: &Node) -> PathBuf {
        match (etc_overlaid(), self.is_host(node)) {
            (true, true) => PathBuf::from("/etc"),
            (true, false) => PathBuf::from(ETC_NETNS_DIR).join(node.name.as_str()),
            (false, _) => PathBuf::from(NODE_ETC_DIR).join(node.name.as_str()),
        }
    }

    /// The file programs of the node see as /etc/FILE when it has none of its own.
    fn shared_file(file: &str) -> PathBuf {
        if etc_overlaid() {
            PathBuf::from("/etc").join(file)
        } else {
            PathBuf::from(NODE_ETC_DIR).join("_default").join(file)
        }
    }

    /// Writes the node's own copy of /etc/FILE (resolv.conf or hosts), like
    /// `echo ... > /etc/netns/NAME/FILE`.
    pub fn set_node_file(&self, node: &Node, file: &str, text: &str) -> Result<()> {
        if !NODE_FILES.contains(&file) {
            return Err(Error::io(format!("/etc/{file} per node"), std::io::ErrorKind::Unsupported.into()));
        }
        let dir = self.node_etc_dir(node);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(file);
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        // Not through a symlink the machine's /etc may hold (the overlay keeps it).
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    /// The node's /etc/FILE as its programs see it, read from the file system
    /// (so files a program wrote, e.g. the tutorial's `echo > /etc/netns/...`, count).
    pub fn node_file(&self, node: &Node, file: &str) -> Option<String> {
        let own = self.node_etc_dir(node).join(file);
        let path = if own.exists() { own } else { Self::shared_file(file) };
        std::fs::read_to_string(path).ok()
    }

    /// Files to mount over /etc for a node's programs: every file in its
    /// /etc/netns/NAME, as `ip netns exec` does.
    pub(super) fn bind_mounts(&self, node: &Node) -> BindMounts {
        if etc_overlaid() {
            if self.is_host(node) {
                return Vec::new();
            }
            let dir = self.node_etc_dir(node);
            let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
            let mut binds: BindMounts = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| (e.path(), PathBuf::from("/etc").join(e.file_name())))
                .filter(|(_, dst)| dst.exists())
                .collect();
            binds.sort();
            return binds;
        }
        let mut binds = Vec::new();
        for file in NODE_FILES {
            let own = self.node_etc_dir(node).join(file);
            let src = if own.exists() { own } else { Self::shared_file(file) };
            if src.exists() {
                binds.push((src, PathBuf::from("/etc").join(file)));
            }
        }
        binds
    }

    /// Prepares the shared default once, right after the sandbox exists (with the
    /// overlay, sandbox.rs has already written it to /etc/resolv.conf).
    pub(super) fn prepare_etc() -> Result<()> {
        if etc_overlaid() {
            return Ok(());
        }
        let path = Self::shared_file("resolv.conf");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating the default /etc files", e))?;
        }
        std::fs::write(&path, NO_NAMESERVER).map_err(|e| Error::io("writing the default resolv.conf", e))?;
        Ok(())
    }

    /// `hostname NAME` inside the node: its own UTS namespace on first use (the
    /// host's is the sandbox's own), so the machine's hostname never changes.
    pub fn set_hostname(&self, node: &Node, name: &str) -> Result<()> {
        crate::names::check_hostname(name)?;
        let set = || {
            nix::unistd::sethostname(name)
                .map_err(|e| Error::io(format!("setting hostname of {}", node.name), e.into()))
        };
        if self.is_host(node) {
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
        result?;
        publish_uts(node)
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

/// Bind-mounts the node's UTS namespace at UTS_DIR/NODE (once), where a snapshot
/// finds it, as /run/netns/NODE does for its network namespace.
fn publish_uts(node: &Node) -> Result<()> {
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(crate::backend::kernel::sandbox::UTS_DIR).join(node.name.as_str());
    if path.exists() {
        return Ok(());
    }
    let Some(fd) = node.uts.borrow().as_ref().map(|f| f.as_raw_fd()) else { return Ok(()) };
    std::fs::create_dir_all(crate::backend::kernel::sandbox::UTS_DIR)
        .and_then(|()| File::create(&path).map(drop))
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let source = format!("/proc/self/fd/{fd}");
    nix::mount::mount(Some(source.as_str()), &path, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::io(format!("bind-mounting {}", path.display()), e.into()))
}

/// Undoes publish_uts when the node goes.
pub(super) fn unpublish_uts(name: &str) {
    let path = PathBuf::from(crate::backend::kernel::sandbox::UTS_DIR).join(name);
    if path.exists() {
        let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
}
