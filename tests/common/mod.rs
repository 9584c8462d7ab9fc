//! Helpers for the integration tests: run the real `netlab` binary (which makes its
//! own sandbox) and snapshot the machine's network state around it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn netlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netlab"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `netlab run` on a lab file and returns (exit code, stdout, stderr).
pub fn run_lab(path: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = netlab().arg("run").arg(path).args(extra).output().expect("netlab runs");
    decode(out)
}

/// Runs a lab given as text (written to a temporary file named `name`).
pub fn run_text(name: &str, text: &str) -> (i32, String, String) {
    let dir = std::env::temp_dir().join(format!("netlab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write lab");
    run_lab(&path, &[])
}

pub fn decode(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn capture(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd} must be installed: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What must be identical before and after any netlab run: the machine's links
/// (without counters), named namespaces, nftables ruleset and our mount table.
pub fn machine_state() -> String {
    let links: Vec<String> = capture("ip", &["-o", "link", "show"])
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    format!(
        "links:\n{}\nnetns:\n{}\nnft:\n{}\nmounts:\n{}\nip_forward: {}",
        links.join("\n"),
        capture("ip", &["netns", "list"]),
        capture("nft", &["list", "ruleset"]),
        mounts,
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default()
    )
}

/// Runs `labs/<lab>` with every line tagged `// break: <tag>` removed, and asserts
/// that it fails with exit 1 at a check whose source line contains `failing_line`.
/// Tagged lines are the lab's load-bearing steps (the MASQUERADE rule, the route...).
pub fn assert_breaks(lab: &str, tag: &str, failing_line: &str) {
    let text = std::fs::read_to_string(root().join("labs").join(lab)).expect("lab exists");
    let marker = format!("// break: {tag}");
    assert!(text.contains(&marker), "{lab} has no line tagged {marker:?}");
    let broken: String = text.lines().filter(|l| !l.contains(&marker)).map(|l| format!("{l}\n")).collect();
    let name = format!("{}-without-{tag}.rhai", lab.trim_end_matches(".rhai"));
    let before = machine_state();
    let (code, out, err) = run_text(&name, &broken);
    assert_eq!(code, 1, "{lab} without {tag:?} must fail a check (exit 1)\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("netlab::check_failed"), "{err}");
    let line_no: usize = out
        .lines()
        .last()
        .and_then(|l| l.rsplit_once(" at line ").map(|(_, n)| n))
        .and_then(|n| n.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failing line in the summary:\n{out}"));
    let line = broken.lines().nth(line_no - 1).unwrap_or("");
    assert!(
        line.contains(failing_line),
        "{lab} without {tag:?} failed at line {line_no} {line:?}, expected a line with {failing_line:?}\n{out}\n{err}"
    );
    assert_eq!(before, machine_state(), "{lab} changed the machine");
}
