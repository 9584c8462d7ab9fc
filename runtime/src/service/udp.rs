//! A UDP echo server (RFC 862, as `socat UDP-RECVFROM:7,fork EXEC:cat` or inetd's
//! echo) and the probe that uses it: a datagram sent from a node comes back when the
//! way there and back is open. UDP has no handshake, so only the echo proves that
//! the datagram arrived; "Connection refused" is the ICMP port unreachable the
//! kernel at the other end sends when nothing is bound to the port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::ServiceError;
use crate::outcome::Reason;

pub struct UdpEchoServer {
    local_addr: SocketAddr,
    seen: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl UdpEchoServer {
    /// Who sent each datagram echoed so far, oldest first.
    pub fn senders(&self) -> Vec<SocketAddr> {
        super::lock(&self.seen).clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for UdpEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts echoing every datagram on `socket` (bound by the caller inside the node)
/// back to its sender.
pub fn start_udp_echo(socket: std::net::UdpSocket) -> Result<UdpEchoServer, ServiceError> {
    let handle = super::runtime()?;
    socket.set_nonblocking(true).map_err(ServiceError::io("UDP echo socket: set nonblocking"))?;
    let local_addr = socket.local_addr().map_err(ServiceError::io("UDP echo socket: local address"))?;
    let socket =
        tokio::net::UdpSocket::from_std(socket).map_err(ServiceError::io("UDP echo socket: register with tokio"))?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let task = handle.spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
            super::lock(&log).push(from);
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    Ok(UdpEchoServer { local_addr, seen, task })
}

/// Why no echo came back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UdpError {
    /// ICMP port unreachable: the host is there, nothing is bound to the port.
    #[error("{addr}/udp: Connection refused (ICMP port unreachable)")]
    Refused { addr: SocketAddr },
    /// The kernel's or a router's answer: no route, no neighbour, a reject rule.
    #[error("{addr}/udp: {reason}")]
    Unreachable { addr: SocketAddr, reason: Reason },
    #[error("no echo from {addr}/udp in {:.1} s", after.as_secs_f64())]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("{addr}/udp: {text}")]
    Other { addr: SocketAddr, text: String },
}

impl UdpError {
    /// As the `error` option of a negative check reads them.
    pub fn reasons(&self) -> Vec<Reason> {
        match self {
            UdpError::Refused { .. } => vec![Reason::Refused],
            UdpError::Unreachable { reason, .. } => vec![reason.clone()],
            UdpError::Timeout { .. } => vec![Reason::Silence],
            UdpError::Other { text, .. } => vec![Reason::Other(text.clone())],
        }
    }
}

/// Sends a datagram to `addr` every 100 ms (UDP may lose one while a link settles)
/// until its echo comes back: the time to the first echo, or why none came before
/// `timeout`. Run it on a thread inside the node's namespace.
pub async fn udp_exchange(addr: SocketAddr, timeout: Duration) -> Result<Duration, UdpError> {
    let other = |e: std::io::Error| UdpError::Other { addr, text: strip(&e) };
    let local: SocketAddr = if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("a wildcard address");
    let sock = tokio::net::UdpSocket::bind(local).await.map_err(other)?;
    // Connected: the kernel then reports ICMP errors for this peer on the socket.
    sock.connect(addr).await.map_err(|e| refusal(addr, &e).unwrap_or_else(|| other(e)))?;
    let token: [u8; 16] = std::array::from_fn(|i| (std::process::id() as u8).wrapping_add(i as u8) ^ 0x5a);
    let start = Instant::now();
    let end = start + timeout;
    let mut buf = [0u8; 64];
    loop {
        match sock.send(&token).await {
            Ok(_) => {}
            Err(e) => match refusal(addr, &e) {
                Some(err) => return Err(err),
                None => return Err(other(e)),
            },
        }
        let wait = (Instant::now() + Duration::from_millis(100)).min(end);
        match tokio::time::timeout_at(wait.into(), sock.recv(&mut buf)).await {
            Ok(Ok(n)) if buf[..n] == token => return Ok(start.elapsed()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if let Some(err) = refusal(addr, &e) {
                    return Err(err);
                }
                return Err(other(e));
            }
            Err(_) if Instant::now() >= end => return Err(UdpError::Timeout { addr, after: timeout }),
            Err(_) => {}
        }
    }
}

/// The kernel's errors on a connected UDP socket: the ICMP errors that came back.
fn refusal(addr: SocketAddr, e: &std::io::Error) -> Option<UdpError> {
    let unreachable = |reason| Some(UdpError::Unreachable { addr, reason });
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Some(UdpError::Refused { addr }),
        std::io::ErrorKind::NetworkUnreachable => unreachable(Reason::NetUnreachable { from: None }),
        std::io::ErrorKind::HostUnreachable => unreachable(Reason::HostUnreachable { from: None }),
        std::io::ErrorKind::PermissionDenied => unreachable(Reason::Prohibited { from: None }),
        _ => None,
    }
}

/// "Connection refused (os error 111)" -> "Connection refused".
fn strip(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_string()
}
