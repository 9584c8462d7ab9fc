//! The neighbour table and the bridge's forwarding database, from the kernel: a
//! bridge learns the MAC addresses behind its ports (unless learning is off), a
//! neighbour entry by hand decides where frames go (a wrong one loses them),
//! flushing keeps permanent entries, a link taken down loses them all, and isolated
//! ports cannot reach each other.

mod common;

use common::{netlab, run_text};

const BRIDGED: &str = r#"
let h = host();
let a = netns("a");
let b = netns("b");
let c = netns("c");
bridge(h, "br0");
up(h, "br0");
for n in [a, b, c] {
    veth(h, `v${n.name}`, n, "eth0");
    master(h, `v${n.name}`, "br0");
    up(h, `v${n.name}`);
    up(n, "eth0");
}
addr(a, "eth0", "10.0.0.1/24");
addr(b, "eth0", "10.0.0.2/24");
addr(c, "eth0", "10.0.0.3/24");
"#;

/// Each test its own file name: the tests of this file share one folder.
fn run(name: &str, body: &str) -> (i32, String, String) {
    run_text(name, &format!("{BRIDGED}{body}"))
}

#[test]
fn the_bridge_learns_macs_unless_learning_is_off() {
    let learn = r#"
expect_ping(a, "10.0.0.2");
let learned = fdb(h, "br0").filter(|e| e.state == "learned").map(|e| `${e.mac} ${e.dev}`);
expect(learned.contains(`${mac(a, "eth0")} va`), "br0 learned a's MAC on va");
expect_eq(link(h, "va").learning, true, "va learns");
"#;
    let (code, out, err) = run("learn.rhai", learn);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = run("nolearn.rhai", &format!("bridge_port(h, \"va\", #{{learning: false}});\n{learn}"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("br0 learned a's MAC on va"), "{err}");
}

#[test]
fn a_neighbour_entry_by_hand_decides_where_frames_go() {
    let (code, out, err) = run(
        "byhand.rhai",
        r#"
neigh(a, "10.0.0.2", "02:00:00:00:00:99", #{dev: "eth0"});       // nobody has that MAC
expect_eq(neighbors(a).map(|n| `${n.ip} ${n.mac} ${n.state}`), ["10.0.0.2 02:00:00:00:00:99 PERMANENT"], "ip neigh: the entry");
expect_no_ping(a, "10.0.0.2", #{error: "silence"});
del_neigh(a, "10.0.0.2", #{dev: "eth0"});
expect_ping(a, "10.0.0.2");
neigh(a, "10.0.0.3", mac(c, "eth0"), #{dev: "eth0"});           // the right one: no ARP needed
expect_ping(a, "10.0.0.3");
expect_eq(neighbors(c).filter(|n| n.ip == "10.0.0.1").len(), 1, "c learned a from the ping itself");
flush_neigh(a);
expect_eq(neighbors(a).map(|n| `${n.ip} ${n.state}`), ["10.0.0.3 PERMANENT"], "flush keeps the permanent entry only");
down(a, "eth0");
expect_eq(neighbors(a), [], "a link taken down loses its entries, permanent too");
"#,
    );
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn isolated_ports_cannot_reach_each_other() {
    let body = r#"
bridge_port(h, "vb", #{isolated: true});
bridge_port(h, "vc", #{isolated: true});
expect_ping(a, "10.0.0.2");
expect_ping(a, "10.0.0.3");
expect_no_ping(b, "10.0.0.3", #{window: 1});
expect_eq([link(h, "vb").isolated, link(h, "va").isolated], [true, false], "bridge -d link: vb isolated, va not");
"#;
    let (code, out, err) = run("isolated.rhai", body);
    assert_eq!(code, 0, "{out}\n{err}");
    // Without the isolation, b reaches c: the negative check fails.
    let (code, out, err) = run("connected.rhai", &body.replacen("bridge_port(h, \"vc\", #{isolated: true});\n", "", 1));
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("b cannot ping 10.0.0.3"), "{err}");
}

#[test]
fn mistakes_and_the_plan() {
    for (call, says) in [
        ("neigh(a, \"10.0.0.5\", \"02:00:00:00:00:05\", #{});", "a neighbour entry belongs to a link"),
        ("neigh(a, \"10.0.0.5\", \"zz\", #{dev: \"eth0\"});", "is not a MAC address"),
        ("neigh(a, \"10.0.0.5\", \"02:00:00:00:00:05\", #{dev: \"eth0\", state: \"noarp\"});", "state \"noarp\""),
        ("del_neigh(a, \"10.0.0.5\", #{dev: \"eth0\"});", "No such file or directory"),
        ("bridge_port(h, \"br0\", #{});", "needs at least one of"),
        ("bridge_port(a, \"eth0\", #{learning: false});", "is not a port of a bridge"),
    ] {
        let (code, out, err) = run("mistake.rhai", &format!("{call}\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says} in\n{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.rhai");
    let body = "neigh(a, \"10.0.0.9\", \"02:00:00:00:00:09\", #{dev: \"eth0\"});\nbridge_port(h, \"va\", #{learning: false, flood: false});\nprint(`N ${neighbors(a).len()} ${link(h, \"va\").learning}`);\n";
    std::fs::write(&path, format!("{BRIDGED}{body}")).unwrap();
    let out = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for expected in [
        "ip -n a neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud permanent",
        "bridge link set dev va learning off flood off",
        "N 1 false",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
}
