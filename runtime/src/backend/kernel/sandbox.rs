//! netlab's private world. `enter()` must run before any thread starts: it moves the
//! process into fresh network, mount and UTS namespaces (and a user namespace when not
//! root), makes every mount private and puts a tmpfs on /run and a fresh sysfs on /sys.
//! Everything a lab creates lives in there, so when the process ends — normally, on
//! error, on a signal or by `kill -9` — the kernel destroys all of it.
//!
//! A new PID namespace too: netlab forks once, the child (PID 1 in there) runs the
//! lab, the parent only waits. When PID 1 dies the kernel kills every process of the
//! namespace, so even a grandchild of `exec_in` (which PR_SET_PDEATHSIG would miss)
//! cannot keep a lab namespace alive after `kill -9`.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{pthread_sigmask, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, getegid, geteuid, ForkResult};

use crate::error::{Error, Result};

/// Where named namespaces are bind-mounted, like `ip netns add` does.
pub const NETNS_DIR: &str = "/run/netns";
/// Where per-node files (resolv.conf, hosts) live when /etc cannot be overlaid
/// (see `etc_overlaid`): a private folder only netlab's exec_in applies.
pub const NODE_ETC_DIR: &str = "/run/netlab/etc";
/// Where a node's own UTS namespace is bind-mounted once it has one (hostname()),
/// so a snapshot (snapshot.rs) can read a node's hostname however it was set.
pub const UTS_DIR: &str = "/run/netlab/uts";
/// Where `ip netns exec NAME` looks for a namespace's own /etc files.
pub const ETC_NETNS_DIR: &str = "/etc/netns";
/// The writable layer of the sandbox's /etc (on the /run tmpfs).
const ETC_UPPER: &str = "/run/netlab/etc-layer";

/// What every program in the sandbox sees as /etc/resolv.conf unless its node has
/// its own: no nameserver, so nothing in a lab ever resolves a real name.
pub const NO_NAMESERVER: &str = "# netlab: no nameserver until the lab sets one with resolv_conf()\n";

static ETC_OVERLAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the sandbox's /etc is an overlay with a tmpfs upper layer: then
/// /etc/netns/NAME/ exists as for `ip netns`, and nothing written to /etc inside
/// the sandbox reaches the machine.
pub fn etc_overlaid() -> bool {
    ETC_OVERLAID.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set in the environment of the sandbox, so child processes can tell.
pub const SANDBOX_ENV: &str = "NETLAB_SANDBOX";

/// What of the machine's own folders a sandbox shows as they are, besides its
/// volatile copy of the machine's file system.
#[derive(Debug, Clone, Default)]
pub struct Binds {
    /// Visible read-only at their own path: the lab's folder, `--bind DIR`.
    pub read_only: Vec<std::path::PathBuf>,
    /// Visible read-write at their own path (`--bind DIR:rw`): what a lab writes
    /// there stays on the machine.
    pub read_write: Vec<std::path::PathBuf>,
}

/// Who the sandbox's root is on the machine when netlab starts as root: the
/// overflow user and group "nobody", which by convention own nothing. (Started by
/// another user, the sandbox's root is that user.)
const NOBODY: u32 = 65534;

/// The most each of the sandbox's volatile file systems (its tmpfs: the writable
/// layer, /tmp, /var/tmp, /dev/shm, /run) may hold: 5 % of the machine's memory, at
/// most 1 GiB. Filling one gives the lab ENOSPC, not the machine an out-of-memory.
const VOLATILE_SHARE_PERCENT: u64 = 5;
const VOLATILE_MAX_KIB: u64 = 1 << 20;

/// The most processes (threads and zombies count) a sandbox may hold when an
/// untrusted program forks: a student's solution or shell (see
/// [`limit_processes`]). A fork bomb there gets EAGAIN instead of the machine's
/// process table. RLIMIT_NPROC counts per user namespace (Linux 5.14+), so each
/// sandbox has a budget of its own.
pub const MAX_PROCESSES: u64 = 1024;

/// Gives the calling process (a child between fork and exec) the limit of
/// [`MAX_PROCESSES`]. Only the untrusted program gets it: netlab itself must still
/// start its probes and threads when the program's processes (or the zombies its
/// killed fork bomb leaves to netlab, the sandbox's PID 1) fill the budget, and the
/// kernel checks the limit of the process that forks.
pub fn limit_processes() -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: MAX_PROCESSES, rlim_max: MAX_PROCESSES };
    // SAFETY: setrlimit(2) is async-signal-safe; the struct lives on our stack.
    if unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Use `crate::enter_sandbox`, which first reads what only the machine shows.
pub(crate) fn enter(binds: &Binds) -> Result<()> {
    let (outside_uid, outside_gid) =
        if geteuid().is_root() { become_nobody()? } else { (geteuid().as_raw(), getegid().as_raw()) };
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWPID;
    unshare(flags).map_err(user_namespaces_refused)?;
    // Root inside; outside, the sandbox's processes are `outside_uid` and hold
    // capabilities only over the namespaces made here.
    write_file("/proc/self/setgroups", "deny")?;
    write_file("/proc/self/uid_map", &format!("0 {outside_uid} 1"))?;
    write_file("/proc/self/gid_map", &format!("0 {outside_gid} 1"))?;
    fork_into_pid_namespace()?;
    let sandbox_err = |what: &str, e: nix::Error| Error::Sandbox { reason: format!("{what}: {e}"), help: None };
    // Nothing we mount may propagate back to the machine's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| sandbox_err("making / private", e))?;
    mount(Some("netlab"), "/run", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))
        .map_err(|e| sandbox_err("mounting a tmpfs on /run", e))?;
    // NETLAB_VOLATILE=0 keeps the machine's file system (with /etc overlaid or
    // read-only), so tests can check the fallback on any kernel.
    let off = |var: &str| std::env::var_os(var).is_some_and(|v| v == "0");
    let volatile = if off("NETLAB_VOLATILE") || off("NETLAB_ETC_OVERLAY") {
        Err(Error::Sandbox { reason: "NETLAB_VOLATILE=0".into(), help: None })
    } else {
        volatile_root(binds)
    };
    if let Err(e) = &volatile {
        if !(off("NETLAB_VOLATILE") || off("NETLAB_ETC_OVERLAY")) {
            eprintln!(
                "netlab: warning: the sandbox cannot have a volatile file system here ({e}); the lab's programs \
                 see the machine's files, with the rights of user {outside_uid} (its /etc is protected)"
            );
        }
        fallback_mounts()?;
        // A sysfs mounted from inside the new netns shows its devices, like `ip netns exec`.
        mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, None::<&str>)
            .map_err(|e| sandbox_err("mounting sysfs on /sys", e))?;
        // A /proc of the new PID namespace, so `ps` in a lab shows the lab's processes.
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| sandbox_err("mounting /proc", e))?;
    }
    for dir in [NETNS_DIR, NODE_ETC_DIR] {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {dir}"), e))?;
    }
    if volatile.is_ok() {
        prepare_etc().map_err(|e| Error::io("preparing the sandbox's /etc", e))?;
        ETC_OVERLAID.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    VOLATILE.store(volatile.is_ok(), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: no other thread exists yet (enter() runs first thing in main).
    unsafe { std::env::set_var(SANDBOX_ENV, "1") };
    Ok(())
}

static VOLATILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the sandbox's file system is volatile (an overlay of the machine's with
/// its writes in memory), rather than the machine's own with /etc protected.
pub fn volatile() -> bool {
    VOLATILE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Started as root: become "nobody" on the machine before making the user
/// namespace, keeping only what that one call may need (CAP_SYS_ADMIN, where the
/// machine allows user namespaces to privileged processes only). Supplementary
/// groups go too, so nothing of root's remains.
fn become_nobody() -> Result<(u32, u32)> {
    let failed = |what: &str, e: nix::Error| Error::Sandbox { reason: format!("{what}: {e}"), help: None };
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    nix::unistd::setgroups(&[]).map_err(|e| failed("dropping root's groups", e))?;
    let (uid, gid) = (nix::unistd::Uid::from_raw(NOBODY), nix::unistd::Gid::from_raw(NOBODY));
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| failed("becoming group nobody", e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| failed("becoming user nobody", e))?;
    let _ = caps::raise(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_ADMIN);
    // Our own /proc/self files (uid_map) must stay ours to write.
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    Ok((NOBODY, NOBODY))
}

/// unshare(2) refused: say which setting of the machine blocks user namespaces.
fn user_namespaces_refused(e: nix::Error) -> Error {
    refused_because(e, |key| fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/"))).ok())
}

/// The error for `e`, with the blocking setting found by `read` (a sysctl's value).
fn refused_because(e: nix::Error, read: impl Fn(&str) -> Option<String>) -> Error {
    let setting = |key: &'static str, blocking: &str| read(key).filter(|v| v.trim() == blocking).map(|_| key);
    let cause = setting("user.max_user_namespaces", "0")
        .or_else(|| setting("kernel.unprivileged_userns_clone", "0"))
        .or_else(|| setting("kernel.apparmor_restrict_unprivileged_userns", "1"));
    let help = match cause {
        Some(key @ "user.max_user_namespaces") => format!(
            "{key} is 0 on this machine: user namespaces are switched off (an administrator can allow them: sysctl -w {key}=15000)"
        ),
        Some(key @ "kernel.unprivileged_userns_clone") => format!(
            "{key} is 0 on this machine: only privileged processes may make user namespaces (sysctl -w {key}=1, or run netlab as root)"
        ),
        Some(key) => format!(
            "{key} is 1 on this machine: AppArmor lets only allowed programs make user namespaces (an AppArmor profile for netlab with `userns,`, or sysctl -w {key}=0)"
        ),
        None if e == nix::Error::ENOSPC => {
            "the machine's limit on user namespaces (user.max_user_namespaces) is reached".into()
        }
        None => "the kernel refused new user, network, mount, UTS and PID namespaces; in a container, \
                 the container runtime may forbid them (seccomp, no CAP_SYS_ADMIN)"
            .into(),
    };
    Error::Sandbox { reason: format!("unshare(user, network, mount, UTS, PID namespaces): {e}"), help: Some(help) }
}

/// The sandbox's file system, the way bubblewrap or `systemd-nspawn --volatile=overlay`
/// make one: a tmpfs root holding, for each top-level folder of the machine, an
/// overlay whose writes go to memory (or, where other file systems are mounted
/// below it, the folder read-only with them), fresh tmpfs on /tmp, /var/tmp,
/// /dev/shm and /run, the machine's /dev, a /proc of the lab's PID namespace and a
/// /sys of its network namespace, the lab's folder (and `--bind` folders) as asked;
/// then pivot_root into it. The machine's mounts come along locked to the sandbox's
/// user namespace: a lab cannot unmount its way to what lies beneath them.
///
/// One overlay per folder, not one over /: the kernel refuses to overlay a mount
/// with locked mounts below it (the machine's /proc, /sys, ... under /).
fn volatile_root(binds: &Binds) -> Result<()> {
    let fail = |what: String, e: nix::Error| Error::Sandbox { reason: format!("{what}: {e}"), help: None };
    let io = |what: String| move |e: std::io::Error| Error::io(what, e);
    let size = volatile_size();
    let cwd = std::env::current_dir().ok();
    let mounts = machine_mounts();
    let base = "/run/.netlab-root";
    fs::create_dir_all(base).map_err(io("making the sandbox's root".into()))?;
    let tmpfs = |target: &str, mode: &str| {
        let opts = format!("mode={mode},size={size}");
        mount(Some("netlab"), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(opts.as_str()))
            .map_err(|e| fail(format!("mounting a tmpfs on {target}"), e))
    };
    tmpfs(base, "0755")?;
    let new = format!("{base}/root");
    fs::create_dir_all(&new).map_err(io("making the sandbox's root".into()))?;
    // pivot_root wants the new root to be a mount point of its own.
    mount(Some(new.as_str()), new.as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| fail("making the sandbox's root a mount".into(), e))?;
    let at = |path: &str| format!("{new}{path}");
    let entries = fs::read_dir("/").map_err(io("reading /".into()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let (path, target) = (format!("/{name}"), at(&format!("/{name}")));
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_symlink() {
            if let Ok(to) = fs::read_link(&path) {
                std::os::unix::fs::symlink(to, &target).map_err(io(format!("copying the link {path}")))?;
            }
            continue;
        }
        if !kind.is_dir() {
            continue;
        }
        fs::create_dir_all(&target).map_err(io(format!("making {path} in the sandbox")))?;
        match name.as_str() {
            "proc" => mount(
                Some("proc"),
                target.as_str(),
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None::<&str>,
            )
            .map_err(|e| fail("mounting /proc".into(), e))?,
            // Mounted from inside the new netns, it shows the lab's devices, like `ip netns exec`.
            "sys" => mount(
                Some("sysfs"),
                target.as_str(),
                Some("sysfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                None::<&str>,
            )
            .map_err(|e| fail("mounting sysfs on /sys".into(), e))?,
            "dev" => {
                bind(&path, &target, true).map_err(|e| fail("showing /dev".into(), e))?;
                if std::path::Path::new(&format!("{target}/shm")).is_dir() {
                    tmpfs(&format!("{target}/shm"), "1777")?;
                }
            }
            "run" => {
                tmpfs(&target, "0755")?;
                // A second sysfs, out of the way: in a user namespace a sysfs may only
                // be mounted while another is fully visible, and `ip netns exec`
                // unmounts /sys before it mounts the node's own.
                let spare = format!("{target}/netlab/sysfs");
                fs::create_dir_all(&spare).map_err(io("making /run/netlab".into()))?;
                mount(
                    Some("sysfs"),
                    spare.as_str(),
                    Some("sysfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    None::<&str>,
                )
                .map_err(|e| fail("mounting a spare sysfs".into(), e))?;
            }
            "tmp" => tmpfs(&target, "1777")?,
            // A folder the sandbox may not read (root's home, 0700): an empty one of its own.
            _ if nix::unistd::access(
                path.as_str(),
                nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK,
            )
            .is_err() =>
            {
                tmpfs(&target, "0700")?
            }
            _ if mounts.iter().any(|m| m.starts_with(&format!("{path}/"))) => {
                // Other file systems below it: the folder as it is, read-only.
                bind(&path, &target, false).map_err(|e| fail(format!("showing {path} read-only"), e))?
            }
            _ => {
                let layer = format!("{base}/layers/{name}");
                for d in ["upper", "work"] {
                    fs::create_dir_all(format!("{layer}/{d}")).map_err(io("making the volatile layer".into()))?;
                }
                if name == "etc" {
                    own_etc_files(&format!("{layer}/upper"));
                }
                let options = format!("lowerdir={path},upperdir={layer}/upper,workdir={layer}/work,userxattr");
                mount(Some("netlab"), target.as_str(), Some("overlay"), MsFlags::empty(), Some(options.as_str()))
                    .map_err(|e| fail(format!("mounting an overlay over {path}"), e))?;
            }
        }
    }
    if std::path::Path::new(&at("/var/tmp")).is_dir() {
        tmpfs(&at("/var/tmp"), "1777")?;
    }
    for (dirs, writable) in [(&binds.read_only, false), (&binds.read_write, true)] {
        for dir in dirs {
            let dir = dir.display().to_string();
            let target = at(&dir);
            fs::create_dir_all(&target).map_err(io(format!("making {dir} in the sandbox")))?;
            bind(&dir, &target, writable).map_err(|e| fail(format!("showing {dir}"), e))?;
        }
    }
    // Into the new root; the machine's tree goes (the old root, stacked under it).
    std::env::set_current_dir(&new).map_err(io("entering the sandbox's root".into()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| fail("pivot_root".into(), e))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| fail("leaving the machine's root".into(), e))?;
    std::env::set_current_dir(cwd.as_deref().unwrap_or(std::path::Path::new("/")))
        .or_else(|_| std::env::set_current_dir("/"))
        .map_err(io("returning to the working folder".into()))?;
    Ok(())
}

/// The files of /etc the tutorials write (`echo ... >> /etc/hosts`), copied into
/// the upper layer before the overlay exists, so that the sandbox's root owns its
/// copies; the machine's root owns the rest (readable, not writable, inside). The
/// overlay's top folders belong to the sandbox's root, so new files (/etc/netns/...)
/// can be made anywhere.
fn own_etc_files(upper: &str) {
    for file in ["hosts", "hostname"] {
        // A link (into /run, say) is copied as the file it leads to, if there is one.
        let text = fs::read(format!("/etc/{file}")).unwrap_or_default();
        let _ = fs::write(format!("{upper}/{file}"), text);
    }
}

/// `src` at `target` with what is mounted below it, all of it read-only unless
/// `writable`.
fn bind(src: &str, target: &str, writable: bool) -> nix::Result<()> {
    mount(Some(src), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    if writable {
        return Ok(());
    }
    read_only_recursively(target)
}

/// mount_setattr(2) with AT_RECURSIVE: the mount at `target` and every mount below
/// it read-only (a remount would change only the top one).
fn read_only_recursively(target: &str) -> nix::Result<()> {
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let path = std::ffi::CString::new(target).map_err(|_| nix::Error::EINVAL)?;
    set_read_only(libc::AT_FDCWD, &path, AT_RECURSIVE).map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(0)))
}

/// mount_setattr(2) MOUNT_ATTR_RDONLY on the mount at `dirfd`/`path` (`flags`:
/// AT_RECURSIVE, AT_EMPTY_PATH, ...).
pub(crate) fn set_read_only(dirfd: libc::c_int, path: &std::ffi::CStr, flags: libc::c_uint) -> std::io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: a valid C string and a mount_attr of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Mount points of the machine's file systems, outermost first (from mountinfo).
fn machine_mounts() -> Vec<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\"))
        .collect();
    points.sort_by_key(|p| p.matches('/').count());
    points.dedup();
    points
}

/// The size limit of each volatile tmpfs.
fn volatile_size() -> String {
    let total = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(1 << 20);
    format!("{}k", (total * VOLATILE_SHARE_PERCENT / 100).clamp(64 * 1024, VOLATILE_MAX_KIB))
}

/// The sandbox's /etc (now its own): no nameserver, /etc/netns for `ip netns`.
fn prepare_etc() -> std::io::Result<()> {
    // A symlink (to systemd-resolved's stub, say) is replaced, not followed.
    let _ = fs::remove_file("/etc/resolv.conf");
    fs::write("/etc/resolv.conf", NO_NAMESERVER)?;
    fs::create_dir_all(ETC_NETNS_DIR)
}

/// Without a volatile root (no overlay in a user namespace on this kernel): the
/// machine's file system, with /etc overlaid (or read-only) and fresh tmpfs on /tmp.
fn fallback_mounts() -> Result<()> {
    let sandbox_err = |what: &str, e: nix::Error| Error::Sandbox { reason: format!("{what}: {e}"), help: None };
    keep_etc_links_mountable();
    let overlay = if std::env::var_os("NETLAB_ETC_OVERLAY").is_some_and(|v| v == "0") {
        Err(std::io::ErrorKind::Unsupported.into())
    } else {
        overlay_etc()
    };
    match overlay {
        Ok(()) => ETC_OVERLAID.store(true, std::sync::atomic::Ordering::Relaxed),
        // No overlay: then at least nothing in the lab may write the machine's /etc.
        Err(_) => protect_etc().map_err(|e| sandbox_err("making /etc read-only in the sandbox", e))?,
    }
    Ok(())
}

/// Puts an overlay on /etc whose upper layer is on our /run tmpfs: the tutorials'
/// `mkdir -p /etc/netns/NAME` and `echo ... > /etc/netns/NAME/resolv.conf` then work
/// unchanged, the real `ip netns exec NAME` sees those files, and nothing reaches
/// the machine's /etc. Without the overlay (an old kernel, some rootless setups)
/// netlab keeps per-node files in NODE_ETC_DIR and only its own exec_in applies them.
fn overlay_etc() -> std::io::Result<()> {
    let (upper, work) = (format!("{ETC_UPPER}/upper"), format!("{ETC_UPPER}/work"));
    fs::create_dir_all(&upper)?;
    fs::create_dir_all(&work)?;
    let options = format!("lowerdir=/etc,upperdir={upper},workdir={work}");
    mount(Some("netlab-etc"), "/etc", Some("overlay"), MsFlags::empty(), Some(options.as_str()))?;
    let prepared = (|| {
        // A symlink (to systemd-resolved's stub, say) is replaced, not followed.
        let _ = fs::remove_file("/etc/resolv.conf");
        fs::write("/etc/resolv.conf", NO_NAMESERVER)?;
        fs::create_dir_all(ETC_NETNS_DIR)
    })();
    if prepared.is_err() {
        let _ = nix::mount::umount2("/etc", nix::mount::MntFlags::MNT_DETACH);
    }
    prepared
}

/// A read-only bind of /etc over itself: a program of the lab that tries to write
/// there (`echo ... > /etc/netns/X/resolv.conf`) gets "Read-only file system".
fn protect_etc() -> nix::Result<()> {
    mount(Some("/etc"), "/etc", None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, "/etc", None::<&str>, flags, None::<&str>)
}

fn write_file(path: impl AsRef<Path>, text: &str) -> Result<()> {
    let path = path.as_ref();
    fs::write(path, text).map_err(|e| Error::Sandbox { reason: format!("writing {}: {e}", path.display()), help: None })
}

/// Forks; the parent waits for the child and exits with its status, the child
/// returns and becomes PID 1 of the new PID namespace.
///
/// No moment leaves a lab running without netlab: the child dies with the parent
/// (PR_SET_PDEATHSIG) and first makes sure the parent did not die before that was
/// set (see `parent_is_alive`). Until the fork nothing outlives this process: the
/// namespaces unshared so far are referenced by it alone.
fn fork_into_pid_namespace() -> Result<()> {
    let (alive_read, alive_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| Error::Sandbox { reason: format!("making the parent-alive pipe: {e}"), help: None })?;
    // A stop signal between here and the handlers of both sides waits, pending.
    let stop_signals: SigSet = crate::interrupt::STOP_SIGNALS.into_iter().collect();
    let mut unblocked = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&stop_signals), Some(&mut unblocked))
        .map_err(|e| Error::Sandbox { reason: format!("blocking signals: {e}"), help: None })?;
    let restore_mask = || pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&unblocked), None);
    // SAFETY: enter() runs before any thread exists, so fork() cannot leave a lock held.
    match unsafe { fork() } {
        Err(e) => {
            let _ = restore_mask();
            Err(Error::Sandbox { reason: format!("fork: {e}"), help: None })
        }
        Ok(ForkResult::Child) => {
            drop(alive_write);
            // SAFETY: prctl with constant arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
            if !parent_is_alive(&alive_read) {
                // SAFETY: _exit ends this process without running anything of the parent's.
                unsafe { libc::_exit(1) };
            }
            drop(alive_read);
            crate::interrupt::install()?;
            restore_mask().map_err(|e| Error::Sandbox { reason: format!("unblocking signals: {e}"), help: None })?;
            Ok(())
        }
        Ok(ForkResult::Parent { child }) => {
            drop(alive_read);
            // Open until we exit: that is what the child's check looks at.
            std::mem::forget(alive_write);
            forward_stop_signals(child);
            let _ = restore_mask();
            loop {
                let status = waitpid(child, None);
                let forced = FORCED.load(Ordering::SeqCst);
                let first = FIRST_STOP_SIGNAL.load(Ordering::SeqCst);
                match status {
                    Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
                    Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) if forced => {
                        eprintln!("\nnetlab: interrupted again; the sandbox and everything in it is gone");
                        std::process::exit(128 + first)
                    }
                    Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => std::process::exit(3),
                }
            }
        }
    }
}

/// Whether the parent still runs, seen from a child that has already set
/// PR_SET_PDEATHSIG: the pipe's write end is open only in the parent, so a read
/// gets EOF once the parent is gone and EAGAIN while it lives. (getppid() cannot
/// tell: the parent is outside the child's PID namespace, so it is 0 either way.)
///
/// Sound without a gap: the kernel closes an exiting process's files (dropping the
/// pipe's writer count, under the pipe's mutex) before it sends its children their
/// parent-death signals, and our read takes the same mutex. A read that still sees
/// the writer therefore comes before the parent's exit, which then sees our
/// PR_SET_PDEATHSIG (set before the read) and kills us.
fn parent_is_alive(alive_read: &std::os::fd::OwnedFd) -> bool {
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(alive_read, &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            // EOF: no writer left.
            Ok(0) => return false,
            _ => return true,
        }
    }
}

/// The sandbox's PID 1, as the outer process sees it (0: none yet).
static SANDBOX_PID: AtomicI32 = AtomicI32::new(0);
/// When the first stop signal came (CLOCK_MONOTONIC, ms; 0: none yet), and which.
static FIRST_STOP_AT_MS: AtomicU64 = AtomicU64::new(0);
static FIRST_STOP_SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGINT);
/// A later stop signal killed the sandbox at once.
static FORCED: AtomicBool = AtomicBool::new(false);
/// A stop signal this soon after the first is the same request delivered twice:
/// `timeout` signals its child and then its process group, microseconds apart.
const SAME_REQUEST_MS: u64 = 100;

/// The outer process passes SIGINT/SIGTERM/SIGHUP on to the sandbox's PID 1, which
/// stops the lab gracefully (see crate::interrupt); a later one kills the sandbox
/// at once. A terminal's Ctrl-C reaches both processes, so PID 1 may get one signal
/// twice; it only records that one came, so that is harmless, and the count that
/// decides "at once" is kept here, where a Ctrl-C, `kill PID` or `kill -- -PGID`
/// arrives once.
fn forward_stop_signals(child: nix::unistd::Pid) {
    SANDBOX_PID.store(child.as_raw(), Ordering::SeqCst);
    let action = SigAction::new(SigHandler::Handler(forward_to_sandbox), SaFlags::SA_RESTART, SigSet::empty());
    for sig in crate::interrupt::STOP_SIGNALS {
        // SAFETY: the handler only uses atomics, clock_gettime(2) and kill(2), which
        // are async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

extern "C" fn forward_to_sandbox(sig: libc::c_int) {
    let pid = SANDBOX_PID.load(Ordering::SeqCst);
    if pid <= 0 {
        return;
    }
    let now = monotonic_ms().max(1);
    let send = match FIRST_STOP_AT_MS.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {
            FIRST_STOP_SIGNAL.store(sig, Ordering::SeqCst);
            sig
        }
        Err(first) if now.saturating_sub(first) < SAME_REQUEST_MS => sig,
        Err(_) => {
            FORCED.store(true, Ordering::SeqCst);
            libc::SIGKILL
        }
    };
    // SAFETY: kill(2) is async-signal-safe; pid is our own child, not yet reaped
    // (we reap it only to exit), so it cannot name another process.
    unsafe { libc::kill(pid, send) };
}

fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into a valid timespec; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1000).saturating_add(ts.tv_nsec as u64 / 1_000_000)
}

/// Nodes get their own resolv.conf and hosts by a bind mount over /etc/FILE, which
/// follows symlinks. Where /etc/resolv.conf links into /run (systemd-resolved), the
/// target vanished with our private /run: recreate it there (in our tmpfs, never on
/// the machine) so the mount point exists.
fn keep_etc_links_mountable() {
    for file in ["/etc/resolv.conf", "/etc/hosts"] {
        let Ok(target) = fs::read_link(file) else { continue };
        let mut resolved = std::path::PathBuf::from("/etc");
        for part in target.components() {
            match part {
                std::path::Component::RootDir => resolved = "/".into(),
                std::path::Component::ParentDir => {
                    resolved.pop();
                }
                std::path::Component::Normal(p) => resolved.push(p),
                _ => {}
            }
        }
        let target = resolved;
        if target.starts_with("/run") && !target.exists() {
            if let Some(dir) = target.parent() {
                let _ = fs::create_dir_all(dir);
            }
            let _ = fs::write(&target, "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help_for(e: nix::Error, settings: &[(&str, &str)]) -> String {
        let err = refused_because(e, |key| settings.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()));
        assert_eq!(err.class(), crate::ErrorClass::Environment, "exit 3: the machine's setting");
        match err {
            Error::Sandbox { help: Some(help), .. } => help,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refused_user_namespaces_name_the_setting_that_blocks_them() {
        let help = help_for(nix::Error::ENOSPC, &[("user.max_user_namespaces", "0")]);
        assert!(help.starts_with("user.max_user_namespaces is 0"), "{help}");
        let help = help_for(
            nix::Error::EPERM,
            &[("user.max_user_namespaces", "15000"), ("kernel.unprivileged_userns_clone", "0")],
        );
        assert!(help.starts_with("kernel.unprivileged_userns_clone is 0"), "{help}");
        let help = help_for(nix::Error::EPERM, &[("kernel.apparmor_restrict_unprivileged_userns", "1")]);
        assert!(help.starts_with("kernel.apparmor_restrict_unprivileged_userns is 1"), "{help}");
        // A setting this kernel does not have is never named.
        let help = help_for(nix::Error::ENOSPC, &[("user.max_user_namespaces", "100")]);
        assert!(help.contains("limit on user namespaces") && !help.contains("unprivileged_userns_clone"), "{help}");
        let help = help_for(nix::Error::EPERM, &[]);
        assert!(help.contains("container runtime"), "{help}");
    }
}
