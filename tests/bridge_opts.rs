//! A bridge's own options, bonds and WireGuard links as far as this machine's kernel
//! goes: STP, ageing time and forward delay set and read back from the kernel (and
//! predicted by the model, `netlab plan`), rendered as `ip link set ... type bridge`;
//! a wrong option is the lab's mistake at its line. What needs Debian's kernel (VLAN
//! filtering, bonding, WireGuard) is proven by labs/more/{vlan_bridge,bond,wireguard}
//! under `--kernel debian` (tests/kernel_matrix.rs).

mod common;

use common::{netlab, run_text};

const OPTIONS: &str = r#"
let a = netns("a");
bridge(a, "br0", #{stp: true, ageing: 60, forward_delay: 4});
let l = link(a, "br0");
expect_eq([l.stp, l.ageing, l.forward_delay, l.vlan_filtering, l.default_pvid], [true, 60, 4, false, 1],
          "ip -d link: stp_state 1 ageing_time 6000 forward_delay 400");
set_bridge(a, "br0", #{stp: false, ageing: 30});
let l = link(a, "br0");
expect_eq([l.stp, l.ageing, l.forward_delay], [false, 30, 4], "set_bridge changed stp and ageing, kept forward_delay");
"#;

/// What only the kernel can show: `ip -d link` itself.
const SHOWN: &str = r#"
let shown = exec_in(a, "ip -d link show br0").stdout;
expect(shown.contains("stp_state 0") && shown.contains("ageing_time 3000") && shown.contains("forward_delay 400"),
       "ip -d link agrees");
"#;

#[test]
fn bridge_options_are_set_and_read_back_from_the_kernel() {
    let (code, out, err) = run_text("bridge_opts.rhai", &format!("{OPTIONS}{SHOWN}"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 checks passed"), "{out}");
}

/// The model predicts what the kernel reads back, and explain shows the commands.
#[test]
fn plan_predicts_the_options_and_shows_the_commands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = dir.path().join("opts.rhai");
    std::fs::write(&lab, OPTIONS).expect("write");
    let out = netlab().arg("plan").arg(&lab).output().expect("netlab runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ip -n a link set br0 type bridge stp_state 1 ageing_time 6000 forward_delay 400"), "{text}");
    assert!(text.contains("ip -n a link set br0 type bridge stp_state 0 ageing_time 3000"), "{text}");
    let run = netlab().arg("run").arg(&lab).output().expect("netlab runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stdout));
}

#[test]
fn bad_bridge_bond_and_wireguard_options_are_the_labs_mistake() {
    for (call, says) in [
        ("bridge(a, \"br0\", #{stpp: true});", "unknown option \"stpp\""),
        ("bridge(a, \"br0\", #{ageing: -1});", "ageing is 0 to 86400"),
        ("bridge(a, \"br0\", #{forward_delay: 1});", "forward_delay is 2 to 30"),
        ("bridge(a, \"br0\", #{stp: 1});", "true or false for stp"),
        ("bridge(a, \"br0\");\nset_bridge(a, \"br0\", #{});", "set_bridge needs at least one of"),
        ("bridge(a, \"br0\");\nbridge_vlan(a, \"br0\", 4095);", "a VLAN id is 1 to 4094"),
        ("bridge(a, \"br0\");\nbridge_vlan(a, \"br0\", 10, #{tagged: true});", "unknown option \"tagged\""),
        ("bond(a, \"bond0\", #{mode: \"active-passive\"});", "is not a bond mode"),
        ("bond(a, \"bond0\", #{port: [\"x\"]});", "unknown option \"port\""),
        ("wireguard(a, \"wg0\", #{private_key: \"short\"});", "is not a WireGuard key"),
        ("wireguard(a, \"wg0\", #{peers: [#{endpoint: \"192.0.2.1:51820\"}]});", "a peer needs its key"),
        (
            "wireguard(a, \"wg0\", #{peers: [#{public_key: wg_pubkey(wg_genkey(\"x\")), endpoint: \"192.0.2.1\"}]});",
            "is not IP:PORT",
        ),
        ("wireguard(a, \"wg0\", #{mac: \"02:00:00:00:00:01\"});", "no MAC address"),
    ] {
        let text = format!("let a = netns(\"a\");\n\n{call}\n");
        let (code, out, err) = run_text("bad_opts.rhai", &text);
        assert_eq!(code, 2, "{call}: exit 2\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says:?} in\n{err}");
        let line = 2 + call.lines().count();
        assert!(err.contains(&format!("bad_opts.rhai:{line}")), "{call}: points at line {line}:\n{err}");
    }
}

/// netlab's WireGuard keys: derived from the names, the same on every run, and
/// `wg pubkey`'s public key of them (RFC 7748's test vector for the curve).
#[test]
fn wireguard_keys_are_reproducible_and_curve25519() {
    let text = r#"
let k = wg_genkey("site a");
expect_eq(k, wg_genkey("site a"), "the same seed, the same key");
expect(k != wg_genkey("site b"), "another seed, another key");
expect_eq(k.len(), 44, "44 characters of base64");
// RFC 7748 section 6.1: Alice's private key and public key.
expect_eq(wg_pubkey("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="), "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",
          "wg pubkey: Curve25519");
let a = netns("a");
expect_eq(wg_key(a, "wg0"), wg_pubkey(wg_genkey("a/wg0")), "a link's key is netlab's for its node and name");
"#;
    let (code, out, err) = run_text("wg_keys.rhai", text);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("5 checks passed"), "{out}");
}
