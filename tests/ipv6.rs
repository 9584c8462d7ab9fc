//! IPv6 beyond the addresses a lab gives: link-local addresses once IPv6 is on,
//! duplicate address detection inside the readiness wait, SLAAC from netlab's own
//! router advertisements, and pings to a link-local address with its link. What the
//! kernel holds (read back after the run) is what the model (`netlab plan`) says.
//! labs/more/ipv6_router.rhai proves the rest with real traffic.

mod common;

use common::{machine_state, netlab, run_text};

/// The lines a lab printed with `print("IP6 ...")` (addresses, routes), in order.
fn listed(out: &str) -> Vec<String> {
    out.lines().filter_map(|l| l.find("IP6 ").map(|i| l[i..].trim_end().to_string())).collect()
}

/// Runs the lab on the kernel and plans it on the model: both must list the same.
fn same_in_kernel_and_model(name: &str, lab: &str) -> String {
    let before = machine_state();
    let (code, out, err) = run_text(name, lab);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(before, machine_state(), "{name} changed the machine");
    let kernel = listed(&out);
    assert!(!kernel.is_empty(), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, lab).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan.status.success(), "{text}\n{}", String::from_utf8_lossy(&plan.stderr));
    assert_eq!(listed(&text), kernel, "the model lists what the kernel has:\n{text}");
    out
}

const LIST: &str = r#"
fn show(n) {
    for l in links(n) { print(`IP6 ${n} link ${l.name} ipv6 ${l.ipv6}`); }
    for a in addrs(n) { if a.ip.contains(":") { print(`IP6 ${n} addr ${a.dev} ${a.cidr} ${a.flags}`); } }
    for r in routes(n) { if `${r.dst}${r.via}`.contains(":") { print(`IP6 ${n} route ${r.dst} via ${r.via} dev ${r.dev} proto ${r.proto} metric ${r.metric}`); } }
}
"#;

#[test]
fn link_local_addresses_come_with_ipv6_and_are_the_models() {
    let lab = format!(
        "{LIST}{}",
        r#"
let a = netns("a"); let b = netns("b"); let c = netns("c");
ipv6(a);                          // every link of a, those made later too
veth(a, "x", b, "y");
veth(a, "z", c, "w");             // c keeps IPv6 off: netlab's default
ipv6(b, "y");
for n in [a, b, c] { up(n, "lo"); }
up(a, "x"); up(b, "y"); up(a, "z"); up(c, "w");
for n in [a, b, c] { show(n); }
print(`IP6 default ${sysctl(a, "net.ipv6.conf.default.disable_ipv6")} ${sysctl(c, "net.ipv6.conf.default.disable_ipv6")}`);
let ll = addrs(b).filter(|x| x.ip.starts_with("fe80:"))[0].ip;
expect_ping(a, `${ll}%x`);
expect_no_ping(a, `${ll}%z`, #{error: "host-unreachable"});
"#
    );
    let out = same_in_kernel_and_model("linklocal.rhai", &lab);
    let kernel = listed(&out);
    // No address is left tentative when the lab reads them: DAD is in the readiness wait.
    assert!(!kernel.iter().any(|l| l.contains("tentative")), "{out}");
    for want in ["IP6 a addr x fe80::", "IP6 a addr z fe80::", "IP6 b addr y fe80::", "IP6 default 0 1"] {
        assert!(kernel.iter().any(|l| l.starts_with(want)), "{want} in\n{out}");
    }
    assert!(!kernel.iter().any(|l| l.starts_with("IP6 c addr w")), "c's IPv6 stays off:\n{out}");
    assert!(
        kernel.iter().any(|l| l == "IP6 c link w ipv6 false") && kernel.iter().any(|l| l == "IP6 b link y ipv6 true")
    );
    assert!(out.contains("Destination Host Unreachable"), "{out}");
}

#[test]
fn a_duplicate_address_fails_dad_and_the_wait_reports_it() {
    // a holds (without DAD) the link-local address b's link will make from its MAC:
    // b's duplicate address detection finds it, and the address stays dadfailed.
    let lab = format!(
        "{LIST}{}",
        r#"
let a = netns("a"); let b = netns("b");
veth(a, "x", b, "y");
ipv6(b);
let m = mac(b, "y").split(":").map(|h| parse_int(h, 16));
let ll = `fe80::${to_hex((m[0] ^ 2) * 256 + m[1])}:${to_hex(m[2] * 256 + 255)}:${to_hex(0xfe00 + m[3])}:${to_hex(m[4] * 256 + m[5])}`;
addr(a, "x", `${ll}/64`);
up(a, "x");
addrs(a);   // a's address is in place (its group joined) before b's DAD starts
up(b, "y");
show(b);
expect_ping(b, `${ll}%y`, #{timeout: 0.3});
"#
    );
    let (code, out, err) = run_text("dadfailed.rhai", &lab);
    assert_eq!(code, 1, "the ping from the address that failed DAD fails:\n{out}\n{err}");
    let kernel = listed(&out);
    assert!(
        kernel.iter().any(|l| l.starts_with("IP6 b addr y fe80::") && l.ends_with("[\"dadfailed\", \"tentative\"]")),
        "{out}"
    );
    assert!(err.contains("failed duplicate address detection (dadfailed)"), "the check says why:\n{err}");
    // The model predicts the failure too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dadfailed.rhai");
    std::fs::write(&path, &lab).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(listed(&text), kernel, "the model lists what the kernel has:\n{text}");
}

// h and k on the router's bridge; s is a host whose own bridge joins it: its bridge
// takes the advertisements, its port does not (a port's frames go to its bridge).
const ROUTER: &str = r#"
let r = netns("r"); let h = netns("h"); let k = netns("k"); let s = netns("s");
bridge(r, "br0");
veth(r, "p1", h, "eth0"); veth(r, "p2", k, "eth0"); veth(r, "p3", s, "up");
master(r, "p1", "br0"); master(r, "p2", "br0"); master(r, "p3", "br0");
ipv6(h); ipv6(k); ipv6(s);
bridge(s, "br1");
master(s, "up", "br1");
addr(r, "br0", "2001:db8:5::1/64");
advertise(r, "br0", ["2001:db8:5::/64", "2001:db8:6::/64"]);
for l in ["br0", "p1", "p2", "p3"] { up(r, l); }
up(h, "eth0"); up(k, "eth0"); up(s, "up"); up(s, "br1");
"#;

#[test]
fn slaac_through_a_bridge_is_what_the_model_says() {
    let lab = format!(
        "{LIST}{ROUTER}{}",
        r#"
for n in [r, h, k, s] { show(n); }
let kip = addrs(k).filter(|a| a.ip.starts_with("2001:db8:6:"))[0].ip;
expect_ping(h, kip);
expect_ping(h, "2001:db8:5::1");
"#
    );
    let out = same_in_kernel_and_model("slaac.rhai", &lab);
    let kernel = listed(&out);
    for want in [
        "IP6 h addr eth0 2001:db8:5:0:",
        "IP6 h addr eth0 2001:db8:6:0:",
        "IP6 k addr eth0 2001:db8:6:0:",
        "IP6 h route 2001:db8:5::/64 via  dev eth0 proto kernel metric 256",
        "IP6 h route default via fe80::",
        "IP6 s addr br1 2001:db8:6:0:",
        "IP6 s route default via fe80::",
    ] {
        assert!(kernel.iter().any(|l| l.starts_with(want)), "{want} in\n{out}");
    }
    assert!(kernel.iter().any(|l| l.starts_with("IP6 h addr eth0 2001:db8:5:0:") && l.ends_with("[\"dynamic\"]")));
    assert!(!kernel.iter().any(|l| l.starts_with("IP6 s addr up 2001:")), "a bridge port takes no address:\n{out}");
}

#[test]
fn no_default_route_when_the_router_says_so_and_a_second_sender_is_refused() {
    let lab = format!(
        "{LIST}{}",
        r#"
let r = netns("r"); let h = netns("h");
veth(h, "eth0", r, "eth1");
ipv6(h);
advertise(r, "eth1", "2001:db8:7::/64", #{default_route: false});
up(h, "eth0"); up(r, "eth1");
show(h);
try { advertise(r, "eth1", "2001:db8:8::/64"); } catch (e) { print(`IP6 refused ${e}`.split("\n")[0]); }
"#
    );
    let out = same_in_kernel_and_model("nodefault.rhai", &lab);
    let kernel = listed(&out);
    assert!(kernel.iter().any(|l| l.starts_with("IP6 h addr eth0 2001:db8:7:0:")), "{out}");
    assert!(!kernel.iter().any(|l| l.contains("route default")), "{out}");
}

#[test]
fn a_sender_goes_with_its_node_and_a_new_router_takes_over() {
    let lab = format!(
        "{LIST}{}",
        r#"
let r = netns("r"); let h = netns("h");
veth(h, "eth0", r, "eth1");
ipv6(h);
advertise(r, "eth1", "2001:db8:7::/64");
up(h, "eth0"); up(r, "eth1");
expect_eq(routes(h).filter(|x| x.dst == "default").len(), 1, "a default route via r");
del_netns(r);
r = netns("r");
veth(h, "eth1", r, "eth1");
advertise(r, "eth1", "2001:db8:9::/64");
up(h, "eth1"); up(r, "eth1");
show(h);
"#
    );
    let out = same_in_kernel_and_model("again.rhai", &lab);
    let kernel = listed(&out);
    let defaults: Vec<&String> = kernel.iter().filter(|l| l.contains("route default")).collect();
    assert_eq!(defaults.len(), 1, "{out}");
    assert!(defaults[0].contains("dev eth1 proto ra"), "{out}");
}

#[test]
fn scoped_pings_name_their_link_and_mistakes_are_the_labs() {
    for (call, says) in [
        ("expect_ping(a, \"fe80::1\");", "say which one"),
        ("expect_ping(a, \"10.0.0.1%x\");", "not one"),
        ("expect_no_ping(a, \"fe80::1%no/such\");", "invalid"),
    ] {
        let (code, out, err) = run_text("scoped_bad.rhai", &format!("let a = netns(\"a\");\n{call}\n"));
        assert_eq!(code, 2, "{call}:\n{out}\n{err}");
        assert!(err.to_lowercase().contains(says), "{call}: {says:?} in\n{err}");
    }
    // IPv6 off on the link (netlab's default): the failed check says how to turn it on.
    let off = "let a = netns(\"a\");\nveth(a, \"x\", \"y\");\nup(a, \"x\"); up(a, \"y\");\nexpect_ping(a, \"fe80::1%x\", #{timeout: 0.2});\n";
    let (code, out, err) = run_text("scoped_off.rhai", off);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("IPv6 is off on x in a") && err.contains("ipv6(a, \"x\")"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scoped.rhai");
    std::fs::write(
        &path,
        "let a = netns(\"a\");\nveth(a, \"x\", \"y\");\nipv6(a);\nexpect_no_ping(a, \"fe80::1%x\");\n",
    )
    .unwrap();
    let explain = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(text.contains("ip netns exec a ping -c1 fe80::1%x"), "{text}");
    assert!(text.contains("ip netns exec a sysctl -w net.ipv6.conf.all.disable_ipv6=0"), "{text}");
}

#[test]
fn explain_shows_radvd_for_netlabs_sender() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ra.rhai");
    std::fs::write(&path, ROUTER).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains(
            "echo 'interface br0 { AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4; AdvDefaultLifetime 1800; \
             prefix 2001:db8:5::/64 { AdvOnLink on; AdvAutonomous on; }; prefix 2001:db8:6::/64 { AdvOnLink on; \
             AdvAutonomous on; }; };' > radvd-r-br0.conf"
        ),
        "{text}"
    );
    assert!(text.contains("ip netns exec r radvd -n -C radvd-r-br0.conf -p radvd-r-br0.pid &"), "{text}");
}
