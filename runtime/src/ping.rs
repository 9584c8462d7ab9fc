//! In-process ping: an unprivileged ICMP datagram socket created inside the node
//! (no `ping` binary, no process per probe). The kernel picks the echo id and
//! fills the checksum; we match replies by sequence number and a per-probe token.
//! With IP_RECVERR the ICMP errors that come back (and the kernel's own
//! "Destination Host Unreachable" when ARP fails) are read from the socket's error
//! queue, so a probe says how it failed, as `ping` prints it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::outcome::Reason;

/// How long a probe runs and what ends it.
#[derive(Debug, Clone, Copy)]
pub enum PingMode {
    /// Send every `interval` until the first reply or until `timeout` has passed.
    UntilReply { timeout: Duration },
    /// Send every `interval` for the whole window and count replies.
    Watch { window: Duration },
}

#[derive(Debug, Clone, Default)]
pub struct PingReport {
    pub sent: u32,
    pub received: u32,
    /// Time from the first request to the first reply.
    pub first_reply: Option<Duration>,
    /// Distinct reasons the kernel gave for undelivered requests (on send, or as
    /// ICMP errors on the socket's error queue); empty when it said nothing.
    pub reasons: Vec<Reason>,
    pub elapsed: Duration,
    /// The machine's neighbour table refused entries while this probe ran
    /// ("neighbour table overflow"), so packets were dropped for that reason.
    pub neigh_table_full: bool,
}

/// How often a watch asks whether anything can still arrive.
const QUIET_CHECK_EVERY: Duration = Duration::from_millis(10);

/// Creates the socket; call it from inside the node's namespace.
pub fn icmp_socket(dst: IpAddr) -> io::Result<Socket> {
    let sock = match dst {
        IpAddr::V4(_) => Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))?,
        IpAddr::V6(_) => Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::ICMPV6))?,
    };
    sock.set_nonblocking(true)?;
    match dst {
        IpAddr::V4(_) => setsockopt(&sock, sockopt::Ipv4RecvErr, &true),
        IpAddr::V6(_) => setsockopt(&sock, sockopt::Ipv6RecvErr, &true),
    }
    .map_err(io::Error::from)?;
    Ok(sock)
}

impl PingReport {
    fn note(&mut self, reason: Reason) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// Reads every queued ICMP error off the socket's error queue.
fn drain_errors(sock: &Socket, v6: bool, report: &mut PingReport) {
    loop {
        let mut data = [0u8; 64];
        let mut iov = [io::IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(msg) = recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) else {
            return;
        };
        let Ok(cmsgs) = msg.cmsgs() else { return };
        for c in cmsgs {
            let (err, from) = match c {
                ControlMessageOwned::Ipv4RecvErr(e, from) => {
                    (e, from.map(|a| IpAddr::from(std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))))
                }
                ControlMessageOwned::Ipv6RecvErr(e, from) => {
                    (e, from.map(|a| IpAddr::from(std::net::Ipv6Addr::from(a.sin6_addr.s6_addr))))
                }
                _ => continue,
            };
            let reason = match err.ee_origin {
                libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6 => {
                    Reason::from_icmp(v6, err.ee_type, err.ee_code, from)
                }
                _ => Reason::from_errno(
                    err.ee_errno as i32,
                    &io::Error::from_raw_os_error(err.ee_errno as i32).to_string(),
                ),
            };
            report.note(reason);
        }
    }
}

fn echo_request(v6: bool, seq: u16, token: u64) -> [u8; 16] {
    let mut pkt = [0u8; 16];
    pkt[0] = if v6 { 128 } else { 8 };
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(&token.to_be_bytes());
    pkt
}

/// Returns the sequence number if `buf` is an echo reply carrying `token`.
fn parse_reply(v6: bool, buf: &[u8], token: u64) -> Option<u16> {
    if buf.len() < 16 || buf[0] != if v6 { 129 } else { 0 } {
        return None;
    }
    if buf[8..16] != token.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([buf[6], buf[7]]))
}

pub async fn ping(sock: Socket, dst: IpAddr, mode: PingMode, interval: Duration) -> io::Result<PingReport> {
    ping_until_quiet(sock, dst, mode, interval, None::<(Duration, fn() -> std::future::Ready<bool>)>).await
}

/// Like `ping`; a watch also ends, after `quiet.0` has passed, once `quiet.1` says
/// nothing can still arrive (asked every 10 ms).
pub async fn ping_until_quiet<Q, F>(
    sock: Socket,
    dst: IpAddr,
    mode: PingMode,
    interval: Duration,
    mut quiet: Option<(Duration, Q)>,
) -> io::Result<PingReport>
where
    Q: FnMut() -> F,
    F: std::future::Future<Output = bool>,
{
    let v6 = dst.is_ipv6();
    let target = SockAddr::from(SocketAddr::new(dst, 0));
    // SAFETY: we own the socket and it stays open as long as the AsyncFd holds it.
    let fd = unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?;
    let token = token();
    let start = Instant::now();
    let (end, stop_at_first) = match mode {
        PingMode::UntilReply { timeout } => (start + timeout, true),
        PingMode::Watch { window } => (start + window, false),
    };
    let mut report = PingReport::default();
    let mut next_send = start;
    let mut next_quiet_check = start;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 512];
    loop {
        let now = Instant::now();
        if now >= next_send && now < end {
            let seq = report.sent as u16;
            match fd.get_ref().send_to(&echo_request(v6, seq, token), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    report.note(Reason::from_errno(e.raw_os_error().unwrap_or(0), &strip_os_error(&e)));
                    // No route: the kernel refuses at once, and nothing in the paused lab
                    // can change that during a window, so a watch can end here.
                    if !stop_at_first && e.raw_os_error() == Some(libc::ENETUNREACH) {
                        report.sent += 1;
                        break;
                    }
                }
            }
            report.sent += 1;
            next_send += interval;
        }
        let wake = next_send.min(end);
        let ready = tokio::time::timeout_at(wake.into(), fd.ready(Interest::READABLE | Interest::ERROR)).await;
        if let Ok(guard) = ready {
            let mut guard = guard?;
            drain_errors(guard.get_inner(), v6, &mut report);
            loop {
                match guard.get_inner().recv(&mut buf) {
                    Ok(n) => {
                        // SAFETY: recv initialised the first n bytes.
                        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, n) };
                        if parse_reply(v6, bytes, token).is_some() {
                            report.received += 1;
                            report.first_reply.get_or_insert(start.elapsed());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    // The pending socket error of an ICMP error already read off the
                    // error queue above (or one that raced in: read it now).
                    Err(_) => drain_errors(guard.get_inner(), v6, &mut report),
                }
            }
        }
        if (stop_at_first && report.received > 0) || Instant::now() >= end {
            break;
        }
        // A watch can also end at the first ICMP error that says where the path ends:
        // a router without a route, a whole neighbour resolution that failed (the
        // kernel reports that only after its last ARP/ND probe), a reject rule. Nothing
        // in the paused lab can change those while the window runs.
        let definitive = |r: &Reason| {
            matches!(r, Reason::NetUnreachable { .. } | Reason::HostUnreachable { .. } | Reason::Prohibited { .. })
        };
        if !stop_at_first && report.received == 0 && report.reasons.iter().any(definitive) {
            break;
        }
        if let Some((after, is_quiet)) = quiet.as_mut() {
            let now = Instant::now();
            if !stop_at_first && now >= start + *after && now >= next_quiet_check {
                if is_quiet().await {
                    break;
                }
                next_quiet_check = now + QUIET_CHECK_EVERY;
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// "Network is unreachable (os error 101)" -> "Network is unreachable", as ping prints it.
fn strip_os_error(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn token() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_roundtrip_format() {
        let req = echo_request(false, 7, 42);
        assert_eq!(req[0], 8);
        let mut reply = req;
        reply[0] = 0;
        assert_eq!(parse_reply(false, &reply, 42), Some(7));
        assert_eq!(parse_reply(false, &reply, 43), None);
        assert_eq!(parse_reply(true, &reply, 42), None);
    }
}
