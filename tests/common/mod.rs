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
