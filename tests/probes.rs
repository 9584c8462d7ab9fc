//! TCP probes: expect_tcp passes only when a handshake happens, expect_no_tcp only
//! when none does, and says why as curl would (refused, no route, unreachable).

mod common;

use common::{netlab, run_text};

const PAIR: &str = r#"
let a = netns("a");
let b = netns("b");
veth(a, "x", b, "y");
addr(a, "x", "10.0.0.1/24");
addr(b, "y", "10.0.0.2/24");
up(a, "x");
up(b, "y");
up(a, "lo");   // the kernel's own "No route to host" comes back over lo
"#;

#[test]
fn a_handshake_or_why_not() {
    let lab = format!(
        "{PAIR}http_server(b, \"10.0.0.2:80\", \"hi\");\n\
         expect_tcp(a, \"10.0.0.2:80\");\n\
         expect_no_tcp(a, \"10.0.0.2:81\", #{{error: \"refused\"}});\n\
         expect_no_tcp(a, \"10.0.0.9:80\", #{{error: \"host-unreachable\"}});\n\
         expect_no_tcp(a, \"10.9.0.9:80\", #{{error: \"unreachable\"}});\n"
    );
    let (code, out, err) = run_text("tcp.rhai", &lab);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("✓ a connects to 10.0.0.2:80: handshake in "), "{out}");
    assert!(out.contains("Failed to connect to 10.0.0.2 port 81: Connection refused"), "{out}");
    assert!(out.contains("Failed to connect to 10.0.0.9 port 80: No route to host"), "{out}");
    assert!(out.contains("Failed to connect to 10.9.0.9 port 80: Network is unreachable"), "{out}");

    // Without the server, the positive check fails at its line.
    let (code, out, err) =
        run_text("noserver.rhai", &format!("{PAIR}expect_tcp(a, \"10.0.0.2:80\", #{{timeout: 0.3}});\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("Connection refused") && err.contains("noserver.rhai:10"), "{err}");

    // With the port open, the negative one fails; with a wrong reason too.
    let open = format!("{PAIR}http_server(b, \"10.0.0.2:80\", \"hi\");\nexpect_no_tcp(a, \"10.0.0.2:80\");\n");
    let (code, out, err) = run_text("open.rhai", &open);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("the handshake succeeded"), "{err}");
    let (code, out, err) =
        run_text("reason.rhai", &format!("{PAIR}expect_no_tcp(a, \"10.0.0.2:81\", #{{error: \"silence\"}});\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("not for the reason silence"), "{err}");
}

#[test]
fn a_bad_target_is_the_labs_mistake_and_plan_shows_nc() {
    let (code, out, err) = run_text("bad.rhai", &format!("{PAIR}expect_tcp(a, \"10.0.0.2\");\n"));
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("is not an address and port"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tcp.rhai");
    std::fs::write(&path, format!("{PAIR}expect_no_tcp(a, \"[fd00::2]:8080\");\n")).unwrap();
    let out = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ip netns exec a nc -z -w1 fd00::2 8080"), "{text}");
}

const ROUTED: &str = r#"
let a = netns("a");
let r = netns("r");
let b = netns("b");
veth(a, "eth0", r, "ra");
veth(r, "rb", b, "eth0");
addr(a, "eth0", "10.1.0.2/24");
addr(r, "ra", "10.1.0.1/24");
addr(r, "rb", "10.2.0.1/24");
addr(b, "eth0", "10.2.0.2/24");
for n in [a, r, b] { up(n, "lo"); }
up(a, "eth0"); up(r, "ra"); up(r, "rb"); up(b, "eth0");
route(a, "default", "10.1.0.1");
route(b, "default", "10.2.0.1");
sysctl(r, "net.ipv4.ip_forward", 1);
set_link(r, "rb", #{mtu: 1400});
set_link(b, "eth0", #{mtu: 1400});
"#;

/// ping's -t, -s with -M do, and -I: each option changes what the probe sees, and
/// the ICMP errors say so (from the router).
#[test]
fn ping_options_ttl_size_df_and_source() {
    let lab = format!(
        "{ROUTED}expect_ping(a, \"10.2.0.2\", #{{ttl: 2}});\n\
         expect_no_ping(a, \"10.2.0.2\", #{{ttl: 1, error: \"ttl-exceeded\"}});\n\
         expect_ping(a, \"10.2.0.2\", #{{size: 1372, df: true}});\n\
         expect_no_ping(a, \"10.2.0.2\", #{{size: 1373, df: true, error: \"frag-needed\"}});\n\
         expect_ping(a, \"10.2.0.2\", #{{size: 1373}});\n\
         expect_no_ping(a, \"10.2.0.2\", #{{size: 1473, df: true, error: \"frag-needed\"}});\n\
         expect_ping(a, \"10.1.0.1\", #{{source: \"10.1.0.2\"}});\n"
    );
    let (code, out, err) = run_text("opts.rhai", &lab);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("a cannot ping 10.2.0.2 -t 1: no reply to")
            && out.contains("Time to live exceeded (from 10.1.0.1)"),
        "{out}"
    );
    assert!(out.contains("Frag needed and DF set (mtu = 1400) (from 10.1.0.1)"), "{out}");
    assert!(out.contains("local error: message too long, mtu=1400"), "{out}");

    // The positive checks fail where the option makes them fail.
    for (call, says) in [
        ("expect_ping(a, \"10.2.0.2\", #{ttl: 1, timeout: 0.3});", "Time to live exceeded (from 10.1.0.1)"),
        ("expect_ping(a, \"10.2.0.2\", #{size: 1373, df: true, timeout: 0.3});", "Frag needed and DF set (mtu = 1400)"),
    ] {
        let (code, out, err) = run_text("fails.rhai", &format!("{ROUTED}{call}\n"));
        assert_eq!(code, 1, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says} in\n{err}");
    }
    // And the negative ones where the path allows it: a TTL of 2 gets there.
    let (code, out, err) = run_text(
        "reaches.rhai",
        &format!("{ROUTED}expect_no_ping(a, \"10.2.0.2\", #{{ttl: 2, error: \"ttl-exceeded\"}});\n"),
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("requests were answered"), "{err}");
}

#[test]
fn bad_ping_options_are_the_labs_mistake() {
    for (call, says) in [
        ("expect_ping(a, \"10.1.0.1\", #{size: 4});", "size is 8 to 65507 (netlab's probe carries an 8-byte token)"),
        ("expect_ping(a, \"10.1.0.1\", #{ttl: 0});", "ttl is 1 to 255"),
        ("expect_ping(a, \"10.1.0.1\", #{source: \"fd00::1\"});", "different IP versions"),
        ("expect_no_ping(a, \"10.1.0.1\", #{df: 1});", "true or false for df"),
    ] {
        let (code, out, err) = run_text("bad_ping.rhai", &format!("{ROUTED}{call}\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says} in\n{err}");
    }
}

/// trace() finds the hops as traceroute does; expect_path passes only on the exact
/// path and, failing, shows the path found and the first hop that differs. A hop
/// that stays silent is "*", an ICMP error ends the path with its mark, and no route
/// at all ends it before the first hop.
#[test]
fn trace_and_expect_path() {
    let lab = format!(
        "{ROUTED}print(`TRACE ${{trace(a, \"10.2.0.2\")}}`);\n\
         expect_path(a, \"10.2.0.2\", [\"10.1.0.1\", \"10.2.0.2\"]);\n\
         print(`SHORT ${{trace(a, \"10.2.0.2\", #{{max_hops: 1}})}}`);\n\
         print(`NOROUTE ${{trace(b, \"192.0.2.1\", #{{max_hops: 3}})}}`);\n\
         del_route(b, \"default\");\n\
         print(`UNREACH ${{trace(r, \"192.0.2.1\", #{{max_hops: 3}})}}`);\n\
         route(r, \"198.51.100.0/24\", #{{type: \"unreachable\"}});\n\
         print(`MARK ${{trace(a, \"198.51.100.1\", #{{max_hops: 3}})}}`);\n\
         print(`SILENT ${{trace(a, \"10.2.0.2\", #{{max_hops: 2, timeout: 0.2}})}}`);\n"
    );
    let (code, out, err) = run_text("trace.rhai", &lab);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(r#"TRACE ["10.1.0.1", "10.2.0.2"]"#), "{out}");
    assert!(out.contains("✓ a reaches 10.2.0.2 through 10.1.0.1 → 10.2.0.2"), "{out}");
    assert!(out.contains(r#"SHORT ["10.1.0.1"]"#), "{out}");
    // The router looks the route up before it looks at the TTL: "Network Unreachable" at hop 1.
    assert!(out.contains(r#"NOROUTE ["10.2.0.1 !N"]"#), "{out}");
    assert!(out.contains(r#"UNREACH ["!Network is unreachable"]"#), "{out}");
    assert!(out.contains(r#"MARK ["10.1.0.1 !H"]"#), "{out}");
    // b has no way back to a any more: the router answers hop 1, b stays silent.
    assert!(out.contains(r#"SILENT ["10.1.0.1", "*"]"#), "{out}");

    let (code, out, err) =
        run_text("wrongpath.rhai", &format!("{ROUTED}expect_path(a, \"10.2.0.2\", [\"10.1.0.9\", \"10.2.0.2\"]);\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("the path was 10.1.0.1 → 10.2.0.2"), "{err}");
    assert!(err.contains("hop 1 differs"), "{err}");
    assert!(err.contains("wrongpath.rhai:18"), "points at the check:\n{err}");

    for (call, says) in [
        ("expect_path(a, \"10.2.0.2\", []);", "a path is 1 to 30 hops"),
        ("expect_path(a, \"10.2.0.2\", [\"10.1.0.1\"]);", "a path ends at its destination"),
        ("expect_path(a, \"10.2.0.2\", [\"fd00::1\", \"10.2.0.2\"]);", "different IP versions"),
        ("expect_path(a, \"10.2.0.2\", [1, \"10.2.0.2\"]);", "an address for each hop"),
        ("trace(a, \"10.2.0.2\", #{max_hops: 31});", "max_hops is 1 to 30"),
        ("trace(a, \"10.2.0.2\", #{hops: 3});", "unknown option \"hops\""),
    ] {
        let (code, out, err) = run_text("badpath.rhai", &format!("{ROUTED}{call}\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says:?} in\n{err}");
        assert!(err.contains("badpath.rhai:18"), "{call}: points at its line:\n{err}");
    }
}

/// UDP: an echo proves the datagram got there and back; without a server the other
/// end's kernel answers ICMP port unreachable ("refused"); a drop rule on the way
/// makes it silence; the server saw the sender. Plan and export show the commands.
#[test]
fn udp_echo_or_why_not() {
    let lab = format!(
        "{PAIR}let echo = udp_server(b, \"10.0.0.2:7\");\n\
         expect_udp(a, \"10.0.0.2:7\");\n\
         expect_no_udp(a, \"10.0.0.2:9\", #{{error: \"refused\"}});\n\
         expect_no_udp(a, \"10.9.0.9:7\", #{{error: \"unreachable\"}});\n\
         print(`CLIENTS ${{echo.clients()}}`);\n\
         firewall_rule(b, #{{chain: \"input\", proto: \"udp\", dport: 7, action: \"drop\"}});\n\
         expect_no_udp(a, \"10.0.0.2:7\", #{{error: \"silence\"}});\n\
         let v6 = udp_server(b, \"[::]:7\");\n"
    );
    let (code, out, err) = run_text("udp.rhai", &lab);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("✓ a gets an echo from 10.0.0.2:7/udp: after "), "{out}");
    assert!(out.contains("10.0.0.2:9/udp: Connection refused (ICMP port unreachable)"), "{out}");
    assert!(out.contains("10.9.0.9:7/udp: Network is unreachable"), "{out}");
    assert!(out.contains(r#"CLIENTS ["10.0.0.1"]"#), "{out}");
    assert!(out.contains("no echo from 10.0.0.2:7/udp in"), "{out}");

    // Without the server, the positive check fails at its line, saying so.
    let (code, out, err) =
        run_text("noecho.rhai", &format!("{PAIR}expect_udp(a, \"10.0.0.2:7\", #{{timeout: 0.3}});\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("Connection refused") && err.contains("noecho.rhai:10"), "{err}");
    assert!(err.contains("start udp_server() there"), "{err}");
    // A negative check fails when the echo comes back.
    let (code, out, err) =
        run_text("echoes.rhai", &format!("{PAIR}udp_server(b, \"10.0.0.2:7\");\nexpect_no_udp(a, \"10.0.0.2:7\");\n"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("the echo came back after"), "{err}");
    for (call, says) in [
        ("expect_udp(a, \"10.0.0.2\");", "is not an address and port"),
        ("expect_no_udp(a, \"10.0.0.2:7\", #{error: \"refuse\"});", "unknown reason"),
        ("udp_server(b, \"10.0.0.9:7\");", "b has no address 10.0.0.9"),
    ] {
        let (code, out, err) = run_text("badudp.rhai", &format!("{PAIR}{call}\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says:?} in\n{err}");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udp.rhai");
    std::fs::write(&path, &lab).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("echo x | ip netns exec a nc -u -w1 10.0.0.2 7"), "{text}");
    assert!(text.contains("netlab-udp-echo-standin b 10.0.0.2:7"), "{text}");
    let export = netlab().arg("export").arg(&path).output().unwrap();
    let script = String::from_utf8_lossy(&export.stdout);
    assert!(script.contains("python3 \"$STANDIN/standin.py\" udp-echo 10.0.0.2:7 &"), "{script}");
    assert!(script.contains("no_answer 'a gets no echo from 10.0.0.2:9/udp' ip netns exec a python3 \"$STANDIN/standin.py\" udp-send 10.0.0.2:9"), "{script}");
}
