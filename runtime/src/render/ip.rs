//! Each op and probe as the commands a reader of the tutorials would type: `ip`,
//! `ip -n NODE`, `ip netns exec NODE sysctl|iptables|ping ...`, doing what netlab
//! does for it (the defaults of a new node, IPv6 switched on before an IPv6 address,
//! a bridge's stable MAC), so `--explain` and `netlab export` show the real thing.

use std::collections::BTreeSet;

use crate::backend::kernel::exec::CommandLine;
use crate::backend::kernel::link::{format_mac, stable_mac};
use crate::model::firewall::{FirewallChange, RestoreInput, RuleFileKind};
use crate::model::{EtcFile, LinkAttrs, LinkSpec, NextHop, Op, Probe, ServerSpec};
use crate::names::NodeName;

/// Where a node's UTS namespace is kept once it has a hostname of its own.
pub const UTS_DIR: &str = "/run/netlab/uts";

/// The sysctls netlab sets in every new node (node.rs setup_defaults).
pub const NODE_DEFAULTS: &[(&str, &str)] = &[("net.ipv6.conf.default.disable_ipv6", "1"), ("net.ipv4.ip_forward", "0")];

/// ` -s 1422 -M do -t 1 -I 10.0.0.1`: ping's options for `opts` (empty: none set).
pub fn ping_args(opts: &crate::ping::PingOpts) -> String {
    let mut out = String::new();
    if let Some(size) = opts.size {
        out += &format!(" -s {size}");
    }
    if opts.df {
        out += " -M do";
    }
    if let Some(ttl) = opts.ttl {
        out += &format!(" -t {ttl}");
    }
    if let Some(source) = opts.source {
        out += &format!(" -I {source}");
    }
    out
}

/// `%eth0` after a link-local destination (empty: none).
pub fn zone(opts: &crate::ping::PingOpts) -> String {
    opts.zone.as_ref().map(|z| format!("%{z}")).unwrap_or_default()
}

/// radvd's configuration for what netlab advertises on a link (one line).
pub fn radvd_conf(link: &str, ra: &crate::model::RouterAdvert) -> String {
    let mut conf = format!(
        "interface {link} {{ AdvSendAdvert on; MinRtrAdvInterval 3; MaxRtrAdvInterval 4; AdvDefaultLifetime {};",
        ra.router_lifetime()
    );
    for prefix in &ra.prefixes {
        conf += &format!(" prefix {} {{ AdvOnLink on; AdvAutonomous on; }};", prefix.trunc());
    }
    conf + " };"
}

/// ` mtu 1450 address 02:... txqueuelen 100 alias 'to the office'` (empty: none set).
fn attr_args(attrs: &LinkAttrs) -> String {
    let mut out = String::new();
    if let Some(mtu) = attrs.mtu {
        out += &format!(" mtu {mtu}");
    }
    if let Some(mac) = &attrs.mac {
        out += &format!(" address {}", format_mac(mac));
    }
    if let Some(len) = attrs.txqueuelen {
        out += &format!(" txqueuelen {len}");
    }
    if let Some(alias) = &attrs.alias {
        out += &format!(" alias {}", q(alias));
    }
    out
}

/// The commands equivalent to what netlab does for `op`; `host` names the node that
/// is the machine's own namespace (plain `ip link ...`).
pub fn op_commands(op: &Op, host: &str) -> Vec<String> {
    Renderer::new(host).op(op)
}

/// The commands a reader would type for `probe`.
pub fn probe_commands(probe: &Probe, host: &str) -> Vec<String> {
    Renderer::new(host).probe(probe)
}

/// A word as the shell must see it: plain words stay as the tutorials write them
/// (`net.ipv4.ip_forward=1`, `!`), anything else is single-quoted.
pub fn q(word: &str) -> String {
    let plain =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ',' | ':' | '/' | '@' | '+' | '=' | '%');
    // A leading '=' or '%' means nothing special either, but '~' and '!' inside words do.
    if word == "!" || (!word.is_empty() && word.chars().all(plain)) {
        word.to_string()
    } else {
        // Always quoted, also for what shell_words leaves bare ('!' expands history in
        // an interactive shell, where a reader pastes these lines).
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A sysctl key in the dotted form `sysctl -w` prints, unless a component has a dot
/// of its own (a VLAN link "eth0.10"): then the slash form, which sysctl also reads.
pub fn sysctl_key(key: &str) -> String {
    if !key.contains('/') {
        return key.to_string();
    }
    if key.split('/').any(|part| part.contains('.')) {
        key.to_string()
    } else {
        key.replace('/', ".")
    }
}

/// One iptables command taken from an `iptables-restore` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptCommand {
    /// "iptables" or "ip6tables".
    pub tool: &'static str,
    pub table: String,
    /// After the table: ["-A", "POSTROUTING", ...] or ["-P", "FORWARD", "DROP"].
    pub args: Vec<String>,
}

impl IptCommand {
    /// As the tutorials write it: `-t TABLE` except for the default table, filter.
    pub fn line(&self) -> String {
        let mut words = vec![self.tool.to_string()];
        if self.table != "filter" {
            words.extend(["-t".to_string(), q(&self.table)]);
        }
        words.extend(self.args.iter().map(|a| q(a)));
        words.join(" ")
    }

    /// The command that takes an appended rule out again (`-A` becomes `-D`).
    pub fn undo(&self) -> Option<IptCommand> {
        let mut args = self.args.clone();
        let first = args.first_mut()?;
        if first != "-A" {
            return None;
        }
        *first = "-D".into();
        Some(IptCommand { args, ..self.clone() })
    }
}

/// The iptables commands that do what `iptables-restore --noflush` does with `input`.
pub fn iptables_commands(input: &RestoreInput) -> Vec<IptCommand> {
    let mut out = Vec::new();
    for (tool, text) in [("iptables", &input.v4), ("ip6tables", &input.v6)] {
        let Some(text) = text else { continue };
        let mut table = "filter".to_string();
        for line in text.lines().map(str::trim) {
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if let Some(name) = line.strip_prefix('*') {
                table = name.trim().to_string();
            } else if let Some(chain) = line.strip_prefix(':') {
                // ":CHAIN POLICY [packets:bytes]": a built-in chain's policy, or "-" for a new chain.
                let mut parts = chain.split_whitespace();
                let (Some(chain), Some(policy)) = (parts.next(), parts.next()) else { continue };
                let args = if policy == "-" { vec!["-N", chain] } else { vec!["-P", chain, policy] };
                out.push(IptCommand { tool, table: table.clone(), args: args.into_iter().map(String::from).collect() });
            } else if line.starts_with('-') {
                out.push(IptCommand { tool, table: table.clone(), args: words });
            }
        }
    }
    out
}

/// Renders ops and probes in order, remembering what changes later renders: which
/// nodes have a UTS namespace of their own.
#[derive(Debug, Clone)]
pub struct Renderer {
    host: String,
    uts: BTreeSet<String>,
}

impl Renderer {
    pub fn new(host: &str) -> Renderer {
        Renderer { host: host.to_string(), uts: BTreeSet::new() }
    }

    pub fn is_host(&self, node: &NodeName) -> bool {
        node.as_str() == self.host
    }

    /// Whether the node got a UTS namespace of its own (a hostname).
    pub fn has_uts(&self, node: &NodeName) -> bool {
        self.uts.contains(node.as_str())
    }

    pub fn uts_path(node: &NodeName) -> String {
        format!("{UTS_DIR}/{node}")
    }

    /// `ip` for the host, `ip -n NODE` for another node.
    pub fn ip(&self, node: &NodeName) -> String {
        if self.is_host(node) {
            "ip".into()
        } else {
            format!("ip -n {}", q(node.as_str()))
        }
    }

    /// What runs a tool in the node's network namespace: nothing for the host.
    pub fn netns_exec(&self, node: &NodeName) -> String {
        if self.is_host(node) {
            String::new()
        } else {
            format!("ip netns exec {} ", q(node.as_str()))
        }
    }

    /// What runs a program in the node as netlab does: its network namespace and,
    /// once it has a hostname, its UTS namespace.
    pub fn program_exec(&self, node: &NodeName) -> String {
        if self.has_uts(node) {
            format!("nsenter --uts={} {}", Self::uts_path(node), self.netns_exec(node))
        } else {
            self.netns_exec(node)
        }
    }

    fn sysctl(&self, node: &NodeName, key: &str, value: &str) -> String {
        format!("{}sysctl -w {}", self.netns_exec(node), q(&format!("{}={value}", sysctl_key(key))))
    }

    /// The commands for one op; stateful ops (hostname, node deletion) update the renderer.
    pub fn op(&mut self, op: &Op) -> Vec<String> {
        let ip = self.ip(op.node());
        match op {
            Op::AddNode { node } if self.is_host(node) => vec![],
            Op::AddNode { node } => {
                let mut out = vec![format!("ip netns add {}", q(node.as_str()))];
                // netlab's defaults for every node it makes, in one command (sysctl -w
                // takes several assignments).
                let sets: Vec<String> = NODE_DEFAULTS.iter().map(|(k, v)| q(&format!("{k}={v}"))).collect();
                out.push(format!("{}sysctl -w {}", self.netns_exec(node), sets.join(" ")));
                out
            }
            Op::DelNode { node } => {
                let mut out = vec![format!("ip netns delete {}", q(node.as_str()))];
                // The node's UTS namespace went with it in netlab (a new node starts afresh).
                if self.uts.remove(node.as_str()) {
                    let path = Self::uts_path(node);
                    out.push(format!("umount {path} && rm {path}"));
                }
                out
            }
            Op::AddVeth { node, name, peer_node, peer } => {
                let (name, peer) = (q(name.as_str()), q(peer.as_str()));
                if node == peer_node {
                    vec![format!("{ip} link add {name} type veth peer name {peer}")]
                } else if self.is_host(peer_node) {
                    // The host has no name for `netns`: create the pair from its side instead.
                    let to = q(node.as_str());
                    vec![format!("ip link add {peer} type veth peer name {name} netns {to}")]
                } else {
                    let to = q(peer_node.as_str());
                    vec![format!("{ip} link add {name} type veth peer name {peer} netns {to}")]
                }
            }
            Op::AddBridge { node, name } => {
                let mac = format_mac(&stable_mac(node.as_str(), name.as_str()));
                vec![format!("{ip} link add {} address {mac} type bridge", q(name.as_str()))]
            }
            Op::AddLink { node, name, spec, attrs } => {
                // netlab gives the link a MAC address of its own, as for a bridge (a
                // vlan keeps its parent's).
                let mut attrs = attrs.clone();
                if attrs.mac.is_none() && !matches!(spec, LinkSpec::Vlan { .. } | LinkSpec::Wireguard) {
                    attrs.mac = Some(stable_mac(node.as_str(), name.as_str()));
                }
                if let LinkSpec::Tuntap { tap } = spec {
                    let mode = if *tap { "tap" } else { "tun" };
                    let mut out = vec![format!("{ip} tuntap add dev {} mode {mode}", q(name.as_str()))];
                    let mut attrs = attrs.clone();
                    if *tap && attrs.mac.is_none() {
                        attrs.mac = Some(stable_mac(node.as_str(), name.as_str()));
                    }
                    if !attrs.is_empty() {
                        out.push(format!("{ip} link set {}{}", q(name.as_str()), attr_args(&attrs)));
                    }
                    return out;
                }
                let (on, kind) = match spec {
                    LinkSpec::Dummy => (String::new(), "dummy".to_string()),
                    LinkSpec::Vlan { parent, id } => (format!(" link {}", q(parent.as_str())), format!("vlan id {id}")),
                    LinkSpec::Macvlan { parent, mode } => {
                        (format!(" link {}", q(parent.as_str())), format!("macvlan mode {mode}"))
                    }
                    LinkSpec::Vxlan(v) => {
                        let mut kind = format!("vxlan id {}", v.vni);
                        for (word, ip) in [("remote", v.remote), ("group", v.group), ("local", v.local)] {
                            if let Some(ip) = ip {
                                kind += &format!(" {word} {ip}");
                            }
                        }
                        if let Some(dev) = &v.dev {
                            kind += &format!(" dev {}", q(dev.as_str()));
                        }
                        (String::new(), kind + &format!(" dstport {}", v.dstport))
                    }
                    LinkSpec::Bond(b) => (String::new(), format!("bond mode {} miimon {}", b.mode, b.miimon)),
                    LinkSpec::Wireguard => (String::new(), "wireguard".to_string()),
                    // Returned above: `ip tuntap add`, not `ip link add`.
                    LinkSpec::Tuntap { tap } => (String::new(), if *tap { "tap" } else { "tun" }.to_string()),
                };
                let attrs = attr_args(&attrs);
                vec![format!("{ip} link add {}{on}{attrs} type {kind}", q(name.as_str()))]
            }
            Op::SetLink { link, attrs, .. } => vec![format!("{ip} link set {}{}", q(link.as_str()), attr_args(attrs))],
            Op::SetUp { link, up, .. } => {
                vec![format!("{ip} link set {} {}", q(link.as_str()), if *up { "up" } else { "down" })]
            }
            Op::SetMaster { link, master, .. } => {
                let to = master.as_ref().map(|m| format!("master {}", q(m.as_str()))).unwrap_or("nomaster".into());
                vec![format!("{ip} link set {} {to}", q(link.as_str()))]
            }
            Op::MoveLink { link, to, new_name, .. } => {
                // `$$`, this shell's PID, names the host's namespace (it has no name of its own).
                let target = if self.is_host(to) { "$$".to_string() } else { q(to.as_str()) };
                let rename = if new_name != link { format!(" name {}", q(new_name.as_str())) } else { String::new() };
                vec![format!("{ip} link set {} netns {target}{rename}", q(link.as_str()))]
            }
            Op::DelLink { link, .. } => vec![format!("{ip} link del {}", q(link.as_str()))],
            Op::AddAddr { node, link, cidr } => {
                let add = format!("{ip} addr add {cidr} dev {}", q(link.as_str()));
                if cidr.addr().is_ipv6() {
                    // Nodes keep IPv6 off on new links until the lab gives one an IPv6
                    // address; netlab skips DAD, so the address is usable at once.
                    let key = format!("net/ipv6/conf/{link}/disable_ipv6");
                    vec![self.sysctl(node, &key, "0"), add + " nodad"]
                } else {
                    vec![add]
                }
            }
            Op::DelAddr { link, cidr, .. } => vec![format!("{ip} addr del {cidr} dev {}", q(link.as_str()))],
            Op::AddRoute { dest, hop, opts, .. } => {
                let dst = dest.map(|d| d.to_string()).unwrap_or("default".into());
                let v6 = dest.map(|d| d.addr().is_ipv6()).or(opts.src.map(|s| s.is_ipv6()));
                let (family, route) = match hop {
                    // "default" alone means IPv4's: an IPv6 gateway needs -6.
                    NextHop::Gateway(gw) if dest.is_none() && gw.is_ipv6() => (" -6", format!("{dst} via {gw}")),
                    NextHop::Gateway(gw) => ("", format!("{dst} via {gw}")),
                    NextHop::Device(dev) => ("", format!("{dst} dev {}", q(dev.as_str()))),
                    NextHop::Multipath(paths) => {
                        let family = if dest.is_none() && hop.family_v6() == Some(true) { " -6" } else { "" };
                        let mut words = dst;
                        for p in paths {
                            words += " nexthop";
                            if let Some(gw) = p.gateway {
                                words += &format!(" via {gw}");
                            }
                            if let Some(dev) = &p.dev {
                                words += &format!(" dev {}", q(dev.as_str()));
                            }
                            words += &format!(" weight {}", p.weight);
                        }
                        (family, words)
                    }
                    typed => {
                        let family = if dest.is_none() && v6 == Some(true) { " -6" } else { "" };
                        (family, format!("{} {dst}", typed.type_word().unwrap_or_default()))
                    }
                };
                let mut words = route;
                if let Some(dev) = &opts.dev {
                    words += &format!(" dev {}", q(dev.as_str()));
                }
                if opts.onlink {
                    words += " onlink";
                }
                if let Some(src) = opts.src {
                    words += &format!(" src {src}");
                }
                if let Some(metric) = opts.metric {
                    words += &format!(" metric {metric}");
                }
                if let Some(table) = opts.table {
                    words += &format!(" table {table}");
                }
                vec![format!("{ip}{family} route add {words}")]
            }
            Op::AddNeigh { dev, ip: addr, mac, state, .. } => {
                let family = if addr.is_ipv6() { " -6" } else { "" };
                let nud = state.as_str().to_lowercase();
                vec![format!(
                    "{ip}{family} neigh add {addr} lladdr {} dev {} nud {nud}",
                    format_mac(mac),
                    q(dev.as_str())
                )]
            }
            Op::DelNeigh { dev, ip: addr, .. } => vec![format!("{ip} neigh del {addr} dev {}", q(dev.as_str()))],
            Op::FlushNeigh { dev, .. } => match dev {
                Some(d) => vec![format!("{ip} neigh flush dev {}", q(d.as_str()))],
                None => vec![format!("{ip} neigh flush all")],
            },
            Op::SetBridgePort { node, port, opts } => {
                let on = |v: bool| if v { "on" } else { "off" };
                let mut words = String::new();
                for (name, value) in [("learning", opts.learning), ("flood", opts.flood), ("isolated", opts.isolated)] {
                    if let Some(v) = value {
                        words += &format!(" {name} {}", on(v));
                    }
                }
                vec![format!("{}bridge link set dev {}{words}", self.netns_exec(node), q(port.as_str()))]
            }
            Op::SetBridge { bridge, opts, .. } => {
                let mut words = String::new();
                if let Some(stp) = opts.stp {
                    words += &format!(" stp_state {}", u8::from(stp));
                }
                // In clock_t, hundredths of a second.
                if let Some(s) = opts.ageing {
                    words += &format!(" ageing_time {}", u64::from(s) * 100);
                }
                if let Some(s) = opts.forward_delay {
                    words += &format!(" forward_delay {}", u64::from(s) * 100);
                }
                if let Some(f) = opts.vlan_filtering {
                    words += &format!(" vlan_filtering {}", u8::from(f));
                }
                if let Some(p) = opts.default_pvid {
                    words += &format!(" vlan_default_pvid {p}");
                }
                vec![format!("{ip} link set {} type bridge{words}", q(bridge.as_str()))]
            }
            Op::AddBridgeVlan { node, dev, vid, pvid, untagged, bridge_self } => {
                let mut words = format!("dev {} vid {vid}", q(dev.as_str()));
                for (word, on) in [("pvid", *pvid), ("untagged", *untagged), ("self", *bridge_self)] {
                    if on {
                        words += &format!(" {word}");
                    }
                }
                vec![format!("{}bridge vlan add {words}", self.netns_exec(node))]
            }
            Op::DelBridgeVlan { node, dev, vid, bridge_self } => {
                let own = if *bridge_self { " self" } else { "" };
                vec![format!("{}bridge vlan del dev {} vid {vid}{own}", self.netns_exec(node), q(dev.as_str()))]
            }
            Op::SetWireguard { node, link, config } => {
                // The key through a process substitution, as wg's own manual does it:
                // never in a file, never on wg's command line.
                let mut words = format!(
                    "wg set {} private-key <(echo {})",
                    q(link.as_str()),
                    crate::model::wg_key_text(&config.private_key)
                );
                if let Some(port) = config.listen_port {
                    words += &format!(" listen-port {port}");
                }
                for peer in &config.peers {
                    words += &format!(" peer {}", crate::model::wg_key_text(&peer.public_key));
                    if let Some(e) = peer.endpoint {
                        words += &format!(" endpoint {e}");
                    }
                    if let Some(k) = peer.keepalive {
                        words += &format!(" persistent-keepalive {k}");
                    }
                    let ips: Vec<String> = peer.allowed_ips.iter().map(|n| n.to_string()).collect();
                    words +=
                        &format!(" allowed-ips {}", if ips.is_empty() { "\"\"".to_string() } else { ips.join(",") });
                }
                vec![format!("{}{words}", self.netns_exec(node))]
            }
            Op::AddRule { rule, .. } => {
                let family = if rule.v6 { " -6" } else { "" };
                let words = crate::backend::kernel::rule::describe_rule(rule);
                vec![format!("{ip}{family} rule add {words}")]
            }
            Op::DelRoute { dest, table, .. } => {
                let table = table.map(|t| format!(" table {t}")).unwrap_or_default();
                vec![format!("{ip} route del {}{table}", dest.map(|d| d.to_string()).unwrap_or("default".into()))]
            }
            Op::DelRule { rule, .. } => {
                let family = if rule.v6 { " -6" } else { "" };
                vec![format!("{ip}{family} rule del {}", crate::backend::kernel::rule::describe_rule(rule))]
            }
            Op::SetSysctl { node, key, value } => vec![self.sysctl(node, key, value)],
            Op::Firewall { node, change: FirewallChange::File(file) } => {
                let path = q(&file.name);
                vec![match file.kind {
                    RuleFileKind::Nft => format!("{}nft -f {path}", self.netns_exec(node)),
                    RuleFileKind::IptablesRestore => format!("{}iptables-restore < {path}", self.netns_exec(node)),
                }]
            }
            Op::Firewall { node, change } => {
                let exec = self.netns_exec(node);
                iptables_commands(&change.restore_input()).iter().map(|c| format!("{exec}{}", c.line())).collect()
            }
            Op::WriteFile { node, file, text } => {
                let path = self.etc_path(node, *file);
                // netlab ends the file with a newline if the text has none.
                let body = text.strip_suffix('\n').unwrap_or(text);
                let write = format!("printf '%s\\n' {} > {path}", q(body));
                if self.is_host(node) {
                    vec![write]
                } else {
                    vec![format!("mkdir -p /etc/netns/{} && {write}", q(node.as_str()))]
                }
            }
            Op::SetHostname { node, name } => {
                let name = q(name);
                if self.is_host(node) {
                    vec![format!("hostname {name}")]
                } else if self.uts.insert(node.to_string()) {
                    let path = Self::uts_path(node);
                    vec![format!("mkdir -p {UTS_DIR} && touch {path} && unshare --uts={path} hostname {name}")]
                } else {
                    vec![format!("nsenter --uts={} hostname {name}", Self::uts_path(node))]
                }
            }
            Op::StartServer { node, server } => vec![match server {
                ServerSpec::Http { addr, body, status } => {
                    format!("netlab-http-standin {} {} {status} {}", q(node.as_str()), q(&addr.to_string()), q(body))
                }
                ServerSpec::Dns { addr, records } => {
                    let mut line = format!("netlab-dns-standin {} {}", q(node.as_str()), q(&addr.to_string()));
                    for (name, ip) in records {
                        line += &format!(" {}", q(&format!("{name}={ip}")));
                    }
                    line
                }
                ServerSpec::UdpEcho { addr } => {
                    format!("netlab-udp-echo-standin {} {}", q(node.as_str()), q(&addr.to_string()))
                }
            }],
            Op::Exec { node, command } => vec![format!("{}{}", self.program_exec(node), program_line(command))],
            Op::Impair { node, link, impairment } => {
                vec![format!("{} qdisc replace dev {} root {}", self.tc(node), q(link.as_str()), impairment.tc_args())]
            }
            Op::ClearImpair { node, link } => {
                vec![format!("{} qdisc del dev {} root", self.tc(node), q(link.as_str()))]
            }
            Op::Advertise { node, link, ra } => {
                // What a reader runs for netlab's own sender: radvd, with its config.
                let key = format!("net/ipv6/conf/{link}/disable_ipv6");
                let file = format!("radvd-{node}-{link}");
                vec![
                    self.sysctl(node, &key, "0"),
                    format!("echo {} > {file}.conf", q(&radvd_conf(link.as_str(), ra))),
                    format!("{}radvd -n -C {file}.conf -p {file}.pid &", self.program_exec(node)),
                ]
            }
        }
    }

    /// `tc` in the node: `tc -n NODE` (the host: plain `tc`).
    pub fn tc(&self, node: &NodeName) -> String {
        if self.is_host(node) {
            "tc".into()
        } else {
            format!("tc -n {}", q(node.as_str()))
        }
    }

    /// Where the node's copy of FILE lives: /etc/netns/NODE/FILE, the host's /etc/FILE.
    pub fn etc_path(&self, node: &NodeName, file: EtcFile) -> String {
        if self.is_host(node) {
            format!("/etc/{}", file.file_name())
        } else {
            format!("/etc/netns/{}/{}", q(node.as_str()), file.file_name())
        }
    }

    /// The commands a reader would type for the probe.
    pub fn probe(&self, probe: &Probe) -> Vec<String> {
        match probe {
            Probe::Ping { node, dst, opts, .. } => {
                vec![format!("{}ping -c1{} {dst}{}", self.program_exec(node), ping_args(opts), zone(opts))]
            }
            Probe::PingAll { nodes, dst, .. } => {
                let (plain, own): (Vec<&NodeName>, Vec<&NodeName>) =
                    nodes.iter().partition(|n| !self.is_host(n) && !self.has_uts(n));
                let mut out: Vec<String> =
                    own.iter().map(|n| format!("{}ping -c1 {dst}", self.program_exec(n))).collect();
                match plain.as_slice() {
                    [] => {}
                    [one] => out.push(format!("{}ping -c1 {dst}", self.program_exec(one))),
                    many => {
                        let names: Vec<String> = many.iter().map(|n| q(n.as_str())).collect();
                        out.push(format!("for n in {}; do ip netns exec \"$n\" ping -c1 {dst}; done", names.join(" ")));
                    }
                }
                out
            }
            Probe::Http { node, url, .. } => vec![format!("{}curl {}", self.program_exec(node), q(url))],
            Probe::Tcp { node, addr, .. } => {
                vec![format!("{}nc -z -w1 {} {}", self.program_exec(node), addr.ip(), addr.port())]
            }
            Probe::Udp { node, addr, .. } => {
                vec![format!("echo x | {}nc -u -w1 {} {}", self.program_exec(node), addr.ip(), addr.port())]
            }
            Probe::Resolve { node, name, .. } => {
                vec![format!("{}getent hosts {}", self.program_exec(node), q(name))]
            }
            Probe::Path { node, dst, .. } => vec![format!("{}traceroute -n -I {dst}", self.program_exec(node))],
            Probe::Rtt { node, dst, count, min, max } => vec![format!(
                "{}ping -c {count} -i 0.1 {dst}   # netlab checks: the median round trip is {}",
                self.program_exec(node),
                bounds_text(min.map(crate::model::impair::duration_text), max.map(crate::model::impair::duration_text))
            )],
            Probe::Throughput { node, server, dst, seconds, check, min, max } => {
                let mut out = vec![
                    format!(
                        "{}iperf3 -s -1 -p {} &   # netlab's own TCP sink stands in for it",
                        self.program_exec(server),
                        dst.port()
                    ),
                    format!("{}iperf3 -c {} -p {} -t {seconds}", self.program_exec(node), dst.ip(), dst.port()),
                ];
                if *check {
                    let rate = |r: &u64| crate::model::impair::rate_text(*r);
                    out[1] += &format!(
                        "   # netlab checks: the rate received is {}",
                        bounds_text(min.as_ref().map(rate), max.as_ref().map(rate))
                    );
                }
                out
            }
        }
    }
}

/// "between A and B", "at least A", "at most B".
pub fn bounds_text(min: Option<String>, max: Option<String>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "anything".into(),
    }
}

/// A program's command line as netlab runs it: through `sh -c` when it has pipes,
/// redirections or variables (exec.rs), else its words as the lab split them.
pub fn program_line(command: &str) -> String {
    match CommandLine::parse(command) {
        Ok(cmd) if cmd.shell.is_none() => cmd.argv.iter().map(|w| q(w)).collect::<Vec<_>>().join(" "),
        Ok(_) => format!("sh -c {}", q(command)),
        // netlab refuses it too; show it as written.
        Err(_) => command.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::firewall::{FilterChain, FirewallChange, ForwardAccept, Masquerade, Policy, PortForward, Proto};
    use crate::model::Expect;
    use crate::names::LinkName;

    fn n(name: &str) -> NodeName {
        NodeName::new(name).unwrap()
    }

    fn l(name: &str) -> LinkName {
        LinkName::new(name).unwrap()
    }

    fn cmds(op: Op) -> Vec<String> {
        op_commands(&op, "host")
    }

    #[test]
    fn a_new_node_gets_netlabs_defaults() {
        assert_eq!(
            cmds(Op::AddNode { node: n("container4") }),
            [
                "ip netns add container4",
                "ip netns exec container4 sysctl -w net.ipv6.conf.default.disable_ipv6=1 net.ipv4.ip_forward=0",
            ]
        );
        assert!(cmds(Op::AddNode { node: n("host") }).is_empty(), "the host exists already");
        assert_eq!(cmds(Op::DelNode { node: n("container4") }), ["ip netns delete container4"]);
    }

    #[test]
    fn veths_are_made_from_the_side_that_can_name_the_other() {
        let veth = |node: &str, name: &str, peer_node: &str, peer: &str| {
            cmds(Op::AddVeth { node: n(node), name: l(name), peer_node: n(peer_node), peer: l(peer) })
        };
        assert_eq!(
            veth("host", "brid4", "container4", "veth4"),
            ["ip link add brid4 type veth peer name veth4 netns container4"]
        );
        assert_eq!(veth("host", "veth0", "host", "veth1"), ["ip link add veth0 type veth peer name veth1"]);
        assert_eq!(veth("red", "a", "red", "b"), ["ip -n red link add a type veth peer name b"]);
        assert_eq!(
            veth("red", "veth-red", "blue", "veth-blue"),
            ["ip -n red link add veth-red type veth peer name veth-blue netns blue"]
        );
        // The host has no name `netns` knows: the pair is made from the host's side.
        assert_eq!(veth("red", "eth0", "host", "vred"), ["ip link add vred type veth peer name eth0 netns red"]);
    }

    #[test]
    fn links() {
        let mac = format_mac(&stable_mac("host", "br0"));
        assert_eq!(
            cmds(Op::AddBridge { node: n("host"), name: l("br0") }),
            [format!("ip link add br0 address {mac} type bridge")]
        );
        assert_eq!(
            cmds(Op::AddBridge { node: n("sw"), name: l("br0") }),
            [format!("ip -n sw link add br0 address {} type bridge", format_mac(&stable_mac("sw", "br0")))]
        );
        assert_eq!(cmds(Op::SetUp { node: n("host"), link: l("br0"), up: true }), ["ip link set br0 up"]);
        assert_eq!(cmds(Op::SetUp { node: n("c4"), link: l("veth4"), up: false }), ["ip -n c4 link set veth4 down"]);
        assert_eq!(
            cmds(Op::SetMaster { node: n("host"), link: l("brid4"), master: Some(l("br0")) }),
            ["ip link set brid4 master br0"]
        );
        assert_eq!(
            cmds(Op::SetMaster { node: n("sw"), link: l("p1"), master: None }),
            ["ip -n sw link set p1 nomaster"]
        );
        assert_eq!(
            cmds(Op::MoveLink { node: n("host"), link: l("veth4"), to: n("container4"), new_name: l("veth4") }),
            ["ip link set veth4 netns container4"]
        );
        assert_eq!(
            cmds(Op::MoveLink { node: n("c4"), link: l("veth4"), to: n("host"), new_name: l("eth9") }),
            ["ip -n c4 link set veth4 netns $$ name eth9"]
        );
        assert_eq!(cmds(Op::DelLink { node: n("host"), link: l("brid4") }), ["ip link del brid4"]);
        // Link names may hold what the shell reads: they are quoted.
        assert_eq!(cmds(Op::DelLink { node: n("c4"), link: l("a$b") }), ["ip -n c4 link del 'a$b'"]);
    }

    #[test]
    fn addresses_and_routes() {
        let cidr = |s: &str| s.parse().unwrap();
        assert_eq!(
            cmds(Op::AddAddr { node: n("container4"), link: l("veth4"), cidr: cidr("10.201.0.4/24") }),
            ["ip -n container4 addr add 10.201.0.4/24 dev veth4"]
        );
        assert_eq!(
            cmds(Op::AddAddr { node: n("c4"), link: l("veth4"), cidr: cidr("fd00::4/64") }),
            [
                "ip netns exec c4 sysctl -w net.ipv6.conf.veth4.disable_ipv6=0",
                "ip -n c4 addr add fd00::4/64 dev veth4 nodad",
            ]
        );
        // A VLAN link's dot would split the dotted key: the slash form keeps it.
        assert_eq!(
            cmds(Op::AddAddr { node: n("host"), link: l("eth0.10"), cidr: cidr("fd00::1/64") }),
            ["sysctl -w net/ipv6/conf/eth0.10/disable_ipv6=0", "ip addr add fd00::1/64 dev eth0.10 nodad",]
        );
        assert_eq!(
            cmds(Op::DelAddr { node: n("host"), link: l("br0"), cidr: cidr("10.201.0.1/24") }),
            ["ip addr del 10.201.0.1/24 dev br0"]
        );
        let gw = |s: &str| NextHop::Gateway(s.parse().unwrap());
        assert_eq!(
            cmds(Op::AddRoute { node: n("container4"), dest: None, hop: gw("10.201.0.1"), opts: Default::default() }),
            ["ip -n container4 route add default via 10.201.0.1"]
        );
        assert_eq!(
            cmds(Op::AddRoute { node: n("c4"), dest: None, hop: gw("fd00::1"), opts: Default::default() }),
            ["ip -n c4 -6 route add default via fd00::1"]
        );
        assert_eq!(
            cmds(Op::AddRoute {
                node: n("host"),
                dest: Some(cidr("192.168.1.0/24")),
                hop: NextHop::Device(l("v-net-0")),
                opts: Default::default()
            }),
            ["ip route add 192.168.1.0/24 dev v-net-0"]
        );
        let path = |gw: &str, weight| crate::model::PathHop { gateway: Some(gw.parse().unwrap()), dev: None, weight };
        assert_eq!(
            cmds(Op::AddRoute {
                node: n("r"),
                dest: None,
                hop: NextHop::Multipath(vec![path("10.1.0.1", 1), path("10.2.0.1", 3)]),
                opts: Default::default()
            }),
            ["ip -n r route add default nexthop via 10.1.0.1 weight 1 nexthop via 10.2.0.1 weight 3"]
        );
        assert_eq!(cmds(Op::DelRoute { node: n("c4"), dest: None, table: None }), ["ip -n c4 route del default"]);
        assert_eq!(
            cmds(Op::DelRoute { node: n("host"), dest: Some(cidr("10.0.0.0/8")), table: None }),
            ["ip route del 10.0.0.0/8"]
        );
    }

    #[test]
    fn sysctls() {
        let set = |node: &str, key: &str, value: &str| {
            cmds(Op::SetSysctl { node: n(node), key: key.into(), value: value.into() })
        };
        assert_eq!(set("host", "net.ipv4.ip_forward", "1"), ["sysctl -w net.ipv4.ip_forward=1"]);
        assert_eq!(set("router", "net/ipv4/ip_forward", "1"), ["ip netns exec router sysctl -w net.ipv4.ip_forward=1"]);
    }

    #[test]
    fn firewall_changes_are_the_tutorials_iptables_commands() {
        let fw = |node: &str, change| cmds(Op::Firewall { node: n(node), change });
        let masq = FirewallChange::Masquerade(Masquerade {
            source: "10.201.0.0/24".parse().unwrap(),
            out: None,
            not_out: None,
        });
        assert_eq!(fw("host", masq.clone()), ["iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"]);
        assert_eq!(
            fw("router", masq),
            ["ip netns exec router iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"]
        );
        let docker = FirewallChange::Masquerade(Masquerade {
            source: "172.17.0.0/16".parse().unwrap(),
            out: None,
            not_out: Some(l("docker0")),
        });
        assert_eq!(fw("host", docker), ["iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"]);
        assert_eq!(
            fw("host", FirewallChange::ChainPolicy(FilterChain::Forward, Policy::Drop)),
            ["iptables -P FORWARD DROP", "ip6tables -P FORWARD DROP"]
        );
        let accept = FirewallChange::ForwardAccept(ForwardAccept {
            in_link: Some(l("br0")),
            out_link: Some(l("br0")),
            ..Default::default()
        });
        assert_eq!(
            fw("host", accept),
            ["iptables -A FORWARD -i br0 -o br0 -j ACCEPT", "ip6tables -A FORWARD -i br0 -o br0 -j ACCEPT"]
        );
        let dnat = FirewallChange::PortForward(PortForward {
            proto: Proto::Tcp,
            port: 80,
            to: "[fd00::2]:80".parse().unwrap(),
            in_link: None,
            local: true,
        });
        assert_eq!(fw("gw", dnat), [
            "ip netns exec gw ip6tables -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination '[fd00::2]:80'",
            "ip netns exec gw ip6tables -t nat -A OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 -j DNAT --to-destination '[fd00::2]:80'",
        ]);
    }

    #[test]
    fn an_appended_rule_is_undone_with_delete() {
        let cmd = IptCommand { tool: "iptables", table: "nat".into(), args: vec!["-A".into(), "POSTROUTING".into()] };
        assert_eq!(cmd.undo().unwrap().line(), "iptables -t nat -D POSTROUTING");
        let policy = IptCommand { tool: "iptables", table: "filter".into(), args: vec!["-P".into()] };
        assert_eq!(policy.undo(), None);
    }

    #[test]
    fn files_hostnames_servers_and_programs() {
        let write = |node: &str, file, text: &str| cmds(Op::WriteFile { node: n(node), file, text: text.into() });
        assert_eq!(write("container4", EtcFile::ResolvConf, "nameserver 8.8.8.8"), [
            "mkdir -p /etc/netns/container4 && printf '%s\\n' 'nameserver 8.8.8.8' > /etc/netns/container4/resolv.conf"
        ]);
        assert_eq!(write("host", EtcFile::Hosts, "10.0.0.1 web\n"), ["printf '%s\\n' '10.0.0.1 web' > /etc/hosts"]);
        assert_eq!(write("host", EtcFile::Hosts, "it's\n"), ["printf '%s\\n' 'it'\\''s' > /etc/hosts"]);

        let mut r = Renderer::new("host");
        let hostname = |node: &str| Op::SetHostname { node: n(node), name: "web1".into() };
        assert_eq!(r.op(&hostname("host")), ["hostname web1"]);
        assert_eq!(
            r.op(&hostname("c4")),
            ["mkdir -p /run/netlab/uts && touch /run/netlab/uts/c4 && unshare --uts=/run/netlab/uts/c4 hostname web1"]
        );
        assert_eq!(r.op(&hostname("c4")), ["nsenter --uts=/run/netlab/uts/c4 hostname web1"]);
        let exec = |command: &str| Op::Exec { node: n("c4"), command: command.into() };
        assert_eq!(r.op(&exec("hostname")), ["nsenter --uts=/run/netlab/uts/c4 ip netns exec c4 hostname"]);
        // Deleted and made again, the node starts without a UTS namespace of its own.
        assert_eq!(
            r.op(&Op::DelNode { node: n("c4") }),
            ["ip netns delete c4", "umount /run/netlab/uts/c4 && rm /run/netlab/uts/c4"]
        );
        assert_eq!(r.op(&exec("hostname")), ["ip netns exec c4 hostname"]);
        assert_eq!(r.op(&exec("ip -br addr | grep veth")), ["ip netns exec c4 sh -c 'ip -br addr | grep veth'"]);
        assert_eq!(r.op(&Op::Exec { node: n("host"), command: "echo 'a b'".into() }), ["echo 'a b'"]);

        let http = ServerSpec::Http { addr: "0.0.0.0:80".parse().unwrap(), body: "hello web".into(), status: 200 };
        assert_eq!(
            cmds(Op::StartServer { node: n("web"), server: http }),
            ["netlab-http-standin web 0.0.0.0:80 200 'hello web'"]
        );
        let dns = ServerSpec::Dns {
            addr: "[fd00::53]:53".parse().unwrap(),
            records: vec![("google.com".into(), "203.0.113.10".parse().unwrap())],
        };
        assert_eq!(
            cmds(Op::StartServer { node: n("isp"), server: dns }),
            ["netlab-dns-standin isp '[fd00::53]:53' google.com=203.0.113.10"]
        );
    }

    #[test]
    fn probes() {
        let p = |probe| probe_commands(&probe, "host");
        assert_eq!(
            p(Probe::Ping {
                node: n("container4"),
                dst: "198.51.100.53".parse().unwrap(),
                expect: None,
                opts: Default::default()
            }),
            ["ip netns exec container4 ping -c1 198.51.100.53"]
        );
        assert_eq!(
            p(Probe::Ping {
                node: n("host"),
                dst: "10.201.0.4".parse().unwrap(),
                expect: None,
                opts: Default::default()
            }),
            ["ping -c1 10.201.0.4"]
        );
        let all = Probe::PingAll {
            nodes: vec![n("c1"), n("host"), n("c2")],
            dst: "10.0.0.1".parse().unwrap(),
            expect: Some(Expect::Answer),
        };
        assert_eq!(p(all), ["ping -c1 10.0.0.1", "for n in c1 c2; do ip netns exec \"$n\" ping -c1 10.0.0.1; done"]);
        let one = Probe::PingAll { nodes: vec![n("c1")], dst: "10.0.0.1".parse().unwrap(), expect: None };
        assert_eq!(p(one), ["ip netns exec c1 ping -c1 10.0.0.1"]);
        let http = Probe::Http {
            node: n("container4"),
            url: "http://google.com/?q=1&x".into(),
            expect: Some(Expect::Answer),
            status: 200,
            body: None,
        };
        assert_eq!(p(http), ["ip netns exec container4 curl 'http://google.com/?q=1&x'"]);
        let resolve = Probe::Resolve { node: n("container4"), name: "google.com".into(), expect: None };
        assert_eq!(p(resolve), ["ip netns exec container4 getent hosts google.com"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(q("net.ipv4.ip_forward=1"), "net.ipv4.ip_forward=1");
        assert_eq!(q("!"), "!");
        assert_eq!(q("a!b"), "'a!b'");
        assert_eq!(q(""), "''");
        assert_eq!(q("{a,b}"), "'{a,b}'");
        assert_eq!(q("~x"), "'~x'");
        assert_eq!(sysctl_key("net/ipv4/conf/all/forwarding"), "net.ipv4.conf.all.forwarding");
    }
}
