//! /etc/netns like the real thing: inside the sandbox a node's resolv.conf and hosts
//! live in /etc/netns/NAME/, where the real `ip netns exec` finds them, and the
//! tutorial's own `mkdir -p /etc/netns/X; echo ... > /etc/netns/X/resolv.conf` works
//! unchanged — while the machine's /etc is never written.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{netlab, root, run_text};

/// Names, sizes and modification times of /etc's entries, and the files a lab
/// could be tempted to write.
fn machine_etc() -> String {
    let mut rows: Vec<String> = std::fs::read_dir("/etc")
        .expect("/etc")
        .filter_map(|e| e.ok())
        .map(|e| {
            let meta = e.path().symlink_metadata().ok();
            let mtime = meta.as_ref().and_then(|m| m.modified().ok());
            format!("{:?} {:?} {:?}", e.file_name(), meta.map(|m| m.len()), mtime)
        })
        .collect();
    rows.sort();
    for file in ["/etc/resolv.conf", "/etc/hosts", "/etc/hostname"] {
        rows.push(format!("{file}: {:?}", std::fs::read_to_string(file).ok()));
    }
    rows.join("\n")
}

#[test]
fn the_tutorials_own_commands_write_etc_netns_inside_the_sandbox_only() {
    let before = machine_etc();
    let (code, out, err) = run_text(
        "etc_netns.rhai",
        r##"
let c4 = netns("container4");
let c5 = netns("container5");
resolv_conf(c4, "nameserver 198.51.100.53");
expect_eq(exec_in(host(), "ip netns exec container4 cat /etc/resolv.conf").stdout,
          "nameserver 198.51.100.53\n", "the real ip netns exec sees container4's file");
expect_eq(exec_in(c4, "cat /etc/resolv.conf").stdout, "nameserver 198.51.100.53\n", "so does exec_in");
expect(exec_in(c5, "cat /etc/resolv.conf").stdout.starts_with("# netlab: no nameserver"), "container5 has no nameserver");
// The tutorial's own commands, typed as they are:
let r = exec_in(host(), "sh -c 'mkdir -p /etc/netns/container5 && echo nameserver 198.51.100.54 > /etc/netns/container5/resolv.conf'");
expect_eq(r.code, 0, "mkdir -p /etc/netns/container5; echo ... > .../resolv.conf works");
expect_eq(resolv_conf(c5), "nameserver 198.51.100.54\n", "netlab reads the file the tutorial wrote");
expect_eq(exec_in(host(), "ip netns exec container5 cat /etc/resolv.conf").stdout,
          "nameserver 198.51.100.54\n", "and ip netns exec container5 sees it");
hosts_file(c4, "203.0.113.10 web");
expect(exec_in(host(), "ip netns exec container4 cat /etc/hosts").stdout.contains("203.0.113.10 web"), "hosts too");
// Writing the sandbox's /etc itself stays in the sandbox as well.
expect_eq(exec_in(host(), "sh -c 'echo 192.0.2.1 evil >> /etc/hosts'").code, 0, "the host's /etc/hosts is writable");
"##,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(before, machine_etc(), "the lab changed the machine's /etc");
    assert!(!std::path::Path::new("/etc/netns/container4").exists());
}

/// `--keep`: the shell in the kept sandbox, typing the tutorial's command, sees the
/// node's resolv.conf of bridge_nat.
#[test]
fn keep_shell_sees_the_nodes_resolv_conf() {
    let before = machine_etc();
    let mut child = netlab()
        .arg("run")
        .arg(root().join("labs/bridge_nat.rhai"))
        .arg("--keep")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netlab runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"ip netns exec container4 cat /etc/resolv.conf\n")
        .expect("typed the command");
    let out = child.wait_with_output().expect("netlab ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("nameserver 198.51.100.53"), "the shell printed {last:?}:\n{stdout}");
    assert_eq!(before, machine_etc());
}

/// Where /etc cannot be overlaid (forced here with NETLAB_ETC_OVERLAY=0), a node's
/// files still work through exec_in, and the sandbox's /etc is read-only: a lab can
/// never write the machine's /etc, on any kernel.
#[test]
fn without_the_overlay_etc_is_read_only() {
    let before = machine_etc();
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = dir.path().join("ro.rhai");
    std::fs::write(
        &lab,
        r#"
let c4 = netns("container4");
resolv_conf(c4, "nameserver 198.51.100.53");
expect_eq(exec_in(c4, "cat /etc/resolv.conf").stdout, "nameserver 198.51.100.53\n", "exec_in sees the node's file");
let r = exec_in(host(), "sh -c 'mkdir -p /etc/netns/container4'");
expect(r.code != 0 && r.stderr.contains("Read-only file system"), "the machine's /etc is read-only");
"#,
    )
    .expect("write lab");
    let out = netlab().arg("run").arg(&lab).env("NETLAB_ETC_OVERLAY", "0").output().expect("netlab runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(before, machine_etc());
}
