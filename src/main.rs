//! netlab: network-namespace tutorials as self-checking labs.
//!
//! Exit codes: 0 every check held, 1 a check failed, 2 script or usage error,
//! 3 environment problem (no privileges, missing kernel feature or tool),
//! 130 interrupted.

mod cli;
mod engine;
mod proof;
mod report;
mod results;

fn main() {
    // Like other Unix tools: `netlab functions | head` ends quietly on a closed pipe.
    // SAFETY: resetting a signal disposition at startup, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    no_inherited_fds();
    std::process::exit(cli::main());
}

/// Whatever file descriptors netlab inherited beyond stdin, stdout and stderr (a
/// VM's init, a CI runner, a shell's `exec 3<`) are not passed on to the programs a
/// lab runs: they start as on any machine, with 0, 1 and 2 only, so what they show
/// (`ss -p`: `fd=3`) is the same everywhere.
fn no_inherited_fds() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: marks descriptors close-on-exec; closes none, owns none.
    let marked =
        unsafe { libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    if marked == 0 {
        return;
    }
    // Kernels before 5.11: one by one.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; a descriptor that is gone (read_dir's own) fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}
