//! Each op and probe as the commands a reader of the tutorials would type: `ip`,
//! `ip -n NODE`, `ip netns exec NODE sysctl|iptables|ping ...`, doing what netlab
//! does for it (the defaults of a new node, IPv6 switched on before an IPv6 address,
//! a bridge's stable MAC), so `--explain` and `netlab export` show the real thing.

use std::collections::BTreeSet;

use crate::exec::CommandLine;
use crate::firewall::RestoreInput;
use crate::link::{format_mac, stable_mac};
use crate::model::{EtcFile, NextHop, Op, Probe, ServerSpec};
use crate::names::NodeName;

/// Where a node's UTS namespace is kept once it has a hostname of its own.
pub const UTS_DIR: &str = "/run/netlab/uts";

/// The sysctls netlab sets in every new node (node.rs setup_defaults).
pub const NODE_DEFAULTS: &[(&str, &str)] = &[
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.ip_forward", "0"),
];

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
        shell_words::quote(word).into_owned()
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
                out.extend(NODE_DEFAULTS.iter().map(|(k, v)| self.sysctl(node, k, v)));
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
            Op::AddRoute { dest, hop, .. } => {
                let dst = dest.map(|d| d.to_string()).unwrap_or("default".into());
                let (family, via) = match hop {
                    // "default" alone means IPv4's: an IPv6 gateway needs -6.
                    NextHop::Gateway(gw) if dest.is_none() && gw.is_ipv6() => (" -6", format!("via {gw}")),
                    NextHop::Gateway(gw) => ("", format!("via {gw}")),
                    NextHop::Device(dev) => ("", format!("dev {}", q(dev.as_str()))),
                };
                vec![format!("{ip}{family} route add {dst} {via}")]
            }
            Op::DelRoute { dest, .. } => {
                vec![format!("{ip} route del {}", dest.map(|d| d.to_string()).unwrap_or("default".into()))]
            }
            Op::SetSysctl { node, key, value } => vec![self.sysctl(node, key, value)],
            Op::Firewall { node, change } => {
                let exec = self.netns_exec(node);
                iptables_commands(&change.restore_input()).iter().map(|c| format!("{exec}{}", c.line())).collect()
            }
            Op::WriteFile { node, file, text } => {
                let path = self.etc_path(node, *file);
                // netlab ends the file with a newline if the text has none.
                let body = text.strip_suffix('\n').unwrap_or(text);
                let write = format!("printf '%s\\n' {} > {path}", shell_words::quote(body));
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
            }],
            Op::Exec { node, command } => vec![format!("{}{}", self.program_exec(node), program_line(command))],
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
            Probe::Ping { node, dst, .. } => vec![format!("{}ping -c1 {dst}", self.program_exec(node))],
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
            Probe::Resolve { node, name, .. } => {
                vec![format!("{}getent hosts {}", self.program_exec(node), q(name))]
            }
        }
    }
}

/// A program's command line as netlab runs it: through `sh -c` when it has pipes,
/// redirections or variables (exec.rs), else its words as the lab split them.
pub fn program_line(command: &str) -> String {
    match CommandLine::parse(command) {
        Ok(cmd) if cmd.shell.is_none() => cmd.argv.iter().map(|w| q(w)).collect::<Vec<_>>().join(" "),
        Ok(_) => format!("sh -c {}", shell_words::quote(command)),
        // netlab refuses it too; show it as written.
        Err(_) => command.to_string(),
    }
}
