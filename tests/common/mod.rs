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

/// Calls `$m! { test_name => "file.rhai", ... }` with every lab of labs/ (and the
/// benchmark's labs/scale/w1.rhai, with `scale`), so each test file that runs every
/// lab lists them from one place; `every_lab_is_listed` keeps this list complete.
#[macro_export]
macro_rules! for_each_lab {
    ($m:ident) => {
        $crate::for_each_lab! { @with $m {} }
    };
    ($m:ident, scale) => {
        $crate::for_each_lab! { @with $m { scale_w1 => "scale/w1.rhai", } }
    };
    (@with $m:ident { $($extra:tt)* }) => {
        $m! {
            netns_loopback => "netns_loopback.rhai",
            veth_direct => "veth_direct.rhai",
            bridge => "bridge.rhai",
            bridge_nat => "bridge_nat.rhai",
            red_blue => "red_blue.rhai",
            red_blue_bridge => "red_blue_bridge.rhai",
            docker0 => "docker0.rhai",
            docker_modes => "docker_modes.rhai",
            port_reuse => "port_reuse.rhai",
            more_arp_fdb => "more/arp_fdb.rhai",
            more_bond => "more/bond.rhai",
            more_office_firewall => "more/office_firewall.rhai",
            more_overlay => "more/overlay.rhai",
            more_router => "more/router.rhai",
            more_uplinks => "more/uplinks.rhai",
            more_vlan_bridge => "more/vlan_bridge.rhai",
            more_vlan_trunk => "more/vlan_trunk.rhai",
            more_wireguard => "more/wireguard.rhai",
            more_netem => "more/netem.rhai",
            more_tc_rate => "more/tc_rate.rhai",
            more_ipv6_router => "more/ipv6_router.rhai",
            $($extra)*
        }
    };
}

/// The *.rhai files in labs/ and labs/more/ (the labs beyond the seeds), sorted:
/// what `for_each_lab!` must list (labs/scale/ holds the benchmark, listed apart).
pub fn lab_files() -> Vec<String> {
    let mut found = Vec::new();
    for (dir, prefix) in [("labs", ""), ("labs/more", "more/")] {
        for entry in std::fs::read_dir(root().join(dir)).expect(dir) {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rhai") {
                found.push(format!("{prefix}{}", path.file_name().expect("a file").to_string_lossy()));
            }
        }
    }
    found.sort();
    found
}
