//! `netlab test`: many labs at once, each `netlab run` in its own process and
//! sandbox, under a time limit; a line (and, on failure, the output) per lab as it
//! ends, never interleaved; reports in JSON, TAP or JUnit for CI servers.
//!
//! Each lab's `netlab run` appends its events (steps, checks, skip, end) to a file
//! of ours as they happen, so a lab killed at `--timeout` is reported with the step
//! it was in. A killed `netlab run` takes its whole sandbox with it (its PID 1 dies
//! with it, and the kernel ends every process of the namespace). SIGINT/SIGTERM
//! kill every running lab, and the reports are still written for what ran.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::process::Command;
use tokio::sync::{Notify, Semaphore};

use crate::report::fmt_duration;
use crate::results::{self, Format, LabReport, Outcome, Totals};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Lab files (*.rhai) or folders (searched recursively for *.rhai).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Only labs whose path or one of whose step titles contains PATTERN
    /// (repeatable: any of them).
    #[arg(long, value_name = "PATTERN")]
    filter: Vec<String>,
    /// Run only shard K of N (1 <= K <= N): a deterministic, stable share of the
    /// labs (after --filter); shards 1/N..N/N together run every lab exactly once.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Labs run at the same time (default: 4 per CPU: a lab mostly waits on the
    /// kernel and on its checks' windows).
    #[arg(long, short, value_parser = clap::value_parser!(u64).range(1..4096))]
    jobs: Option<u64>,
    /// Kill a lab (its whole sandbox) that runs longer than this, and report it as
    /// timed out in the step it was in.
    #[arg(long, default_value_t = 300.0, value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: f64,
    /// Start no new lab after the first one that does not pass (running ones finish).
    #[arg(long)]
    fail_fast: bool,
    /// Report format on stdout: human (as labs end), json or tap (at the end; the
    /// human lines then go to stderr).
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Also write a JUnit XML report to FILE (a testsuite per lab, a testcase per step).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Set a constant visible to every lab, e.g. --set n=100 (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Passed on to every `netlab run`.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR", value_parser = crate::engine::limits::parse_slow_factor)]
    slow_factor: f64,
    /// Print the labs that would run (after --filter and --shard), one per line, and
    /// run nothing.
    #[arg(long)]
    list: bool,
    /// Run the labs in one small VM booted with this kernel and the machine's own
    /// root file system, through virtme-ng and QEMU (`netlab test` runs inside it,
    /// with the same options): a vmlinuz file, `debian` (the newest
    /// /boot/vmlinuz-* whose modules are in /lib/modules), or a release in /boot.
    #[arg(long, value_name = "IMAGE")]
    kernel: Option<String>,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("expected K/N with 1 <= K <= N, e.g. 2/4 (got {s:?})");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

pub(super) fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 7.0 * 86400.0 => Ok(t),
        _ => Err(format!("expected a number of seconds, more than 0 and at most a week (got {s:?})")),
    }
}

/// Lab files named on the command line, and the *.rhai files in folders
/// (recursively, hidden folders left out, symbolic links not followed), sorted. An
/// exercise's `solutions` folder holds students' work (a .rhai solution runs only
/// after its exercise's starting state), not labs: left out too.
pub(super) fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_file() {
        if path.extension().is_some_and(|x| x == "rhai") {
            out.push(path.to_path_buf());
            return Ok(());
        }
        return Err(format!("{} is not a lab (a lab file ends in .rhai)", path.display()));
    }
    if !path.is_dir() {
        return Err(format!("{} does not exist", path.display()));
    }
    let hidden = |e: &walkdir::DirEntry| {
        e.depth() > 0
            && (e.file_name().to_string_lossy().starts_with('.')
                || (e.file_type().is_dir() && e.file_name() == "solutions"))
    };
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(path).sort_by_file_name().into_iter().filter_entry(|e| !hidden(e)) {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().is_file() && entry.path().extension().is_some_and(|x| x == "rhai") {
            found.push(entry.into_path());
        }
    }
    out.extend(found);
    Ok(())
}

/// The labs of shard `k` of `n`: every n-th lab of the sorted list, from the k-th.
/// The same list gives the same shards on every machine.
pub(super) fn shard<T: Clone>(labs: &[T], (k, n): (usize, usize)) -> Vec<T> {
    labs.iter().enumerate().filter(|(i, _)| i % n == k - 1).map(|(_, l)| l.clone()).collect()
}

pub fn test(args: &TestArgs) -> i32 {
    if let Err(c) = super::run::parse_settings(&args.set) {
        return c;
    }
    let mut labs = Vec::new();
    for p in &args.paths {
        if let Err(e) = collect(p, &mut labs) {
            eprintln!("netlab: {e}");
            return 2;
        }
    }
    labs.sort();
    labs.dedup();
    if labs.is_empty() {
        eprintln!("netlab: no .rhai labs found in {}", show_paths(&args.paths));
        return 2;
    }
    if !args.filter.is_empty() {
        labs.retain(|lab| {
            let path = lab.display().to_string();
            args.filter.iter().any(|f| path.contains(f.as_str()))
                || super::model::step_titles(lab, &args.set)
                    .iter()
                    .any(|t| args.filter.iter().any(|f| t.contains(f.as_str())))
        });
        if labs.is_empty() {
            eprintln!("netlab: no lab's path or step title contains {}", args.filter.join(" or "));
            return 2;
        }
    }
    if let Some(s) = args.shard {
        labs = shard(&labs, s);
    }
    if args.list {
        for lab in &labs {
            println!("{}", lab.display());
        }
        return 0;
    }
    let vm = match args.kernel.as_deref().map(super::vm::Vm::prepare).transpose() {
        Ok(vm) => vm,
        Err(c) => return c,
    };
    let junit = match args.junit.as_deref().map(results::JunitFile::create).transpose() {
        Ok(j) => j,
        Err(c) => return c,
    };
    let Some(exe) = super::own_exe() else { return 3 };
    let Some(runtime) = super::runtime() else { return 3 };
    let started = Instant::now();
    if let Some(vm) = vm {
        return test_in_vm(args, &exe, &labs, &vm, junit.as_ref(), started);
    }
    let suite = Rc::new(Suite::new(args, labs.len()));
    let (reports, signal) = runtime.block_on(run_all(args, &exe, &labs, suite.clone()));
    suite.clear_progress();
    let totals = Totals::of(&reports);
    let not_run = labs.len() - reports.len();
    suite.line(&summary(&totals, not_run, started.elapsed(), signal, args.fail_fast, &results::kernel_release()));
    let written = results::write_reports(&reports, started.elapsed().as_secs_f64(), args.format, junit.as_ref());
    if let Some(sig) = signal {
        return 128 + sig;
    }
    if let Err(c) = written {
        return c;
    }
    let failing: Vec<&LabReport> = reports.iter().filter(|r| r.outcome.is_failure()).collect();
    if failing.is_empty() {
        0
    } else if failing.iter().all(|r| r.exit_code == 3) {
        // Nothing failed but what the machine lacks: say so, as `netlab run` does.
        3
    } else {
        1
    }
}

/// `netlab test --kernel IMAGE`: one VM for the whole batch, `netlab test` of the
/// same labs (already filtered and sharded here) inside it with the same options.
fn test_in_vm(
    args: &TestArgs,
    exe: &Path,
    labs: &[PathBuf],
    vm: &super::vm::Vm,
    junit: Option<&results::JunitFile>,
    started: Instant,
) -> i32 {
    use super::vm::VmEnd;
    use std::ffi::OsString;
    let mut inner: Vec<OsString> = vec!["test".into()];
    inner.extend(labs.iter().map(|l| l.clone().into_os_string()));
    inner.extend(["--timeout".into(), args.timeout.to_string().into()]);
    inner.extend(["--slow-factor".into(), vm.slow_factor(args.slow_factor).to_string().into()]);
    for s in &args.set {
        inner.extend(["--set".into(), s.into()]);
    }
    if let Some(j) = args.jobs {
        inner.extend(["--jobs".into(), j.to_string().into()]);
    }
    if args.fail_fast {
        inner.push("--fail-fast".into());
    }
    if let Some(name) = clap::ValueEnum::to_possible_value(&args.format) {
        inner.extend(["--format".into(), name.get_name().into()]);
    }
    if args.junit.is_some() {
        inner.extend(["--junit".into(), vm.file("junit.xml").into()]);
    }
    let mut env = Vec::new();
    if let Some(v) = std::env::var_os("NO_COLOR") {
        env.push(("NO_COLOR", v));
    }
    // Each lab is killed inside at --timeout, so the batch ends within a timeout per
    // round of --jobs labs (at least 4 at once inside).
    let rounds = labs.len().div_ceil(args.jobs.unwrap_or(4).max(1) as usize) as f64;
    let deadline = super::vm::BOOT_ALLOWANCE + Duration::from_secs_f64(args.timeout * rounds + 60.0);
    let end = vm.run(exe, &inner, &env, &[], deadline);
    let (outcome, code, message) = match end {
        VmEnd::Exited(code) => {
            if let Some(path) = &args.junit {
                super::vm::copy_back(&vm.file("junit.xml"), path, false);
            }
            return code;
        }
        VmEnd::Failed(why) => (Outcome::Error, 3, why),
        VmEnd::TimedOut(t) => (
            Outcome::Timeout,
            1,
            format!(
                "the VM did not end within {} (--timeout per round of labs, and the boot allowance): killed",
                fmt_duration(t)
            ),
        ),
        VmEnd::Signal(sig) => (Outcome::Interrupted, 128 + sig, "stopped by a signal: the VM was killed".into()),
    };
    // The run inside said nothing we can use: every lab is reported as the VM ended.
    eprintln!("netlab: under {}: {message}", vm.describe());
    let took = started.elapsed();
    let reports: Vec<LabReport> = labs
        .iter()
        .map(|lab| {
            let mut fold = results::Fold::new(&lab.display().to_string());
            fold.apply(&results::Event::End(results::Ending {
                outcome,
                exit_code: code,
                message: Some(message.clone()),
                detail: None,
                line: 0,
                seconds: took.as_secs_f64(),
                kernel: Some(vm.release.clone()),
            }));
            fold.finish(String::new())
        })
        .collect();
    let suite = Suite::new(args, labs.len());
    let signal = (code > 128).then_some(code - 128);
    suite.line(&summary(&Totals::of(&reports), 0, took, signal, args.fail_fast, &vm.release));
    let _ = results::write_reports(&reports, took.as_secs_f64(), args.format, junit);
    code
}

fn show_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn summary(t: &Totals, not_run: usize, took: Duration, signal: Option<i32>, fail_fast: bool, kernel: &str) -> String {
    let mut parts = vec![format!("{} passed", t.passed)];
    for (n, what) in [
        (t.failed, "failed"),
        (t.errors, if t.errors == 1 { "error" } else { "errors" }),
        (t.timeouts, "timed out"),
        (t.skipped, "skipped"),
        (t.interrupted, "interrupted"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if not_run > 0 {
        let why = match (signal, fail_fast) {
            (Some(_), _) => "stopped by a signal",
            (None, true) => "--fail-fast",
            (None, false) => "stopped",
        };
        parts.push(format!("{not_run} not run ({why})"));
    }
    let not_yet =
        if t.tasks_not_yet > 0 { format!(", {} exercise tasks not yet done", t.tasks_not_yet) } else { String::new() };
    format!(
        "{} ({} labs, {} checks passed, {} failed{not_yet}, in {}, kernel {})",
        parts.join(", "),
        t.labs,
        t.checks_passed,
        t.checks_failed,
        fmt_duration(took),
        kernel
    )
}

/// What the labs share while they run: the terminal, the stop flags.
struct Suite {
    /// Human lines go to stderr (stdout carries a --format report).
    to_stderr: bool,
    /// A live progress line (only on a terminal).
    live: bool,
    total: usize,
    done: std::cell::Cell<usize>,
    running: std::cell::RefCell<Vec<String>>,
    /// Stop starting labs (--fail-fast after a failure, or a signal).
    stop: AtomicBool,
    /// Kill the running labs (a signal).
    kill: Notify,
    killed: AtomicBool,
}

impl Suite {
    fn new(args: &TestArgs, total: usize) -> Suite {
        let to_stderr = args.format != Format::Human;
        let live = if to_stderr { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
        Suite {
            to_stderr,
            live,
            total,
            done: 0.into(),
            running: Default::default(),
            stop: AtomicBool::new(false),
            kill: Notify::new(),
            killed: AtomicBool::new(false),
        }
    }

    fn out(&self) -> Box<dyn Write> {
        if self.to_stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        }
    }

    /// A whole block at once: lines of parallel labs never mix.
    fn line(&self, text: &str) {
        let mut out = self.out();
        if self.live {
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = writeln!(out, "{text}");
        if self.live {
            let _ = write!(out, "{}", self.progress());
        }
        let _ = out.flush();
    }

    fn progress(&self) -> String {
        let running = self.running.borrow();
        let mut names = running.join(", ");
        if names.chars().count() > 60 {
            names = names.chars().take(57).collect::<String>() + "...";
        }
        format!("[{}/{}] running: {names}", self.done.get(), self.total)
    }

    fn show_progress(&self) {
        if self.live {
            let mut out = self.out();
            let _ = write!(out, "\r\x1b[2K{}", self.progress());
            let _ = out.flush();
        }
    }

    fn clear_progress(&self) {
        if self.live {
            let mut out = self.out();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
        }
    }
}

/// Runs every lab, at most `jobs` at once; returns the reports of the labs that
/// ran (in the labs' order) and the signal that stopped the run, if one did.
async fn run_all(args: &TestArgs, exe: &Path, labs: &[PathBuf], suite: Rc<Suite>) -> (Vec<LabReport>, Option<i32>) {
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| 4 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
        .max(1);
    let permits = Rc::new(Semaphore::new(jobs));
    let signal = Rc::new(std::cell::Cell::new(None));
    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for (i, lab) in labs.iter().enumerate() {
        let (suite, permits, lab, exe) = (suite.clone(), permits.clone(), lab.clone(), exe.to_path_buf());
        let child_args = child_args(args, &lab);
        let timeout = Duration::from_secs_f64(args.timeout);
        let fail_fast = args.fail_fast;
        handles.push(local.spawn_local(async move {
            let _permit = permits.acquire().await.ok()?;
            if suite.stop.load(Ordering::SeqCst) {
                return None;
            }
            let report = run_one(&exe, &lab, &child_args, timeout, &suite).await;
            if fail_fast && report.outcome.is_failure() {
                suite.stop.store(true, Ordering::SeqCst);
            }
            Some((i, report))
        }));
    }
    let sig = signal.clone();
    let watcher_suite = suite.clone();
    local.spawn_local(async move {
        let Some(got) = super::stop_signal().await else { return };
        sig.set(Some(got));
        watcher_suite.stop.store(true, Ordering::SeqCst);
        watcher_suite.killed.store(true, Ordering::SeqCst);
        watcher_suite.kill.notify_waiters();
    });
    let mut reports = local.run_until(super::joined(handles)).await;
    reports.sort_by_key(|(i, _)| *i);
    (reports.into_iter().map(|(_, r)| r).collect(), signal.get())
}

fn child_args(args: &TestArgs, lab: &Path) -> Vec<String> {
    let mut v = vec!["run".to_string(), lab.display().to_string()];
    v.push("--slow-factor".into());
    v.push(args.slow_factor.to_string());
    for s in &args.set {
        v.push("--set".into());
        v.push(s.clone());
    }
    v
}

/// Runs one lab: `netlab run LAB --events FILE`, its output into a file, killed at
/// the timeout or on a signal.
async fn run_one(exe: &Path, lab: &Path, child_args: &[String], timeout: Duration, suite: &Suite) -> LabReport {
    let name = lab.display().to_string();
    let started = Instant::now();
    let mut fold = results::Fold::new(&name);
    let files = (tempfile::NamedTempFile::new(), tempfile::tempfile());
    let (Ok(events), Ok(output)) = files else {
        fold.end_abruptly(
            Outcome::Error,
            3,
            "cannot make a temporary file for the lab's output".into(),
            started.elapsed(),
        );
        return finish(fold, String::new(), suite);
    };
    let output_err = output.try_clone();
    let mut command = Command::new(exe);
    command.args(child_args).arg("--events").arg(events.path()).stdin(Stdio::null());
    match (output.try_clone(), output_err) {
        (Ok(o), Ok(e)) => {
            command.stdout(Stdio::from(o)).stderr(Stdio::from(e));
        }
        _ => {
            fold.end_abruptly(Outcome::Error, 3, "cannot share the lab's output file".into(), started.elapsed());
            return finish(fold, String::new(), suite);
        }
    }
    // Its own process group: a Ctrl-C on the terminal reaches us, and we stop the
    // labs; and if we are killed, so is the lab.
    command.process_group(0);
    super::die_with_parent(command.as_std_mut());
    suite.running.borrow_mut().push(name.clone());
    suite.show_progress();
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            suite.running.borrow_mut().retain(|n| n != &name);
            fold.end_abruptly(Outcome::Error, 3, format!("cannot start netlab run: {e}"), started.elapsed());
            return finish(fold, String::new(), suite);
        }
    };
    let kill = suite.kill.notified();
    tokio::pin!(kill);
    // A signal that came before we waited: do not start waiting at all.
    let already_killed = suite.killed.load(Ordering::SeqCst);
    let end = if already_killed {
        ChildEnd::Killed
    } else {
        tokio::select! {
            status = child.wait() => ChildEnd::Exited(status.ok().and_then(|s| s.code())),
            _ = tokio::time::sleep(timeout) => ChildEnd::TimedOut,
            _ = &mut kill => ChildEnd::Killed,
        }
    };
    if !matches!(end, ChildEnd::Exited(_)) {
        kill_lab(&mut child).await;
    }
    suite.running.borrow_mut().retain(|n| n != &name);
    for event in results::read_events(events.path()) {
        fold.apply(&event);
    }
    let took = started.elapsed();
    match end {
        // It said how it ended: its own report stands.
        ChildEnd::Exited(_) if fold.ended() => {}
        ChildEnd::Exited(code) => {
            let code = code.unwrap_or(128);
            let outcome = if code == 130 || code == 143 { Outcome::Interrupted } else { Outcome::Error };
            fold.end_abruptly(
                outcome,
                code,
                format!("netlab run ended with exit code {code} before the lab ended"),
                took,
            );
        }
        ChildEnd::TimedOut => fold.end_abruptly(
            Outcome::Timeout,
            1,
            format!("timed out after {} (--timeout), killed with its sandbox", fmt_duration(timeout)),
            took,
        ),
        ChildEnd::Killed => fold.end_abruptly(Outcome::Interrupted, 130, "stopped by a signal".into(), took),
    }
    let text = read_output(output);
    finish(fold, text, suite)
}

/// How a lab's `netlab run` ended, as the runner saw it.
enum ChildEnd {
    Exited(Option<i32>),
    TimedOut,
    Killed,
}

/// Kills a lab's `netlab run` and every process below it (its sandbox's PID 1,
/// the lab's programs), and waits until each has exited: when this returns,
/// nothing of the lab runs any more. (Killing `netlab run` alone would do too —
/// its sandbox dies with it — but a moment later.)
pub(super) async fn kill_lab(child: &mut tokio::process::Child) {
    let Some(pid) = child.id() else { return };
    let mut pids = vec![pid];
    pids.extend(descendants(pid));
    // pidfds first: a pid that exits and is reused after we listed it is not ours.
    let fds: Vec<_> = pids.iter().filter_map(|p| pidfd(*p)).collect();
    for fd in &fds {
        // SAFETY: pidfd_send_signal on a pidfd we hold.
        unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, 0usize, 0u32) };
    }
    let _ = child.kill().await;
    for fd in fds {
        // A pidfd becomes readable when its process has exited.
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until dropped.
        let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
        if let Ok(async_fd) = registered {
            let _ = tokio::time::timeout(Duration::from_secs(5), async_fd.readable()).await;
        }
    }
}

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn pidfd(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open returns a new file descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    // SAFETY: fd is a new descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Every process below `pid` (children, their children, ...), from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut by_parent: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let ppid = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            by_parent.entry(ppid).or_default().push(p);
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in by_parent.get(&p).into_iter().flatten() {
            found.push(*c);
            todo.push(*c);
        }
    }
    found
}

/// The lab's output, at most 1 MiB of it (the rest is counted).
fn read_output(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    const KEEP: u64 = 1 << 20;
    let size = file.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let _ = file.seek(std::io::SeekFrom::Start(0));
    let mut bytes = Vec::new();
    let _ = (&mut file).take(KEEP).read_to_end(&mut bytes);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if size > KEEP {
        text += &format!("\n[{} more bytes of output not kept]\n", size - KEEP);
    }
    text
}

/// Prints the lab's line (and its output unless it passed) and returns its report.
fn finish(fold: results::Fold, output: String, suite: &Suite) -> LabReport {
    let report = fold.finish(output);
    suite.done.set(suite.done.get() + 1);
    let mut block = format!("{} {} ({})", report.outcome.word(), report.path, fmt_duration(secs(report.seconds)));
    match report.outcome {
        Outcome::Passed => {}
        Outcome::Skipped => block += &format!(": {}", report.message.as_deref().unwrap_or("skipped")),
        _ => {
            if let Some(m) = &report.message {
                block += &format!(" — {m}");
            }
            if let Some(at) = report.location() {
                block += &format!(" at {at}");
            }
            for line in report.output.lines() {
                block += &format!("\n    {line}");
            }
        }
    }
    suite.line(&block);
    report
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_labs() {
        let labs: Vec<usize> = (0..11).collect();
        for n in 1..=12 {
            let mut all: Vec<usize> = (1..=n).flat_map(|k| shard(&labs, (k, n))).collect();
            all.sort();
            assert_eq!(all, labs, "shards of {n}");
        }
    }

    #[test]
    fn shard_and_timeout_arguments_are_checked() {
        assert_eq!(parse_shard("2/4"), Ok((2, 4)));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert!(parse_timeout("5").is_ok());
        for bad in ["0", "-1", "1e300", "NaN", "inf", "x"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
