//! `netlab prove` itself: it refuses unmarked negative checks and unpaired tags, and
//! catches a fix that changes nothing. (tests/labs.rs proves every lab in labs/.)

mod common;

use common::netlab;

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

/// A fix statement that does not parse is the lab's mistake (exit 2), not an
/// unproven check.
#[test]
fn a_fix_that_does_not_parse_is_a_marker_mistake() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = dir.path().join("typo.rhai");
    std::fs::write(
        &lab,
        "let a = netns(\"a\");\nlet b = netns(\"b\");\nveth(a, \"x\", b, \"y\");\naddr(a, \"x\", \"10.0.0.1/24\");\n\
         addr(b, \"y\", \"10.0.0.2/24\");\nup(a, \"x\");\nexpect_no_ping(a, \"10.0.0.2\");   // fix: up(b, \"y\"\n",
    )
    .expect("write");
    let out = netlab().arg("prove").arg(&lab).output().expect("netlab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("✗ fix before line 7: up(b, \"y\": marker mistake"), "{stdout}");
}

/// A lab that reads a file beside it (nft_file) is proven from a folder under /tmp,
/// as a fresh clone in CI is: its cases get a copy of the folder, which the sandbox
/// shows them (a link to /tmp/... was not visible inside it).
#[test]
fn a_lab_reading_a_file_beside_it_is_proven_anywhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sub = dir.path().join("rules");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(
        sub.join("drop.nft"),
        "table inet t {\n  chain input {\n    type filter hook input priority filter; policy drop;\n  }\n}\n",
    )
    .expect("write");
    let lab = dir.path().join("beside.rhai");
    std::fs::write(
        &lab,
        "let a = netns(\"a\");\nlet b = netns(\"b\");\nveth(a, \"x\", b, \"y\");\naddr(a, \"x\", \"10.0.0.1/24\");\n\
         addr(b, \"y\", \"10.0.0.2/24\");\nup(a, \"x\");\nup(b, \"y\");\n\
         expect_ping(a, \"10.0.0.2\");   // needs: up\n\
         nft_file(b, \"rules/drop.nft\");   // break: file\n\
         expect(nft_ruleset(b).contains(\"policy drop\"), \"the file's table\");   // needs: file\n\
         expect_no_ping(a, \"10.0.0.2\");   // fix: sh(b, \"nft delete table inet t\");\n",
    )
    .expect("write");
    let text = std::fs::read_to_string(&lab).unwrap().replace("up(b, \"y\");", "up(b, \"y\");   // break: up");
    std::fs::write(&lab, text).expect("write");
    let out = netlab().arg("prove").arg(&lab).output().expect("netlab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 of 3 cases proven"), "{stdout}");
}
