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

/// Makes the MACHINE_WIDE keys of the calling thread's network namespace read-only
/// for every program of the lab (a read-only bind of each file over itself: the
/// kernel lets the root of a network namespace write them otherwise). Keys this
/// kernel does not have are left alone.
pub fn protect_machine_wide() -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    for key in MACHINE_WIDE {
        let path = std::path::Path::new("/proc/sys").join(key);
        if !path.exists() {
            continue;
        }
        mount(Some(&path), &path, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, &path, None::<&str>, flags, None::<&str>)?;
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
