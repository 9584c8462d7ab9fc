//! Every lab in labs/ runs in its own sandbox and exits 0, leaves the machine as it
//! found it, and is proven: `netlab prove` runs it with each `// break:` tag removed (a
//! check marked `// needs:` must fail) and each `// fix:` applied just before its
//! negative check (that check must fail). prove also refuses a negative check without
//! a fix and a tag without its counterpart, so no check or tag can go unproven.

mod common;

use common::{machine_state, root, run_lab};

/// Whether the lab is skipped on this machine's kernel (its requires() names what the
/// kernel lacks): such a lab passes, and is proven, under Debian's kernel in
/// tests/kernel_matrix.rs instead.
fn skipped_here(out: &str) -> bool {
    out.lines().last().unwrap_or("").starts_with("SKIP ")
}

fn lab_passes(name: &str) {
    let path = root().join("labs").join(name);
    let before = machine_state();
    let (code, out, err) = run_lab(&path, &[]);
    assert_eq!(code, 0, "{name} failed:\n{out}\n{err}");
    if skipped_here(&out) {
        assert!(out.contains("CONFIG_"), "a skip names the kernel option missing:\n{out}");
        assert_eq!(before, machine_state(), "{name} changed the machine");
        return;
    }
    assert!(out.lines().last().unwrap_or("").starts_with("PASS "), "{out}");
    assert!(!out.contains('✗'), "{out}");
    assert_eq!(before, machine_state(), "{name} changed the machine");
}

fn proven(lab: &str) {
    let (_, out, _) = run_lab(&root().join("labs").join(lab), &[]);
    if skipped_here(&out) {
        return; // proven under Debian's kernel: tests/kernel_matrix.rs
    }
    let before = machine_state();
    let out = common::netlab().arg("prove").arg(root().join("labs").join(lab)).output().expect("netlab runs");
    let (code, stdout, stderr) = common::decode(out);
    assert_eq!(code, 0, "{lab} is not proven:\n{stdout}\n{stderr}");
    assert!(!stdout.contains('✗'), "{stdout}");
    assert!(stdout.contains('✓'), "{lab} has no proof cases:\n{stdout}");
    assert_eq!(before, machine_state(), "proving {lab} changed the machine");
}

macro_rules! labs {
    ($($test:ident => $file:literal),* $(,)?) => {
        mod passes {
            $( #[test] fn $test() { super::lab_passes($file); } )*
        }
        mod proven {
            $( #[test] fn $test() { super::proven($file); } )*
        }
        const LISTED: &[&str] = &[$($file),*];
    };
}

for_each_lab!(labs);

/// A new lab cannot be forgotten here (tests/common/mod.rs, for_each_lab!).
#[test]
fn every_lab_is_listed() {
    let mut listed: Vec<&str> = LISTED.iter().copied().filter(|f| !f.starts_with("scale/")).collect();
    listed.sort();
    assert_eq!(common::lab_files(), listed);
}

/// The benchmark workload runs as a lab too (small N here; the sizes that matter run
/// in benches/), and reports what the harness reads.
#[test]
fn scale_w1_small() {
    let dir = std::env::temp_dir().join(format!("netlab-w1-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let results = dir.join("results.txt");
    let before = machine_state();
    let out = common::netlab()
        .arg("run")
        .arg(root().join("labs/scale/w1.rhai"))
        .args(["--set", "n=3"])
        .env("NETLAB_RESULTS", &results)
        .output()
        .unwrap();
    let (code, stdout, stderr) = common::decode(out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let line = std::fs::read_to_string(&results).unwrap();
    for key in
        ["impl=netlab", "n=3", "setup_s=", "verify_s=", "ready_wait_s=", "teardown_s=", "ping_gw_ok=3", "ping_wan_ok=3"]
    {
        assert!(line.contains(key), "{key} missing in {line}");
    }
    assert_eq!(before, machine_state());
}
