//! Start-up and signals: a `netlab run` killed at any moment of its start leaves no
//! process behind (its sandbox's PID 1 dies with it even if the kill came between
//! the fork and PR_SET_PDEATHSIG); SIGINT or SIGTERM to netlab's own pid stops the
//! lab like a terminal's Ctrl-C, with the summary and reports of what ran; a second
//! one ends it at once.
//!
//! A run's processes are found by a marker in their environment (every process of
//! the run inherits it: the outer netlab, the sandbox's PID 1, the programs of
//! exec_in), so each test sees its own runs only.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::netlab;

/// Never ends by itself: the step spins (no operation budget, a long time limit).
const SPIN: &str = "step(\"spin\", || { loop {} });\n";

/// Step 2 waits on a program for ten minutes.
const SLEEP: &str = r#"
step("build", || {
    bridge(host(), "br-sig");
    up(host(), "br-sig");
    expect(true, "built");
});
step("wait for the sleeper", || {
    exec_in(host(), "sleep 600", #{timeout: 900});
});
"#;

const MARKER: &str = "NETLAB_STARTUP_TEST";

fn lab_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlab-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A marker no other run of this machine carries.
fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// Live (not zombie) processes whose environment holds MARKER=`mark`.
fn live_processes(mark: &str) -> Vec<u32> {
    let needle = format!("{MARKER}={mark}\0");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else { continue };
        if !env.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            continue;
        }
        // The state follows the command's closing parenthesis; Z is a zombie.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, Some(s) if s != "Z" && s != "X") {
            found.push(pid);
        }
    }
    found
}

/// Waits (up to 5 s: the kernel kills a dead PID 1's namespace at once) until no
/// process of the run lives; kills the survivors and fails otherwise.
fn assert_nothing_left(mark: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live = live_processes(mark);
        if live.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let cmdlines: Vec<String> = live
                .iter()
                .map(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default().replace('\0', " "))
                .collect();
            for p in &live {
                // SAFETY: killing a leftover of our own test run (found by its marker).
                unsafe { libc::kill(*p as i32, libc::SIGKILL) };
            }
            panic!("{what}: processes of the run survived: {live:?} {cmdlines:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn start(lab: &std::path::Path, mark: &str, extra: &[&str]) -> Child {
    netlab()
        .arg("run")
        .arg(lab)
        .args(extra)
        .env(MARKER, mark)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netlab starts")
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: signalling our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

const SPIN_ARGS: [&str; 4] = ["--max-time", "600", "--max-operations", "1000000000000000"];

/// How long netlab takes from its start to the fork of its sandbox here (a debug
/// build: some 50 ms), the median of three.
fn time_to_fork(lab: &std::path::Path, mark: &str) -> Duration {
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let mut child = start(lab, mark, &SPIN_ARGS);
            while children(child.id()).is_empty() {
                assert!(started.elapsed() < Duration::from_secs(10), "netlab never forked its sandbox");
                std::thread::sleep(Duration::from_micros(200));
            }
            let took = started.elapsed();
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
            took
        })
        .collect();
    times.sort();
    times[1]
}

#[test]
fn killed_at_any_moment_of_its_start_it_leaves_no_process() {
    let lab = lab_file("spin.rhai", SPIN);
    let mark = marker("kill");
    let fork_at = time_to_fork(&lab, &mark);
    assert_nothing_left(&mark, "after measuring the start");
    let started = Instant::now();
    let (mut before_fork, mut after_fork) = (0, 0);
    // The first 11 kills 0, 1, ... 10 ms after the start, then spread evenly up to
    // twice the time to the fork: before it, around it and while the lab spins.
    let delays = (0..11).map(Duration::from_millis).chain((0..189).map(|i| fork_at * 2 * i / 188));
    for (i, delay) in delays.enumerate() {
        let mut child = start(&lab, &mark, &SPIN_ARGS);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        // Whether the sandbox had been forked yet (seen just before the kill).
        if children(child.id()).is_empty() {
            before_fork += 1;
        } else {
            after_fork += 1;
        }
        signal(child.id(), libc::SIGKILL);
        let _ = child.wait();
        assert_nothing_left(&mark, &format!("killed after {delay:?} (kill {i})"));
    }
    eprintln!(
        "200 kills in {:.1} s (fork after {fork_at:?}): {before_fork} before the sandbox was forked, {after_fork} after",
        started.elapsed().as_secs_f64()
    );
    assert!(before_fork > 0 && after_fork > 0, "the kills did not fall on both sides of the fork");
}

/// The children of a single-threaded process (netlab's outer process).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Reads stdout until step 2's header, and waits until exec_in's sleep runs.
fn wait_for_the_sleeper(child: &mut Child, mark: &str) -> std::thread::JoinHandle<String> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines.next().expect("netlab printed step 2 before ending").unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("── 2.") {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !live_processes(mark)
        .iter()
        .any(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == "sleep\x00600\x00"))
    {
        assert!(Instant::now() < deadline, "exec_in never started sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    })
}

/// `sig` to the outer process alone (or, `to_group`, to its process group, as a
/// terminal's Ctrl-C) while step 2 waits on a program: the lab stops at once as
/// interrupted, with its summary and JUnit report.
fn stops_gracefully(sig: libc::c_int, to_group: bool) {
    let lab = lab_file(&format!("sleep-{sig}-{to_group}.rhai"), SLEEP);
    let mark = marker("graceful");
    let junit = lab.with_extension("xml");
    let mut child = start(&lab, &mark, &["--junit", junit.to_str().unwrap()]);
    let stdout = wait_for_the_sleeper(&mut child, &mark);
    let sent = Instant::now();
    if to_group {
        // SAFETY: our child leads its own process group (process_group(0)).
        assert_eq!(unsafe { libc::kill(-(child.id() as i32), sig) }, 0);
    } else {
        signal(child.id(), sig);
    }
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    let out = stdout.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(128 + sig), "{out}{err}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");
    let summary = out.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("INTERRUPTED ")
            && summary.contains("interrupted in step 2. wait for the sleeper at line 8 (2 steps, 1 check passed,"),
        "{out}"
    );
    assert!(out.contains("   INTERRUPTED after "), "{out}");
    let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
    assert!(err.contains(&format!("interrupted by {name} (step 2. wait for the sleeper)")), "{err}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"<error type="interrupted" message="interrupted by "#), "{xml}");
    assert!(xml.contains(r#"<property name="outcome" value="interrupted"/>"#), "{xml}");
    assert_nothing_left(&mark, "after the graceful stop");
}

#[test]
fn sigint_to_netlabs_pid_stops_the_lab_with_its_summary() {
    stops_gracefully(libc::SIGINT, false);
}

#[test]
fn sigterm_to_netlabs_pid_stops_the_lab_with_its_summary() {
    stops_gracefully(libc::SIGTERM, false);
}

#[test]
fn ctrl_c_on_the_terminal_stops_the_lab_with_its_summary() {
    stops_gracefully(libc::SIGINT, true);
}

#[test]
fn a_second_ctrl_c_ends_the_run_at_once() {
    let lab = lab_file("spin2.rhai", SPIN);
    let mark = marker("twice");
    let mut child = start(&lab, &mark, &["--max-time", "600", "--max-operations", "1000000000000000"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("── 1. spin"));
    // A sandbox that cannot stop gracefully (stopped, it runs nothing): the first
    // SIGINT waits in it; the second, later than the same request could repeat, kills it.
    let sandbox = children(child.id());
    assert_eq!(sandbox.len(), 1);
    signal(sandbox[0], libc::SIGSTOP);
    signal(child.id(), libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(child.id(), libc::SIGINT);
    let status = child.wait().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("netlab: interrupted again; the sandbox and everything in it is gone"), "{err}");
    assert_nothing_left(&mark, "after the second SIGINT");
}
