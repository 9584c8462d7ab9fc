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
    std::process::exit(cli::main());
}
