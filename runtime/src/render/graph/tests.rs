//! Unit tests of the topology pictures.

use std::collections::BTreeSet;

use super::*;
use crate::model::firewall::{Masquerade, PortForward, Proto};
use crate::model::{NextHop, Op};
use crate::names::{LinkName, NodeName};

fn nn(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}
fn ln(s: &str) -> LinkName {
    LinkName::new(s).unwrap()
}

/// docker's default network with one container publishing port 80 as 8080.
fn docker_ops(containers: &[(&str, u8)]) -> Vec<Op> {
    let host = nn("host");
    let mut ops = vec![
        Op::AddBridge { node: host.clone(), name: ln("docker0") },
        Op::AddAddr { node: host.clone(), link: ln("docker0"), cidr: "172.17.0.1/16".parse().unwrap() },
        Op::SetUp { node: host.clone(), link: ln("docker0"), up: true },
        Op::SetSysctl { node: host.clone(), key: "net.ipv4.ip_forward".into(), value: "1".into() },
        Op::Firewall {
            node: host.clone(),
            change: FirewallChange::Masquerade(Masquerade {
                source: "172.17.0.0/16".parse().unwrap(),
                out: None,
                not_out: Some(ln("docker0")),
            }),
        },
    ];
    for (c, last) in containers {
        let (node, veth) = (nn(c), ln(&format!("veth-{c}")));
        let ip = format!("172.17.0.{last}");
        ops.extend([
            Op::AddNode { node: node.clone() },
            Op::AddVeth { node: host.clone(), name: veth.clone(), peer_node: node.clone(), peer: ln("eth0") },
            Op::SetMaster { node: host.clone(), link: veth.clone(), master: Some(ln("docker0")) },
            Op::SetUp { node: host.clone(), link: veth.clone(), up: true },
            Op::AddAddr { node: node.clone(), link: ln("eth0"), cidr: format!("{ip}/16").parse().unwrap() },
            Op::SetUp { node: node.clone(), link: ln("eth0"), up: true },
            Op::AddRoute {
                node: node.clone(),
                dest: None,
                hop: NextHop::Gateway("172.17.0.1".parse().unwrap()),
                opts: Default::default(),
            },
        ]);
    }
    ops
}

fn web_ops() -> Vec<Op> {
    vec![
        Op::Firewall {
            node: nn("host"),
            change: FirewallChange::PortForward(PortForward {
                proto: Proto::Tcp,
                port: 8080,
                to: "172.17.0.2:80".parse().unwrap(),
                in_link: None,
                local: true,
            }),
        },
        Op::StartServer {
            node: nn("web"),
            server: ServerSpec::Http { addr: "0.0.0.0:80".parse().unwrap(), body: "hi".into(), status: 200 },
        },
        Op::SetHostname { node: nn("web"), name: "web-1".into() },
    ]
}

fn build(ops: &[Op]) -> Topology {
    let mut t = Topology::new();
    for op in ops {
        t.apply(op).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    t
}

fn docker() -> Topology {
    let mut ops = docker_ops(&[("web", 2), ("db", 3)]);
    ops.extend(web_ops());
    build(&ops)
}

#[test]
fn mermaid_shows_nodes_links_and_edges() {
    let m = mermaid(&docker());
    assert!(m.starts_with("flowchart LR\n"), "{m}");
    for line in [
        "  subgraph c_db[\"db\"]",
        "  subgraph c_host[\"host\"]",
        "  subgraph c_web[\"web (web-1)\"]",
        "    n_web_l_eth0[\"eth0<br/>172.17.0.2/16\"]",
        "    n_host_l_docker0[\"docker0 (bridge)<br/>172.17.0.1/16\"]",
        "    n_host_l_veth_2dweb[\"veth-web\"]",
        "  n_db_l_eth0 --- n_host_l_veth_2ddb",
        "  n_host_l_veth_2dweb --> n_host_l_docker0",
        "  n_host_i -.->|\"tcp/8080\"| n_web_l_eth0",
        "    n_web_i[/\"http :80\"/]",
    ] {
        assert!(m.lines().any(|l| l == line), "no {line:?} in\n{m}");
    }
    assert!(
        m.contains("ip_forward=1<br/>MASQUERADE 172.17.0.0/16 -#gt; !docker0<br/>tcp/8080 -#gt; 172.17.0.2:80"),
        "{m}"
    );
    assert!(!m.contains("n_host_l_lo"), "lo only where a node has nothing else");
}

#[test]
fn mermaid_is_well_formed() {
    let m = mermaid(&docker());
    let opened = m.lines().filter(|l| l.trim_start().starts_with("subgraph ")).count();
    let closed = m.lines().filter(|l| l.trim() == "end").count();
    assert_eq!((opened, closed), (3, 3));
    // Every edge joins declared boxes.
    let declared: BTreeSet<&str> =
        m.lines().filter(|l| l.starts_with("    ")).map(|l| l.trim().split(['[', '(']).next().unwrap()).collect();
    for edge in m.lines().filter(|l| l.starts_with("  n_")) {
        let words: Vec<&str> = edge.split_whitespace().collect();
        let (from, to) = (words[0], words[words.len() - 1]);
        assert!(declared.contains(from) && declared.contains(to), "{edge} in\n{m}");
    }
    // Quotes only where labels open and close.
    for l in m.lines().filter(|l| l.contains('"')) {
        assert_eq!(l.matches('"').count() % 2, 0, "{l}");
    }
}

#[test]
fn dot_shows_clusters_and_edges() {
    let d = dot(&docker());
    assert!(d.starts_with("graph lab {\n"), "{d}");
    assert!(d.ends_with("}\n"));
    for line in [
        "  subgraph cluster_host {",
        "    label=\"web (web-1)\";",
        "    n_web_l_eth0 [label=\"eth0\\n172.17.0.2/16\"];",
        "  n_db_l_eth0 -- n_host_l_veth_2ddb;",
        "  n_host_l_veth_2ddb -- n_host_l_docker0 [dir=forward, style=dashed];",
        "  n_host_i -- n_web_l_eth0 [dir=forward, style=dotted, label=\"tcp/8080\"];",
        "    n_web_i [label=\"http :80\", shape=note];",
    ] {
        assert!(d.lines().any(|l| l == line), "no {line:?} in\n{d}");
    }
    assert!(d.contains("MASQUERADE 172.17.0.0/16 -> !docker0"), "{d}");
}

#[test]
fn the_output_does_not_depend_on_the_order_ops_came_in() {
    let mut ops = web_ops();
    ops.splice(0..0, docker_ops(&[("db", 3), ("web", 2)]));
    let other = build(&ops);
    assert_eq!(dot(&other), dot(&docker()));
    assert_eq!(mermaid(&other), mermaid(&docker()));
}

#[test]
fn a_bare_lab_still_draws_its_nodes() {
    let t = build(&[Op::AddNode { node: nn("a") }]);
    let m = mermaid(&t);
    assert!(m.contains("    n_a_l_lo[\"lo DOWN\"]"), "{m}");
    assert!(m.contains("    n_host_l_lo[\"lo<br/>127.0.0.1/8<br/>::1/128\"]"), "{m}");
}

#[test]
fn ids_are_one_to_one_with_names() {
    let names = ["a_l", "a", "a-b", "a.b", "a_2d", "x_i", "A"];
    let ids: BTreeSet<String> = names.iter().map(|n| enc(n)).collect();
    assert_eq!(ids.len(), names.len());
    assert!(ids.iter().all(|id| id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')));
    assert_ne!(link_id("a_l", "b"), link_id("a", "l_b"));
    assert_eq!(mermaid_text("say \"hi\" <b>#1\nnext"), "say #quot;hi#quot; #lt;b#gt;#35;1<br/>next");
    assert_eq!(dot_text("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn graphviz_accepts_the_dot() {
    let Ok(mut child) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        println!("note: graphviz's dot is not installed; the dot output was not checked by it");
        return;
    };
    use std::io::Write;
    child.stdin.take().unwrap().write_all(dot(&docker()).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "dot -Tsvg: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}
