//! Containment: a lab's programs try to change the machine — its /etc, /root, /tmp,
//! sysctls, mounts, processes, memory — and to reach its namespaces. Each attempt
//! must fail or stay inside the sandbox, as root and as an ordinary user, and the
//! machine must be exactly as before.
//!
//! The machine-wide sysctl attempt writes the *current* value back, so that even an
//! escape would change nothing; what is checked is that the write is refused.
//! `net.netfilter.nf_hooks_lwtunnel` is never written by a program here (it cannot
//! be set back): only `sysctl()`'s refusal is tested.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{decode, machine_state};

/// What the machine shows of the files and settings the lab goes after.
fn files_state() -> String {
    let read = |p: &str| {
        std::fs::read(p).map(|b| format!("{} bytes {:x}", b.len(), md5ish(&b))).unwrap_or_else(|e| e.to_string())
    };
    let list = |p: &str| {
        let mut names: Vec<String> = std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.retain(|n| n.contains("netlab-escape"));
        names.sort();
        names.join(",")
    };
    format!(
        "hosts {}\nhostname {}\nroot {}\ntmp {}\nvar/tmp {}\nswappiness {}\nlwtunnel {}\nshm {}",
        read("/etc/hosts"),
        read("/etc/hostname"),
        list("/root"),
        list("/tmp"),
        list("/var/tmp"),
        std::fs::read_to_string("/proc/sys/vm/swappiness").unwrap_or_default().trim(),
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_hooks_lwtunnel").unwrap_or_default().trim(),
        list("/dev/shm"),
    )
}

/// A content fingerprint (FNV-1a), enough to see a file change.
fn md5ish(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// The machine's own link names, which no program of a lab may see.
fn machine_links() -> Vec<String> {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_string()))
        .filter(|n| n != "lo")
        .collect()
}

const ESCAPE_LAB: &str = r#"
let h = host();
fn run(h, cmd) {
    let r = exec_in(h, "sh -c '" + cmd + "'");
    print(`[${cmd}] code=${r.code} out=${r.stdout} err=${r.stderr}`);
    r
}
// Writes that must not reach the machine (they may fail, or go to the sandbox's own copies).
run(h, "echo 10.9.9.9 netlab-escape >> /etc/hosts");
run(h, "echo netlab-escape > /etc/hostname");
run(h, "echo x > /root/netlab-escape");
run(h, "echo x > /tmp/netlab-escape");
run(h, "echo x > /var/tmp/netlab-escape");
run(h, "echo x > /dev/shm/netlab-escape");
// A machine-wide sysctl: the current value written back must be refused.
let vm = run(h, "cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness");
expect(vm.code != 0, "vm.swappiness cannot be written");
// A net.* key that acts on the whole machine is read-only for programs, in the
// host and in every node netlab makes (checked with test -w: nothing is written).
let n = netns("n");
for node in [h, n] {
    let w = exec_in(node, "sh -c 'test -w /proc/sys/net/netfilter/nf_hooks_lwtunnel && echo writable || echo protected'");
    expect_eq(w.stdout, "protected\n", "nf_hooks_lwtunnel is read-only for programs");
}
// Out through /proc: unmount it and look for the machine's PID 1 and its network.
let out = run(h, "umount -l /proc; nsenter -t 1 -n ip -o link show; ls /proc");
print(`NSENTER ${out.stdout}`);
// Mount over a machine path.
run(h, "mount -t tmpfs netlab-escape /usr/share");
// Fill the volatile file system: it is bounded, the machine's memory is not at stake.
let fill = run(h, "dd if=/dev/zero of=/tmp/netlab-fill bs=1M count=1000000");
expect(fill.code != 0 && fill.stderr.contains("No space left"), "the volatile file system is bounded");
// Kill everything the lab can see.
run(h, "kill -9 -1");
"#;

struct Runner {
    exe: PathBuf,
    dir: PathBuf,
}

/// The binary and the lab in a folder an ordinary user may read.
fn runner(tag: &str) -> Runner {
    let dir = std::env::temp_dir().join(format!("netlab-containment-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("netlab");
    std::fs::copy(env!("CARGO_BIN_EXE_netlab"), &exe).unwrap();
    std::fs::write(dir.join("escape.rhai"), ESCAPE_LAB).unwrap();
    std::fs::write(dir.join("sysctl.rhai"), "sysctl(host(), \"net.netfilter.nf_hooks_lwtunnel\", 1);\n").unwrap();
    for p in [&dir, &exe] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["escape.rhai", "sysctl.rhai"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    Runner { exe, dir }
}

/// The command, as root or (uid Some) as that ordinary user.
fn command(exe: &Path, uid: Option<u32>) -> Command {
    match uid {
        None => Command::new(exe),
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()]).arg(exe);
            c
        }
    }
}

fn escape(uid: Option<u32>) {
    let r = runner(&format!("{uid:?}").replace(['(', ')'], ""));
    let (machine, files, links) = (machine_state(), files_state(), machine_links());
    // A process of the same user outside the sandbox, which `kill -9 -1` must not reach.
    let mut sentinel = command(Path::new("/bin/sleep"), uid).arg("60").stdout(Stdio::null()).spawn().unwrap();
    let out = command(&r.exe, uid).current_dir(&r.dir).args(["run", "escape.rhai"]).output().unwrap();
    let (code, stdout, stderr) = decode(out);
    assert_eq!(code, 0, "as {uid:?}: {stdout}\n{stderr}");
    let seen = stdout.lines().find(|l| l.contains("NSENTER")).unwrap_or_default().to_string();
    for link in &links {
        assert!(!seen.contains(&format!(": {link}:")), "as {uid:?} the lab saw the machine's link {link}: {seen}");
    }
    assert!(sentinel.try_wait().unwrap().is_none(), "kill -9 -1 in the lab killed a process outside it");
    let _ = sentinel.kill();
    let _ = sentinel.wait();
    // sysctl() refuses the machine-wide key before writing anything.
    let out = command(&r.exe, uid).current_dir(&r.dir).args(["run", "sysctl.rhai"]).output().unwrap();
    let (code, _, stderr) = decode(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("acts on the whole machine"), "{stderr}");
    assert_eq!(files, files_state(), "as {uid:?}: the machine's files or sysctls changed");
    assert_eq!(machine, machine_state(), "as {uid:?}: the machine's links, namespaces, rules or mounts changed");
    let _ = std::fs::remove_dir_all(&r.dir);
}

#[test]
fn a_lab_run_by_root_cannot_change_the_machine() {
    escape(None);
}

#[test]
fn a_lab_run_by_an_ordinary_user_cannot_change_the_machine() {
    escape(Some(1234));
}

/// Every lab of labs/ passes as an ordinary user (user namespaces allowed here).
#[test]
fn every_lab_passes_as_an_ordinary_user() {
    let r = runner("labs");
    let labs = r.dir.join("labs");
    let status = Command::new("cp").arg("-r").arg(common::root().join("labs")).arg(&labs).status().unwrap();
    assert!(status.success());
    let status = Command::new("chmod").args(["-R", "a+rX"]).arg(&labs).status().unwrap();
    assert!(status.success());
    let before = machine_state();
    let out =
        command(&r.exe, Some(1234)).current_dir(&r.dir).args(["test", "labs", "--format", "json"]).output().unwrap();
    let (code, stdout, stderr) = decode(out);
    assert_eq!(code, 0, "{stderr}");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Every lab passes, but those that need what this kernel lacks: skipped, naming it.
    let totals = &j["totals"];
    let (passed, skipped, labs) =
        (totals["passed"].as_u64().unwrap(), totals["skipped"].as_u64().unwrap(), totals["labs"].as_u64().unwrap());
    assert_eq!(passed + skipped, labs, "{totals}");
    for lab in j["labs"].as_array().unwrap().iter().filter(|l| l["outcome"] == "skipped") {
        assert!(lab["message"].as_str().unwrap_or("").contains("CONFIG_"), "{lab}");
    }
    assert!(j["totals"]["labs"].as_u64().unwrap() >= 10);
    assert_eq!(before, machine_state());
    let _ = std::fs::remove_dir_all(&r.dir);
}

/// The lab's folder is visible read-only and programs start there; `--bind DIR`
/// shows another folder read-only, `--bind DIR:rw` writable; nothing else written
/// outside reaches the machine.
#[test]
fn the_labs_folder_is_read_only_and_bind_shows_more() {
    let base = std::env::temp_dir().join(format!("netlab-binds-{}", std::process::id()));
    let (lab_dir, ro, rw) = (base.join("lab"), base.join("ro"), base.join("rw"));
    for d in [&lab_dir, &ro, &rw] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(lab_dir.join("office.txt"), "beside the lab\n").unwrap();
    // Writable for the sandbox's user: nobody, when netlab is started as root.
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(ro.join("data.txt"), "read-only data\n").unwrap();
    let lab = format!(
        r#"let h = host();
let r = exec_in(h, "cat office.txt");
expect_eq(r.stdout, "beside the lab\n", "a file beside the lab, by a relative path");
expect(exec_in(h, "sh -c 'echo x > written.txt'").code != 0, "the lab's folder is read-only");
expect_eq(exec_in(h, "cat {ro}/data.txt").stdout, "read-only data\n", "--bind DIR shows it");
expect(exec_in(h, "sh -c 'echo x > {ro}/new.txt'").code != 0, "--bind DIR is read-only");
expect_eq(exec_in(h, "sh -c 'echo kept > {rw}/kept.txt'").code, 0, "--bind DIR:rw is writable");
"#,
        ro = ro.display(),
        rw = rw.display()
    );
    std::fs::write(lab_dir.join("binds.rhai"), lab).unwrap();
    let out = common::netlab()
        .arg("run")
        .arg(lab_dir.join("binds.rhai"))
        .arg("--bind")
        .arg(&ro)
        .arg("--bind")
        .arg(format!("{}:rw", rw.display()))
        .output()
        .unwrap();
    let (code, stdout, stderr) = decode(out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!lab_dir.join("written.txt").exists() && !ro.join("new.txt").exists());
    assert_eq!(std::fs::read_to_string(rw.join("kept.txt")).unwrap(), "kept\n", "what :rw shows stays");
    let out =
        common::netlab().arg("run").arg(lab_dir.join("binds.rhai")).args(["--bind", "/no/such/dir"]).output().unwrap();
    let (code, _, stderr) = decode(out);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--bind /no/such/dir: no such folder"), "{stderr}");
    let _ = std::fs::remove_dir_all(&base);
}
