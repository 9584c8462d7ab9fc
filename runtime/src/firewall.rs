//! NAT and forwarding filter, rendered as nftables text and applied with one
//! `nft -f -` per change inside the node. netlab owns its tables (`ip netlab_nat`,
//! `inet netlab_filter`, `bridge netlab_bridge`) and rewrites them whole, so a
//! change is one atomic transaction and never touches anyone else's rules.
//!
//! The FORWARD policy of the tutorials (iptables) also filters *bridged* traffic
//! when br_netfilter is loaded. netlab does not load kernel modules on the machine;
//! it reproduces the same effect with a bridge-family chain that drops IPv4/IPv6
//! frames crossing a bridge (ARP still passes, as with br_netfilter).

use std::fmt::Write;
use std::net::SocketAddr;

use ipnet::IpNet;

use crate::names::LinkName;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `iptables -t nat -A POSTROUTING -s SRC [-o OUT | ! -o NOT_OUT] -j MASQUERADE`
#[derive(Debug, Clone, PartialEq)]
pub struct Masquerade {
    pub source: IpNet,
    pub out: Option<LinkName>,
    pub not_out: Option<LinkName>,
}

/// `iptables -t nat -A PREROUTING [-i IN] -p tcp --dport PORT -j DNAT --to-destination TO`;
/// with `local`, also for connections the node makes to its own addresses (OUTPUT).
#[derive(Debug, Clone, PartialEq)]
pub struct PortForward {
    pub proto: Proto,
    pub port: u16,
    pub to: SocketAddr,
    pub in_link: Option<LinkName>,
    pub local: bool,
}

/// `iptables -A FORWARD [-i IN] [-o OUT] [-s SRC] [-d DST] -j ACCEPT`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForwardAccept {
    pub in_link: Option<LinkName>,
    pub out_link: Option<LinkName>,
    pub source: Option<IpNet>,
    pub destination: Option<IpNet>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Firewall {
    pub masquerades: Vec<Masquerade>,
    pub port_forwards: Vec<PortForward>,
    pub forward_policy: Option<Policy>,
    pub forward_accepts: Vec<ForwardAccept>,
}

fn quoted(name: &LinkName) -> String {
    format!("\"{name}\"")
}

impl Firewall {
    /// The whole nft script: (re)creates netlab's tables with the current rules.
    pub fn render_nft(&self) -> String {
        let mut s = String::new();
        // "table X" creates it if missing, so the delete never fails; the rest of the
        // file then defines it anew. nft applies the file as one transaction.
        for t in ["ip netlab_nat", "inet netlab_filter", "bridge netlab_bridge"] {
            let _ = writeln!(s, "table {t}\ndelete table {t}");
        }
        if !self.masquerades.is_empty() || !self.port_forwards.is_empty() {
            s += "table ip netlab_nat {\n";
            s += "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n";
            for pf in &self.port_forwards {
                let iif = pf.in_link.as_ref().map(|l| format!("iifname {} ", quoted(l))).unwrap_or_default();
                let _ = writeln!(s, "    {iif}{} dport {} dnat to {}", pf.proto.name(), pf.port, pf.to);
            }
            s += "  }\n";
            s += "  chain output {\n    type nat hook output priority -100; policy accept;\n";
            for pf in self.port_forwards.iter().filter(|p| p.local) {
                let _ = writeln!(s, "    fib daddr type local {} dport {} dnat to {}", pf.proto.name(), pf.port, pf.to);
            }
            s += "  }\n";
            s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
            for m in &self.masquerades {
                let mut rule = format!("    ip saddr {}", m.source);
                if let Some(out) = &m.out {
                    let _ = write!(rule, " oifname {}", quoted(out));
                }
                if let Some(not_out) = &m.not_out {
                    let _ = write!(rule, " oifname != {}", quoted(not_out));
                }
                let _ = writeln!(s, "{rule} masquerade");
            }
            s += "  }\n}\n";
        }
        if let Some(policy) = self.forward_policy {
            let accepts: Vec<String> = self.forward_accepts.iter().map(|a| accept_match(a, false)).collect();
            let bridge_accepts: Vec<String> = self.forward_accepts.iter().map(|a| accept_match(a, true)).collect();
            let verdict = if policy == Policy::Drop { "drop" } else { "accept" };
            s += "table inet netlab_filter {\n  chain forward {\n";
            let _ = writeln!(s, "    type filter hook forward priority filter; policy {verdict};");
            for a in &accepts {
                let _ = writeln!(s, "    {a}accept");
            }
            s += "  }\n}\n";
            s += "table bridge netlab_bridge {\n  chain forward {\n";
            s += "    type filter hook forward priority filter; policy accept;\n";
            for a in &bridge_accepts {
                let _ = writeln!(s, "    {a}accept");
            }
            if policy == Policy::Drop {
                s += "    meta protocol { ip, ip6 } drop\n";
            }
            s += "  }\n}\n";
        }
        s
    }
}

/// The match part of an accept rule. For bridged frames "in"/"out" name the bridge
/// the frame crosses (as br_netfilter presents them to iptables).
fn accept_match(a: &ForwardAccept, bridge: bool) -> String {
    let mut m = String::new();
    if let Some(s) = a.source {
        let family = if s.addr().is_ipv4() { "ip" } else { "ip6" };
        let _ = write!(m, "{family} saddr {s} ");
    }
    if let Some(d) = a.destination {
        let family = if d.addr().is_ipv4() { "ip" } else { "ip6" };
        let _ = write!(m, "{family} daddr {d} ");
    }
    let (iif, oif) = if bridge { ("meta ibrname", "meta obrname") } else { ("iifname", "oifname") };
    if let Some(i) = &a.in_link {
        let _ = write!(m, "{iif} {} ", quoted(i));
    }
    if let Some(o) = &a.out_link {
        let _ = write!(m, "{oif} {} ", quoted(o));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: &str) -> Option<LinkName> {
        Some(LinkName::new(n).unwrap())
    }

    #[test]
    fn docker_masquerade() {
        let fw = Firewall {
            masquerades: vec![Masquerade {
                source: "172.17.0.0/16".parse().unwrap(),
                out: None,
                not_out: link("docker0"),
            }],
            ..Default::default()
        };
        let nft = fw.render_nft();
        assert!(nft.contains("ip saddr 172.17.0.0/16 oifname != \"docker0\" masquerade"), "{nft}");
        assert!(nft.contains("delete table ip netlab_nat"), "{nft}");
    }

    #[test]
    fn port_forward() {
        let fw = Firewall {
            port_forwards: vec![PortForward {
                proto: Proto::Tcp,
                port: 80,
                to: "192.168.15.2:80".parse().unwrap(),
                in_link: link("eth0"),
                local: true,
            }],
            ..Default::default()
        };
        let nft = fw.render_nft();
        assert!(nft.contains("iifname \"eth0\" tcp dport 80 dnat to 192.168.15.2:80"), "{nft}");
        assert!(nft.contains("fib daddr type local tcp dport 80 dnat to 192.168.15.2:80"), "{nft}");
    }

    #[test]
    fn forward_policy_covers_bridged_traffic() {
        let mut fw = Firewall { forward_policy: Some(Policy::Drop), ..Default::default() };
        fw.forward_accepts.push(ForwardAccept { in_link: link("br0"), out_link: link("br0"), ..Default::default() });
        let nft = fw.render_nft();
        assert!(nft.contains("policy drop;"), "{nft}");
        assert!(nft.contains("iifname \"br0\" oifname \"br0\" accept"), "{nft}");
        assert!(nft.contains("meta ibrname \"br0\" meta obrname \"br0\" accept"), "{nft}");
        assert!(nft.contains("meta protocol { ip, ip6 } drop"), "{nft}");
        fw.forward_policy = Some(Policy::Accept);
        assert!(!fw.render_nft().contains("meta protocol { ip, ip6 } drop"));
    }

    #[test]
    fn empty_firewall_only_removes_tables() {
        let nft = Firewall::default().render_nft();
        assert!(!nft.contains('{'), "{nft}");
    }
}
