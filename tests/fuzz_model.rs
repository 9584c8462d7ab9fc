//! Random labs against netlab's model (`netlab check` and `netlab plan`: no root, no
//! kernel). Three properties:
//! - a lab built only of valid calls, in an order that makes sense, passes `check`
//!   and `plan`;
//! - the same lab with one mistake appended stops at that mistake: exit 2, the
//!   diagnostic at its line, with the code the mistake is known by;
//! - any sequence of calls with arguments of any type and value ends with exit 0,
//!   1 or 2 (3 only for what the model cannot know, netlab::not_in_plan) and, when
//!   it fails, a diagnostic inside the file: never a panic.
//!
//! Each property runs PROPTEST_CASES labs (48 when unset); `PROPTEST_CASES=5000
//! cargo test --release --test fuzz_model` is the long run (book: Robustness).

mod common;

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// What `netlab CMD` said about a lab: exit code, stdout, stderr.
struct Verdict {
    code: i32,
    out: String,
    err: String,
}

fn netlab_on(cmd: &str, dir: &Path, text: &str) -> Verdict {
    let path = dir.join("lab.rhai");
    std::fs::write(&path, text).expect("write lab");
    let (code, out, err) = common::decode(common::netlab().arg(cmd).arg(&path).output().expect("netlab runs"));
    Verdict { code, out, err }
}

impl Verdict {
    /// The lines the diagnostics point at (`[lab.rhai:LINE:COL]`).
    fn lines(&self) -> Vec<usize> {
        self.err.split("lab.rhai:").skip(1).filter_map(|rest| rest.split(':').next()?.parse().ok()).collect()
    }

    fn sane(&self, text: &str) -> Result<(), TestCaseError> {
        let all = format!("exit {}\n--- lab:\n{text}\n--- stdout:\n{}\n--- stderr:\n{}", self.code, self.out, self.err);
        // 3 only where the model cannot know what the machine would say (a node's
        // /etc/hosts before the lab wrote one is the machine's): netlab::not_in_plan.
        let not_in_plan = self.code == 3 && self.err.contains("netlab::not_in_plan");
        prop_assert!(matches!(self.code, 0..=2) || not_in_plan, "{all}");
        prop_assert!(!self.err.contains("panicked") && !self.out.contains("panicked"), "{all}");
        let n = text.lines().count();
        if self.code != 0 {
            prop_assert!(!self.lines().is_empty(), "no line in the diagnostic\n{all}");
        }
        for line in self.lines() {
            prop_assert!((1..=n).contains(&line), "line {line} is outside the lab\n{all}");
        }
        Ok(())
    }
}

/// One statement of a valid lab, given what exists so far.
#[derive(Debug, Clone)]
enum Call {
    Node,
    Veth { a: usize, b: usize },
    Bridge { a: usize },
    Up { link: usize },
    Master { link: usize, bridge: usize },
    Addr { link: usize, v6: bool },
    Route { link: usize },
    Sysctl { a: usize, on: bool },
    Masquerade { a: usize },
    ForwardPolicy { a: usize, drop: bool },
    Hosts { a: usize },
    Check,
    Step(Vec<Call>),
}

fn call() -> impl Strategy<Value = Call> {
    let leaf = prop_oneof![
        2 => Just(Call::Node),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Call::Veth { a, b }),
        1 => any::<usize>().prop_map(|a| Call::Bridge { a }),
        3 => any::<usize>().prop_map(|link| Call::Up { link }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(link, bridge)| Call::Master { link, bridge }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(link, v6)| Call::Addr { link, v6 }),
        1 => any::<usize>().prop_map(|link| Call::Route { link }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(a, on)| Call::Sysctl { a, on }),
        1 => any::<usize>().prop_map(|a| Call::Masquerade { a }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(a, drop)| Call::ForwardPolicy { a, drop }),
        1 => any::<usize>().prop_map(|a| Call::Hosts { a }),
        1 => Just(Call::Check),
    ];
    leaf.prop_recursive(1, 12, 6, |inner| prop::collection::vec(inner, 1..6).prop_map(Call::Step))
}

/// Writes the calls as a lab, each at a state where it is valid; calls that would
/// not be (no node yet, no link) become a new node.
#[derive(Default)]
struct Lab {
    text: String,
    nodes: usize,
    /// (node, name, up, is_bridge)
    links: Vec<(usize, String, bool, bool)>,
    addrs: usize,
    steps: usize,
}

impl Lab {
    fn line(&mut self, indent: &str, s: &str) {
        self.text += indent;
        self.text += s;
        self.text += "\n";
    }

    fn write(&mut self, call: &Call, indent: &str) {
        let pick = |i: usize, n: usize| i % n.max(1);
        let node_var = |i: usize| format!("n{i}");
        let have_links = self.links.iter().any(|l| !l.3);
        match call {
            Call::Node => {}
            _ if self.nodes == 0 => {}
            Call::Veth { a, b } => {
                let (a, b) = (pick(*a, self.nodes), pick(*b, self.nodes));
                let (x, y) = (format!("v{}", self.links.len()), format!("v{}", self.links.len() + 1));
                self.line(indent, &format!("veth({}, \"{x}\", {}, \"{y}\");", node_var(a), node_var(b)));
                self.links.push((a, x, false, false));
                self.links.push((b, y, false, false));
                return;
            }
            Call::Bridge { a } => {
                let a = pick(*a, self.nodes);
                let name = format!("br{}", self.links.len());
                self.line(indent, &format!("bridge({}, \"{name}\");", node_var(a)));
                self.links.push((a, name, false, true));
                return;
            }
            Call::Up { link } if !self.links.is_empty() => {
                let i = pick(*link, self.links.len());
                let (node, name, ..) = self.links[i].clone();
                self.line(indent, &format!("up({}, \"{name}\");", node_var(node)));
                self.links[i].2 = true;
                return;
            }
            Call::Master { link, bridge } if have_links => {
                let ports: Vec<usize> = (0..self.links.len()).filter(|&i| !self.links[i].3).collect();
                let l = ports[pick(*link, ports.len())];
                let bridges: Vec<usize> =
                    (0..self.links.len()).filter(|&i| self.links[i].3 && self.links[i].0 == self.links[l].0).collect();
                if !bridges.is_empty() {
                    let b = bridges[pick(*bridge, bridges.len())];
                    let (node, name, ..) = self.links[l].clone();
                    self.line(indent, &format!("master({}, \"{name}\", \"{}\");", node_var(node), self.links[b].1));
                    return;
                }
            }
            Call::Addr { link, v6 } if !self.links.is_empty() => {
                let (node, name, ..) = self.links[pick(*link, self.links.len())].clone();
                self.addrs += 1;
                let (hi, lo) = (self.addrs / 250, self.addrs % 250 + 1);
                let cidr = if *v6 { format!("fd00:{hi:x}::{lo:x}/64") } else { format!("10.{hi}.{lo}.1/24") };
                self.line(indent, &format!("addr({}, \"{name}\", \"{cidr}\");", node_var(node)));
                return;
            }
            Call::Route { link } => {
                let ups: Vec<usize> = (0..self.links.len()).filter(|&i| self.links[i].2).collect();
                if !ups.is_empty() {
                    let (node, name, ..) = self.links[ups[pick(*link, ups.len())]].clone();
                    self.addrs += 1;
                    let (hi, lo) = (self.addrs / 250, self.addrs % 250);
                    self.line(
                        indent,
                        &format!("route({}, \"172.{}.{lo}.0/24\", \"{name}\");", node_var(node), 16 + hi),
                    );
                    return;
                }
            }
            Call::Sysctl { a, on } => {
                let a = pick(*a, self.nodes);
                self.line(indent, &format!("sysctl({}, \"net.ipv4.ip_forward\", {});", node_var(a), u8::from(*on)));
                return;
            }
            Call::Masquerade { a } => {
                let a = pick(*a, self.nodes);
                self.line(indent, &format!("masquerade({}, \"10.{a}.0.0/16\");", node_var(a)));
                return;
            }
            Call::ForwardPolicy { a, drop } => {
                let a = pick(*a, self.nodes);
                let p = if *drop { "drop" } else { "accept" };
                self.line(indent, &format!("forward_policy({}, \"{p}\");", node_var(a)));
                return;
            }
            Call::Hosts { a } => {
                let a = pick(*a, self.nodes);
                self.line(indent, &format!("hosts_file({}, \"203.0.113.{a} web{a}\");", node_var(a)));
                return;
            }
            Call::Check => {
                self.line(indent, "expect_eq(1 + 1, 2, \"arithmetic\");");
                return;
            }
            Call::Step(calls) if indent.is_empty() => {
                self.steps += 1;
                self.line(indent, &format!("step(\"step {}\", || {{", self.steps));
                for c in calls {
                    self.write(c, "    ");
                }
                self.line(indent, "});");
                return;
            }
            Call::Step(calls) => {
                for c in calls {
                    self.write(c, indent);
                }
                return;
            }
            _ => {}
        }
        // Nodes are made at the top level only: a `let` in a step's closure is local to it.
        if indent.is_empty() {
            let n = self.nodes;
            self.nodes += 1;
            self.line(indent, &format!("let {} = netns(\"node{n}\");", node_var(n)));
        }
    }
}

fn valid_lab(calls: &[Call]) -> Lab {
    let mut lab = Lab::default();
    // Nodes first, at the top level, so steps can use them.
    let nodes = 1 + calls.len() % 4;
    for _ in 0..nodes {
        lab.write(&Call::Node, "");
    }
    for c in calls {
        lab.write(c, "");
    }
    lab
}

/// A mistake that is one whatever the lab before it did, with the code it is known by.
fn mistake() -> impl Strategy<Value = (String, &'static str)> {
    prop_oneof![
        (0u32..1000).prop_map(|i| (format!("addr(n0, \"lo\", \"10.0.0.{}/24\");", 256 + i), "netlab::bad_address")),
        "[a-z]{16,20}".prop_map(|n| (format!("bridge(n0, \"{n}\");"), "netlab::bad_name")),
        Just(("bridge(n0, \"a/b\");".to_string(), "netlab::bad_name")),
        "[a-z]{3,8}".prop_map(|n| (format!("up(node(\"zz{n}\"), \"lo\");"), "netlab::no_such_node")),
        "[a-z]{3,8}".prop_map(|n| (format!("up(n0, \"zz{n}\");"), "netlab::no_such_link")),
        (1u8..=32).prop_map(|p| (format!("addr(n0, \"lo\", \"10.0.0.1/{}\");", p + 32), "netlab::bad_address")),
        Just(("route(n0, \"10.1.2.3/16\", \"lo\");".to_string(), "netlab::bad_address")),
        Just(("netns(\"node0\");".to_string(), "netlab::node_exists")),
        Just(("sysctl(n0, \"kernel.hostname\", \"x\");".to_string(), "netlab::bad_sysctl")),
        Just(("addr(n0, 5, \"10.0.0.1/24\");".to_string(), "netlab::arg_type")),
        (-1000i64..0)
            .prop_map(|t| (format!("expect_ping(n0, \"10.0.0.1\", #{{timeout: {t}}});"), "netlab::bad_option")),
        Just(("exec_in(n0, \"echo 'open\");".to_string(), "netlab::bad_command")),
        Just(("throw \"stop\";".to_string(), "netlab::thrown")),
        Just(("let x = ;".to_string(), "netlab::parse")),
    ]
}

/// Any call of a lab function, with arguments of any type.
fn chaos_call() -> impl Strategy<Value = String> {
    const FUNCTIONS: &[&str] = &[
        "netns",
        "node",
        "del_netns",
        "veth",
        "bridge",
        "set_bridge",
        "bridge_vlan",
        "del_bridge_vlan",
        "bridge_vlans",
        "bond",
        "wireguard",
        "set_wireguard",
        "wg_show",
        "wg_key",
        "wg_pubkey",
        "wg_genkey",
        "master",
        "nomaster",
        "move_link",
        "del_link",
        "up",
        "down",
        "addr",
        "del_addr",
        "route",
        "del_route",
        "sysctl",
        "links",
        "link",
        "mac",
        "addrs",
        "routes",
        "neighbors",
        "masquerade",
        "port_forward",
        "forward_policy",
        "forward_accept",
        "resolv_conf",
        "hosts_file",
        "hostname",
        "http_server",
        "dns_server",
        "listening",
        "expect_ping",
        "expect_no_ping",
        "expect_http",
        "expect_no_http",
        "expect_resolve",
        "expect_no_resolve",
        "resolve",
        "curl",
        "ping_count",
        "expect_ping_all",
        "exec_in",
        "expect",
        "expect_eq",
        "requires",
        "has",
        "skip",
        "metric",
        "step",
    ];
    let scalar = prop_oneof![
        Just("n0".to_string()),
        Just("host()".to_string()),
        Just("()".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("0.0/0.0".to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~&&[^\"\\\\]]{0,20}".prop_map(|s| format!("\"{s}\"")),
        prop_oneof![
            Just("lo"),
            Just("v0"),
            Just("10.0.0.1/24"),
            Just("10.0.0.1"),
            Just("fd00::1/64"),
            Just("default"),
            Just("0.0.0.0:80"),
            Just("http://10.0.0.1/"),
            Just("net.ipv4.ip_forward"),
            Just("drop"),
            Just("tcp"),
            Just("example.com"),
            Just("vlan"),
            Just("echo hi")
        ]
        .prop_map(|s| format!("\"{s}\"")),
        Just("|| {}".to_string()),
    ];
    let value = scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("timeout"),
                        Just("tries"),
                        Just("window"),
                        Just("iif"),
                        Just("oif"),
                        Just("status"),
                        Just("error"),
                        Just("proto"),
                        Just("local"),
                        Just("src"),
                        Just("ports"),
                        Just("peers"),
                        Just("pvid"),
                        Just("vlan_filtering"),
                        Just("zzz")
                    ],
                    inner
                ),
                0..3
            )
            .prop_map(|kv| format!(
                "#{{{}}}",
                kv.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
            )),
        ]
    });
    (prop::sample::select(FUNCTIONS), prop::collection::vec(value, 0..5))
        .prop_map(|(f, args)| format!("{f}({});", args.join(", ")))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_labs_pass_check_and_plan(calls in prop::collection::vec(call(), 0..24)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let lab = valid_lab(&calls);
        for cmd in ["check", "plan"] {
            let v = netlab_on(cmd, dir.path(), &lab.text);
            v.sane(&lab.text)?;
            prop_assert_eq!(v.code, 0, "netlab {} of\n{}\n{}", cmd, lab.text, v.err);
        }
    }

    #[test]
    fn the_first_mistake_is_reported_at_its_line(calls in prop::collection::vec(call(), 0..16), (bad, code) in mistake(), in_step in any::<bool>()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut lab = valid_lab(&calls);
        if in_step {
            lab.text += "step(\"last\", || {\n    ";
        }
        lab.text += &bad;
        lab.text += "\n";
        let line = lab.text.lines().count();
        if in_step {
            lab.text += "});\n";
        }
        lab.text += "expect(false, \"never reached\");\n";
        let v = netlab_on("check", dir.path(), &lab.text);
        v.sane(&lab.text)?;
        prop_assert_eq!(v.code, 2, "{}\n{}", lab.text, v.err);
        prop_assert!(v.err.contains(code), "{code} not in\n{}", v.err);
        prop_assert_eq!(v.lines().first().copied(), Some(line), "{}\n{}", lab.text, v.err);
    }

    #[test]
    fn any_calls_end_in_a_verdict(calls in prop::collection::vec(chaos_call(), 1..8)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!("let n0 = netns(\"n0\");\n{}\n", calls.join("\n"));
        for cmd in ["check", "plan"] {
            netlab_on(cmd, dir.path(), &text).sane(&text)?;
        }
    }
}
