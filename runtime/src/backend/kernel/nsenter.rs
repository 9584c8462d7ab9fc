//! "Run this closure in that namespace": the one place where the current thread
//! switches network namespace (STYLE.md: one `exec_netns!`-style helper).
//! The closure must not await: sockets are bound to the namespace of the thread that
//! creates them, so we switch, create, and switch back synchronously.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// Opens a handle on the calling thread's current network namespace.
pub fn current_netns() -> Result<File> {
    File::open("/proc/thread-self/ns/net").map_err(|e| Error::io("opening /proc/thread-self/ns/net", e))
}

/// Runs `f` with the calling thread inside the network namespace `target`, then
/// returns to `home`.
pub fn in_netns<T>(home: BorrowedFd<'_>, target: BorrowedFd<'_>, f: impl FnOnce() -> T) -> Result<T> {
    setns(target, CloneFlags::CLONE_NEWNET).map_err(|e| Error::io("entering a node's network namespace", e.into()))?;
    let out = f();
    // Failing to return would leave every later socket in the wrong namespace.
    setns(home, CloneFlags::CLONE_NEWNET).map_err(|e| Error::io("returning to the lab host's namespace", e.into()))?;
    Ok(out)
}

/// Convenience for `File`s.
pub fn in_netns_file<T>(home: &File, target: &File, f: impl FnOnce() -> T) -> Result<T> {
    in_netns(home.as_fd(), target.as_fd(), f)
}
