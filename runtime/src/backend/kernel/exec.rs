//! Running a program inside a node, like `ip netns exec`: the child joins the node's
//! network (and UTS) namespace, gets its own mount namespace with a sysfs of that
//! network namespace and the node's /etc files bind-mounted, and dies with netlab.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};

/// How many bytes of each output stream (stdout, stderr) a program's result keeps:
/// enough for `ip -o link` of the largest lab (63 500 links, ~7 MB); the rest is read
/// and counted, not stored, so a program that writes without end cannot exhaust
/// netlab's memory.
pub const OUTPUT_KEPT: usize = 8 << 20;

#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit code, or None when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Bytes of stdout beyond OUTPUT_KEPT: read, counted and dropped.
    pub stdout_dropped: u64,
    /// Bytes of stderr beyond OUTPUT_KEPT.
    pub stderr_dropped: u64,
}

impl ExecOutput {
    /// The whole stdout of a listing netlab itself runs (nft, iptables): a truncated
    /// one would be parsed wrong, so it is an error.
    pub fn whole_stdout(self, node: &str, what: &str) -> Result<String> {
        if self.stdout_dropped > 0 {
            return Err(Error::io(
                format!("{what} in {node}"),
                std::io::Error::other(format!("the output is larger than {OUTPUT_KEPT} bytes")),
            ));
        }
        Ok(self.stdout)
    }
}

/// A command line as the lab wrote it.
#[derive(Debug, Clone)]
pub struct CommandLine {
    pub program: String,
    pub argv: Vec<String>,
    /// Pipes, redirections or variables: run through /bin/sh -c.
    pub shell: Option<String>,
}

const SHELL_CHARS: &[char] = &['|', '&', ';', '<', '>', '$', '`', '(', ')', '*', '?', '~'];

impl CommandLine {
    /// Splits a command line as a shell would; what cannot be run as written is the
    /// lab's mistake (Error::BadCommand).
    pub fn parse(text: &str) -> Result<CommandLine> {
        let bad = |reason: &str| Error::BadCommand { command: text.to_string(), reason: reason.to_string() };
        // exec(2) takes NUL-terminated strings: a NUL inside one cannot be passed.
        if text.contains('\0') {
            return Err(bad("it contains a NUL byte, which no program argument can hold"));
        }
        let words = shell_words::split(text).map_err(|_| bad("a quote is not closed"))?;
        let Some(program) = words.first().cloned() else {
            return Err(bad("the command is empty"));
        };
        let shell = text.contains(SHELL_CHARS).then(|| text.to_string());
        Ok(CommandLine { program, argv: words, shell })
    }
}

pub use crate::packages::package_for;

pub fn find_program(program: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| is_exec(p))
}

/// Files bind-mounted over the machine's ones inside the child, e.g. the node's
/// resolv.conf over /etc/resolv.conf.
pub type BindMounts = Vec<(PathBuf, PathBuf)>;

/// Where programs start (LabOptions::workdir), set once by the lab.
static WORKDIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Programs run by the lab start in `dir`.
pub fn set_workdir(dir: PathBuf) {
    let _ = WORKDIR.set(dir);
}

pub async fn exec_in(
    node: &Node,
    cmd: &CommandLine,
    binds: &BindMounts,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<ExecOutput> {
    if find_program(&cmd.program).is_none() {
        let help = match package_for(&cmd.program) {
            Some(pkg) => Some(format!("install it: apt-get install {pkg}")),
            None => Some("check the spelling, or install the program".into()),
        };
        return Err(Error::ProgramNotFound { program: cmd.program.clone(), help });
    }
    let mut command = match &cmd.shell {
        Some(line) => {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
        None => {
            let mut c = tokio::process::Command::new(&cmd.argv[0]);
            c.args(&cmd.argv[1..]);
            c
        }
    };
    let netns_fd = node.ns()?.as_raw_fd();
    let uts_fd = node.uts.borrow().as_ref().map(|f| f.as_raw_fd());
    let binds = binds.iter().map(|(src, dst)| Ok((cstring(src)?, cstring(dst)?))).collect::<Result<Vec<_>>>()?;
    command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NETLAB_NODE", node.name.as_str())
        // A process group of its own: a terminal's Ctrl-C reaches netlab, which stops
        // the lab as interrupted (and the program with it), not the program alone,
        // which would let the lab go on as if the program had just ended.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = WORKDIR.get() {
        command.current_dir(dir);
    }
    // SAFETY: the closure runs between fork and exec; it only makes raw syscalls on
    // values prepared before the fork (fds, C strings) and allocates nothing.
    unsafe {
        command.pre_exec(move || enter_node(netns_fd, uts_fd, &binds));
    }
    let mut child = command.spawn().map_err(|e| Error::io(format!("starting {} in {}", cmd.program, node.name), e))?;
    let what = format!("{:?}", cmd.shell.clone().unwrap_or_else(|| cmd.argv.join(" ")));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let feed = async {
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            // A program that exits without reading its input is not an error here;
            // dropping stdin closes it so the program sees end of input.
            let _ = stdin.write_all(data).await;
        }
        child.wait().await
    };
    // Both streams are read while the program runs (a full pipe would stop it).
    let all = async { tokio::try_join!(feed, read_capped(stdout), read_capped(stderr)) };
    match tokio::time::timeout(timeout, all).await {
        Ok(Ok((status, (stdout, stdout_dropped), (stderr, stderr_dropped)))) => Ok(ExecOutput {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            stdout_dropped,
            stderr_dropped,
        }),
        Ok(Err(e)) => Err(Error::io(format!("waiting for {what} in {}", node.name), e)),
        // Dropping the future dropped the child, which kills it (kill_on_drop).
        Err(_) => Err(Error::Timeout { what, node: node.name.to_string(), seconds: timeout.as_secs_f64() }),
    }
}

/// Reads a stream to its end: the first OUTPUT_KEPT bytes, and how many came after.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(stream: Option<R>) -> std::io::Result<(Vec<u8>, u64)> {
    use tokio::io::AsyncReadExt;
    let Some(stream) = stream else { return Ok((Vec::new(), 0)) };
    let mut stream = tokio::io::BufReader::with_capacity(1 << 16, stream);
    let mut kept = Vec::new();
    (&mut stream).take(OUTPUT_KEPT as u64).read_to_end(&mut kept).await?;
    let dropped = tokio::io::copy_buf(&mut stream, &mut tokio::io::sink()).await?;
    Ok((kept, dropped))
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::io(format!("path {}", p.display()), std::io::ErrorKind::InvalidInput.into()))
}

fn check(ret: libc::c_int) -> std::io::Result<()> {
    if ret == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs in the child between fork and exec.
fn enter_node(netns: RawFd, uts: Option<RawFd>, binds: &[(CString, CString)]) -> std::io::Result<()> {
    // SAFETY: plain syscalls with valid fds and NUL-terminated strings.
    unsafe {
        // Die with netlab even after `kill -9`, so nothing keeps the node alive.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong))?;
        check(libc::setns(netns, libc::CLONE_NEWNET))?;
        if let Some(uts) = uts {
            check(libc::setns(uts, libc::CLONE_NEWUTS))?;
        }
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ))?;
        // A sysfs mounted now shows this namespace's devices (/sys/class/net), like ip
        // netns exec; stacked on the sandbox's (in a user namespace a sysfs may only be
        // mounted where one is fully visible, so the old one stays beneath).
        // EBUSY: the sysfs of this very namespace is the one there already (the lab's host).
        if libc::mount(c"sysfs".as_ptr(), c"/sys".as_ptr(), c"sysfs".as_ptr(), 0, std::ptr::null()) != 0
            && *libc::__errno_location() != libc::EBUSY
        {
            return Err(std::io::Error::last_os_error());
        }
        for (src, dst) in binds {
            check(libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let c = CommandLine::parse("curl -s 'http://a b'").unwrap();
        assert_eq!(c.argv, vec!["curl", "-s", "http://a b"]);
        assert!(c.shell.is_none());
        let c = CommandLine::parse("netstat -nat | grep LISTEN").unwrap();
        assert_eq!(c.program, "netstat");
        assert!(c.shell.is_some());
        for (line, why) in [("", "empty"), ("  ", "empty"), ("echo 'unterminated", "quote"), ("echo a\0b", "NUL")] {
            let err = CommandLine::parse(line).expect_err(line);
            assert!(matches!(err, Error::BadCommand { .. }), "{err:?}");
            assert!(err.to_string().contains(why), "{err}");
            assert_eq!(err.class(), crate::ErrorClass::Script);
        }
    }

    #[test]
    fn programs() {
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-xyz").is_none());
        assert_eq!(package_for("brctl"), Some("bridge-utils"));
    }
}
