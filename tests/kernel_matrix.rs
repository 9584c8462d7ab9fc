//! The kernel matrix: `--kernel IMAGE` runs labs in a virtme-ng VM booted with
//! another kernel (Debian's, from /boot). Each VM test boots one VM (20–40 s under
//! software emulation); they take turns, so each boots on an idle machine.
//!
//! Without `vng`, QEMU or a kernel in /boot these tests FAIL, saying what to
//! install (CI installs them: .ci/install-deps); `NETLAB_SKIP_VM_TESTS=1` skips
//! them on purpose on a developer's machine.

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{decode, netlab, root};

static ONE_VM_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The release of the kernel `--kernel debian` boots, or None when VM tests are
/// skipped on purpose; panics with what to install when something is missing.
fn debian_kernel() -> Option<String> {
    if std::env::var_os("NETLAB_SKIP_VM_TESTS").is_some_and(|v| v == "1") {
        eprintln!("NETLAB_SKIP_VM_TESTS=1: the kernel-matrix test is skipped");
        return None;
    }
    let on_path = |tool: &str| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(tool).is_file())
    };
    let mut missing = Vec::new();
    if !on_path("vng") {
        missing.push("virtme-ng (pip install virtme-ng)");
    }
    if !on_path("qemu-system-x86_64") {
        missing.push("QEMU (apt install qemu-system-x86)");
    }
    let mut releases: Vec<String> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("vmlinuz-").map(String::from))
        .filter(|r| Path::new("/lib/modules").join(r).join("modules.dep").exists())
        .collect();
    if releases.is_empty() {
        missing.push("a kernel in /boot with its modules (apt install linux-image-amd64)");
    }
    assert!(
        missing.is_empty(),
        "the kernel-matrix tests need {} (bash .ci/install-deps installs them; NETLAB_SKIP_VM_TESTS=1 skips these tests)",
        missing.join(", ")
    );
    releases.sort();
    // With one kernel in /boot (CI, here) this is the one `debian` means; the
    // tests compare with what the VM says anyway.
    releases.pop()
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease").trim().to_string()
}

/// The `key=value` lines the features lab prints.
fn printed(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
        .trim()
        .to_string()
}

/// QEMU and vng processes of the VM netlab (pid `pid`) started: its name is in
/// their command lines.
fn vm_processes(pid: u32) -> Vec<String> {
    let marker = format!("netlab-vm-{pid}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let state = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = state.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
            (cmdline.contains(&marker) && !zombie).then_some(cmdline)
        })
        .collect()
}

/// Whether the machine's kernel lacks `module` (not built in, not loaded, no module
/// file for it) — true on this project's development machine for all four.
fn host_lacks(module: &str) -> bool {
    let release = host_release();
    let dir = Path::new("/lib/modules").join(&release);
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap_or_default();
    let named = |text: &str| {
        text.lines().any(|l| {
            l.split(':').next().unwrap_or("").ends_with(&format!("/{module}.ko"))
                || l.contains(&format!("/{module}.ko."))
        })
    };
    !Path::new("/sys/module").join(module).exists() && !named(&builtin) && !named(&dep)
}

const FEATURES: [(&str, &str); 4] =
    [("dummy", "dummy"), ("vlan", "8021q"), ("netem", "sch_netem"), ("bond", "bonding")];

/// The same lab natively and under `--kernel debian`: the VM's kernel is another
/// one (its release, its boot command line) and has the features this machine's
/// kernel lacks.
#[test]
fn a_lab_under_debians_kernel_sees_that_kernel() {
    let Some(release) = debian_kernel() else { return };
    let _turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = root().join("tests/kernel_labs/features.rhai");

    let (code, native, err) = decode(netlab().arg("run").arg(&lab).output().expect("netlab runs"));
    assert_eq!(code, 0, "{native}\n{err}");
    assert_eq!(printed(&native, "kernel"), host_release(), "{native}");
    assert_eq!(printed(&native, "virtme"), "false", "{native}");
    assert!(native.contains(&format!("(kernel {})", host_release())), "the summary names the kernel:\n{native}");
    for (feature, module) in FEATURES {
        if host_lacks(module) {
            assert_eq!(printed(&native, &format!("has_{feature}")), "false", "{feature} natively:\n{native}");
        }
    }

    let started = Instant::now();
    let (code, vm, err) =
        decode(netlab().arg("run").arg(&lab).args(["--kernel", "debian"]).output().expect("netlab runs"));
    eprintln!("netlab run --kernel debian: {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{vm}\n{err}");
    assert_eq!(printed(&vm, "kernel"), release, "uname -r in the lab:\n{vm}");
    assert_eq!(printed(&vm, "virtme"), "true", "booted by virtme-ng:\n{vm}");
    if release != host_release() {
        assert_ne!(printed(&vm, "kernel"), printed(&native, "kernel"));
    }
    for (feature, _) in FEATURES {
        assert_eq!(printed(&vm, &format!("has_{feature}")), "true", "{feature} under Debian's kernel:\n{vm}");
    }
    assert!(vm.contains(&format!("PASS {}: 1 step, 1 check passed", lab.display())), "{vm}");
    assert!(vm.contains(&format!("(kernel {release})")), "the summary names the kernel:\n{vm}");
}

/// `netlab test --kernel`: one VM for the batch; a failed check is exit 1, and the
/// JUnit and JSON reports made inside reach the machine, naming the kernel.
#[test]
fn a_failing_batch_under_another_kernel_reports_home() {
    let Some(release) = debian_kernel() else { return };
    let _turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let junit = dir.path().join("reports/netlab.xml");
    std::fs::create_dir_all(junit.parent().expect("a folder")).expect("reports/");
    let started = Instant::now();
    let child = netlab()
        .current_dir(root())
        .args([
            "test",
            "tests/report_labs/check_fails.rhai",
            "tests/kernel_labs/features.rhai",
            "labs/more/vlan_trunk.rhai",
        ])
        .args(["--kernel", "debian", "--format", "json", "--junit"])
        .arg(&junit)
        .spawn_output();
    let (code, json, human) = decode(child.output);
    eprintln!("netlab test --kernel debian (3 labs): {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(code, 1, "a check failed:\n{human}\n{json}");
    assert!(human.contains("FAIL tests/report_labs/check_fails.rhai"), "{human}");
    assert!(human.contains("PASS tests/kernel_labs/features.rhai"), "{human}");
    // A lab beyond the seeds that this machine's kernel skips (802.1Q, dummy) passes there.
    assert!(human.contains("PASS labs/more/vlan_trunk.rhai"), "{human}");
    assert!(human.contains("2 passed, 1 failed (3 labs,"), "{human}");
    assert!(human.contains(&format!("kernel {release})")), "the summary names the kernel:\n{human}");

    let doc: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}:\n{json}"));
    let labs = doc["labs"].as_array().expect("labs");
    assert_eq!(labs.len(), 3, "{json}");
    for lab in labs {
        assert_eq!(lab["kernel"], release.as_str(), "{lab}");
    }
    let failing = labs.iter().find(|l| l["path"] == "tests/report_labs/check_fails.rhai").expect("check_fails");
    assert_eq!(failing["outcome"], "failed", "{failing}");
    assert_eq!(failing["exit_code"], 1, "{failing}");

    let xml = std::fs::read_to_string(&junit).expect("the JUnit file is on the machine");
    assert_eq!(xml.matches(&format!(r#"<property name="kernel" value="{release}"/>"#)).count(), 3, "{xml}");
    assert!(xml.contains(r#"<failure type="check_failed""#), "{xml}");
    assert_eq!(
        std::fs::read_dir(junit.parent().expect("a folder")).expect("reports/").count(),
        1,
        "nothing else written"
    );
    assert!(vm_processes(child.pid).is_empty(), "left running: {:?}", vm_processes(child.pid));
}

/// The labs this machine's kernel skips are proven where they run: `netlab prove
/// --kernel debian` runs every break and fix case inside one VM (802.1Q and dummy
/// links; a VLAN-filtering bridge; a bond failing over; a WireGuard tunnel).
#[test]
fn labs_that_need_another_kernel_are_proven_under_it() {
    let Some(_release) = debian_kernel() else { return };
    let _turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let child = netlab()
        .current_dir(root())
        .args(["prove", "labs/more/vlan_trunk.rhai", "labs/more/vlan_bridge.rhai", "labs/more/bond.rhai"])
        .args(["labs/more/wireguard.rhai", "labs/more/netem.rhai", "--kernel", "debian"])
        .spawn_output();
    let (code, out, err) = decode(child.output);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("20 of 20 cases proven in 5 labs"), "{out}");
    assert!(!out.contains('✗'), "{out}");
    assert!(vm_processes(child.pid).is_empty(), "left running: {:?}", vm_processes(child.pid));
}

/// SIGTERM while the VM runs: netlab kills it, nothing of it keeps running, the
/// report says the lab was interrupted under that kernel.
#[test]
fn stopping_netlab_stops_the_vm() {
    let Some(release) = debian_kernel() else { return };
    let _turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let junit = dir.path().join("netlab.xml");
    let mut child = netlab()
        .current_dir(root())
        .args(["test", "labs/bridge.rhai", "--kernel", "debian", "--junit"])
        .arg(&junit)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("netlab runs");
    let pid = child.id();
    // Until QEMU runs (its command line names the VM).
    let deadline = Instant::now() + Duration::from_secs(120);
    while !vm_processes(pid).iter().any(|c| c.contains("qemu-system")) {
        assert!(Instant::now() < deadline, "no QEMU after 120 s");
        assert!(child.try_wait().expect("wait").is_none(), "netlab ended before QEMU ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGTERM).expect("kill");
    let stopped = Instant::now();
    let out = child.wait_with_output().expect("wait");
    let took = stopped.elapsed();
    let (code, _, err) = decode(out);
    assert_eq!(code, 143, "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    assert!(vm_processes(pid).is_empty(), "left running: {:?}", vm_processes(pid));
    let xml = std::fs::read_to_string(&junit).expect("JUnit");
    assert!(xml.contains(r#"<property name="outcome" value="interrupted"/>"#), "{xml}");
    assert!(xml.contains(&format!(r#"<property name="kernel" value="{release}"/>"#)), "{xml}");
}

/// What the machine lacks is exit 3 and says what to install; no VM needed.
#[test]
fn a_missing_kernel_or_tool_says_what_to_install() {
    let lab = root().join("tests/kernel_labs/features.rhai");
    let (code, _, err) =
        decode(netlab().arg("run").arg(&lab).args(["--kernel", "/nonexistent/vmlinuz"]).output().expect("runs"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no kernel image at /nonexistent/vmlinuz"), "{err}");
    let (code, _, err) =
        decode(netlab().arg("test").arg(&lab).args(["--kernel", "0.0.0-none"]).output().expect("runs"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("apt install linux-image-amd64"), "{err}");
    // No vng on PATH (an image that exists: this binary will do, it is never booted).
    let empty = tempfile::tempdir().expect("temp dir");
    let (code, _, err) = decode(
        netlab()
            .arg("run")
            .arg(&lab)
            .arg("--kernel")
            .arg(env!("CARGO_BIN_EXE_netlab"))
            .env("PATH", empty.path())
            .output()
            .expect("runs"),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pip install virtme-ng"), "{err}");
}

struct Spawned {
    pid: u32,
    output: std::process::Output,
}

trait SpawnOutput {
    fn spawn_output(&mut self) -> Spawned;
}

impl SpawnOutput for std::process::Command {
    /// Like `output()`, keeping the pid (to look for what it left running).
    fn spawn_output(&mut self) -> Spawned {
        let child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("netlab runs");
        let pid = child.id();
        Spawned { pid, output: child.wait_with_output().expect("wait") }
    }
}

/// The kernel matrix: every lab (the seeds and those beyond them) passes under
/// Debian's kernel too, in one VM — natively they run in tests/labs.rs. Under
/// Debian's kernel nothing is skipped: it has every feature the labs ask for.
#[test]
fn every_lab_passes_under_debians_kernel_too() {
    let Some(release) = debian_kernel() else { return };
    let _turn = ONE_VM_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let labs: Vec<String> = common::lab_files().iter().map(|l| format!("labs/{l}")).collect();
    let started = Instant::now();
    let child = netlab()
        .current_dir(root())
        .arg("test")
        .args(&labs)
        .args(["--kernel", "debian", "--format", "json"])
        .spawn_output();
    let (code, json, human) = decode(child.output);
    eprintln!("netlab test --kernel debian ({} labs): {:.1} s", labs.len(), started.elapsed().as_secs_f64());
    assert_eq!(code, 0, "{human}\n{json}");
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}:\n{json}"));
    let ran = doc["labs"].as_array().expect("labs");
    assert_eq!(ran.len(), labs.len(), "{json}");
    for lab in ran {
        assert_eq!(lab["outcome"], "passed", "{lab}");
        assert_eq!(lab["kernel"], release.as_str(), "{lab}");
    }
    assert!(vm_processes(child.pid).is_empty(), "left running: {:?}", vm_processes(child.pid));
}
