//! Routes with options and types, and policy rules: what the kernel holds is what
//! the model (`netlab plan`, `netlab check`) says it holds, and a mistake in their
//! arguments is the lab's (exit 2, at the line). What they do to traffic is proven
//! by labs/more/uplinks.rhai.

mod common;

use common::{netlab, run_text};

const TABLES: &str = r#"
let r = netns("r");
let isp1 = netns("isp1");
veth(r, "up1", isp1, "eth0");
addr(r, "up1", "192.0.2.2/24");
addr(r, "up1", "2001:db8::2/64");
up(r, "up1");
route(r, "default", "192.0.2.1", #{metric: 100});
route(r, "10.0.0.0/8", "192.0.2.1");
route(r, "default", "192.0.2.1", #{table: 100, metric: 5});
route(r, "192.168.0.0/16", #{type: "unreachable"});
route(r, "172.16.0.0/12", #{type: "blackhole", table: 100});
route(r, "2001:db8:1::/48", "2001:db8::1", #{metric: 10});
route(r, "10.9.0.0/16", "192.0.2.1", #{src: "192.0.2.2"});
route(r, "10.8.0.0/16", "198.51.100.1", #{dev: "up1", onlink: true});
rule(r, #{from: "10.1.0.0/24", table: 100});
rule(r, #{to: "10.2.0.0/16", iif: "up1", fwmark: 7, table: 100, priority: 50});
rule(r, #{from: "2001:db8::/64", table: 100});
route(r, "10.7.0.0/16", "192.0.2.1", #{table: 100});
del_route(r, "10.7.0.0/16", #{table: 100});
rule(r, #{from: "10.6.0.0/24", table: 100});
del_rule(r, #{from: "10.6.0.0/24", table: 100});
del_rule(r, #{priority: 32767, table: "default"});
for t in ["main", 100] { for x in routes(r, #{table: t}) { print(`ROUTE ${t} ${x}`); } }
for x in rules(r) { print(`RULE ${x}`); }
"#;

fn listed(out: &str) -> Vec<String> {
    out.lines().filter_map(|l| l.find("ROUTE ").or_else(|| l.find("RULE ")).map(|i| l[i..].to_string())).collect()
}

#[test]
fn the_model_holds_the_routes_and_rules_the_kernel_holds() {
    let (code, out, err) = run_text("tables.rhai", TABLES);
    assert_eq!(code, 0, "{out}\n{err}");
    let kernel = listed(&out);
    assert_eq!(kernel.iter().filter(|l| l.starts_with("RULE ")).count(), 7, "{out}");
    assert!(!kernel.iter().any(|l| l.contains("10.7.0.0/16") || l.contains("10.6.0.0/24")), "deleted: {out}");
    for expected in [
        "\"metric\": 100",
        "\"type\": \"unreachable\"",
        "\"type\": \"blackhole\"",
        "\"onlink\": true",
        "\"src\": \"192.0.2.2\"",
        "\"proto\": \"boot\"",
        "\"proto\": \"kernel\"",
        "\"priority\": 50",
        "\"fwmark\": 7",
        "\"iif\": \"up1\"",
        "\"priority\": 32765",
        "\"family\": \"inet6\"",
    ] {
        assert!(kernel.iter().any(|l| l.contains(expected)), "{expected} in\n{}", kernel.join("\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tables.rhai");
    std::fs::write(&path, TABLES).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let model = listed(&String::from_utf8_lossy(&plan.stdout));
    assert_eq!(model, kernel, "the model's listing differs from the kernel's");
}

#[test]
fn explain_shows_ip_route_and_ip_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tables.rhai");
    std::fs::write(&path, TABLES).unwrap();
    let out = netlab().arg("plan").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "ip -n r route add default via 192.0.2.1 metric 100",
        "ip -n r route add default via 192.0.2.1 metric 5 table 100",
        "ip -n r route add unreachable 192.168.0.0/16",
        "ip -n r route add blackhole 172.16.0.0/12 table 100",
        "ip -n r route add 10.9.0.0/16 via 192.0.2.1 src 192.0.2.2",
        "ip -n r route add 10.8.0.0/16 via 198.51.100.1 dev up1 onlink",
        "ip -n r rule add from 10.1.0.0/24 table 100",
        "ip -n r rule add to 10.2.0.0/16 iif up1 fwmark 0x7 priority 50 table 100",
        "ip -n r -6 rule add from 2001:db8::/64 table 100",
    ] {
        assert!(text.contains(cmd), "{cmd:?} in\n{text}");
    }
}

#[test]
fn bad_route_and_rule_arguments_are_the_labs_mistake() {
    let base = "let r = netns(\"r\");\nveth(r, \"x\", \"y\");\naddr(r, \"x\", \"10.0.0.1/24\"); up(r, \"x\");\n";
    for (call, says, code) in [
        ("route(r, \"default\", \"10.0.0.2\", #{table: 0});", "a routing table is 1 to 4294967295", 2),
        ("route(r, \"default\", \"10.0.0.2\", #{table: \"mine\"});", "unknown table \"mine\"", 2),
        ("route(r, \"default\", \"10.0.0.2\", #{metric: -1});", "metric is 0 to 4294967295", 2),
        ("route(r, \"default\", \"10.0.0.2\", #{onlink: true});", "onlink needs the link", 2),
        ("route(r, \"default\", \"x\", #{dev: \"x\"});", "dev and onlink go with a gateway", 2),
        ("route(r, \"10.9.0.0/16\", #{type: \"drop\"});", "route type \"drop\"", 2),
        ("route(r, \"10.9.0.0/16\", #{});", "a route goes somewhere", 2),
        ("route(r, \"10.9.0.0/16\", \"10.0.0.2\", #{src: \"10.5.5.5\"});", "src must be one of r's own addresses", 2),
        ("route(r, \"default\", \"10.0.0.2\", #{weight: 1});", "unknown option \"weight\"", 2),
        ("rule(r, #{from: \"10.1.0.0/24\"});", "a rule names the table it sends to", 2),
        ("rule(r, #{from: \"10.1.0.0/24\", to: \"2001:db8::/32\", table: 100});", "different IP versions", 2),
        ("rule(r, #{from: \"10.1.0.0/24\", table: 100});\nrule(r, #{from: \"10.1.0.0/24\", table: 100, priority: 32765});", "File exists", 2),
        ("del_rule(r, #{from: \"10.1.0.0/24\", table: 100});", "No such file or directory", 2),
        ("del_route(r, \"10.0.0.0/24\", #{table: 100});", "does not exist in r", 2),
        ("route(r, \"10.9.0.0/16\", [\"10.0.0.2\"]);", "two paths or more", 2),
        ("route(r, \"10.9.0.0/16\", [\"10.0.0.2\", #{via: \"10.0.0.3\", weight: 0}]);", "weight is 1 to 256", 2),
        ("route(r, \"10.9.0.0/16\", [\"10.0.0.2\", #{gw: \"10.0.0.3\"}]);", "unknown option \"gw\"", 2),
        ("route(r, \"10.9.0.0/16\", [\"10.0.0.2\", #{weight: 2}]);", "a path goes via a gateway or onto a link", 2),
        ("route(r, \"10.9.0.0/16\", [\"10.0.0.2\", \"2001:db8::1\"]);", "different IP versions", 2),
        ("route(r, \"10.9.0.0/16\", [\"10.0.0.2\", \"10.7.0.1\"]);", "is not on any subnet of r", 2),
    ] {
        let (got, out, err) = run_text("bad.rhai", &format!("{base}{call}\n"));
        assert_eq!(got, code, "{call}\n{out}\n{err}");
        assert!(err.contains(says), "{call}: {says:?} in\n{err}");
        assert!(err.contains("bad.rhai:4") || err.contains("bad.rhai:5"), "{call}: points at its line:\n{err}");
    }
}

/// Multipath routes through their life: added with weights, a path's link down
/// (dead), its carrier gone (linkdown), up again, and a path's link deleted (IPv4
/// loses the route, IPv6 keeps the other path). The model says what the kernel says
/// at every stage.
const ECMP: &str = r#"
let r = netns("r");
veth(r, "va", "pa");
veth(r, "vb", "pb");
for l in ["va", "vb", "pa", "pb"] { up(r, l); }
addr(r, "va", "10.1.0.2/24");
addr(r, "vb", "10.2.0.2/24");
addr(r, "va", "2001:db8:1::2/64");
addr(r, "vb", "2001:db8:2::2/64");
route(r, "192.0.2.0/24", ["10.1.0.1", #{via: "10.2.0.1", weight: 3}]);
route(r, "default", [#{via: "10.1.0.1", dev: "va"}, #{dev: "vb"}], #{metric: 10});
route(r, "2001:db8:9::/64", ["2001:db8:1::1", "2001:db8:2::1"]);
let show = |stage| { for x in routes(r) { if x.nexthops.len() > 0 { print(`ROUTE ${stage} ${x}`); } } };
show.call("added");
down(r, "va");
show.call("va-down");
up(r, "va");
show.call("va-up");
down(r, "pa");
show.call("pa-down");
up(r, "pa");
del_link(r, "vb");
show.call("vb-deleted");
for x in routes(r) { print(`ROUTE final ${x.dst} via=${x.via} dev=${x.dev}`); }
"#;

#[test]
fn multipath_routes_are_what_the_kernel_holds_through_their_life() {
    let (code, out, err) = run_text("ecmp.rhai", ECMP);
    assert_eq!(code, 0, "{out}\n{err}");
    let kernel = listed(&out);
    let at =
        |stage: &str| kernel.iter().filter(|l| l.starts_with(&format!("ROUTE {stage} "))).cloned().collect::<Vec<_>>();
    let added = at("added");
    assert_eq!(added.len(), 3, "{out}");
    assert!(added.iter().any(|l| l.contains("\"weight\": 3") && l.contains("\"via\": \"10.2.0.1\"")), "{out}");
    assert!(at("va-down").iter().any(|l| l.contains("\"dead\": true")), "a path on a down link is dead:\n{out}");
    assert!(at("va-up").iter().all(|l| !l.contains("\"dead\": true")), "up again, alive:\n{out}");
    assert!(at("pa-down").iter().any(|l| l.contains("\"linkdown\": true") && !l.contains("\"dead\": true")), "{out}");
    let gone = at("vb-deleted");
    assert!(gone.iter().all(|l| !l.contains("192.0.2.0/24")), "IPv4 loses the route with a path's link:\n{out}");
    assert!(
        kernel.iter().any(|l| l.starts_with("ROUTE final 2001:db8:9::/64 via=2001:db8:1::1 dev=va")),
        "IPv6 keeps the other path as a plain route:\n{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ecmp.rhai");
    std::fs::write(&path, ECMP).unwrap();
    let plan = netlab().arg("plan").arg(&path).output().unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        text.contains("ip -n r route add 192.0.2.0/24 nexthop via 10.1.0.1 weight 1 nexthop via 10.2.0.1 weight 3"),
        "{text}"
    );
    assert!(
        text.contains(
            "ip -n r route add default nexthop via 10.1.0.1 dev va weight 1 nexthop dev vb weight 1 metric 10"
        ),
        "{text}"
    );
    assert_eq!(listed(&text), kernel, "the model's listing differs from the kernel's");
}
