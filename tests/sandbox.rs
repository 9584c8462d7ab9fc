//! The sandbox: whatever way a run ends — success, failed check, script error,
//! SIGTERM, Ctrl-C or `kill -9` in the middle of a lab — the machine's links,
//! namespaces, firewall and mounts are exactly as before, and no process of the
//! lab survives.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{machine_state, netlab, run_text};

/// A lab that builds something, changes sysctls and nft state inside the sandbox,
/// then blocks in step 2 on a child process (with its own grandchild).
const LONG_LAB: &str = r#"
let c = netns("victim");
step("build", || {
    bridge(host(), "br-victim");
    up(host(), "br-victim");
    veth(host(), "v-host", c, "v-victim");
    master(host(), "v-host", "br-victim");
    sysctl(host(), "net.ipv4.ip_forward", 1);
    exec_in(host(), "nft add table inet victim_table");
});
step("wait", || {
    exec_in(c, "sh -c 'sleep 60 & sleep 60; wait'", #{timeout: 120});
});
"#;

fn start_long_lab() -> Child {
    let dir = std::env::temp_dir().join(format!("netlab-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("long-{}.rhai", rand_suffix()));
    std::fs::write(&path, LONG_LAB).unwrap();
    // Its own process group, so "Ctrl-C" (SIGINT to the group) reaches only the lab.
    netlab()
        .arg("run")
        .arg(&path)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netlab starts")
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// Waits until the lab prints the header of step 2 (it is then blocked in exec_in).
fn wait_for_step_2(child: &mut Child) {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines.next().expect("netlab printed step 2 before ending").unwrap();
        assert!(!line.starts_with("FAIL"), "{line}");
        if line.starts_with("── 2.") {
            break;
        }
    }
    // Keep draining stdout in the background so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
}

/// PIDs of the processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children(p) {
            all.push(c);
            todo.push(c);
        }
    }
    all
}

fn netns_inode(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net")).ok().map(|m| m.ino())
}

/// Every process on the machine whose network namespace is one of `inodes`.
fn processes_in(inodes: &[u64]) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
            if netns_inode(pid).is_some_and(|i| inodes.contains(&i)) {
                found.push(pid);
            }
        }
    }
    found
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills netlab with `signal` while step 2 runs and checks nothing survives.
fn interrupted_lab_leaves_nothing(signal: libc::c_int) {
    let before = machine_state();
    let mut child = start_long_lab();
    wait_for_step_2(&mut child);
    // The lab's processes: netlab's sandbox child (PID 1 of its own PID namespace),
    // and sh with its two sleeps started by exec_in; remember their namespaces.
    let id = child.id();
    wait_until("exec_in has started sh and both sleeps", || descendants(id).len() >= 4);
    let procs = descendants(id);
    let host_ns = netns_inode(std::process::id()).unwrap();
    let lab_ns: Vec<u64> = procs.iter().filter_map(|p| netns_inode(*p)).filter(|i| *i != host_ns).collect();
    assert!(lab_ns.len() >= 2, "the lab's namespaces are not the machine's: {lab_ns:?}");
    // SAFETY: sending a signal to our own child (SIGINT: to its process group, as a
    // terminal's Ctrl-C does).
    unsafe {
        if signal == libc::SIGINT {
            libc::kill(-(child.id() as i32), signal);
        } else {
            libc::kill(child.id() as i32, signal);
        }
    }
    let _ = child.wait();
    wait_until("every process of the lab is gone", || {
        procs.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
    });
    assert!(processes_in(&lab_ns).is_empty(), "processes still hold the lab's namespaces");
    assert_eq!(before, machine_state(), "the machine changed");
}

#[test]
fn kill_9_in_the_middle_leaves_nothing() {
    interrupted_lab_leaves_nothing(libc::SIGKILL);
}

#[test]
fn sigterm_leaves_nothing() {
    interrupted_lab_leaves_nothing(libc::SIGTERM);
}

#[test]
fn ctrl_c_leaves_nothing() {
    interrupted_lab_leaves_nothing(libc::SIGINT);
}

#[test]
fn finished_runs_leave_nothing() {
    let before = machine_state();
    let build = "let c = netns(\"c\");\nbridge(host(), \"br9\");\nup(host(), \"br9\");\nveth(host(), \"a9\", c, \"b9\");\nsysctl(host(), \"net.ipv4.ip_forward\", 1);\nexec_in(host(), \"nft add table inet t9\");\n";
    let (code, out, err) = run_text("ok.rhai", build);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, _) = run_text("fail.rhai", &format!("{build}expect(false, \"forced\");\n"));
    assert_eq!(code, 1);
    let (code, _, _) = run_text("err.rhai", &format!("{build}up(c, \"nope\");\n"));
    assert_eq!(code, 2);
    assert_eq!(before, machine_state());
}

#[test]
fn the_lab_sees_its_own_world() {
    // Inside: nft state, sysctls and /run/netns are the sandbox's, not the machine's.
    let text = r#"
let c = netns("inner");
exec_in(host(), "nft add table inet mine");
let r = exec_in(host(), "nft list tables");
expect(r.stdout.contains("mine"), "the sandbox has its own nftables");
let r = exec_in(host(), "ip netns list");
expect_eq(r.stdout, "inner\n", "ip netns list shows only the lab's nodes");
let r = exec_in(c, "ip -o link");
expect(r.stdout.starts_with("1: lo:") && r.stdout.split("\n").len() == 2, "exec_in runs inside the node");
let r = exec_in(c, "ls /sys/class/net");
expect_eq(r.stdout, "lo\n", "the node's /sys shows its own devices");
"#;
    let (code, out, err) = run_text("own.rhai", text);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!machine_state().contains("table inet mine"));
}

/// Past the 16th node a lab's namespaces come from a thread that makes them ahead
/// (node.rs, Spares): each must be named, set up and protected exactly like the
/// first ones, and deleting one must work.
#[test]
fn nodes_made_ahead_are_like_the_first_ones() {
    let text = r#"
let host = host();
bridge(host, "br0"); addr(host, "br0", "10.5.0.1/16"); up(host, "br0");
let ns = [];
for i in 1..=24 {
  let c = netns(`n${i}`);
  veth(host, `v${i}`, c, "eth0"); master(host, `v${i}`, "br0"); up(host, `v${i}`);
  addr(c, "eth0", `10.5.0.${i+1}/16`); up(c, "eth0");
  ns.push(c);
}
step("late nodes are real", || {
  expect_ping(ns[23], "10.5.0.1");
  expect_ping(ns[20], "10.5.0.2");
  let shown = exec_in(host, "ip netns exec n22 ip -br addr show eth0").stdout;
  expect_eq(shown.split(" ").filter(|x| x != "")[2], "10.5.0.23/16", "ip netns exec finds n22");
  for i in [0, 16, 17, 23] {
    expect_eq(exec_in(ns[i], "sysctl -n net.ipv6.conf.default.disable_ipv6").stdout, "1\n", `IPv6 off on new links of n${i+1}`);
    expect_eq(exec_in(ns[i], "sysctl -n net.ipv4.ip_forward").stdout, "0\n", `n${i+1} does not forward`);
    expect_eq(exec_in(ns[i], "sh -c 'test -w /proc/sys/net/netfilter/nf_hooks_lwtunnel && echo writable || echo protected'").stdout,
              "protected\n", `the machine-wide key is read-only in n${i+1}`);
  }
  hostname(ns[22], "web");
  expect_eq(exec_in(ns[22], "hostname").stdout, "web\n", "a late node gets its hostname");
  del_netns(ns[23]);
  expect_no_ping(ns[22], "10.5.0.25");
  expect_eq(exec_in(host, "ls /run/netns").stdout.split("\n").filter(|x| x != "").len(), 23, "n24 is gone");
});
"#;
    let (code, out, err) = run_text("many.rhai", text);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("18 checks passed"), "{out}");
}

/// Descriptors netlab inherits beyond 0, 1 and 2 (a VM's init left three open and a
/// lab's `ss -p` said fd=6 where it says fd=3 elsewhere) do not reach the programs a
/// lab runs.
#[test]
fn programs_do_not_inherit_what_netlab_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("fds.rhai");
    std::fs::write(&lab, "let n = netns(\"n\");\nprint(`FDS ${sh(n, \"ls /proc/self/fd\").split(\"\\n\")}`);\n")
        .unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("exec 5</dev/null 6</dev/null 9>/dev/null; exec \"$0\" run \"$1\"")
        .arg(env!("CARGO_BIN_EXE_netlab"))
        .arg(&lab)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    // ls's own listing of /proc/self/fd is 3.
    assert!(text.contains(r#"FDS ["0", "1", "2", "3", ""]"#), "{text}");
}
