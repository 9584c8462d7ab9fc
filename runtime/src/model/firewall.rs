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

/// A built-in chain of iptables' filter table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterChain {
    Input,
    Forward,
    Output,
}

impl FilterChain {
    pub fn parse(name: &str) -> Option<FilterChain> {
        match name.to_ascii_lowercase().as_str() {
            "input" => Some(FilterChain::Input),
            "forward" => Some(FilterChain::Forward),
            "output" => Some(FilterChain::Output),
            _ => None,
        }
    }

    /// The chain as iptables names it.
    pub fn iptables_name(self) -> &'static str {
        match self {
            FilterChain::Input => "INPUT",
            FilterChain::Forward => "FORWARD",
            FilterChain::Output => "OUTPUT",
        }
    }
}

/// The protocols a filter rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleProto {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

impl RuleProto {
    pub fn parse(name: &str) -> Option<RuleProto> {
        match name {
            "tcp" => Some(RuleProto::Tcp),
            "udp" => Some(RuleProto::Udp),
            "icmp" => Some(RuleProto::Icmp),
            "icmpv6" | "ipv6-icmp" => Some(RuleProto::Icmpv6),
            _ => None,
        }
    }

    /// As `-p` takes it (and `iptables -S` prints it).
    fn name(self) -> &'static str {
        match self {
            RuleProto::Tcp => "tcp",
            RuleProto::Udp => "udp",
            RuleProto::Icmp => "icmp",
            RuleProto::Icmpv6 => "ipv6-icmp",
        }
    }

    /// The one family the protocol exists in, if only one.
    fn only_family(self) -> Option<Family> {
        match self {
            RuleProto::Icmp => Some(Family::V4),
            RuleProto::Icmpv6 => Some(Family::V6),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

fn family_of(net: &IpNet) -> Family {
    if net.addr().is_ipv4() {
        Family::V4
    } else {
        Family::V6
    }
}

/// A port or an inclusive range of ports (`80`, `1000:2000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// A connection-tracking state (`-m conntrack --ctstate`), in the order iptables
/// prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CtState {
    Invalid,
    New,
    Related,
    Established,
    Untracked,
}

impl CtState {
    pub const NAMES: [&'static str; 5] = ["invalid", "new", "related", "established", "untracked"];

    pub fn parse(name: &str) -> Option<CtState> {
        match name.to_ascii_lowercase().as_str() {
            "invalid" => Some(CtState::Invalid),
            "new" => Some(CtState::New),
            "related" => Some(CtState::Related),
            "established" => Some(CtState::Established),
            "untracked" => Some(CtState::Untracked),
            _ => None,
        }
    }

    fn iptables_name(self) -> &'static str {
        match self {
            CtState::Invalid => "INVALID",
            CtState::New => "NEW",
            CtState::Related => "RELATED",
            CtState::Established => "ESTABLISHED",
            CtState::Untracked => "UNTRACKED",
        }
    }
}

/// What `-j REJECT` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectWith {
    /// iptables' default: TCP connect() fails with "Connection refused".
    PortUnreachable,
    HostUnreachable,
    /// "administratively prohibited": ping says "Packet filtered".
    AdminProhibited,
    TcpReset,
}

impl RejectWith {
    pub const NAMES: [&'static str; 4] = ["port-unreachable", "host-unreachable", "admin-prohibited", "tcp-reset"];

    pub fn parse(name: &str) -> Option<RejectWith> {
        match name {
            "port-unreachable" | "icmp-port-unreachable" => Some(RejectWith::PortUnreachable),
            "host-unreachable" | "icmp-host-unreachable" => Some(RejectWith::HostUnreachable),
            "admin-prohibited" | "icmp-admin-prohibited" => Some(RejectWith::AdminProhibited),
            "tcp-reset" => Some(RejectWith::TcpReset),
            _ => None,
        }
    }

    /// `--reject-with` as iptables (v4) or ip6tables (v6) names it and prints it back.
    fn iptables_name(self, family: Family) -> &'static str {
        match (self, family) {
            (RejectWith::PortUnreachable, Family::V4) => "icmp-port-unreachable",
            (RejectWith::PortUnreachable, Family::V6) => "icmp6-port-unreachable",
            (RejectWith::HostUnreachable, Family::V4) => "icmp-host-unreachable",
            (RejectWith::HostUnreachable, Family::V6) => "icmp6-addr-unreachable",
            (RejectWith::AdminProhibited, Family::V4) => "icmp-admin-prohibited",
            (RejectWith::AdminProhibited, Family::V6) => "icmp6-adm-prohibited",
            (RejectWith::TcpReset, _) => "tcp-reset",
        }
    }
}

/// A rule's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    Reject(RejectWith),
}

/// `iptables -A INPUT|FORWARD|OUTPUT [-s SRC] [-d DST] [-i IIF] [-o OIF] [-p PROTO]
/// [-m conntrack --ctstate STATES] [-m PROTO [--sport P] [--dport P]] -j ACCEPT|DROP|REJECT`,
/// for both families unless an address or the protocol names one.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterRule {
    pub chain: FilterChain,
    pub proto: Option<RuleProto>,
    pub sport: Option<PortRange>,
    pub dport: Option<PortRange>,
    pub in_link: Option<LinkName>,
    pub out_link: Option<LinkName>,
    pub source: Option<IpNet>,
    pub destination: Option<IpNet>,
    /// Sorted, without repeats.
    pub states: Vec<CtState>,
    pub action: Action,
}

impl FilterRule {
    /// A rule with only a chain and a verdict (it matches everything).
    pub fn new(chain: FilterChain, action: Action) -> FilterRule {
        FilterRule {
            chain,
            proto: None,
            sport: None,
            dport: None,
            in_link: None,
            out_link: None,
            source: None,
            destination: None,
            states: Vec::new(),
            action,
        }
    }

    /// What iptables would refuse, said before anything is applied: (the option
    /// concerned, why).
    pub fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        let ports = self.sport.is_some() || self.dport.is_some();
        if ports && !matches!(self.proto, Some(RuleProto::Tcp | RuleProto::Udp)) {
            let which = if self.dport.is_some() { "dport" } else { "sport" };
            return Err((which, "a port needs proto \"tcp\" or \"udp\"".into()));
        }
        for p in [self.sport, self.dport].into_iter().flatten() {
            if p.first == 0 || p.first > p.last {
                let which = if Some(p) == self.dport { "dport" } else { "sport" };
                return Err((which, "ports are 1 to 65535, a range low:high".into()));
            }
        }
        if self.chain == FilterChain::Output && self.in_link.is_some() {
            return Err((
                "iif",
                "the output chain sees no incoming interface (iptables: -i is not valid with OUTPUT)".into(),
            ));
        }
        if self.chain == FilterChain::Input && self.out_link.is_some() {
            return Err((
                "oif",
                "the input chain sees no outgoing interface (iptables: -o is not valid with INPUT)".into(),
            ));
        }
        if let Action::Reject(RejectWith::TcpReset) = self.action {
            if self.proto != Some(RuleProto::Tcp) {
                return Err(("reject_with", "tcp-reset needs proto \"tcp\"".into()));
            }
        }
        if let (Some(s), Some(d)) = (self.source, self.destination) {
            if family_of(&s) != family_of(&d) {
                return Err(("dst", format!("{d} and src {s} are of different families: a rule is for one")));
            }
        }
        if let (Some(only), Some(net)) = (self.proto.and_then(RuleProto::only_family), self.source.or(self.destination))
        {
            if family_of(&net) != only {
                return Err((
                    "proto",
                    format!("{} is for the other family than {net}", self.proto.expect("set").name()),
                ));
            }
        }
        Ok(())
    }

    /// The families the rule is for: one where an address or the protocol says so.
    fn families(&self) -> Vec<Family> {
        let named =
            self.source.or(self.destination).map(|n| family_of(&n)).or(self.proto.and_then(RuleProto::only_family));
        match named {
            Some(f) => vec![f],
            None => vec![Family::V4, Family::V6],
        }
    }

    /// The rule as an iptables-restore line for `family`, in the order `iptables -S`
    /// prints it back.
    fn restore_line(&self, family: Family) -> String {
        let mut rule = format!("-A {}", self.chain.iptables_name());
        if let Some(s) = &self.source {
            let _ = write!(rule, " -s {s}");
        }
        if let Some(d) = &self.destination {
            let _ = write!(rule, " -d {d}");
        }
        if let Some(i) = &self.in_link {
            let _ = write!(rule, " -i {i}");
        }
        if let Some(o) = &self.out_link {
            let _ = write!(rule, " -o {o}");
        }
        if let Some(p) = self.proto {
            let _ = write!(rule, " -p {}", p.name());
        }
        if !self.states.is_empty() {
            let states: Vec<&str> = self.states.iter().map(|s| s.iptables_name()).collect();
            let _ = write!(rule, " -m conntrack --ctstate {}", states.join(","));
        }
        if let (Some(p), true) = (self.proto, self.sport.is_some() || self.dport.is_some()) {
            let _ = write!(rule, " -m {}", p.name());
            if let Some(sp) = self.sport {
                let _ = write!(rule, " --sport {sp}");
            }
            if let Some(dp) = self.dport {
                let _ = write!(rule, " --dport {dp}");
            }
        }
        match self.action {
            Action::Accept => rule += " -j ACCEPT",
            Action::Drop => rule += " -j DROP",
            Action::Reject(with) => {
                let _ = write!(rule, " -j REJECT --reject-with {}", with.iptables_name(family));
            }
        }
        rule
    }
}

/// The tool a rule file beside the lab is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFileKind {
    /// `nft -f FILE`: an nftables script.
    Nft,
    /// `iptables-restore < FILE`: iptables-save's format (IPv4); the tables it
    /// names are replaced, as iptables-restore does without --noflush.
    IptablesRestore,
}

impl RuleFileKind {
    /// The command that reads the file on its standard input.
    pub fn stdin_command(self) -> &'static str {
        match self {
            RuleFileKind::Nft => "nft -f -",
            RuleFileKind::IptablesRestore => "iptables-restore",
        }
    }

    pub fn program(self) -> &'static str {
        match self {
            RuleFileKind::Nft => "nft",
            RuleFileKind::IptablesRestore => "iptables-restore",
        }
    }
}

/// A rule file the lab loads whole: what it changes only the kernel knows.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFile {
    pub kind: RuleFileKind,
    /// The file as the lab names it (relative to the lab's folder).
    pub name: String,
    pub text: String,
}

/// One change a lab makes to a node's firewall.
#[derive(Debug, Clone, PartialEq)]
pub enum FirewallChange {
    Masquerade(Masquerade),
    PortForward(PortForward),
    /// `iptables -P CHAIN ACCEPT|DROP`, for IPv4 and IPv6; FORWARD's also for
    /// bridged traffic (see the module comment).
    ChainPolicy(FilterChain, Policy),
    ForwardAccept(ForwardAccept),
    /// `iptables -A CHAIN ... -j VERDICT` in the filter table.
    Rule(FilterRule),
    /// `nft -f FILE` / `iptables-restore < FILE`.
    File(RuleFile),
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
            FirewallChange::ChainPolicy(chain, policy) => {
                let verdict = if *policy == Policy::Drop { "DROP" } else { "ACCEPT" };
                let text = table("filter", &[format!(":{} {verdict} [0:0]", chain.iptables_name())]);
                RestoreInput { v4: Some(text.clone()), v6: Some(text) }
            }
            // Not appended rule by rule: the kernel backend and the renderers load it whole.
            FirewallChange::File(_) => RestoreInput::default(),
            FirewallChange::Rule(rule) => {
                let mut input = RestoreInput::default();
                for family in rule.families() {
                    let text = Some(table("filter", &[rule.restore_line(family)]));
                    match family {
                        Family::V4 => input.v4 = text,
                        Family::V6 => input.v6 = text,
                    }
                }
                input
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
            FirewallChange::ChainPolicy(FilterChain::Forward, p) => next.forward_policy = Some(*p),
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
        let drop = FirewallChange::ChainPolicy(FilterChain::Forward, Policy::Drop);
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
        let open = FirewallChange::ChainPolicy(FilterChain::Forward, Policy::Accept).apply_to(&filter).unwrap();
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
    fn a_filter_rule_is_written_as_iptables_prints_it() {
        let mut rule = FilterRule::new(FilterChain::Input, Action::Accept);
        rule.proto = Some(RuleProto::Tcp);
        rule.dport = Some(PortRange { first: 80, last: 80 });
        rule.in_link = link("eth0");
        rule.source = Some("10.0.0.0/24".parse().unwrap());
        rule.states = vec![CtState::New, CtState::Established];
        assert_eq!(rule.check(), Ok(()));
        let input = FirewallChange::Rule(rule).restore_input();
        assert_eq!(
            input.v4.unwrap(),
            "*filter\n-A INPUT -s 10.0.0.0/24 -i eth0 -p tcp -m conntrack --ctstate NEW,ESTABLISHED -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"
        );
        assert_eq!(input.v6, None);
    }

    #[test]
    fn a_rule_without_addresses_is_for_both_families_each_with_its_own_reject() {
        let mut rule = FilterRule::new(FilterChain::Output, Action::Reject(RejectWith::AdminProhibited));
        rule.proto = Some(RuleProto::Udp);
        rule.sport = Some(PortRange { first: 1000, last: 2000 });
        let input = FirewallChange::Rule(rule).restore_input();
        assert!(input
            .v4
            .unwrap()
            .contains("-A OUTPUT -p udp -m udp --sport 1000:2000 -j REJECT --reject-with icmp-admin-prohibited"));
        assert!(input.v6.unwrap().contains("-j REJECT --reject-with icmp6-adm-prohibited"));
        let mut icmp = FilterRule::new(FilterChain::Forward, Action::Drop);
        icmp.proto = Some(RuleProto::Icmp);
        let input = FirewallChange::Rule(icmp).restore_input();
        assert_eq!(input.v4.as_deref(), Some("*filter\n-A FORWARD -p icmp -j DROP\nCOMMIT\n"));
        assert_eq!(input.v6, None);
    }

    #[test]
    fn rules_iptables_would_refuse_are_refused_first() {
        let mut r = FilterRule::new(FilterChain::Input, Action::Accept);
        r.dport = Some(PortRange { first: 80, last: 80 });
        assert_eq!(r.check().unwrap_err().0, "dport");
        r.proto = Some(RuleProto::Icmp);
        assert_eq!(r.check().unwrap_err().0, "dport");
        r.proto = Some(RuleProto::Udp);
        assert_eq!(r.check(), Ok(()));
        r.out_link = link("eth0");
        assert_eq!(r.check().unwrap_err().0, "oif");
        let mut o = FilterRule::new(FilterChain::Output, Action::Reject(RejectWith::TcpReset));
        o.in_link = link("eth0");
        assert_eq!(o.check().unwrap_err().0, "iif");
        o.in_link = None;
        assert_eq!(o.check().unwrap_err().0, "reject_with");
        let mut m = FilterRule::new(FilterChain::Forward, Action::Drop);
        m.source = Some("10.0.0.0/8".parse().unwrap());
        m.destination = Some("fd00::/64".parse().unwrap());
        assert_eq!(m.check().unwrap_err().0, "dst");
        m.destination = None;
        m.proto = Some(RuleProto::Icmpv6);
        assert_eq!(m.check().unwrap_err().0, "proto");
    }

    #[test]
    fn input_and_output_policies_leave_bridged_traffic_alone() {
        let drop = FirewallChange::ChainPolicy(FilterChain::Input, Policy::Drop);
        assert_eq!(drop.restore_input().v4.as_deref(), Some("*filter\n:INPUT DROP [0:0]\nCOMMIT\n"));
        assert_eq!(drop.apply_to(&BridgeFilter::default()), None);
    }

    #[test]
    fn no_policy_only_removes_the_bridge_table() {
        let nft = BridgeFilter::default().render_nft();
        assert!(!nft.contains('{'), "{nft}");
    }
}
