//! Built-in servers in nodes (HTTP, DNS), curl-like and resolver probes made from
//! inside a node, and the node's listening sockets (what `ss -tulpn` shows).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use super::Lab;
use crate::backend::kernel::node::Node;
use crate::error::{Error, Result};
use crate::service::{
    self, CurlError, DnsServer, HttpReply, HttpServer, LookupError, NodeResolver, UdpEchoServer, UdpError,
};

pub enum ServerKind {
    Http(HttpServer),
    Dns(DnsServer),
    UdpEcho(UdpEchoServer),
}

/// A server the lab started; it runs until the lab ends.
pub struct Server {
    pub node: String,
    pub addr: SocketAddr,
    pub kind: ServerKind,
}

pub use crate::backend::kernel::sockets::Listening;

/// A socket bound the way servers like nginx bind theirs: a TCP one with
/// SO_REUSEADDR (for UDP it would let two servers share a port), and an IPv6 one only
/// for IPv6 (IPV6_V6ONLY), so `[::]:80` and `0.0.0.0:80` can both be bound, as
/// `ss -tuln` shows for nginx's two `listen` lines.
fn bound_socket(addr: SocketAddr, kind: socket2::Type) -> std::io::Result<socket2::Socket> {
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), kind, None)?;
    if kind == socket2::Type::STREAM {
        sock.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock)
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = bound_socket(addr, socket2::Type::STREAM)?;
    sock.listen(1024)?;
    Ok(sock.into())
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    Ok(bound_socket(addr, socket2::Type::DGRAM)?.into())
}

impl Lab {
    fn bind_error(node: &Node, what: &str, addr: SocketAddr, e: std::io::Error) -> Error {
        let mut err = Error::kernel("binding", node.name.as_str(), format!("{what} on {addr}"), e);
        if let Error::Kernel { source, help, .. } = &mut err {
            match source.raw_os_error() {
                Some(libc::EADDRNOTAVAIL) => {
                    *help = Some(format!("{} has no address {}: add it with addr() first", node.name, addr.ip()))
                }
                Some(libc::EADDRINUSE) => *help = Some(format!("something in {} already listens on {addr}", node.name)),
                _ => {}
            }
        }
        err
    }

    /// An HTTP server in `node` answering every request with `status` and `body`.
    pub fn start_http_server(&self, node: &Node, addr: SocketAddr, body: &str, status: u16) -> Result<Rc<Server>> {
        let listener = node
            .enter(&self.home, || tcp_listener(addr))?
            .map_err(|e| Self::bind_error(node, "HTTP server", addr, e))?;
        let http =
            self.rt.block_on(async { service::start_http(listener, body.to_string(), status) }).map_err(|e| {
                Error::io(format!("starting an HTTP server in {}", node.name), std::io::Error::other(e.to_string()))
            })?;
        let server = Rc::new(Server { node: node.name.to_string(), addr, kind: ServerKind::Http(http) });
        self.servers.borrow_mut().push(server.clone());
        Ok(server)
    }

    /// A DNS server in `node` answering A/AAAA queries for `records`, NXDOMAIN else.
    pub fn start_dns_server(
        &self,
        node: &Node,
        addr: SocketAddr,
        records: Vec<(String, IpAddr)>,
    ) -> Result<Rc<Server>> {
        let socket =
            node.enter(&self.home, || udp_socket(addr))?.map_err(|e| Self::bind_error(node, "DNS server", addr, e))?;
        let dns = self.rt.block_on(async { service::start_dns(socket, records) }).map_err(|e| {
            Error::io(format!("starting a DNS server in {}", node.name), std::io::Error::other(e.to_string()))
        })?;
        let server = Rc::new(Server { node: node.name.to_string(), addr, kind: ServerKind::Dns(dns) });
        self.servers.borrow_mut().push(server.clone());
        Ok(server)
    }

    /// A UDP echo server in `node`: every datagram goes back to its sender.
    pub fn start_udp_echo_server(&self, node: &Node, addr: SocketAddr) -> Result<Rc<Server>> {
        let socket = node
            .enter(&self.home, || udp_socket(addr))?
            .map_err(|e| Self::bind_error(node, "UDP echo server", addr, e))?;
        let echo = self.rt.block_on(async { service::start_udp_echo(socket) }).map_err(|e| {
            Error::io(format!("starting a UDP echo server in {}", node.name), std::io::Error::other(e.to_string()))
        })?;
        let server = Rc::new(Server { node: node.name.to_string(), addr, kind: ServerKind::UdpEcho(echo) });
        self.servers.borrow_mut().push(server.clone());
        Ok(server)
    }

    fn resolver(&self, node: &Node) -> NodeResolver {
        NodeResolver::from_files(
            self.node_file(node, "resolv.conf").as_deref(),
            self.node_file(node, "hosts").as_deref(),
        )
    }

    /// Runs `probe` on a thread inside the node's network namespace, while this
    /// thread keeps the lab's own servers running.
    fn probe_in<T: Send + 'static, F>(&self, node: &Node, probe: F) -> Result<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        self.settle()?;
        let ns = node.ns()?.try_clone().map_err(|e| Error::io("duplicating a namespace handle", e))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let run = || -> std::io::Result<T> {
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)?;
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                Ok(rt.block_on(probe))
            };
            let _ = tx.send(run());
        });
        match self.rt.block_on(crate::interrupt::unless_interrupted(rx))? {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Error::io(format!("probing from {}", node.name), e)),
            Err(_) => {
                Err(Error::io(format!("probing from {}", node.name), std::io::Error::other("the probe thread died")))
            }
        }
    }

    /// `curl URL` from inside the node, resolving names through the node's own
    /// resolv.conf and hosts.
    pub fn http_get(
        &self,
        node: &Node,
        url: &str,
        timeout: Duration,
    ) -> Result<std::result::Result<HttpReply, CurlError>> {
        let resolver = self.resolver(node);
        let url = url.to_string();
        let reply = self.probe_in(node, async move { service::http_get(&url, resolver, timeout).await })?;
        if reply.is_err() {
            self.note_unanswered();
        }
        Ok(reply)
    }

    /// `nc -z IP PORT` from inside the node.
    pub fn tcp_connect(
        &self,
        node: &Node,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::result::Result<Duration, CurlError>> {
        let done = self.probe_in(node, async move { service::curl::tcp_connect(addr, timeout).await })?;
        if done.is_err() {
            self.note_unanswered();
        }
        Ok(done)
    }

    /// A datagram from inside the node to a UDP echo server, and its echo.
    pub fn udp_exchange(
        &self,
        node: &Node,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<std::result::Result<Duration, UdpError>> {
        let done = self.probe_in(node, async move { service::udp_exchange(addr, timeout).await })?;
        if done.is_err() {
            self.note_unanswered();
        }
        Ok(done)
    }

    /// TCP from `from` to `dst` for `duration`, counted by netlab's sink, bound in
    /// `server` on dst's port (all of its addresses) for this measurement only.
    pub fn throughput(
        &self,
        from: &Node,
        server: &Node,
        dst: SocketAddr,
        duration: Duration,
    ) -> Result<std::result::Result<service::throughput::Throughput, CurlError>> {
        let any: IpAddr =
            if dst.is_ipv6() { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
        let sink = SocketAddr::new(any, dst.port());
        let listener = server
            .enter(&self.home, || tcp_listener(sink))?
            .map_err(|e| Self::bind_error(server, "netlab's TCP sink", sink, e))?;
        let timeout = self.deadline(3.0);
        let done =
            self.probe_in(from, async move { service::throughput::measure(listener, dst, duration, timeout).await })?;
        if done.is_err() {
            self.note_unanswered();
        }
        Ok(done)
    }

    /// Looks a name up as the node's programs would.
    pub fn resolve(
        &self,
        node: &Node,
        name: &str,
        timeout: Duration,
    ) -> Result<std::result::Result<Vec<IpAddr>, LookupError>> {
        let resolver = self.resolver(node).with_query_timeout(timeout);
        let name = name.to_string();
        let found = self.probe_in(node, async move { resolver.lookup(&name).await })?;
        if found.is_err() {
            self.note_unanswered();
        }
        Ok(found)
    }

    /// Listening TCP sockets and bound UDP sockets of the node (sock_diag, as `ss`).
    pub fn listening(&self, node: &Node) -> Result<Vec<Listening>> {
        node.enter(&self.home, crate::backend::kernel::sockets::listening)?
            .map_err(|e| Error::io(format!("reading the sockets of {}", node.name), e))
    }
}
