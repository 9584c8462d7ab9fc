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

/// Makes the MACHINE_WIDE keys of the calling thread's namespace read-only for every
/// program of the lab: a read-only bind of each file over itself (the kernel lets
/// the root of a network namespace write them otherwise). Keys this kernel does not
/// have are left alone. The folders it opens go into `dirs`.
pub fn protect_machine_wide(dirs: &mut NetDirs) -> io::Result<()> {
    for key in MACHINE_WIDE {
        let (top, rest) = split(key).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
        let opened =
            dir(dirs, &top).and_then(|d| Ok(nix::fcntl::openat(d, &rest, flags, nix::sys::stat::Mode::empty())?));
        match opened {
            Ok(file) => bind_read_only_over(&file)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
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

/// A namespace's folders under /proc/sys/net (`ipv4`, `ipv6`, `core`, …) as O_PATH
/// handles, by name, each opened once from inside the namespace (`open_top`). The
/// `net` entries of every namespace of the machine hash together under /proc/sys,
/// so a walk through /proc/sys/net/ipv6 compares against every namespace's `ipv6`
/// (~1 ms at 1000 namespaces); below a folder's handle a walk does not, and needs
/// no setns either: the folder stays the namespace's own whatever thread uses it.
pub type NetDirs = std::collections::HashMap<String, std::os::fd::OwnedFd>;

/// A key's folder under /proc/sys/net and its path below it:
/// "net.ipv6.conf.all.disable_ipv6" is ("ipv6", "conf/all/disable_ipv6").
pub fn split(key: &str) -> Result<(String, PathBuf)> {
    let path = path_for(key)?;
    let rel = path.strip_prefix("/proc/sys/net").map_err(|_| Error::BadSysctl {
        key: key.to_string(),
        reason: "netlab only sets net.* sysctls, which belong to a node's namespace".into(),
    })?;
    let mut parts = rel.iter();
    let top = parts.next().map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
    let rest: PathBuf = parts.collect();
    Ok((top, if rest.as_os_str().is_empty() { PathBuf::from(".") } else { rest }))
}

/// Opens /proc/sys/net/TOP of the calling thread's namespace (see NetDirs).
fn open_top(top: &str) -> io::Result<std::os::fd::OwnedFd> {
    let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
    Ok(nix::fcntl::open(&PathBuf::from("/proc/sys/net").join(top), flags, nix::sys::stat::Mode::empty())?)
}

/// The folder `top` of `dirs`, opened from the calling thread's namespace the first
/// time.
pub fn dir<'a>(dirs: &'a mut NetDirs, top: &str) -> io::Result<&'a std::os::fd::OwnedFd> {
    Ok(match dirs.entry(top.to_string()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(open_top(top)?),
    })
}

/// Writes the key at `rest` below a folder `open_top` opened.
pub fn write_at(dir: &std::os::fd::OwnedFd, rest: &std::path::Path, value: &str) -> io::Result<()> {
    let flags = nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, rest, flags, nix::sys::stat::Mode::empty())?;
    std::io::Write::write_all(&mut std::fs::File::from(fd), value.as_bytes())
}

/// Reads the key at `rest` below a folder `open_top` opened.
pub fn read_at(dir: &std::os::fd::OwnedFd, rest: &std::path::Path) -> io::Result<String> {
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, rest, flags, nix::sys::stat::Mode::empty())?;
    Ok(std::io::read_to_string(std::fs::File::from(fd))?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keys() {
        assert_eq!(
            split("net.ipv6.conf.all.disable_ipv6").unwrap(),
            ("ipv6".to_string(), PathBuf::from("conf/all/disable_ipv6"))
        );
        assert_eq!(split("net/ipv4").unwrap(), ("ipv4".to_string(), PathBuf::from(".")));
        assert!(split("kernel.hostname").is_err());
    }

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
