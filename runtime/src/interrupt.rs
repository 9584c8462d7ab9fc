//! Stopping a lab gracefully on SIGINT, SIGTERM or SIGHUP. Inside the sandbox (PID 1
//! of its PID namespace) the handler only records the signal and writes a byte to a
//! pipe; the script engine checks [`signal`] between operations, and the runtime's
//! native waits (a program, a ping window, a readiness wait) race [`received`],
//! which that byte wakes. The lab then ends as "interrupted" with its summary and
//! reports, and tears down as usual. A second signal is the outer process's
//! business (sandbox.rs): it kills the sandbox at once.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::error::{Error, Result};

/// The signals that stop a lab.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// The first stop signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// The pipe the handler writes to, and the end [`received`] waits on (-1: not
/// installed, as outside the sandbox).
static WAKE_WRITE: AtomicI32 = AtomicI32::new(-1);
static WAKE_READ: AtomicI32 = AtomicI32::new(-1);

/// The first stop signal this process received, if any.
pub fn signal() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// The exit code of a run a signal stopped: 128 + the signal (130 for SIGINT, 143
/// for SIGTERM), as a shell reports a program the signal killed.
pub fn exit_code() -> i32 {
    128 + signal().unwrap_or(libc::SIGINT)
}

/// Makes SIGINT/SIGTERM/SIGHUP stop the lab gracefully. Called once, by the sandbox's
/// PID 1 (which as PID 1 of its namespace gets no default action for them: without
/// handlers they would be ignored).
pub(crate) fn install() -> Result<()> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .map_err(|e| Error::Sandbox { reason: format!("making the interrupt pipe: {e}"), help: None })?;
    // Both ends live as long as the process.
    WAKE_READ.store(read.into_raw_fd(), Ordering::SeqCst);
    WAKE_WRITE.store(write.into_raw_fd(), Ordering::SeqCst);
    // SA_RESTART: a blocking call the signal interrupts goes on; what must end is
    // woken by the pipe or sees the flag.
    let action = SigAction::new(SigHandler::Handler(on_stop_signal), SaFlags::SA_RESTART, SigSet::empty());
    for sig in STOP_SIGNALS {
        // SAFETY: the handler only does async-signal-safe things (atomics, write(2)).
        unsafe { sigaction(sig, &action) }
            .map_err(|e| Error::Sandbox { reason: format!("handling {sig}: {e}"), help: None })?;
    }
    Ok(())
}

extern "C" fn on_stop_signal(sig: libc::c_int) {
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let fd = WAKE_WRITE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; errno is restored so the code the
        // signal interrupted does not see ours (EAGAIN of a full pipe).
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, [1u8].as_ptr().cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Completes once a stop signal has been received (at once if one has); never
/// where none is handled. Each call waits on a duplicate of the pipe's read end, so
/// any number may wait at once.
pub async fn received() {
    if signal().is_some() {
        return;
    }
    let fd = WAKE_READ.load(Ordering::SeqCst);
    let waiter = (fd >= 0).then(|| duplicate(fd)).and_then(|d| d.ok()).and_then(|d| {
        // SAFETY: the AsyncFd owns the duplicate, which stays open as long as it does.
        unsafe { tokio::io::unix::AsyncFd::register_with_interest(d, tokio::io::Interest::READABLE) }.ok()
    });
    let Some(waiter) = waiter else { return std::future::pending().await };
    loop {
        // A byte came before this wait began: the registration reports it.
        let Ok(mut ready) = waiter.readable().await else { return std::future::pending().await };
        if signal().is_some() {
            return;
        }
        // A byte from a forked child not yet exec'd (it shares our handler and
        // pipe); its signal is not ours.
        drain(waiter.get_ref().as_raw_fd());
        ready.clear_ready();
    }
}

/// Runs `f` unless a stop signal comes first: then Error::Interrupted.
pub async fn unless_interrupted<T>(f: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::select! {
        biased;
        _ = received() => Err(Error::Interrupted),
        out = f => Ok(out),
    }
}

fn duplicate(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor this process keeps open for its whole life.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: dup is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    // SAFETY: reading into a valid buffer from a non-blocking descriptor we own.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}
