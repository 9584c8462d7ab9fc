//! Every check of every lab can fail: `netlab prove` runs each lab with each
//! `// break:` tag removed (a positive check marked `// needs:` must fail) and each
//! `// fix:` applied just before its negative check (that check must fail). It also
//! rejects a negative check without a fix and a tag without its counterpart, so a
//! new check or tag cannot go unproven.

mod common;

use common::{machine_state, netlab, root};

fn proven(lab: &str) {
    let before = machine_state();
    let out = netlab().arg("prove").arg(root().join("labs").join(lab)).output().expect("netlab runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{lab} is not proven:\n{stdout}\n{stderr}");
    assert!(!stdout.contains('✗'), "{stdout}");
    assert!(stdout.lines().filter(|l| l.contains('✓')).count() > 0, "{lab} has no proof cases:\n{stdout}");
    assert_eq!(before, machine_state(), "proving {lab} changed the machine");
}

macro_rules! labs {
    ($($test:ident => $file:literal),* $(,)?) => {
        $( #[test] fn $test() { proven($file); } )*
        const LISTED: &[&str] = &[$($file),*];
    };
}

labs! {
    netns_loopback => "netns_loopback.rhai",
    veth_direct => "veth_direct.rhai",
    bridge => "bridge.rhai",
    bridge_nat => "bridge_nat.rhai",
    red_blue => "red_blue.rhai",
    red_blue_bridge => "red_blue_bridge.rhai",
    docker0 => "docker0.rhai",
    docker_modes => "docker_modes.rhai",
    port_reuse => "port_reuse.rhai",
}

/// A new seed lab cannot be forgotten here.
#[test]
fn every_lab_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(root().join("labs"))
        .expect("labs/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rhai"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = LISTED.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}

/// A lab whose negative check has no fix, or whose tags don't pair up, is refused
/// with exit 2 and the line named.
#[test]
fn unmarked_negative_checks_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = dir.path().join("unmarked.rhai");
    std::fs::write(&lab, "let a = netns(\"a\");\nexpect_no_ping(a, \"10.0.0.1\");\nup(a, \"lo\");   // break: lo\n")
        .expect("write");
    let out = netlab().arg("prove").arg(&lab).output().expect("netlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unmarked.rhai:2: a negative check without \"// fix: STMT\""), "{stderr}");
    assert!(stderr.contains("\"// break: lo\" has no check marked \"// needs: lo\""), "{stderr}");
}

/// A fix that does not connect anything leaves the negative check passing: prove
/// reports it (exit 1) instead of counting it as proven.
#[test]
fn a_fix_that_changes_nothing_is_caught() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = dir.path().join("weak.rhai");
    std::fs::write(
        &lab,
        "let a = netns(\"a\");\nlet b = netns(\"b\");\nveth(a, \"x\", b, \"y\");\naddr(a, \"x\", \"10.0.0.1/24\");\n\
         addr(b, \"y\", \"10.0.0.2/24\");\nup(a, \"x\");\nexpect_no_ping(a, \"10.0.0.2\");   // fix: up(a, \"lo\");\n",
    )
    .expect("write");
    let out = netlab().arg("prove").arg(&lab).output().expect("netlab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("✗ fix before line 7"), "{stdout}");
    assert!(stdout.contains("still passes with the fix"), "{stdout}");
}
