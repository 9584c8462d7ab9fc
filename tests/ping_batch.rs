//! ping_count() from many nodes at once (on several threads where the machine has
//! several CPUs), to one address or to a list of them: each node pings the addresses
//! of the list one after the other, and the count of each address is its own.

mod common;

use common::run_text;

/// 20 containers on a bridge (more than one thread's pings in flight), the host
/// 10.0.0.1; c11..c19 have their link down, c20 is 10.0.0.99.
const BRIDGE: &str = r#"
let host = host();
bridge(host, "br0");
addr(host, "br0", "10.0.0.1/24");
up(host, "br0");
let cs = [];
for i in 1..=20 {
    let c = netns(`c${i}`);
    veth(host, `v${i}`, c, "eth0");
    master(host, `v${i}`, "br0");
    up(host, `v${i}`);
    let ip = if i == 20 { "10.0.0.99" } else { `10.0.0.${100 + i}` };
    addr(c, "eth0", `${ip}/24`);
    if i <= 10 || i == 20 { up(c, "eth0"); }
    up(c, "lo");
    cs.push(c);
}
"#;

#[test]
fn counts_per_address_in_the_order_given() {
    let lab = format!(
        "{BRIDGE}\
         let both = ping_count(cs, [\"10.0.0.1\", \"10.0.0.250\"], #{{timeout: 0.3}});\n\
         print(`both: ${{both}}`);\n\
         let reversed = ping_count(cs, [\"10.0.0.250\", \"10.0.0.1\"], #{{timeout: 0.3}});\n\
         print(`reversed: ${{reversed}}`);\n\
         let peer = ping_count(cs, [\"10.0.0.99\"]);\n\
         print(`peer: ${{peer}}`);\n\
         print(`one: ${{ping_count(cs, \"10.0.0.1\")}}`);\n\
         print(`first: ${{ping_count([cs[0]], [\"10.0.0.1\", \"10.0.0.99\"])}}`);\n\
         print(`down: ${{ping_count([cs[12]], [\"10.0.0.1\", \"10.0.0.99\"], #{{timeout: 0.2}})}}`);\n"
    );
    let (code, out, err) = run_text("batch.rhai", &lab);
    assert_eq!(code, 0, "{out}\n{err}");
    // c1..c10 and c20 reach the host; nobody has 10.0.0.250.
    assert!(out.contains("both: [11, 0]"), "{out}");
    assert!(out.contains("reversed: [0, 11]"), "{out}");
    // c1..c10 reach c20, and c20 itself answers its own address.
    assert!(out.contains("peer: [11]"), "{out}");
    assert!(out.contains("one: 11"), "{out}");
    assert!(out.contains("first: [1, 1]"), "{out}");
    assert!(out.contains("down: [0, 0]"), "{out}");
}

#[test]
fn a_bad_list_is_the_labs_mistake() {
    for (call, wanted) in [
        ("ping_count(cs, [])", "the list of addresses is empty"),
        ("ping_count(cs, [\"10.0.0.1\", 7])", "an address (string)"),
        ("ping_count(cs, [\"10.0.0.1\", \"ten\"])", "ten"),
        ("ping_count(cs, [\"10.0.0.1\"], #{count: 1})", "count"),
    ] {
        let (code, out, err) = run_text("bad.rhai", &format!("{BRIDGE}{call};\n"));
        assert_eq!(code, 2, "{call}\n{out}\n{err}");
        assert!(err.contains(wanted), "{call}\n{err}");
        let line = format!("bad.rhai:{}", BRIDGE.lines().count() + 1);
        assert!(err.contains(&line), "{call}: not at {line}\n{err}");
    }
}
