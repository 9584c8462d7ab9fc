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
