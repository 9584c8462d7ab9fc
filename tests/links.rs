//! Link kinds beyond veth and bridge, read back from the kernel: a macvlan answers
//! pings as a host of its parent's segment, a VXLAN tunnel carries traffic between
//! two nodes over their veth, set_link changes what `ip link` shows; a kind the
//! kernel lacks ends the lab with exit 3 naming its CONFIG option (or skips it
//! under requires()).

mod common;

use common::{netlab, run_text};

const OVERLAY: &str = r#"
let a = netns("a");
let b = netns("b");
veth(a, "eth0", b, "eth0");
addr(a, "eth0", "10.0.0.1/24");
addr(b, "eth0", "10.0.0.2/24");
up(a, "eth0");
up(b, "eth0");

step("a macvlan is a second host on a's segment", || {
    // Each link answers ARP only for its own addresses, and asks with its own
    // address: otherwise eth0 answers for mv0's address too, or announces it in its
    // own requests (Linux's weak host model, "ARP flux"), and b learns eth0's MAC.
    sysctl(a, "net.ipv4.conf.all.arp_ignore", 1);
    sysctl(a, "net.ipv4.conf.all.arp_announce", 2);
    macvlan(a, "eth0", "mv0");
    addr(a, "mv0", "10.0.0.11/24");
    up(a, "mv0");
    expect_ping(b, "10.0.0.11");
    let learned = neighbors(b).filter(|n| n.ip == "10.0.0.11").map(|n| n.mac);
    expect_eq(learned, [link(a, "mv0").mac], "b learned 10.0.0.11 at mv0's MAC");
    let l = link(a, "mv0");
    expect_eq(l.kind, "macvlan", "mv0 is a macvlan");
    expect_eq(l.mode, "bridge", "in bridge mode");
    expect_eq(l.parent, "eth0", "on eth0");
    expect(l.mac != link(a, "eth0").mac, "with a MAC address of its own");
});

step("a VXLAN tunnel carries an overlay between a and b", || {
    vxlan(a, "vx0", #{vni: 42, remote: "10.0.0.2", dev: "eth0"});
    vxlan(b, "vx0", #{vni: 42, remote: "10.0.0.1", dev: "eth0"});
    addr(a, "vx0", "192.168.42.1/24");
    addr(b, "vx0", "192.168.42.2/24");
    up(a, "vx0");
    up(b, "vx0");
    expect_ping(a, "192.168.42.2");
    let l = link(a, "vx0");
    expect_eq(l.vni, 42, "VNI 42");
    expect_eq(l.dstport, 4789, "on IANA's port");
    expect_eq(l.remote, "10.0.0.2", "to b");
    expect_eq(l.mtu, 1450, "its MTU is eth0's minus the 50 bytes of VXLAN over IPv4");
});

step("set_link changes what ip link shows", || {
    set_link(a, "vx0", #{mtu: 1400, alias: "overlay to b", txqueuelen: 500, mac: "02:00:00:00:42:01"});
    let l = link(a, "vx0");
    expect_eq(l.mtu, 1400, "mtu");
    expect_eq(l.alias, "overlay to b", "alias");
    expect_eq(l.txqueuelen, 500, "txqueuelen");
    expect_eq(l.mac, "02:00:00:00:42:01", "mac");
    let shown = exec_in(a, "ip -d link show vx0").stdout;
    expect(shown.contains("vxlan id 42") && shown.contains("alias overlay to b") && shown.contains("qlen 500"),
           "ip -d link agrees");
});
"#;

#[test]
fn macvlan_vxlan_and_link_attributes_work_and_read_back() {
    let (code, out, err) = run_text("overlay.rhai", OVERLAY);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 steps, 16 checks passed"), "{out}");
}

/// Each positive check fails without the line that makes it true.
#[test]
fn the_overlay_checks_fail_without_their_cause() {
    for (line, failing) in [
        ("    up(a, \"mv0\");\n", "b pings 10.0.0.11"),
        ("    sysctl(a, \"net.ipv4.conf.all.arp_announce\", 2);\n", "b learned 10.0.0.11 at mv0's MAC"),
        ("    up(b, \"vx0\");\n", "a pings 192.168.42.2"),
    ] {
        assert!(OVERLAY.contains(line), "{line}");
        let (code, out, err) = run_text("broken.rhai", &OVERLAY.replacen(line, "", 1));
        assert_eq!(code, 1, "without {line:?}:\n{out}\n{err}");
        assert!(err.contains(failing), "without {line:?}:\n{err}");
    }
    // A VNI that differs is another overlay: nothing gets through.
    let other = OVERLAY.replacen("vxlan(b, \"vx0\", #{vni: 42,", "vxlan(b, \"vx0\", #{vni: 43,", 1);
    let (code, _, err) = run_text("other_vni.rhai", &other);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a pings 192.168.42.2"), "{err}");
}

#[test]
fn plan_and_explain_show_the_ip_commands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("overlay.rhai");
    std::fs::write(&path, OVERLAY).unwrap();
    let out = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for cmd in [
        "ip -n a link add mv0 link eth0 address ",
        " type macvlan mode bridge",
        " type vxlan id 42 remote 10.0.0.2 dev eth0 dstport 4789",
        "ip -n a link set vx0 mtu 1400 address 02:00:00:00:42:01 txqueuelen 500 alias 'overlay to b'",
    ] {
        assert!(text.contains(cmd), "{cmd:?} in\n{text}");
    }
}

#[test]
fn bad_link_arguments_are_the_labs_mistake() {
    let pair = "let a = netns(\"a\");\nveth(a, \"x\", \"y\");\n";
    for (call, says) in [
        ("vlan(a, \"x\", 4095);", "a VLAN id is 0 to 4094"),
        ("macvlan(a, \"x\", \"m\", #{mode: \"fast\"});", "not a macvlan mode"),
        ("macvlan(a, \"nosuch\", \"m\");", "nosuch"),
        ("vxlan(a, \"v\", #{remote: \"10.0.0.2\"});", "vxlan needs its network identifier"),
        ("vxlan(a, \"v\", #{vni: 1, remote: \"10.0.0.2\", group: \"239.1.1.1\", dev: \"x\"});", "not both"),
        ("vxlan(a, \"v\", #{vni: 1, group: \"239.1.1.1\"});", "needs the link to send on"),
        ("vxlan(a, \"v\", #{vni: 1, group: \"10.1.1.1\", dev: \"x\"});", "not a multicast address"),
        ("set_link(a, \"x\", #{mac: \"01:00:5e:00:00:01\"});", "multicast"),
        ("set_link(a, \"x\", #{mtu: 20});", "mtu is 68 to 65535"),
        ("set_link(a, \"x\", #{});", "needs at least one of"),
        ("set_link(a, \"x\", #{speed: 10});", "unknown option \"speed\""),
    ] {
        let (code, out, err) = run_text("bad.rhai", &format!("{pair}{call}\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says:?} in\n{err}");
        assert!(err.contains("bad.rhai:3"), "{call}: points at line 3:\n{err}");
    }
}

/// Whether this kernel has a feature, as netlab's `has()` answers (it never loads
/// a module to find out).
fn kernel_has(feature: &str) -> bool {
    let (code, out, err) = run_text("has.rhai", &format!("print(has(\"{feature}\"));\n"));
    assert_eq!(code, 0, "{out}\n{err}");
    out.contains("true")
}

/// On a kernel without the kind (this project's VM kernel has no dummy and no
/// 802.1Q), making one is exit 3 naming the CONFIG option, and requires() skips
/// the lab; on a kernel with it, requires() lets the lab run (the link itself is
/// made under Debian's kernel in the kernel-matrix tests, where loading its module
/// changes no real machine).
#[test]
fn a_link_kind_the_kernel_lacks_is_the_machines_problem() {
    for (feature, make, config) in [
        ("dummy", "dummy(a, \"dummy0\");", "CONFIG_DUMMY"),
        ("vlan", "veth(a, \"x\", \"y\");\nvlan(a, \"x\", 10);", "CONFIG_VLAN_8021Q"),
        ("bond", "bond(a, \"bond0\", #{mode: \"active-backup\"});", "CONFIG_BONDING"),
        ("wireguard", "wireguard(a, \"wg0\");", "CONFIG_WIREGUARD"),
        ("bridge_vlan_filtering", "bridge(a, \"br0\", #{vlan_filtering: true});", "CONFIG_BRIDGE_VLAN_FILTERING"),
    ] {
        let required = format!("requires(\"{feature}\");\nprint(\"ran\");\n");
        let (code, out, err) = run_text("requires.rhai", &required);
        if kernel_has(feature) {
            assert_eq!(code, 0, "{out}\n{err}");
            assert!(out.contains("ran"), "{out}");
            continue;
        }
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains("SKIP") && out.contains(config), "{out}");
        let (code, out, err) = run_text("lacks.rhai", &format!("let a = netns(\"a\");\n{make}\n"));
        assert_eq!(code, 3, "{out}\n{err}");
        assert!(err.contains(config), "{err}");
        assert!(err.contains(&format!("requires(\"{feature}\")")), "the help names requires(): {err}");
    }
}

/// `ip tuntap add`: a TAP (the default) or TUN device nobody has open: up but without
/// carrier (DOWN), a TAP with a MAC address of netlab's, a TUN with none and a queue of
/// 500; `netlab plan` lists them exactly as the kernel does.
#[test]
fn tuntap_devices_as_the_kernel_makes_them() {
    let lab = r#"
let a = netns("a");
tuntap(a, "tap0");
tuntap(a, "tun0", #{mode: "tun", mtu: 1400});
up(a, "tap0");
up(a, "tun0");
for l in links(a) { print(`L ${l.name} ${l.kind} ${l.mode} ${l.mac} ${l.mtu} ${l.txqueuelen} ${l.state} ${l.carrier} ${l.up}`); }
expect(exec_in(a, "ip -d link show tap0").stdout.contains("tun type tap"), "ip -d link: tun type tap");
"#;
    let (code, out, err) = run_text("tuntap.rhai", lab);
    assert_eq!(code, 0, "{out}\n{err}");
    let listed = |text: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.find("L ").map(|i| l[i..].trim_end().to_string())).collect()
    };
    let kernel = listed(&out);
    assert!(
        kernel.iter().any(|l| l.starts_with("L tap0 tun tap ") && l.ends_with(" 1500 1000 DOWN false true")),
        "{out}"
    );
    assert!(kernel.iter().any(|l| l == "L tun0 tun tun  1400 500 DOWN false true"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tuntap.rhai");
    std::fs::write(&path, lab).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(listed(&text), kernel, "the model lists what the kernel has:\n{text}");
    assert!(text.contains("ip -n a tuntap add dev tun0 mode tun"), "{text}");

    for (call, says) in [
        ("tuntap(a, \"t0\", #{mode: \"tunnel\"});", "mode \"tunnel\""),
        ("tuntap(a, \"t0\", #{mode: \"tun\", mac: \"02:00:00:00:00:01\"});", "no MAC address"),
    ] {
        let (code, out, err) = run_text("tuntap_bad.rhai", &format!("let a = netns(\"a\");\n{call}\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says} in\n{err}");
    }
}
