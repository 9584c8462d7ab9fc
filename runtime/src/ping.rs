//! In-process ping: an unprivileged ICMP datagram socket created inside the node
//! (no `ping` binary, no process per probe). The kernel picks the echo id and
//! fills the checksum; we match replies by sequence number and a per-probe token.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;

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
    /// Distinct errors the kernel returned on send ("Network is unreachable").
    pub errors: Vec<String>,
    pub elapsed: Duration,
    /// The machine's neighbour table refused entries while this probe ran
    /// ("neighbour table overflow"), so packets were dropped for that reason.
    pub neigh_table_full: bool,
}

/// Creates the socket; call it from inside the node's namespace.
pub fn icmp_socket(dst: IpAddr) -> io::Result<Socket> {
    let sock = match dst {
        IpAddr::V4(_) => Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))?,
        IpAddr::V6(_) => Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::ICMPV6))?,
    };
    sock.set_nonblocking(true)?;
    Ok(sock)
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
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 512];
    loop {
        let now = Instant::now();
        if now >= next_send && now < end {
            let seq = report.sent as u16;
            match fd.get_ref().send_to(&echo_request(v6, seq, token), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let text = strip_os_error(&e);
                    if !report.errors.contains(&text) {
                        report.errors.push(text);
                    }
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
        let readable = tokio::time::timeout_at(wake.into(), fd.readable()).await;
        if let Ok(guard) = readable {
            let mut guard = guard?;
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
                    Err(e) => {
                        // ICMP errors queued on the socket (e.g. host unreachable).
                        let text = strip_os_error(&e);
                        if !report.errors.contains(&text) {
                            report.errors.push(text);
                        }
                    }
                }
            }
        }
        if (stop_at_first && report.received > 0) || Instant::now() >= end {
            break;
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
