//! The commands that run a lab against netlab's model instead of the kernel:
//! `check` (lints with the line they are on), `plan`, `graph`, `export`; and the
//! run options that show what a lab did (`--explain`, `--diff`, `--until`, `--state`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{decode, netlab, root};

fn labs() -> Vec<PathBuf> {
    let mut labs: Vec<PathBuf> = common::lab_files().iter().map(|f| root().join("labs").join(f)).collect();
    labs.push(root().join("labs/scale/w1.rhai"));
    labs.sort();
    labs
}

fn bad(name: &str) -> PathBuf {
    root().join("tests/bad_labs").join(format!("{name}.rhai"))
}

/// `netlab check` on a bad lab: (exit code, stderr).
fn check(name: &str) -> (i32, String) {
    let (code, _, err) = decode(netlab().arg("check").arg(bad(name)).output().expect("netlab runs"));
    (code, err)
}

/// The line a diagnostic points at, as miette prints it (`file:LINE:COL`).
fn points_at(stderr: &str, name: &str, line: usize) -> bool {
    stderr.contains(&format!("{name}.rhai:{line}:"))
}

#[track_caller]
fn lint(name: &str, code: i32, expected: &str, line: usize) {
    let (got, err) = check(name);
    assert_eq!(got, code, "{name}: exit code\n{err}");
    assert!(err.contains(expected), "{name}: expected {expected:?} in\n{err}");
    assert!(points_at(&err, name, line), "{name}: expected a span at line {line} in\n{err}");
}

#[test]
fn check_finds_mistakes_with_the_line_they_are_on() {
    lint("unknown_node", 2, "there is no node named \"b\"", 3);
    lint("link_before_it_exists", 2, "a has no link named \"eth0\"", 3);
    lint("veth_end_twice", 2, "creating veth eth0 in a: File exists", 4);
    lint("same_address_twice", 2, "File exists", 5);
    lint("gateway_unreachable", 2, "Network is unreachable", 6);
    lint("unknown_option", 2, "unknown option \"dport\"", 2);
    lint("wrong_argument_count", 2, "wrong arguments for veth()", 3);
    lint("wrong_argument_type", 2, "wrong arguments for addr()", 4);
    lint("setting_not_set", 2, "--set subnet=VALUE", 5);
    // What the model cannot follow is named, with the program that likely made it.
    lint("link_made_by_a_loop", 2, "if a program made it", 4);
    // Warnings: the kernel accepts these, the lab likely did not mean them.
    lint("overlapping_subnets", 0, "netlab::overlapping_subnets", 6);
    lint("duplicate_address_on_segment", 0, "netlab::duplicate_address", 11);
    lint("check_outside_step", 0, "netlab::check_outside_step", 3);
}

#[test]
fn a_set_value_satisfies_check() {
    let out = netlab()
        .args(["check", "--set", "subnet=10.0.0.1/24"])
        .arg(bad("setting_not_set"))
        .output()
        .expect("netlab runs");
    let (code, _, err) = decode(out);
    assert_eq!(code, 0, "{err}");
}

/// Runs the binary as an ordinary user (nobody): no root, no capabilities.
fn as_nobody(args: &[&str], lab: &Path) -> (i32, String, String) {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(env!("CARGO_BIN_EXE_netlab"))
        .args(args)
        .arg(lab)
        .output()
        .expect("setpriv runs");
    decode(out)
}

#[test]
fn plan_check_graph_and_export_need_no_root_for_any_lab() {
    let mut problems = Vec::new();
    for lab in labs() {
        for args in [&["plan"][..], &["check"], &["graph", "--format", "dot"], &["export"]] {
            let (code, out, err) = as_nobody(args, &lab);
            if code != 0 || out.is_empty() {
                problems.push(format!("{args:?} {}: exit {code}\n{err}", lab.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn plan_shows_steps_commands_and_planned_checks() {
    let (code, out, err) = as_nobody(&["plan"], &root().join("labs/bridge.rhai"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("── 1. "), "{out}");
    assert!(out.contains("$ ip link add br0 "), "{out}");
    assert!(out.contains("? container4 pings 10.201.0.5"), "{out}");
    assert!(out.lines().last().is_some_and(|l| l.starts_with("PLAN ") && l.contains("nothing was run")), "{out}");
}

#[test]
fn graphs_are_valid_graphviz_and_mermaid() {
    let dot_installed = Command::new("dot").arg("-V").output().is_ok();
    assert!(dot_installed, "graphviz must be installed (.ci/install-deps)");
    for lab in labs() {
        let (code, dot, err) = decode(netlab().args(["graph", "--format", "dot"]).arg(&lab).output().expect("runs"));
        assert_eq!(code, 0, "{}: {err}", lab.display());
        let mut child = Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("dot runs");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), dot.as_bytes()).expect("write");
        let svg = child.wait_with_output().expect("dot ends");
        assert!(
            svg.status.success(),
            "{}: dot rejects\n{dot}\n{}",
            lab.display(),
            String::from_utf8_lossy(&svg.stderr)
        );
        let (code, mermaid, _) = decode(netlab().args(["graph"]).arg(&lab).output().expect("runs"));
        assert_eq!(code, 0);
        assert!(mermaid.starts_with("flowchart"), "{}: {mermaid}", lab.display());
    }
    // The bridge lab's graph names its nodes, links and addresses.
    let (_, dot, _) = decode(
        netlab().args(["graph", "--format", "dot"]).arg(root().join("labs/bridge.rhai")).output().expect("runs"),
    );
    for fact in ["container4", "container5", "br0", "brid4", "veth4", "10.201.0.4/24"] {
        assert!(dot.contains(fact), "{fact} missing from\n{dot}");
    }
}

/// `--explain` of seed 003's NAT lab, as a reader of the tutorial types it: the
/// step titles and the commands under them (timings and results left out).
#[test]
fn explain_shows_the_tutorials_commands() {
    let (code, out, err) =
        decode(netlab().args(["run", "--explain"]).arg(root().join("labs/bridge_nat.rhai")).output().expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    let shown: Vec<&str> = out.lines().filter(|l| l.starts_with("── ") || l.trim_start().starts_with("$ ")).collect();
    insta::assert_snapshot!("explain_bridge_nat", shown.join("\n"));
}

#[test]
fn until_stops_after_a_step_and_passes() {
    let (code, out, err) =
        decode(netlab().args(["run", "--until", "2"]).arg(root().join("labs/bridge.rhai")).output().expect("runs"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("── 2. ") && !out.contains("── 3. "), "{out}");
    let (code, out, _) = decode(
        netlab().args(["run", "--until", "No such step"]).arg(root().join("labs/bridge.rhai")).output().expect("runs"),
    );
    assert_eq!(code, 0);
    assert!(out.contains("── 8. "), "a step that does not exist stops nothing\n{out}");
    let (_, _, err) = decode(
        netlab()
            .args(["run", "--until", "No such step"])
            .arg(root().join("labs/veth_direct.rhai"))
            .output()
            .expect("runs"),
    );
    assert!(err.contains("no step is numbered or titled so"), "{err}");
}

#[test]
fn diff_shows_what_each_step_changed() {
    let (code, out, err) = decode(
        netlab()
            .args(["run", "--diff", "--until", "1"])
            .arg(root().join("labs/veth_direct.rhai"))
            .output()
            .expect("runs"),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.lines().any(|l| l.contains("Δ ") && l.contains("veth0")), "{out}");
}

#[test]
fn an_unwritable_state_file_is_refused_before_the_run() {
    let (code, out, err) = decode(
        netlab()
            .args(["run", "--state", "/nonexistent/dir/state.json"])
            .arg(root().join("labs/veth_direct.rhai"))
            .output()
            .expect("runs"),
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("--state /nonexistent/dir/state.json"), "{err}");
    assert!(!out.contains("── 1."), "nothing ran: {out}");
}

#[test]
fn state_is_the_kernels_at_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let (code, out, err) = decode(
        netlab()
            .args(["run", "--until", "3", "--state"])
            .arg(&state)
            .arg(root().join("labs/bridge.rhai"))
            .output()
            .expect("runs"),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let json = std::fs::read_to_string(&state).expect("state written");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["version"], 1);
    let host_links: Vec<String> =
        v["nodes"]["host"]["links"].as_array().expect("links").iter().map(|l| l["name"].to_string()).collect();
    assert!(host_links.iter().any(|n| n.contains("br0")), "{host_links:?}");
}
