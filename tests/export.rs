//! `netlab export LAB > lab.sh` builds the same network as `netlab run LAB` and makes
//! the same checks: every lab runs with netlab and its export with bash (`netlab sh`),
//! each in a fresh sandbox, and the normalized snapshots of the kernel state they
//! leave (runtime/src/snapshot.rs) are equal; the export's own checks pass.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{decode, netlab, root};
use netlab_runtime::snapshot::{diff, Snapshot};

/// The lab's snapshot after `netlab run`, or why there is none.
fn run_state(lab: &Path, dir: &Path) -> Snapshot {
    let state = dir.join("netlab.json");
    let (code, out, err) =
        decode(netlab().arg("run").arg(lab).arg("--state").arg(&state).output().expect("netlab runs"));
    assert!(code == 0, "netlab run {} failed (exit {code}):\n{out}\n{err}", lab.display());
    read_state(&state, &format!("{out}{err}"))
}

fn read_state(path: &Path, output: &str) -> Snapshot {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("no state file {} ({e}):\n{output}", path.display()));
    Snapshot::from_json(&text).unwrap_or_else(|e| panic!("bad JSON in {} ({e}):\n{text}", path.display()))
}

/// `netlab export LAB`, written to DIR/lab.sh.
fn export(lab: &Path, dir: &Path) -> std::path::PathBuf {
    let (code, out, err) = decode(netlab().arg("export").arg(lab).output().expect("netlab runs"));
    assert!(code == 0, "netlab export {} failed (exit {code}):\n{err}", lab.display());
    let script = dir.join("lab.sh");
    std::fs::write(&script, out).expect("write the export");
    script
}

/// Runs the export with `netlab sh`, asking for the sysctls the lab set; its snapshot.
fn export_state(script: &Path, dir: &Path, sysctls: &[String]) -> Snapshot {
    let state = dir.join("export.json");
    let mut cmd = netlab();
    // The script takes back what it made when it ends: NETLAB_KEEP=1 leaves the
    // network for the snapshot (the sandbox goes anyway).
    cmd.env("NETLAB_KEEP", "1").arg("sh").arg(script).arg("--state").arg(&state);
    for s in sysctls {
        cmd.arg("--sysctl").arg(s);
    }
    let (code, out, err) = decode(cmd.output().expect("netlab runs"));
    let output = format!("{out}{err}");
    assert!(code == 0, "the export failed (exit {code}):\n{output}");
    assert!(out.lines().any(|l| l.starts_with("PASS ")), "{output}");
    assert!(!out.contains("   FAIL "), "{output}");
    read_state(&state, &output)
}

fn same_state(lab: &str) {
    let started = Instant::now();
    let lab = root().join("labs").join(lab);
    let dir = tempfile::Builder::new().prefix("netlab-export-").tempdir().expect("temp dir");
    let script = export(&lab, dir.path());
    // A lab this kernel cannot run (requires() names what it lacks) is skipped by
    // netlab; its export, made of the same commands, fails here: both agree.
    let (_, out, _) = decode(netlab().arg("run").arg(&lab).output().expect("netlab runs"));
    if out.lines().last().unwrap_or("").starts_with("SKIP ") {
        let (code, out, err) = decode(netlab().arg("sh").arg(&script).output().expect("netlab runs"));
        assert_ne!(code, 0, "{}: skipped by netlab, but its export passed here:\n{out}\n{err}", lab.display());
        return;
    }
    let netlab_state = run_state(&lab, dir.path());
    // Each node's sysctls that the lab set, in the export's snapshot too.
    let sysctls: Vec<String> = netlab_state
        .nodes
        .iter()
        .flat_map(|(node, state)| state.sysctls.keys().map(move |key| format!("{node}:{key}")))
        .collect();
    let script_state = export_state(&script, dir.path(), &sysctls);
    let differences = diff(&netlab_state, &script_state);
    assert!(
        differences.is_empty(),
        "{}: netlab (first) and its export (second) differ:\n  {}\n\nthe export:\n{}",
        lab.display(),
        differences.join("\n  "),
        std::fs::read_to_string(&script).unwrap_or_default()
    );
    assert_eq!(netlab_state, script_state);
    eprintln!("{}: equal ({:.1} s)", lab.display(), started.elapsed().as_secs_f64());
}

macro_rules! labs {
    ($($test:ident => $file:literal),* $(,)?) => {
        $( #[test] fn $test() { same_state($file); } )*
        const LISTED: &[&str] = &[$($file),*];
    };
}

for_each_lab!(labs, scale);

/// A new lab cannot be forgotten here (tests/common/mod.rs, for_each_lab!).
#[test]
fn every_lab_is_listed() {
    let mut listed: Vec<&str> = LISTED.iter().copied().filter(|f| !f.starts_with("scale/")).collect();
    listed.sort();
    assert_eq!(common::lab_files(), listed);
}
