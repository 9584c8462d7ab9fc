//! Per-node sysctls. /proc/sys/net belongs to the namespace of the thread that opens
//! the file, so callers write from inside the node (Node::enter).

use std::io;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Validates a key ("net.ipv4.ip_forward" or "net/ipv4/ip_forward") into its /proc path.
pub fn path_for(key: &str) -> Result<PathBuf> {
    let bad = |reason: &str| Error::BadSysctl { key: key.to_string(), reason: reason.to_string() };
    let rel = if key.contains('/') { key.to_string() } else { key.replace('.', "/") };
    if !rel.starts_with("net/") {
        return Err(bad("netlab only sets net.* sysctls, which belong to a node's namespace"));
    }
    if rel.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(bad("it has an empty or relative component"));
    }
    if !rel.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.')) {
        return Err(bad("it contains characters that no sysctl has"));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// net.* keys that every network namespace shows but that act on the whole
/// machine: a lab may read them, never write them.
/// `net.netfilter.nf_hooks_lwtunnel` switches on a kernel-wide static key that
/// cannot be switched off again.
pub const MACHINE_WIDE: &[&str] = &["net/netfilter/nf_hooks_lwtunnel"];

/// The path of a sysctl a lab may write: a net.* key of a network namespace
/// (see `path_for`), and not one of the MACHINE_WIDE ones.
pub fn path_for_write(key: &str) -> Result<PathBuf> {
    let path = path_for(key)?;
    let rel = path.strip_prefix("/proc/sys").unwrap_or(&path).to_string_lossy().into_owned();
    if MACHINE_WIDE.contains(&rel.as_str()) {
        return Err(Error::BadSysctl {
            key: key.to_string(),
            reason: "it is shown in every network namespace but acts on the whole machine (and cannot be \
                     set back once set); a lab may read it, not write it"
                .into(),
        });
    }
    Ok(path)
}

/// The calling thread's /proc/sys/net, opened once for several keys: the `net`
/// entries of every namespace of the machine hash together under /proc/sys, so each
/// walk from there grows with the number of namespaces; below this folder it does
/// not.
pub struct NetSysctls {
    dir: std::os::fd::OwnedFd,
}

impl NetSysctls {
    pub fn open() -> io::Result<NetSysctls> {
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
        let dir = nix::fcntl::open("/proc/sys/net", flags, nix::sys::stat::Mode::empty())?;
        Ok(NetSysctls { dir })
    }

    fn open_key(&self, key: &str, flags: nix::fcntl::OFlag) -> io::Result<std::os::fd::OwnedFd> {
        let path = path_for(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let rel = path.strip_prefix("/proc/sys/net").map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(nix::fcntl::openat(&self.dir, rel, flags | nix::fcntl::OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())?)
    }

    /// Writes a net.* key (not a MACHINE_WIDE one).
    pub fn write(&self, key: &str, value: &str) -> io::Result<()> {
        path_for_write(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let fd = self.open_key(key, nix::fcntl::OFlag::O_WRONLY)?;
        std::io::Write::write_all(&mut std::fs::File::from(fd), value.as_bytes())
    }

    /// Makes the MACHINE_WIDE keys of this namespace read-only for every program of
    /// the lab: a read-only bind of each file over itself (the kernel lets the root
    /// of a network namespace write them otherwise). Keys this kernel does not have
    /// are left alone.
    pub fn protect_machine_wide(&self) -> io::Result<()> {
        for key in MACHINE_WIDE {
            let file = match self.open_key(key, nix::fcntl::OFlag::O_PATH) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            bind_read_only_over(&file)?;
        }
        Ok(())
    }
}

/// open_tree(2) + mount_setattr(2) + move_mount(2), all by file descriptor: a
/// read-only copy of the mount of `file` attached over it, without walking its path
/// again.
fn bind_read_only_over(file: &std::os::fd::OwnedFd) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_EMPTY_PATH: libc::c_uint = 0x1000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let check = |r: libc::c_long| if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) };
    // SAFETY: raw mount syscalls on descriptors we own, with an empty C path.
    unsafe {
        let tree = check(libc::syscall(
            libc::SYS_open_tree,
            file.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | AT_EMPTY_PATH | libc::O_CLOEXEC as libc::c_uint,
        ))?;
        let tree = OwnedFd::from_raw_fd(tree as i32);
        super::sandbox::set_read_only(tree.as_raw_fd(), c"", AT_EMPTY_PATH)?;
        check(libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            file.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        ))?;
    }
    Ok(())
}

/// Writes a sysctl of the calling thread's namespace.
pub fn write_current(key: &str, value: &str) -> io::Result<()> {
    let path = path_for_write(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    std::fs::write(path, value)
}

/// Reads a sysctl of the calling thread's namespace.
pub fn read_current(key: &str) -> io::Result<String> {
    let path = path_for(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(path_for("net.ipv4.ip_forward").unwrap(), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        assert_eq!(
            path_for("net/ipv4/conf/eth0.1/forwarding").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.1/forwarding")
        );
        assert!(path_for("kernel.hostname").is_err());
        assert!(path_for("net/../kernel/x").is_err());
        assert!(path_for("net.ipv4.ip forward").is_err());
    }
}
