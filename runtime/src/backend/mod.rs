//! The seam between a lab and what it runs on. The bindings build ops, queries and
//! probes; a backend answers them: the kernel one (`kernel::Lab`) over netlink
//! inside the sandbox, the model one (`model::ModelBackend`) in memory, with no
//! root and no kernel, for `netlab plan`, `check`, `graph` and `export`.

pub mod kernel;
pub mod model;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use crate::backend::kernel::exec::{CommandLine, ExecOutput};
use crate::backend::kernel::sockets::Listening;
use crate::error::Result;
use crate::model::{AddrState, EtcFile, Feature, LinkState, Neighbour, Op, RouteState};
use crate::names::NodeName;
use crate::ping::{PingMode, PingOpts, PingReport};
use crate::render::iptables::IptTable;
use crate::service::{CurlError, HttpReply, LookupError};

/// What one request to a built-in HTTP server looked like.
pub use crate::service::http::SeenRequest;

/// A built-in server as a lab sees it: what it was asked.
pub trait ServerLog {
    fn node(&self) -> &str;
    fn addr(&self) -> SocketAddr;
    /// HTTP requests (empty for a DNS server).
    fn requests(&self) -> Vec<SeenRequest>;
    /// DNS queries: the client and the name (empty for an HTTP server).
    fn queries(&self) -> Vec<(SocketAddr, String)>;
    /// Datagrams a UDP echo server echoed: who sent each (empty for the others).
    fn datagrams(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
}

/// What applying an op gave back.
pub enum Applied {
    Done,
    Server(Rc<dyn ServerLog>),
}

pub trait Backend {
    /// Whether probes and checks run for real (the kernel) or are only recorded (the model).
    fn evaluates(&self) -> bool;

    /// Applies one change. The backend does its own bookkeeping (what a readiness
    /// wait must look at); no caller has to remember.
    fn apply(&self, op: &Op) -> Result<Applied>;

    /// Like apply; `origin` labels the op in `Error::Held` should it fail later,
    /// when a backend that merges ops (the kernel one) finally applies it.
    fn apply_at(&self, op: &Op, origin: (u16, u16)) -> Result<Applied> {
        let _ = origin;
        self.apply(op)
    }

    /// Applies whatever the backend held back to merge (nothing for most).
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// The names of the lab's nodes (the host first).
    fn node_names(&self) -> Vec<NodeName>;
    /// An error unless the node exists.
    fn require_node(&self, node: &str) -> Result<NodeName>;

    /// The node's links once the network has settled; with `converged`, also once
    /// the operstate of those asked about (`only`, or all) agrees with the carrier.
    fn links(&self, node: &NodeName, converged: Option<Option<&str>>) -> Result<Vec<LinkState>>;
    fn addresses(&self, node: &NodeName) -> Result<Vec<AddrState>>;
    /// One routing table (`ip route show table T`; the main one is 254).
    fn routes(&self, node: &NodeName, table: u32) -> Result<Vec<RouteState>>;
    /// The policy routing rules (`ip rule`, then `ip -6 rule`).
    fn rules(&self, node: &NodeName) -> Result<Vec<crate::model::RuleState>>;
    fn neighbours(&self, node: &NodeName) -> Result<Vec<Neighbour>>;
    /// `bridge fdb show br BRIDGE`.
    fn fdb(&self, node: &NodeName, bridge: &crate::names::LinkName) -> Result<Vec<crate::model::FdbEntry>>;
    /// `bridge vlan show`: the node's bridges' and bridge ports' VLANs.
    fn bridge_vlans(&self, node: &NodeName) -> Result<Vec<crate::model::BridgeVlan>>;
    /// `wg show LINK`.
    fn wireguard(&self, node: &NodeName, link: &crate::names::LinkName) -> Result<crate::model::WgState>;
    fn sysctl(&self, node: &NodeName, key: &str) -> Result<String>;
    fn file(&self, node: &NodeName, file: EtcFile) -> Result<Option<String>>;
    fn hostname(&self, node: &NodeName) -> Result<String>;
    fn listening(&self, node: &NodeName) -> Result<Vec<Listening>>;
    fn iptables_rules(&self, node: &NodeName, table: IptTable) -> Result<Vec<String>>;
    fn nft_ruleset(&self, node: &NodeName) -> Result<String>;
    /// `tc qdisc show`: the qdiscs configured in the node (the kernel's defaults,
    /// with handle 0, left out).
    fn qdiscs(&self, node: &NodeName) -> Result<Vec<crate::model::QdiscState>>;

    fn ping(&self, node: &NodeName, dst: IpAddr, mode: PingMode, opts: &PingOpts) -> Result<PingReport>;
    /// Pings from many nodes at once, each node its destinations one after the other;
    /// per node a report per destination (in the order given), and how often the
    /// neighbour tables were flushed.
    fn ping_many(
        &self,
        nodes: &[NodeName],
        dsts: &[IpAddr],
        mode: PingMode,
        interval: Duration,
    ) -> Result<(Vec<Vec<PingReport>>, usize)>;
    fn http_get(
        &self,
        node: &NodeName,
        url: &str,
        timeout: Duration,
    ) -> Result<std::result::Result<HttpReply, CurlError>>;
    /// `nc -z IP PORT` from the node: the TCP handshake's time, or why there was none.
    fn tcp_connect(
        &self,
        node: &NodeName,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::result::Result<Duration, CurlError>>;
    /// A datagram to a UDP echo server and its echo back: the time it took, or why
    /// none came (`echo x | nc -u IP PORT`).
    fn udp_exchange(
        &self,
        node: &NodeName,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::result::Result<Duration, crate::service::UdpError>>;
    fn resolve(
        &self,
        node: &NodeName,
        name: &str,
        timeout: Duration,
    ) -> Result<std::result::Result<Vec<IpAddr>, LookupError>>;
    /// TCP from `node` to `dst` for `duration`, received by netlab's sink started in
    /// `server` (listening on dst's port) for the measurement and stopped after it.
    fn throughput(
        &self,
        node: &NodeName,
        server: &NodeName,
        dst: SocketAddr,
        duration: Duration,
    ) -> Result<std::result::Result<crate::service::throughput::Throughput, CurlError>>;
    /// Before a negative probe: no leftovers of earlier unanswered probes.
    fn clear_probe_leftovers(&self) -> Result<()>;
    /// Runs a real program in the node.
    fn exec(&self, node: &NodeName, command: &CommandLine, timeout: Duration) -> Result<ExecOutput>;

    /// Whether the kernel has `feature` (`requires()`, `has()`): Ok(false) when it
    /// lacks it, an error when that cannot be told.
    fn has_feature(&self, feature: Feature) -> Result<bool>;

    /// A deadline of `seconds`, scaled for slow machines.
    fn deadline(&self, seconds: f64) -> Duration;
    fn sleep(&self, duration: Duration);
}

/// The longest wait anything in the lab is given (a century): the bindings and the
/// CLI refuse options that would come near it; this bound keeps the arithmetic on
/// deadlines (`Instant + Duration`) from overflowing whatever comes in.
pub const LONGEST_DEADLINE: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `seconds` × `factor` as a Duration, saturating at LONGEST_DEADLINE (and zero for
/// a negative or NaN product) instead of panicking like `Duration::from_secs_f64`.
pub fn scaled_deadline(seconds: f64, factor: f64) -> Duration {
    let product = seconds * factor;
    if product.is_nan() || product <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(product).unwrap_or(LONGEST_DEADLINE).min(LONGEST_DEADLINE)
}

#[cfg(test)]
mod deadline_tests {
    use super::*;

    #[test]
    fn deadlines_saturate_instead_of_panicking() {
        assert_eq!(scaled_deadline(2.5, 2.0), Duration::from_secs(5));
        assert_eq!(scaled_deadline(1e20, 1e300), LONGEST_DEADLINE);
        assert_eq!(scaled_deadline(f64::INFINITY, 1.0), LONGEST_DEADLINE);
        assert_eq!(scaled_deadline(f64::NAN, 1.0), Duration::ZERO);
        assert_eq!(scaled_deadline(-1.0, 1.0), Duration::ZERO);
        let _ = std::time::Instant::now() + scaled_deadline(f64::MAX, f64::MAX);
    }
}
