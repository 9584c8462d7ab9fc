//! The lab's topology as a picture: Mermaid (`flowchart LR`) and Graphviz dot.
//! One box per node (namespace) with its links and their addresses, lines for
//! veth pairs, arrows from bridge ports to their bridge, and a note per node for
//! NAT, port forwards and servers. Both come from one intermediate graph, sorted,
//! so the same lab always gives the same text.

use std::fmt::Write;

use crate::model::firewall::{FirewallChange, Masquerade, PortForward};
use crate::model::{LinkKind, NodeState, ServerSpec, Topology};

/// Mermaid flowchart source.
pub fn mermaid(t: &Topology) -> String {
    let g = Graph::of(t);
    let mut s = "flowchart LR\n".to_string();
    for c in &g.clusters {
        let _ = writeln!(s, "  subgraph c_{}[\"{}\"]", c.id, mermaid_text(&c.title));
        for b in &c.items {
            let (open, close) = if b.note { ("[/", "/]") } else { ("[", "]") };
            let _ = writeln!(s, "    {}{open}\"{}\"{close}", b.id, mermaid_text(&b.label));
        }
        s += "  end\n";
    }
    for e in &g.edges {
        let line = match (e.kind, &e.label) {
            (EdgeKind::Veth, _) => "---".to_string(),
            (EdgeKind::Port, _) => "-->".to_string(),
            (EdgeKind::Forward, Some(label)) => format!("-.->|\"{}\"|", mermaid_text(label)),
            (EdgeKind::Forward, None) => "-.->".to_string(),
        };
        let _ = writeln!(s, "  {} {line} {}", e.from, e.to);
    }
    s
}

/// Graphviz dot source (an undirected graph; port and forward edges point).
pub fn dot(t: &Topology) -> String {
    let g = Graph::of(t);
    let mut s = "graph lab {\n  rankdir=LR;\n  node [shape=box];\n".to_string();
    for c in &g.clusters {
        let _ = writeln!(s, "  subgraph cluster_{} {{\n    label=\"{}\";", c.id, dot_text(&c.title));
        for b in &c.items {
            let shape = if b.note { ", shape=note" } else { "" };
            let _ = writeln!(s, "    {} [label=\"{}\"{shape}];", b.id, dot_text(&b.label));
        }
        s += "  }\n";
    }
    for e in &g.edges {
        let attrs = match (e.kind, &e.label) {
            (EdgeKind::Veth, _) => String::new(),
            (EdgeKind::Port, _) => " [dir=forward, style=dashed]".to_string(),
            (EdgeKind::Forward, label) => {
                let label = label.as_deref().map(|l| format!(", label=\"{}\"", dot_text(l))).unwrap_or_default();
                format!(" [dir=forward, style=dotted{label}]")
            }
        };
        let _ = writeln!(s, "  {} -- {}{attrs};", e.from, e.to);
    }
    s + "}\n"
}

/// What both renderings show.
struct Graph {
    clusters: Vec<Cluster>,
    edges: Vec<Edge>,
}

struct Cluster {
    id: String,
    title: String,
    items: Vec<Item>,
}

struct Item {
    id: String,
    /// Lines separated by '\n'.
    label: String,
    /// The node's note (NAT, forwards, servers) rather than a link.
    note: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeKind {
    Veth,
    Port,
    Forward,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    kind: EdgeKind,
    from: String,
    to: String,
    label: Option<String>,
}

impl Graph {
    fn of(t: &Topology) -> Graph {
        let mut nodes: Vec<&NodeState> = t.nodes().collect();
        nodes.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        let mut clusters = Vec::new();
        let mut edges = Vec::new();
        for n in &nodes {
            let mut links: Vec<_> = n.links.iter().collect();
            links.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            // lo only for a node that has nothing else, so no box is empty.
            let only_lo = links.iter().all(|l| l.kind == LinkKind::Loopback);
            let mut boxes = Vec::new();
            for l in links.iter().filter(|l| only_lo || l.kind != LinkKind::Loopback) {
                let mut label = l.name.to_string();
                if !matches!(l.kind, LinkKind::Veth | LinkKind::Loopback) {
                    let _ = write!(label, " ({})", l.kind);
                }
                if !l.admin_up {
                    label += " DOWN";
                }
                for a in &l.addrs {
                    let _ = write!(label, "\n{a}");
                }
                boxes.push(Item { id: link_id(n.name.as_str(), l.name.as_str()), label, note: false });
                if let Some((peer_node, peer)) = t.peer_of(l) {
                    let (me, other) =
                        ((n.name.as_str(), l.name.as_str()), (peer_node.name.as_str(), peer.name.as_str()));
                    if me < other {
                        let (from, to) = (link_id(me.0, me.1), link_id(other.0, other.1));
                        edges.push(Edge { kind: EdgeKind::Veth, from, to, label: None });
                    }
                }
                if let Some(bridge) = l.master.and_then(|m| n.by_index(m)) {
                    let (from, to) =
                        (link_id(n.name.as_str(), l.name.as_str()), link_id(n.name.as_str(), bridge.name.as_str()));
                    edges.push(Edge { kind: EdgeKind::Port, from, to, label: None });
                }
            }
            let (note, forwards) = note_of(t, n);
            if !note.is_empty() {
                boxes.push(Item { id: note_id(n.name.as_str()), label: note.join("\n"), note: true });
            }
            edges.extend(forwards);
            let mut title = n.name.to_string();
            if let Some(h) = &n.hostname {
                let _ = write!(title, " ({h})");
            }
            clusters.push(Cluster { id: enc(n.name.as_str()), title, items: boxes });
        }
        edges.sort();
        Graph { clusters, edges }
    }
}

/// A node's note: forwarding, NAT, port forwards and servers; and an edge from
/// the note to the link that holds each port forward's target.
fn note_of(t: &Topology, n: &NodeState) -> (Vec<String>, Vec<Edge>) {
    let mut lines = Vec::new();
    let mut edges = Vec::new();
    if n.sysctl_set("net.ipv4.ip_forward").is_some_and(|v| v.trim() == "1") {
        lines.push("ip_forward=1".to_string());
    }
    for change in &n.firewall {
        match change {
            FirewallChange::Masquerade(m) => lines.push(masquerade_line(m)),
            FirewallChange::PortForward(pf) => {
                lines.push(forward_line(pf));
                if let Some(to) = holder_of(t, pf) {
                    let label = Some(format!("{}/{}", proto_name(pf), pf.port));
                    edges.push(Edge { kind: EdgeKind::Forward, from: note_id(n.name.as_str()), to, label });
                }
            }
            FirewallChange::ChainPolicy(..)
            | FirewallChange::ForwardAccept(_)
            | FirewallChange::Rule(_)
            | FirewallChange::File(_) => {}
        }
    }
    for s in &n.servers {
        let kind = match s {
            ServerSpec::Http { .. } => "http",
            ServerSpec::Dns { .. } => "dns",
            ServerSpec::UdpEcho { .. } => "udp echo",
        };
        let addr = s.addr();
        let at =
            if addr.ip().is_unspecified() && addr.is_ipv4() { format!(":{}", addr.port()) } else { addr.to_string() };
        lines.push(format!("{kind} {at}"));
    }
    (lines, edges)
}

fn masquerade_line(m: &Masquerade) -> String {
    let out = match (&m.out, &m.not_out) {
        (Some(o), _) => o.to_string(),
        (None, Some(n)) => format!("!{n}"),
        (None, None) => "any".to_string(),
    };
    format!("MASQUERADE {} -> {out}", m.source)
}

fn proto_name(pf: &PortForward) -> &'static str {
    match pf.proto {
        crate::model::firewall::Proto::Tcp => "tcp",
        crate::model::firewall::Proto::Udp => "udp",
    }
}

fn forward_line(pf: &PortForward) -> String {
    let on = pf.in_link.as_ref().map(|l| format!(" on {l}")).unwrap_or_default();
    format!("{}/{}{on} -> {}", proto_name(pf), pf.port, pf.to)
}

/// The link that has a port forward's target address, first by node name.
fn holder_of(t: &Topology, pf: &PortForward) -> Option<String> {
    let mut holders: Vec<String> = t
        .nodes()
        .flat_map(|n| {
            n.links
                .iter()
                .filter(|l| l.addrs.iter().any(|a| a.addr() == pf.to.ip()))
                .map(move |l| link_id(n.name.as_str(), l.name.as_str()))
        })
        .collect();
    holders.sort();
    holders.into_iter().next()
}

/// An id both languages accept unquoted, one-to-one with the text: letters and
/// digits stay, '_' becomes "__", any other byte "_xx" (hex), so "_l" and "_i"
/// below never occur inside an encoded name.
fn enc(text: &str) -> String {
    let mut s = String::new();
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => s.push(char::from(b)),
            b'_' => s += "__",
            _ => {
                let _ = write!(s, "_{b:02x}");
            }
        }
    }
    s
}

fn link_id(node: &str, link: &str) -> String {
    format!("n_{}_l_{}", enc(node), enc(link))
}

fn note_id(node: &str) -> String {
    format!("n_{}_i", enc(node))
}

/// Text inside a quoted Mermaid label: entity codes for what would end or break
/// it, `<br/>` between lines.
fn mermaid_text(text: &str) -> String {
    let escaped = text.replace('#', "#35;").replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;");
    escaped.replace('\n', "<br/>")
}

/// Text inside a quoted dot string, lines separated by dot's `\n`.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests;
