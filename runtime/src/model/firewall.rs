//! NAT and the forwarding filter, written the way the tutorials write them: into
//! iptables' own tables (`iptables-restore --noflush`, the iptables-nft backend), one
//! transaction per change, appended like `iptables -A`. So the tutorial's own tools
//! in the lab — `iptables -t nat -S`, `iptables -L FORWARD`, in `exec_in` or in a
//! `--keep` shell — list what netlab did, next to whatever a program added, and a
//! rule netlab adds twice is there twice, as with `iptables -A`.
//!
//! The FORWARD policy of the tutorials also filters *bridged* traffic when
//! br_netfilter is loaded (`net.bridge.bridge-nf-call-iptables` = 1), and then the
//! iptables rules alone do it. Where it is not loaded — netlab does not load kernel
//! modules on the machine — it reproduces the same effect with a bridge-family
//! nftables chain it owns (`bridge netlab_bridge`, rewritten whole) that drops
//! IPv4/IPv6 frames crossing a bridge unless an accept rule names that bridge (ARP
//! still passes, as with br_netfilter).

use std::fmt::Write;
use std::net::SocketAddr;

use ipnet::IpNet;

use crate::names::LinkName;

/// A link named in a rule. The kernel takes '"' in a name, but iptables-restore and
/// nft read it as a quote (nft has no escape for it): such a rule could not be written.
pub fn rule_link(name: &str) -> crate::Result<LinkName> {
    let link = LinkName::new(name)?;
    if name.contains('"') {
        return Err(crate::Error::BadLinkName {
            name: name.to_string(),
            reason: "it contains '\"', which iptables and nft rules cannot hold".into(),
        });
    }
    Ok(link)
}

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

/// One change a lab makes to a node's firewall.
#[derive(Debug, Clone, PartialEq)]
pub enum FirewallChange {
    Masquerade(Masquerade),
    PortForward(PortForward),
    ForwardPolicy(Policy),
    ForwardAccept(ForwardAccept),
}

/// What netlab keeps of a node's forwarding filter: the bridge-family table is
/// rendered from it (the iptables rules live in the kernel only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeFilter {
    pub forward_policy: Option<Policy>,
    pub forward_accepts: Vec<ForwardAccept>,
}

/// The input of `iptables-restore --noflush` (IPv4) and `ip6tables-restore
/// --noflush` (IPv6) for one change; None where that family has nothing to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestoreInput {
    pub v4: Option<String>,
    pub v6: Option<String>,
}

impl FirewallChange {
    pub fn restore_input(&self) -> RestoreInput {
        let table = |name: &str, lines: &[String]| {
            let mut s = format!("*{name}\n");
            for l in lines {
                let _ = writeln!(s, "{l}");
            }
            s + "COMMIT\n"
        };
        match self {
            FirewallChange::Masquerade(m) => {
                let mut rule = "-A POSTROUTING".to_string();
                if m.source.prefix_len() > 0 {
                    let _ = write!(rule, " -s {}", m.source);
                }
                if let Some(out) = &m.out {
                    let _ = write!(rule, " -o {out}");
                }
                if let Some(not_out) = &m.not_out {
                    let _ = write!(rule, " ! -o {not_out}");
                }
                let rules = [rule + " -j MASQUERADE"];
                let text = table("nat", &rules);
                if m.source.addr().is_ipv4() {
                    RestoreInput { v4: Some(text), v6: None }
                } else {
                    RestoreInput { v4: None, v6: Some(text) }
                }
            }
            FirewallChange::PortForward(pf) => {
                let p = pf.proto.name();
                let to = match pf.to {
                    SocketAddr::V4(a) => a.to_string(),
                    SocketAddr::V6(a) => a.to_string(),
                };
                let iif = pf.in_link.as_ref().map(|l| format!(" -i {l}")).unwrap_or_default();
                let mut rules =
                    vec![format!("-A PREROUTING{iif} -p {p} -m {p} --dport {} -j DNAT --to-destination {to}", pf.port)];
                if pf.local {
                    rules.push(format!(
                        "-A OUTPUT -p {p} -m addrtype --dst-type LOCAL -m {p} --dport {} -j DNAT --to-destination {to}",
                        pf.port
                    ));
                }
                let text = table("nat", &rules);
                if pf.to.is_ipv4() {
                    RestoreInput { v4: Some(text), v6: None }
                } else {
                    RestoreInput { v4: None, v6: Some(text) }
                }
            }
            FirewallChange::ForwardPolicy(policy) => {
                let verdict = if *policy == Policy::Drop { "DROP" } else { "ACCEPT" };
                let text = table("filter", &[format!(":FORWARD {verdict} [0:0]")]);
                RestoreInput { v4: Some(text.clone()), v6: Some(text) }
            }
            FirewallChange::ForwardAccept(a) => {
                let mut rule = "-A FORWARD".to_string();
                if let Some(s) = &a.source {
                    let _ = write!(rule, " -s {s}");
                }
                if let Some(d) = &a.destination {
                    let _ = write!(rule, " -d {d}");
                }
                if let Some(i) = &a.in_link {
                    let _ = write!(rule, " -i {i}");
                }
                if let Some(o) = &a.out_link {
                    let _ = write!(rule, " -o {o}");
                }
                let text = table("filter", &[rule + " -j ACCEPT"]);
                let v6 = a.source.or(a.destination).map(|n| n.addr().is_ipv6());
                RestoreInput { v4: (v6 != Some(true)).then(|| text.clone()), v6: (v6 != Some(false)).then_some(text) }
            }
        }
    }

    /// The bridge filter after this change, if the change concerns it.
    pub fn apply_to(&self, filter: &BridgeFilter) -> Option<BridgeFilter> {
        let mut next = filter.clone();
        match self {
            FirewallChange::ForwardPolicy(p) => next.forward_policy = Some(*p),
            FirewallChange::ForwardAccept(a) => next.forward_accepts.push(a.clone()),
            _ => return None,
        }
        Some(next)
    }
}

fn quoted(name: &LinkName) -> String {
    format!("\"{name}\"")
}

impl BridgeFilter {
    /// The nft script that (re)creates netlab's bridge table with the current rules.
    pub fn render_nft(&self) -> String {
        // "table X" creates it if missing, so the delete never fails; the rest of the
        // file then defines it anew. nft applies the file as one transaction.
        let mut s = "table bridge netlab_bridge\ndelete table bridge netlab_bridge\n".to_string();
        let Some(policy) = self.forward_policy else { return s };
        s += "table bridge netlab_bridge {\n  chain forward {\n";
        s += "    type filter hook forward priority filter; policy accept;\n";
        for a in &self.forward_accepts {
            let _ = writeln!(s, "    {}accept", bridge_match(a));
        }
        if policy == Policy::Drop {
            s += "    meta protocol { ip, ip6 } drop\n";
        }
        s += "  }\n}\n";
        s
    }
}

/// The match part of an accept rule for bridged frames: "in"/"out" name the bridge
/// the frame crosses (as br_netfilter presents them to iptables).
fn bridge_match(a: &ForwardAccept) -> String {
    let mut m = String::new();
    if let Some(s) = a.source {
        let family = if s.addr().is_ipv4() { "ip" } else { "ip6" };
        let _ = write!(m, "{family} saddr {s} ");
    }
    if let Some(d) = a.destination {
        let family = if d.addr().is_ipv4() { "ip" } else { "ip6" };
        let _ = write!(m, "{family} daddr {d} ");
    }
    if let Some(i) = &a.in_link {
        let _ = write!(m, "meta ibrname {} ", quoted(i));
    }
    if let Some(o) = &a.out_link {
        let _ = write!(m, "meta obrname {} ", quoted(o));
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
    fn docker_masquerade_is_an_iptables_rule() {
        let change = FirewallChange::Masquerade(Masquerade {
            source: "172.17.0.0/16".parse().unwrap(),
            out: None,
            not_out: link("docker0"),
        });
        let input = change.restore_input();
        assert_eq!(input.v4.unwrap(), "*nat\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n");
        assert_eq!(input.v6, None);
        assert_eq!(change.apply_to(&BridgeFilter::default()), None);
    }

    #[test]
    fn masquerade_of_everything_has_no_source() {
        let change = FirewallChange::Masquerade(Masquerade {
            source: "0.0.0.0/0".parse().unwrap(),
            out: link("eth0"),
            not_out: None,
        });
        assert_eq!(change.restore_input().v4.unwrap(), "*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n");
    }

    #[test]
    fn port_forward_also_for_local_connections() {
        let change = FirewallChange::PortForward(PortForward {
            proto: Proto::Tcp,
            port: 80,
            to: "192.168.15.2:80".parse().unwrap(),
            in_link: link("eth0"),
            local: true,
        });
        let text = change.restore_input().v4.unwrap();
        assert!(
            text.contains("-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80")
        );
        assert!(text.contains(
            "-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 -j DNAT --to-destination 192.168.15.2:80"
        ));
    }

    #[test]
    fn forward_policy_covers_both_families_and_bridged_traffic() {
        let drop = FirewallChange::ForwardPolicy(Policy::Drop);
        let input = drop.restore_input();
        assert_eq!(input.v4.as_deref(), Some("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n"));
        assert_eq!(input.v4, input.v6);
        let filter = drop.apply_to(&BridgeFilter::default()).unwrap();
        let accept = FirewallChange::ForwardAccept(ForwardAccept {
            in_link: link("br0"),
            out_link: link("br0"),
            ..Default::default()
        });
        assert!(accept.restore_input().v4.unwrap().contains("-A FORWARD -i br0 -o br0 -j ACCEPT"));
        let filter = accept.apply_to(&filter).unwrap();
        let nft = filter.render_nft();
        assert!(nft.contains("meta ibrname \"br0\" meta obrname \"br0\" accept"), "{nft}");
        assert!(nft.contains("meta protocol { ip, ip6 } drop"), "{nft}");
        let open = FirewallChange::ForwardPolicy(Policy::Accept).apply_to(&filter).unwrap();
        assert!(!open.render_nft().contains("meta protocol { ip, ip6 } drop"));
    }

    #[test]
    fn an_accept_for_one_family_goes_to_that_family_only() {
        let v6 = FirewallChange::ForwardAccept(ForwardAccept {
            source: Some("fd00::/64".parse().unwrap()),
            ..Default::default()
        });
        let input = v6.restore_input();
        assert_eq!(input.v4, None);
        assert!(input.v6.unwrap().contains("-A FORWARD -s fd00::/64 -j ACCEPT"));
    }

    #[test]
    fn no_policy_only_removes_the_bridge_table() {
        let nft = BridgeFilter::default().render_nft();
        assert!(!nft.contains('{'), "{nft}");
    }
}
