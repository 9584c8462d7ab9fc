//! The model backend: applies ops to a `Topology`, answers queries from it, and
//! records probes instead of making them. Needs no root and no kernel.
//!
//! Probes are not evaluated (`evaluates()` is false, and callers check it before
//! they probe); should one be made anyway, it answers as nothing at all answered:
//! a ping sends nothing, a request and a lookup fail saying the plan makes none.

use std::cell::{Ref, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use super::{Applied, Backend, SeenRequest, ServerLog};
use crate::backend::kernel::exec::{CommandLine, ExecOutput};
use crate::backend::kernel::sockets::Listening;
use crate::error::Result;
use crate::model::firewall::FirewallChange;
use crate::model::{AddrState, EtcFile, Feature, LinkState, Neighbour, Op, RouteState, Topology};
use crate::names::NodeName;
use crate::ping::{PingMode, PingOpts, PingReport};
use crate::render::iptables::IptTable;
use crate::service::{CurlError, HttpReply, LookupError};

/// What a probe says when the model is asked to make one.
const NOT_EVALUATED: &str = "not evaluated: a plan makes no requests";

#[derive(Debug, Default)]
pub struct ModelBackend {
    topology: RefCell<Topology>,
}

impl ModelBackend {
    pub fn new() -> ModelBackend {
        ModelBackend::default()
    }

    /// The network the ops built so far (for `netlab graph`, `export`, lints).
    pub fn topology(&self) -> Ref<'_, Topology> {
        self.topology.borrow()
    }
}

/// A server that was never started: it sees nothing.
struct ModelServer {
    node: String,
    addr: SocketAddr,
}

impl ServerLog for ModelServer {
    fn node(&self) -> &str {
        &self.node
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn requests(&self) -> Vec<SeenRequest> {
        Vec::new()
    }
    fn queries(&self) -> Vec<(SocketAddr, String)> {
        Vec::new()
    }
}

impl Backend for ModelBackend {
    fn evaluates(&self) -> bool {
        false
    }

    fn apply(&self, op: &Op) -> Result<Applied> {
        let mut topology = self.topology.borrow_mut();
        let ipv6_on = match op {
            Op::AddAddr { node, link, cidr } if cidr.addr().is_ipv6() => Some((node, link)),
            Op::Advertise { node, link, .. } => Some((node, link)),
            _ => None,
        };
        if let Some((node, link)) = ipv6_on {
            // As the kernel backend does for addr() and advertise(): IPv6 on for the
            // link first (nodes keep it off on new links). A missing link is left to
            // the op's own error.
            if topology.links(node.as_str())?.iter().any(|l| l.name == link.as_str()) {
                let key = format!("net/ipv6/conf/{link}/disable_ipv6");
                topology.apply(&Op::SetSysctl { node: node.clone(), key, value: "0".into() })?;
            }
        }
        topology.apply(op)?;
        drop(topology);
        Ok(match op {
            Op::StartServer { node, server } => {
                Applied::Server(Rc::new(ModelServer { node: node.to_string(), addr: server.addr() }))
            }
            _ => Applied::Done,
        })
    }

    fn node_names(&self) -> Vec<NodeName> {
        self.topology().node_names()
    }

    fn require_node(&self, node: &str) -> Result<NodeName> {
        Ok(self.topology().node(node)?.name.clone())
    }

    /// Always settled: the model has no linkwatch to wait for.
    fn links(&self, node: &NodeName, _converged: Option<Option<&str>>) -> Result<Vec<LinkState>> {
        self.topology().links(node.as_str())
    }

    fn addresses(&self, node: &NodeName) -> Result<Vec<AddrState>> {
        self.topology().addresses(node.as_str())
    }

    fn routes(&self, node: &NodeName, table: u32) -> Result<Vec<RouteState>> {
        self.topology().routes_in(node.as_str(), table)
    }

    fn rules(&self, node: &NodeName) -> Result<Vec<crate::model::RuleState>> {
        self.topology().rules(node.as_str())
    }

    fn qdiscs(&self, node: &NodeName) -> Result<Vec<crate::model::QdiscState>> {
        self.topology().qdiscs(node.as_str())
    }

    fn throughput(
        &self,
        node: &NodeName,
        server: &NodeName,
        _dst: std::net::SocketAddr,
        _duration: Duration,
    ) -> Result<std::result::Result<crate::service::throughput::Throughput, CurlError>> {
        self.require_node(node.as_str())?;
        self.require_node(server.as_str())?;
        Ok(Err(CurlError::Other(NOT_EVALUATED.into())))
    }

    /// Neighbours are learned from traffic, and the model sends none: only those
    /// the lab added by hand.
    fn neighbours(&self, node: &NodeName) -> Result<Vec<Neighbour>> {
        Ok(self.topology().node(node.as_str())?.neighbours.clone())
    }

    /// A bridge learns its table from traffic, and the model sends none: empty,
    /// like the neighbour table.
    fn fdb(&self, node: &NodeName, bridge: &crate::names::LinkName) -> Result<Vec<crate::model::FdbEntry>> {
        self.topology().node(node.as_str())?.link(bridge)?;
        Ok(Vec::new())
    }

    fn bridge_vlans(&self, node: &NodeName) -> Result<Vec<crate::model::BridgeVlan>> {
        self.topology().bridge_vlans(node.as_str())
    }

    /// What the lab configured; no handshake, as the model sends no traffic.
    fn wireguard(&self, node: &NodeName, link: &crate::names::LinkName) -> Result<crate::model::WgState> {
        self.topology().wireguard(node.as_str(), link)
    }

    fn sysctl(&self, node: &NodeName, key: &str) -> Result<String> {
        self.topology().sysctl(node.as_str(), key)
    }

    fn file(&self, node: &NodeName, file: EtcFile) -> Result<Option<String>> {
        self.topology().file(node.as_str(), file)
    }

    fn hostname(&self, node: &NodeName) -> Result<String> {
        self.topology().hostname(node.as_str())
    }

    fn listening(&self, node: &NodeName) -> Result<Vec<Listening>> {
        self.topology().listening(node.as_str())
    }

    fn iptables_rules(&self, node: &NodeName, table: IptTable) -> Result<Vec<String>> {
        Ok(iptables_lines(&self.topology().node(node.as_str())?.firewall, table))
    }

    /// Only netlab's own bridge table would be there, and only the kernel shows it.
    fn nft_ruleset(&self, node: &NodeName) -> Result<String> {
        self.require_node(node.as_str())?;
        Ok(String::new())
    }

    fn ping(&self, node: &NodeName, _dst: IpAddr, _mode: PingMode, _opts: &PingOpts) -> Result<PingReport> {
        self.require_node(node.as_str())?;
        Ok(PingReport::default())
    }

    fn ping_many(
        &self,
        nodes: &[NodeName],
        dsts: &[IpAddr],
        _mode: PingMode,
        _interval: Duration,
    ) -> Result<(Vec<Vec<PingReport>>, usize)> {
        for node in nodes {
            self.require_node(node.as_str())?;
        }
        Ok((nodes.iter().map(|_| dsts.iter().map(|_| PingReport::default()).collect()).collect(), 0))
    }

    fn http_get(
        &self,
        node: &NodeName,
        _url: &str,
        _timeout: Duration,
    ) -> Result<std::result::Result<HttpReply, CurlError>> {
        self.require_node(node.as_str())?;
        Ok(Err(CurlError::Other(NOT_EVALUATED.into())))
    }

    fn tcp_connect(
        &self,
        node: &NodeName,
        _addr: std::net::SocketAddr,
        _timeout: Duration,
    ) -> Result<std::result::Result<Duration, CurlError>> {
        self.require_node(node.as_str())?;
        Ok(Err(CurlError::Other(NOT_EVALUATED.into())))
    }

    fn udp_exchange(
        &self,
        node: &NodeName,
        addr: std::net::SocketAddr,
        _timeout: Duration,
    ) -> Result<std::result::Result<Duration, crate::service::UdpError>> {
        self.require_node(node.as_str())?;
        Ok(Err(crate::service::UdpError::Other { addr, text: NOT_EVALUATED.into() }))
    }

    /// As a node without a nameserver: no one was asked.
    fn resolve(
        &self,
        node: &NodeName,
        name: &str,
        _timeout: Duration,
    ) -> Result<std::result::Result<Vec<IpAddr>, LookupError>> {
        self.require_node(node.as_str())?;
        Ok(Err(LookupError::NotFound { host: name.to_string(), tried: Vec::new() }))
    }

    fn clear_probe_leftovers(&self) -> Result<()> {
        Ok(())
    }

    /// Nothing runs: success with no output. The program is recorded in the node,
    /// and what its `ip`, `brctl` and `sysctl -w` commands change is applied (as
    /// apply does for an Op::Exec; see model::programs).
    fn exec(&self, node: &NodeName, command: &CommandLine, _timeout: Duration) -> Result<ExecOutput> {
        let command = command.shell.clone().unwrap_or_else(|| shell_words::join(&command.argv));
        self.apply(&Op::Exec { node: node.clone(), command })?;
        Ok(ExecOutput { code: Some(0), ..ExecOutput::default() })
    }

    /// Every feature is there: a plan (`plan`, `check`, `graph`, `export`) shows the
    /// lab as it runs on a kernel that has what it asks for, steps that
    /// `requires()` included; only `netlab run` asks the kernel.
    fn has_feature(&self, _feature: Feature) -> Result<bool> {
        Ok(true)
    }

    fn deadline(&self, seconds: f64) -> Duration {
        crate::backend::scaled_deadline(seconds, 1.0)
    }

    fn sleep(&self, _duration: Duration) {}
}

/// The node's IPv4 rules as `iptables -t TABLE -S` prints them: a policy line per
/// built-in chain, then the rules chain by chain in iptables' order, each chain's
/// in the order added. Made from the same restore input the kernel backend feeds
/// iptables-restore, so the lines are the ones iptables prints back.
pub fn iptables_lines(changes: &[FirewallChange], table: IptTable) -> Vec<String> {
    let builtin = table.builtin_chains();
    let mut policies: Vec<String> = builtin.iter().map(|_| "ACCEPT".to_string()).collect();
    let mut rules: Vec<(usize, String)> = Vec::new();
    let header = format!("*{}", table.name());
    for change in changes {
        let Some(text) = change.restore_input().v4 else { continue };
        let mut lines = text.lines();
        if lines.next() != Some(header.as_str()) {
            continue;
        }
        for line in lines.take_while(|l| *l != "COMMIT") {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(chain), Some(policy), _) if chain.starts_with(':') => {
                    if let Some(at) = builtin.iter().position(|c| *c == &chain[1..]) {
                        policies[at] = policy.to_string();
                    }
                }
                (Some("-A"), Some(chain), _) => {
                    let at = builtin.iter().position(|c| *c == chain).unwrap_or(builtin.len());
                    rules.push((at, line.to_string()));
                }
                _ => {}
            }
        }
    }
    rules.sort_by_key(|(at, _)| *at); // stable: each chain's rules stay in order
    let policy_lines = builtin.iter().zip(&policies).map(|(chain, policy)| format!("-P {chain} {policy}"));
    policy_lines.chain(rules.into_iter().map(|(_, line)| line)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::firewall::{FilterChain, ForwardAccept, Masquerade, Policy, PortForward, Proto};
    use crate::model::ServerSpec;
    use crate::names::LinkName;

    fn nn(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    fn model_with_node() -> ModelBackend {
        let m = ModelBackend::new();
        m.apply(&Op::AddNode { node: nn("c") }).unwrap();
        m
    }

    #[test]
    fn applies_ops_and_answers_from_the_topology() {
        let m = model_with_node();
        assert!(!m.evaluates());
        let (host, c) = (nn("host"), nn("c"));
        let veth = Op::AddVeth {
            node: host.clone(),
            name: LinkName::new("v0").unwrap(),
            peer_node: c.clone(),
            peer: LinkName::new("eth0").unwrap(),
        };
        m.apply(&veth).unwrap();
        assert!(m.apply(&veth).is_err(), "the kernel's checks apply");
        assert_eq!(m.node_names(), vec![host.clone(), c.clone()]);
        assert_eq!(m.links(&c, Some(None)).unwrap().len(), 2);
        assert_eq!(m.addresses(&host).unwrap().len(), 2, "lo's");
        assert!(m.routes(&c, 254).unwrap().is_empty());
        assert!(m.neighbours(&c).unwrap().is_empty());
        assert_eq!(m.sysctl(&c, "net.ipv4.ip_forward").unwrap(), "0");
        assert_eq!(m.hostname(&c).unwrap(), "netlab");
        assert!(m.file(&c, EtcFile::ResolvConf).unwrap().is_some());
        assert_eq!(m.nft_ruleset(&c).unwrap(), "");
        assert_eq!(m.topology().links("host").unwrap().len(), 2);
        let e = m.require_node("nope").unwrap_err();
        assert!(matches!(e, crate::Error::NoSuchNode { .. }), "{e:?}");
        assert!(m.links(&nn("nope"), None).is_err());
    }

    #[test]
    fn a_server_is_recorded_and_sees_nothing() {
        let m = model_with_node();
        let server = ServerSpec::Http { addr: "0.0.0.0:80".parse().unwrap(), body: "ok".into(), status: 200 };
        let Applied::Server(log) = m.apply(&Op::StartServer { node: nn("c"), server }).unwrap() else {
            panic!("a server op gives a server");
        };
        assert_eq!((log.node(), log.addr()), ("c", "0.0.0.0:80".parse().unwrap()));
        assert!(log.requests().is_empty() && log.queries().is_empty());
        let listening = m.listening(&nn("c")).unwrap();
        assert_eq!((listening[0].proto, listening[0].local.port()), ("tcp", 80));
        let exec = Op::Exec { node: nn("c"), command: "ip link".into() };
        assert!(matches!(m.apply(&exec).unwrap(), Applied::Done));
        assert_eq!(m.topology().node("c").unwrap().execs, vec!["ip link".to_string()]);
    }

    #[test]
    fn an_ipv6_address_turns_ipv6_on_as_the_kernel_backend_does() {
        let m = model_with_node();
        let link = crate::LinkName::new("x").unwrap();
        let peer = crate::LinkName::new("y").unwrap();
        m.apply(&Op::AddVeth { node: nn("c"), name: link.clone(), peer_node: nn("c"), peer }).unwrap();
        m.apply(&Op::AddAddr { node: nn("c"), link, cidr: "fd00::1/64".parse().unwrap() }).unwrap();
        assert_eq!(m.topology().sysctl("c", "net.ipv6.conf.x.disable_ipv6").unwrap(), "0");
        assert_eq!(m.topology().sysctl("c", "net.ipv6.conf.y.disable_ipv6").unwrap(), "1");
    }

    fn link_names(m: &ModelBackend, node: &str) -> Vec<String> {
        m.topology().node(node).unwrap().links.iter().map(|l| l.name.to_string()).collect()
    }

    #[test]
    fn an_exec_applies_what_its_ip_commands_change_leniently() {
        let m = model_with_node();
        let host = nn("host");
        let exec = |command: &str| m.apply(&Op::Exec { node: host.clone(), command: command.into() }).unwrap();
        // The second bridge is refused (it exists) and skipped; `;` runs on, `&&` does not.
        exec("ip link add br0 type bridge; ip link add br0 type bridge; ip link add v0 type veth peer name v1 netns c");
        exec("ip link add br0 type bridge && ip link add skipped type bridge || ip link set br0 up");
        assert_eq!(link_names(&m, "host"), ["lo", "br0", "v0"]);
        assert_eq!(link_names(&m, "c"), ["lo", "v1"]);
        assert!(m.topology().node("host").unwrap().links[1].admin_up, "|| ran after the failed add");
        // docker::run_ip's batch: ip stops at the first failure (the second line), -force does not.
        exec("printf '%s\\n' 'link set v0 master br0' 'link set nope up' 'link set v0 up' | ip -batch -");
        let v0 = m.topology().node("host").unwrap().links[2].clone();
        assert_eq!((v0.master, v0.admin_up), (Some(1000), false));
        exec("printf '%s\\n' 'link set nope up' 'link set v0 up' | ip -force -batch -");
        assert!(m.topology().node("host").unwrap().links[2].admin_up);
        // A rename needs the link down (EBUSY); the onlink route needs no subnet of the gateway's.
        exec("ip link set v0 name v00");
        assert_eq!(link_names(&m, "host"), ["lo", "br0", "v0"]);
        exec("ip -n c link set v1 name eth0 && ip netns exec c sh -c 'ip link set eth0 up && ip route add default via 192.168.30.1 dev eth0 onlink'");
        let routes = m.routes(&nn("c"), 254).unwrap();
        assert_eq!((routes.len(), routes[0].gateway), (1, Some("192.168.30.1".parse().unwrap())));
        exec("ip route add 10.0.0.0/8 via 192.168.30.1");
        assert_eq!(m.routes(&host, 254).unwrap().len(), 0, "no onlink: the gateway is on no subnet, refused");
        // Programs the model does not follow change nothing; the exec is recorded all the same.
        exec("ip addr show; mount -t tmpfs none /run/netns && iptables -S");
        assert_eq!(m.topology().node("host").unwrap().execs.len(), 8);
        assert!(m.apply(&Op::Exec { node: nn("nope"), command: "true".into() }).is_err());
    }

    #[test]
    fn a_plan_has_every_kernel_feature() {
        let m = ModelBackend::new();
        for feature in Feature::ALL {
            assert!(m.has_feature(feature).unwrap(), "{feature}");
        }
    }

    #[test]
    fn exec_runs_the_program_in_the_model() {
        let m = model_with_node();
        let line = CommandLine::parse("ip netns add jh_ns; ip link add veth00 type veth peer name veth01").unwrap();
        let out = m.exec(&nn("host"), &line, Duration::from_secs(1)).unwrap();
        assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
        assert_eq!(m.node_names(), [nn("host"), nn("c"), nn("jh_ns")]);
        assert_eq!(link_names(&m, "host"), ["lo", "veth01", "veth00"]);
        let line = CommandLine::parse("ip link set veth01 netns 'jh_ns'").unwrap();
        m.exec(&nn("host"), &line, Duration::from_secs(1)).unwrap();
        assert_eq!(link_names(&m, "jh_ns"), ["lo", "veth01"]);
        assert_eq!(m.topology().node("host").unwrap().execs.len(), 2);
        assert!(m.exec(&nn("nope"), &line, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn probes_answer_as_if_nothing_answered() {
        let m = model_with_node();
        let c = nn("c");
        let dst: IpAddr = "10.0.0.1".parse().unwrap();
        let mode = PingMode::UntilReply { timeout: Duration::from_secs(1) };
        let report = m.ping(&c, dst, mode, &PingOpts::default()).unwrap();
        assert_eq!((report.sent, report.received), (0, 0));
        let (reports, flushes) =
            m.ping_many(&[c.clone(), nn("host")], &[dst], mode, Duration::from_millis(10)).unwrap();
        assert_eq!((reports.len(), reports[0].len(), flushes), (2, 1, 0));
        assert!(m.ping_many(&[nn("nope")], &[dst], mode, Duration::from_millis(10)).is_err());
        let reply = m.http_get(&c, "http://10.0.0.1/", Duration::from_secs(1)).unwrap();
        assert_eq!(reply.unwrap_err().to_string(), NOT_EVALUATED);
        assert!(m.resolve(&c, "example.com", Duration::from_secs(1)).unwrap().is_err());
        let out = m.exec(&c, &CommandLine::parse("ip link").unwrap(), Duration::from_secs(1)).unwrap();
        assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (Some(0), "", ""));
        m.clear_probe_leftovers().unwrap();
        assert_eq!(m.deadline(2.5), Duration::from_millis(2500));
        m.sleep(Duration::from_secs(3600)); // returns at once
    }

    #[test]
    fn iptables_rules_print_like_iptables_s() {
        let m = model_with_node();
        let c = nn("c");
        let br = || Some(LinkName::new("docker0").unwrap());
        let changes = [
            FirewallChange::ChainPolicy(FilterChain::Forward, Policy::Drop),
            FirewallChange::Masquerade(Masquerade {
                source: "172.17.0.0/16".parse().unwrap(),
                out: None,
                not_out: br(),
            }),
            FirewallChange::ForwardAccept(ForwardAccept { in_link: br(), out_link: br(), ..Default::default() }),
            FirewallChange::PortForward(PortForward {
                proto: Proto::Tcp,
                port: 8080,
                to: "172.17.0.2:80".parse().unwrap(),
                in_link: None,
                local: true,
            }),
            FirewallChange::Masquerade(Masquerade { source: "fd00::/64".parse().unwrap(), out: None, not_out: None }),
        ];
        for change in changes {
            m.apply(&Op::Firewall { node: c.clone(), change }).unwrap();
        }
        assert_eq!(
            m.iptables_rules(&c, IptTable::Nat).unwrap(),
            [
                "-P PREROUTING ACCEPT",
                "-P INPUT ACCEPT",
                "-P OUTPUT ACCEPT",
                "-P POSTROUTING ACCEPT",
                "-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
                "-A OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
                "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
            ]
        );
        assert_eq!(
            m.iptables_rules(&c, IptTable::Filter).unwrap(),
            ["-P INPUT ACCEPT", "-P FORWARD DROP", "-P OUTPUT ACCEPT", "-A FORWARD -i docker0 -o docker0 -j ACCEPT"]
        );
        assert_eq!(m.iptables_rules(&nn("host"), IptTable::Filter).unwrap().len(), 3);
    }
}
