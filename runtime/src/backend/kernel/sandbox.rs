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

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{signal, SigHandler, Signal};
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

/// Use `crate::enter_sandbox`, which first reads what only the machine shows.
pub(crate) fn enter() -> Result<()> {
    let root = geteuid().is_root();
    let (uid, gid) = (geteuid(), getegid());
    let mut flags =
        CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID;
    if !root {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    unshare(flags).map_err(|e| Error::Sandbox {
        reason: format!("unshare(network, mount, UTS, PID namespaces): {e}"),
        help: Some(if root {
            "the kernel refused new namespaces; is this a container without CAP_SYS_ADMIN?".into()
        } else {
            "run netlab as root (sudo), or enable unprivileged user namespaces \
             (sysctl kernel.unprivileged_userns_clone=1)"
                .into()
        }),
    })?;
    if !root {
        // Map ourselves to root inside the new user namespace so we own the netns.
        write_file("/proc/self/setgroups", "deny")?;
        write_file("/proc/self/uid_map", &format!("0 {uid} 1"))?;
        write_file("/proc/self/gid_map", &format!("0 {gid} 1"))?;
    }
    fork_into_pid_namespace()?;
    let sandbox_err = |what: &str, e: nix::Error| Error::Sandbox { reason: format!("{what}: {e}"), help: None };
    // Nothing we mount may propagate back to the machine's mount namespace.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| sandbox_err("making / private", e))?;
    mount(Some("netlab"), "/run", Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))
        .map_err(|e| sandbox_err("mounting a tmpfs on /run", e))?;
    // A sysfs mounted from inside the new netns shows its devices, like `ip netns exec`.
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>)
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
    keep_etc_links_mountable();
    for dir in [NETNS_DIR, NODE_ETC_DIR] {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {dir}"), e))?;
    }
    // NETLAB_ETC_OVERLAY=0 forces the fallback, so tests can check it on any kernel.
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
    // SAFETY: no other thread exists yet (enter() runs first thing in main).
    unsafe { std::env::set_var(SANDBOX_ENV, "1") };
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
fn fork_into_pid_namespace() -> Result<()> {
    // SAFETY: enter() runs before any thread exists, so fork() cannot leave a lock held.
    match unsafe { fork() } {
        Err(e) => Err(Error::Sandbox { reason: format!("fork: {e}"), help: None }),
        Ok(ForkResult::Child) => {
            // SAFETY: prctl with constant arguments. (getppid() is 0 here, the parent
            // being outside our PID namespace, so a parent that died before this line
            // cannot be detected; the lab then simply runs to its end.)
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
            // As PID 1 of its namespace we get no default signal actions: without
            // handlers Ctrl-C and SIGTERM would be ignored.
            for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                // SAFETY: the handler only calls async-signal-safe functions.
                let _ = unsafe { signal(sig, SigHandler::Handler(exit_on_signal)) };
            }
            Ok(())
        }
        Ok(ForkResult::Parent { child }) => {
            // Ctrl-C reaches both processes; the child reports it and exits, we wait.
            // SAFETY: installing SIG_IGN has no handler code to be unsafe.
            let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) };
            loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => std::process::exit(128 + sig as i32),
                    Ok(_) => continue,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => std::process::exit(3),
                }
            }
        }
    }
}

/// Ends the lab at once: the kernel then tears down every namespace and process of
/// the sandbox. write(2) and _exit(2) are async-signal-safe.
extern "C" fn exit_on_signal(sig: libc::c_int) {
    let msg = b"\nnetlab: interrupted; the sandbox and everything in it is gone\n";
    // SAFETY: write and _exit are async-signal-safe; msg is a valid buffer.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(128 + sig);
    }
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
