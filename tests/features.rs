//! Features beyond the seed labs, each checked by its real outcome.

mod common;

use common::{decode, machine_state, netlab, root, run_text};

fn passes(name: &str, text: &str) -> String {
    let (code, out, err) = run_text(name, text);
    assert_eq!(code, 0, "{name}:\n{out}\n{err}");
    out
}

#[test]
fn ipv6_addresses_work_without_dad_waits() {
    passes(
        "v6.rhai",
        r#"
let a = netns("a"); let b = netns("b");
veth(a, "x", b, "y");
addr(a, "x", "fd00::1/64"); addr(b, "y", "fd00::2/64");
up(a, "x"); up(b, "y");
expect_ping(a, "fd00::2", #{timeout: 1});
expect_ping(b, "fd00::1", #{timeout: 1});
"#,
    );
}

/// Every node starts like a fresh host: ip_forward 0 whatever the host's, and ARP/ND
/// retries every ~10 ms on its links (IPv6 ones included once IPv6 is on).
#[test]
fn new_nodes_start_from_netlabs_defaults() {
    passes(
        "defaults.rhai",
        r#"
sysctl(host(), "net.ipv4.ip_forward", 1);
let a = netns("a"); let b = netns("b");
expect_eq(sysctl(a, "net.ipv4.ip_forward"), "0", "a new node starts unforwarded");
veth(a, "x", b, "y");
addr(a, "x", "fd00::1/64");
up(a, "x"); up(b, "y");
expect_eq(link(a, "x").state, "UP", "x is up");
let t = exec_in(a, "cat /proc/sys/net/ipv4/neigh/x/retrans_time_ms /proc/sys/net/ipv6/neigh/x/retrans_time_ms").stdout.split("\n");
expect(t[0].parse_int() <= 20 && t[1].parse_int() <= 20, `ARP and ND retries within 20 ms: ${t}`);
let u = exec_in(b, "cat /proc/sys/net/ipv4/neigh/y/retrans_time_ms").stdout.split("\n");
expect(u[0].parse_int() <= 20, `ARP retries within 20 ms on an IPv4-only link too: ${u}`);
"#,
    );
}

/// A sysctl of a link whose name has a dot is set and read in the slash form, as
/// `sysctl -w net/ipv4/conf/eth0.10/forwarding=1` writes it.
#[test]
fn sysctls_of_links_with_a_dot_in_their_name() {
    passes(
        "dotted.rhai",
        r#"
let a = netns("a");
veth(a, "v.1", "w");
sysctl(a, "net/ipv4/conf/v.1/forwarding", 1);
expect_eq(sysctl(a, "net/ipv4/conf/v.1/forwarding"), "1", "set through the slash form");
expect_eq(exec_in(a, "cat /proc/sys/net/ipv4/conf/v.1/forwarding").stdout, "1\n", "the kernel holds it");
"#,
    );
}

/// netlab remembers link indexes it looked up; a link a program deleted and made
/// again (a new index) still gets the address and the bridge port.
#[test]
fn links_a_program_remade_are_found_again() {
    passes(
        "remade.rhai",
        r#"
let h = host();
bridge(h, "br0");
veth(h, "x", "y");
master(h, "x", "br0");
addr(h, "x", "10.9.0.1/24");
let old = link(h, "x").index;
exec_in(h, "sh -c 'ip link del x && ip link add x type veth peer name y'");
addr(h, "x", "10.9.0.1/24");
master(h, "x", "br0");
expect(link(h, "x").index != old, "x is a new link");
expect_eq(addrs(h).filter(|a| a.dev == "x").map(|a| a.cidr), ["10.9.0.1/24"], "the new x has the address");
expect_eq(link(h, "x").master, "br0", "the new x is a port of br0");
"#,
    );
}

#[test]
fn move_link_moves_and_renames() {
    passes(
        "move.rhai",
        r#"
let c = netns("c");
veth(host(), "v-host", "v-tmp");
move_link(host(), "v-tmp", c, "eth0");
expect(!links(host()).some(|l| l.name == "v-tmp"), "gone from the host");
expect_eq(link(c, "eth0").peer_ifindex, link(host(), "v-host").index, "eth0 in c is v-host's peer");
let r = exec_in(c, "ip -o link show eth0");
expect(r.stdout.contains("eth0@if"), "ip shows eth0@ifN");
"#,
    );
}

#[test]
fn node_files_and_hostnames_are_per_node() {
    let out = passes(
        "etc.rhai",
        r#"
let a = netns("a"); let b = netns("b");
resolv_conf(a, "nameserver 192.0.2.53");
hosts_file(a, "192.0.2.10 web.lab");
hostname(a, "alpha");
expect(exec_in(a, "cat /etc/resolv.conf").stdout.contains("192.0.2.53"), "a's programs see a's resolv.conf");
expect(!exec_in(b, "cat /etc/resolv.conf").stdout.contains("192.0.2.53"), "b does not see a's nameserver");
expect(exec_in(a, "getent hosts web.lab").stdout.contains("192.0.2.10"), "a's /etc/hosts is used");
expect_eq(exec_in(a, "hostname").stdout, "alpha\n", "a is alpha");
expect(exec_in(b, "hostname").stdout != "alpha\n", "b is not");
print(`host=${hostname(host())}`);
"#,
    );
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(out.contains(&format!("host={}", machine.trim())), "the host keeps the machine's name: {out}");
    assert!(!std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default().contains("192.0.2.53"));
}

#[test]
fn servers_record_their_clients() {
    passes(
        "srv.rhai",
        r#"
let a = netns("a"); let b = netns("b");
veth(a, "x", b, "y"); addr(a, "x", "10.9.0.1/24"); addr(b, "y", "10.9.0.2/24"); up(a, "x"); up(b, "y");
let web = http_server(b, "10.9.0.2:8080", "hello");
let dns = dns_server(b, "10.9.0.2:53", #{"svc.lab": "10.9.0.2"});
resolv_conf(a, "nameserver 10.9.0.2");
expect_resolve(a, "svc.lab");
expect_no_resolve(a, "other.lab");
expect_http(a, "http://svc.lab:8080/path", #{body: "hello"});
expect_eq(web.clients(), ["10.9.0.1"], "the server saw a");
expect_eq(web.requests()[0].path, "/path", "and the path");
expect(dns.requests().some(|q| q.name == "svc.lab"), "the DNS server saw the query");
expect_eq(listening(b).map(|s| s.local), ["10.9.0.2:8080", "10.9.0.2:53"], "b listens on both");
"#,
    );
}

#[test]
fn set_passes_constants_and_metrics_reach_the_results_line() {
    let dir = std::env::temp_dir().join(format!("netlab-set-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("set.rhai");
    std::fs::write(&lab, "step(\"setup\", || { metric(\"n\", n); metric(\"twice\", n * 2); });\n").unwrap();
    let results = dir.join("results.txt");
    let out = netlab().arg("run").arg(&lab).args(["--set", "n=21"]).env("NETLAB_RESULTS", &results).output().unwrap();
    let (code, stdout, stderr) = decode(out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let line = std::fs::read_to_string(&results).unwrap();
    assert!(line.starts_with("impl=netlab n=21 setup_s="), "{line}");
    assert!(line.contains(" twice=42") && line.contains(" teardown_s=") && line.contains(" exit=0"), "{line}");
}

#[test]
fn check_lints_without_running() {
    let (code, out, _) = decode(netlab().arg("check").arg(root().join("labs/bridge_nat.rhai")).output().unwrap());
    assert_eq!(code, 0);
    assert!(out.starts_with("ok "), "{out}");
    let dir = std::env::temp_dir().join(format!("netlab-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.rhai"), "netns(\"a\");\nbrige(host(), \"br0\");\n").unwrap();
    let (code, _, err) = decode(netlab().arg("check").arg(dir.join("bad.rhai")).output().unwrap());
    assert_eq!(code, 2);
    assert!(err.contains("unknown function brige()") && err.contains("did you mean bridge()?"), "{err}");
}

#[test]
fn test_runs_labs_in_parallel_and_writes_junit() {
    let before = machine_state();
    let dir = std::env::temp_dir().join(format!("netlab-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("good.rhai"), "let a = netns(\"a\");\nup(a, \"lo\");\nexpect_ping(a, \"127.0.0.1\");\n")
        .unwrap();
    std::fs::write(dir.join("bad.rhai"), "let a = netns(\"a\");\nexpect_ping(a, \"127.0.0.1\", #{timeout: 0.2});\n")
        .unwrap();
    let junit = dir.join("junit.xml");
    let out = netlab().arg("test").arg(&dir).args(["--jobs", "2", "--junit"]).arg(&junit).output().unwrap();
    let (code, stdout, _) = decode(out);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testsuite ").count(), 2, "a testsuite per lab: {xml}");
    assert!(xml.contains("tests=\"1\" failures=\"1\""), "{xml}");
    assert!(xml.contains("bad.rhai") && xml.contains("<failure"), "{xml}");
    assert_eq!(before, machine_state());
}

/// `ip netns delete`: the name goes, the namespace's veths take their peers along at
/// once, the old handle is refused with a hint, and the name can be used again.
#[test]
fn del_netns_deletes_the_namespace_and_its_links() {
    let out = passes(
        "del_netns.rhai",
        r#"
let c4 = netns("container4");
veth(host(), "brid4", c4, "veth4");
del_netns(c4);
expect(!links(host()).some(|l| l.name == "brid4"), "brid4 went with container4");
expect(!exec_in(host(), "ip netns list").stdout.contains("container4"), "ip netns list no longer shows it");
let again = netns("container4");
expect_eq(links(again).map(|l| l.name), ["lo"], "netns() makes a fresh container4");
"#,
    );
    assert!(out.contains("brid4 went with container4"), "{out}");
    let (code, _, err) = run_text("del_netns_old_handle.rhai", "let c = netns(\"c\");\ndel_netns(c);\nlinks(c);\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("c was deleted (del_netns)"), "{err}");
    let (code, _, err) = run_text("del_host.rhai", "del_netns(host());\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be deleted"), "{err}");
}

/// Like nginx's `listen 80; listen [::]:80;`: an IPv6 server is IPv6-only, so both
/// listen at once, as `ss -tln` shows.
#[test]
fn ipv4_and_ipv6_servers_share_a_port() {
    passes(
        "v6only.rhai",
        r#"
let d = netns("d");
http_server(d, "0.0.0.0:80", "v4");
http_server(d, "[::]:80", "v6");
let ss = exec_in(d, "ss -Htln").stdout;
expect(ss.contains("0.0.0.0:80") && ss.contains("[::]:80"), "ss -tln: both sockets");
expect_eq(listening(d).map(|s| `${s.proto} ${s.local}`), ["tcp 0.0.0.0:80", "tcp [::]:80"], "listening() sees both, as ss does");
"#,
    );
}
