//! Limits, no panics: a lab that runs away (time, operations, data, program output,
//! import cycles) or gives a number out of range ends with a diagnostic naming the
//! limit or the option and exit 2, never a hang, a stack overflow or exit 101; and
//! nothing of it is left on the machine.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{machine_state, netlab};

/// A folder with the given lab files.
fn labs(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write lab");
    }
    dir
}

/// `netlab CMD LAB ARGS...`: (exit code, stdout, stderr, how long it took).
fn netlab_on(cmd: &str, lab: &Path, args: &[&str]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let out = netlab().arg(cmd).arg(lab).args(args).output().expect("netlab runs");
    let (code, stdout, stderr) = common::decode(out);
    (code, stdout, stderr, started.elapsed())
}

/// Runs `text` as a lab with `args`; asserts exit 2, that stderr names `needles`,
/// that nothing panicked and that the machine is as before. Returns stderr.
fn stopped(text: &str, args: &[&str], needles: &[&str]) -> (String, Duration) {
    let dir = labs(&[("lab.rhai", text)]);
    let before = machine_state();
    let (code, out, err, took) = netlab_on("run", &dir.path().join("lab.rhai"), args);
    assert_eq!(code, 2, "exit code\nstdout:\n{out}\nstderr:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(before, machine_state(), "the lab changed the machine");
    (err, took)
}

#[test]
fn an_endless_loop_ends_at_max_time() {
    let lab = "let a = netns(\"a\");\nlet i = 0;\nloop {\n    i += 1;\n}\n";
    let (err, took) = stopped(lab, &["--max-time", "2"], &["netlab::max_time", "time limit of 2 s", "--max-time"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(took >= Duration::from_secs(2), "stopped before its limit: {took:?}");
    assert!(err.contains("4 │     i += 1;"), "the line it was on is not shown:\n{err}");
}

#[test]
fn a_program_cannot_outlast_max_time() {
    // exec_in's own timeout (50 s) is cut to what is left of the lab's 2 s.
    let lab = "let a = netns(\"a\");\nexec_in(a, \"sleep 60\", #{timeout: 50});\n";
    let (err, took) = stopped(lab, &["--max-time", "2"], &["netlab::max_time", "exec_in(a, \"sleep 60\""]);
    assert!(took < Duration::from_secs(10), "took {took:?}\n{err}");
}

#[test]
fn a_negative_window_longer_than_the_time_left_is_the_limit() {
    // Watching a window cut short could pass a check that would fail.
    let lab = "let a = netns(\"a\");\nexpect_no_ping(a, \"10.9.9.9\", #{window: 30});\n";
    let (_, took) = stopped(lab, &["--max-time", "1"], &["netlab::max_time"]);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn an_endless_loop_ends_at_the_operation_budget() {
    let lab = "let i = 0;\nloop {\n    i += 1;\n}\n";
    stopped(lab, &["--max-operations", "100000"], &["netlab::max_operations", "--max-operations"]);
}

#[test]
fn huge_strings_and_arrays_are_refused() {
    stopped("let s = \"x\";\nloop {\n    s += s;\n}\n", &[], &["netlab::too_large", "string", "MiB"]);
    stopped("let a = [];\na.pad(100000000, 0);\n", &[], &["netlab::too_large", "array"]);
    stopped("let b = blob(100000000000);\n", &[], &["netlab::too_large"]);
}

#[test]
fn large_labs_fit_the_size_limits() {
    // labs/scale/w1.rhai at its largest n: 63 500 nodes in one array, maps as large.
    let lab = "let cs = [];\nlet m = #{};\nfor i in 0..63500 {\n    cs.push(i);\n    m[`c${i}`] = i;\n}\n\
               expect_eq(cs.len() + m.len(), 127000, \"all kept\");\n";
    let dir = labs(&[("big.rhai", lab)]);
    let (code, out, err, _) = netlab_on("check", &dir.path().join("big.rhai"), &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

/// Runs `netlab run LAB` and waits for it with wait4(2): the exit code, stdout and
/// the peak resident memory of netlab and every process it waited for (its
/// sandboxed child among them), in KiB.
// wait4 below reaps the child; std's wait would not report its resource usage.
#[allow(clippy::zombie_processes)]
fn run_measured(lab: &Path) -> (i32, String, String, i64) {
    let mut child =
        netlab().arg("run").arg(lab).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("netlab starts");
    let (mut stdout, mut stderr) = (child.stdout.take().expect("stdout"), child.stderr.take().expect("stderr"));
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out = String::new();
    stdout.read_to_string(&mut out).expect("stdout");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std has not waited for (it never will:
    // `child` is dropped without wait), with valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, out, err.join().expect("stderr reader"), usage.ru_maxrss)
}

#[test]
fn exec_in_output_is_capped_and_counted() {
    let lab = "let a = netns(\"a\");\n\
               let r = exec_in(a, \"yes | head -c 300M\");\n\
               print(`kept=${r.stdout.len()} dropped=${r.stdout_dropped} truncated=${r.truncated} code=${r.code}`);\n\
               let e = exec_in(a, \"echo hi\");\n\
               print(`small: truncated=${e.truncated} dropped=${e.stdout_dropped}+${e.stderr_dropped}`);\n";
    let dir = labs(&[("yes.rhai", lab)]);
    let before = machine_state();
    let started = Instant::now();
    let (code, out, err, peak_kib) = run_measured(&dir.path().join("yes.rhai"));
    let took = started.elapsed();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let kept: u64 = 8 << 20;
    let total: u64 = 300 << 20;
    assert!(out.contains(&format!("kept={kept} dropped={} truncated=true code=0", total - kept)), "{out}");
    assert!(out.contains("small: truncated=false dropped=0+0"), "{out}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    // 300 MiB went through; what netlab holds is the 8 MiB kept (and its copies).
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
    eprintln!("exec_in of 300 MiB: {took:?}, peak RSS {} MiB", peak_kib / 1024);
    assert_eq!(before, machine_state());
}

fn cycle_labs() -> tempfile::TempDir {
    labs(&[
        ("a.rhai", "import \"b\" as b;\nlet x = 1;\n"),
        ("b.rhai", "// b needs a\nimport \"a\" as a;\nfn f() { 1 }\n"),
        ("self.rhai", "let y = 2;\nimport \"self\" as me;\n"),
    ])
}

#[test]
fn an_import_cycle_is_named_in_run_and_check() {
    let dir = cycle_labs();
    for cmd in ["run", "check"] {
        let (code, out, err, _) = netlab_on(cmd, &dir.path().join("a.rhai"), &[]);
        assert_eq!(code, 2, "netlab {cmd}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains("netlab::import_cycle"), "{err}");
        assert!(err.contains("import cycle: a.rhai → b.rhai → a.rhai"), "{err}");
        assert!(err.contains("1 │ import \"b\" as b;"), "the import line is not shown:\n{err}");
        assert!(!out.contains("ok "), "netlab {cmd} said ok:\n{out}");
        let (code, _, err, _) = netlab_on(cmd, &dir.path().join("self.rhai"), &[]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("import cycle: self.rhai → self.rhai"), "{err}");
        assert!(err.contains("2 │ import \"self\" as me;"), "{err}");
    }
}

#[test]
fn numbers_out_of_range_name_the_option() {
    let a = "let a = netns(\"a\");\n";
    let cases: &[(&str, &[&str])] = &[
        ("expect_ping(a, \"127.0.0.1\", #{timeout: 1e20});", &["netlab::bad_option", "timeout 1e20", "86400"]),
        ("expect_ping(a, \"127.0.0.1\", #{timeout: -1});", &["netlab::bad_option", "timeout -1"]),
        ("expect_ping(a, \"127.0.0.1\", #{timeout: 0.0/0.0});", &["netlab::bad_option", "timeout NaN"]),
        ("expect_ping(a, \"127.0.0.1\", #{timeout: \"3\"});", &["netlab::bad_option", "number of seconds"]),
        ("expect_no_ping(a, \"10.9.9.9\", #{window: 1e300});", &["netlab::bad_option", "window"]),
        ("exec_in(a, \"true\", #{timeout: 1e20});", &["netlab::bad_option", "timeout"]),
        ("curl(a, \"http://10.9.9.9/\", #{timeout: 100000});", &["netlab::bad_option", "timeout 100000"]),
        ("ping_count([a], \"127.0.0.1\", #{tries: 4294967296});", &["netlab::bad_option", "tries 4294967296"]),
        ("ping_count([a], \"127.0.0.1\", #{tries: 0});", &["netlab::bad_option", "tries 0", "1 to 10000"]),
        ("http_server(a, \"0.0.0.0:80\", \"x\", #{status: 70000});", &["netlab::bad_option", "status 70000"]),
        ("http_server(a, \"0.0.0.0:70000\", \"x\");", &["netlab::bad_address", "ports are 1 to 65535"]),
        ("port_forward(a, 70000, \"10.0.0.2:80\");", &["netlab::bad_address", "ports are 1 to 65535"]),
    ];
    for (line, needles) in cases {
        let (err, _) = stopped(&format!("{a}{line}\n"), &[], needles);
        assert!(err.contains(&format!("2 │ {line}")), "the call is not shown:\n{err}");
    }
}

#[test]
fn command_line_numbers_out_of_range() {
    let dir = labs(&[("ok.rhai", "let a = netns(\"a\");\n")]);
    let lab: PathBuf = dir.path().join("ok.rhai");
    for (args, needle) in [
        (["--slow-factor", "1e300"], "--slow-factor"),
        (["--slow-factor", "0"], "--slow-factor"),
        (["--slow-factor", "NaN"], "--slow-factor"),
        (["--max-time", "0"], "--max-time"),
        (["--max-time", "1e20"], "--max-time"),
        (["--max-operations", "0"], "--max-operations"),
    ] {
        let (code, _, err, _) = netlab_on("run", &lab, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The largest slow factor still runs a lab.
    let (code, _, err, _) = netlab_on("run", &lab, &["--slow-factor", "1000"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn command_lines_a_program_cannot_get_are_the_labs_mistake() {
    for (command, reason) in [
        ("echo 'unterminated", "a quote is not closed"),
        ("", "the command is empty"),
        ("   ", "the command is empty"),
        ("echo a\\x00b", "NUL byte"),
    ] {
        let lab = format!("let a = netns(\"a\");\nexec_in(a, \"{command}\");\n");
        stopped(&lab, &[], &["netlab::bad_command", reason]);
    }
}
