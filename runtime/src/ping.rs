//! In-process ping: a raw ICMP socket created inside the node (no `ping` binary, no
//! process per probe). netlab is root of the sandbox's user namespace, which owns
//! every node's network namespace, so it holds CAP_NET_RAW there, as `ping` run by
//! root does; no node needs `net.ipv4.ping_group_range` opened for it. A raw socket
//! sees every echo reply of its node: ours are told apart by a per-probe token in
//! the payload, and the socket is filtered to echo replies (ICMP_FILTER,
//! ICMP6_FILTER). With IP_RECVERR the ICMP errors that come back (and the kernel's
//! own "Destination Host Unreachable" when ARP fails) are read from the socket's
//! error queue, each carrying the request it is about, so a probe says how it
//! failed, as `ping` prints it, and never takes another probe's error.

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
    /// One hop of a traceroute: send every `interval` until the first reply or the
    /// first ICMP error (time exceeded, unreachable, ...), or until `timeout`.
    FirstAnswer { timeout: Duration },
    /// Send `count` requests every `interval`, and wait up to `wait` after the last
    /// for their replies (`ping -c COUNT -W WAIT`): what round trips take.
    Count { count: u32, wait: Duration },
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
    /// Each answered request's round trip, in the order the replies came (a
    /// duplicated reply counts once).
    pub rtts: Vec<Duration>,
}

/// `ping -s SIZE -M do -t TTL -I SOURCE`: what a probe's requests look like.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PingOpts {
    /// ICMP data bytes (ping's -s; 56 when None, as ping sends). At least 8: the
    /// probe's token.
    pub size: Option<u16>,
    /// Don't fragment (ping -M do): too big for a link is an error, not fragments.
    pub df: bool,
    /// The TTL (IPv6: hop limit) of the requests (ping -t).
    pub ttl: Option<u8>,
    /// The source address (ping -I ADDRESS).
    pub source: Option<IpAddr>,
    /// The link a link-local destination is on (`ping fe80::1%eth0`).
    pub zone: Option<crate::names::LinkName>,
}

/// ping's default data size.
pub const DEFAULT_SIZE: u16 = 56;

/// How often a watch asks whether anything can still arrive.
const QUIET_CHECK_EVERY: Duration = Duration::from_millis(10);

/// Creates the socket; call it from inside the node's namespace.
pub fn icmp_socket(dst: IpAddr, opts: &PingOpts) -> io::Result<Socket> {
    let sock = match dst {
        IpAddr::V4(_) => Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?,
        IpAddr::V6(_) => Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?,
    };
    sock.set_nonblocking(true)?;
    match dst {
        IpAddr::V4(_) => {
            // linux/icmp.h: ICMP_FILTER on SOL_RAW, a bit set blocks that type.
            let block_all_but_echo_reply: u32 = !(1 << ICMP_ECHOREPLY);
            set_option(&sock, SOL_RAW, ICMP_FILTER, &block_all_but_echo_reply)?;
            setsockopt(&sock, sockopt::Ipv4RecvErr, &true)?;
            if let Some(ttl) = opts.ttl {
                sock.set_ttl_v4(u32::from(ttl))?;
            }
            if opts.df {
                set_option(&sock, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &libc::IP_PMTUDISC_DO)?;
            }
        }
        IpAddr::V6(_) => {
            // linux/icmpv6.h: struct icmp6_filter, a bit set blocks that type.
            let mut filter = [u32::MAX; 8];
            filter[usize::from(ICMPV6_ECHO_REPLY) >> 5] &= !(1 << (ICMPV6_ECHO_REPLY & 31));
            set_option(&sock, libc::IPPROTO_ICMPV6, ICMPV6_FILTER, &filter)?;
            setsockopt(&sock, sockopt::Ipv6RecvErr, &true)?;
            if let Some(ttl) = opts.ttl {
                sock.set_unicast_hops_v6(u32::from(ttl))?;
            }
            if opts.df {
                set_option(&sock, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, &libc::IPV6_PMTUDISC_DO)?;
            }
        }
    }
    if let Some(source) = opts.source {
        sock.bind(&SockAddr::from(SocketAddr::new(source, 0)))?;
    }
    Ok(sock)
}

const ICMP_ECHO: u8 = 8;
const ICMP_ECHOREPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
const ICMPV6_FILTER: libc::c_int = 1;

fn set_option<T: ?Sized>(sock: &Socket, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a plain integer (array) of the size the option expects.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of_val(value) as libc::socklen_t,
        )
    };
    nix::errno::Errno::result(r).map(drop).map_err(io::Error::from)
}

impl PingReport {
    fn note(&mut self, reason: Reason) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// Reads every queued ICMP error off the socket's error queue: those about this
/// probe's requests (the request comes back with the error, token and all); a raw
/// socket also gets its node's errors about other probes' requests.
fn drain_errors(sock: &Socket, v6: bool, token: u64, report: &mut PingReport) {
    loop {
        let mut data = [0u8; 64];
        let mut iov = [io::IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(msg) = recvmsg::<SockaddrStorage>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) else {
            return;
        };
        let len = msg.bytes;
        let Ok(cmsgs) = msg.cmsgs() else { return };
        let cmsgs: Vec<_> = cmsgs.collect();
        // A local error (a send refused as too big) is this socket's own and carries
        // no request; an ICMP error carries the request it is about.
        let local = cmsgs.iter().any(|c| match c {
            ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _) => {
                e.ee_origin == libc::SO_EE_ORIGIN_LOCAL
            }
            _ => false,
        });
        if !local && !is_our_request(v6, &data[..len.min(data.len())], token) {
            continue;
        }
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
            let frag_needed = matches!((v6, err.ee_type, err.ee_code), (false, 3, 4) | (true, 2, 0));
            let reason = match err.ee_origin {
                libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6 if frag_needed => {
                    Reason::FragNeeded { mtu: err.ee_info, from }
                }
                libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6 => {
                    Reason::from_icmp(v6, err.ee_type, err.ee_code, from)
                }
                libc::SO_EE_ORIGIN_LOCAL if err.ee_errno as i32 == libc::EMSGSIZE => {
                    Reason::FragNeeded { mtu: err.ee_info, from: None }
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

/// Whether `data` (what an error queue entry carries: the ICMP message it is
/// about) is one of this probe's echo requests.
fn is_our_request(v6: bool, data: &[u8], token: u64) -> bool {
    data.len() >= 16
        && data[0] == if v6 { ICMPV6_ECHO_REQUEST } else { ICMP_ECHO }
        && data[8..16] == token.to_be_bytes()
}

/// An echo request: type, code 0, checksum, identifier (from the token), sequence,
/// then `size` data bytes, the token first (ping's pattern after it). IPv4's
/// checksum is ours to fill on a raw socket; for ICMPv6 the kernel computes it (it
/// covers the IPv6 pseudo-header).
fn echo_request(v6: bool, seq: u16, token: u64, size: u16) -> Vec<u8> {
    let mut pkt: Vec<u8> = (0..8 + usize::from(size.max(8))).map(|i| (i.saturating_sub(16) % 256) as u8).collect();
    pkt[..8].fill(0);
    pkt[0] = if v6 { ICMPV6_ECHO_REQUEST } else { ICMP_ECHO };
    pkt[4..6].copy_from_slice(&(token as u16).to_be_bytes());
    pkt[6..8].copy_from_slice(&seq.to_be_bytes());
    pkt[8..16].copy_from_slice(&token.to_be_bytes());
    if !v6 {
        let sum = internet_checksum(&pkt);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    pkt
}

/// RFC 1071: the one's complement of the one's complement sum of 16-bit words.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Returns the sequence number if `buf` (what a raw socket reads: the IPv4 header
/// first; for IPv6 the ICMPv6 message alone) is an echo reply carrying `token`.
fn parse_reply(v6: bool, buf: &[u8], token: u64) -> Option<u16> {
    let icmp = if v6 {
        buf
    } else {
        let header = usize::from(*buf.first()? & 0x0f) * 4;
        buf.get(header..)?
    };
    if icmp.len() < 16 || icmp[0] != if v6 { ICMPV6_ECHO_REPLY } else { ICMP_ECHOREPLY } {
        return None;
    }
    if icmp[8..16] != token.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

pub async fn ping(sock: Socket, dst: IpAddr, mode: PingMode, interval: Duration, size: u16) -> io::Result<PingReport> {
    ping_until_quiet(sock, dst, 0, mode, interval, size, None::<(Duration, fn() -> std::future::Ready<bool>)>).await
}

/// Like `ping`; a watch also ends, after `quiet.0` has passed, once `quiet.1` says
/// nothing can still arrive (asked every 10 ms). `scope_id` is the ifindex of the
/// link an IPv6 link-local `dst` is on (`fe80::1%eth0`), else 0.
pub async fn ping_until_quiet<Q, F>(
    sock: Socket,
    dst: IpAddr,
    scope_id: u32,
    mode: PingMode,
    interval: Duration,
    size: u16,
    mut quiet: Option<(Duration, Q)>,
) -> io::Result<PingReport>
where
    Q: FnMut() -> F,
    F: std::future::Future<Output = bool>,
{
    let v6 = dst.is_ipv6();
    let target = match dst {
        IpAddr::V6(a) => SockAddr::from(std::net::SocketAddrV6::new(a, 0, 0, scope_id)),
        IpAddr::V4(_) => SockAddr::from(SocketAddr::new(dst, 0)),
    };
    // SAFETY: we own the socket and it stays open as long as the AsyncFd holds it.
    let fd = unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)?;
    let token = token();
    let start = Instant::now();
    let (end, stop_at_first) = match mode {
        PingMode::UntilReply { timeout } | PingMode::FirstAnswer { timeout } => (start + timeout, true),
        PingMode::Watch { window } => (start + window, false),
        PingMode::Count { count, wait } => (start + interval * count.saturating_sub(1) + wait, false),
    };
    let stop_at_error = matches!(mode, PingMode::FirstAnswer { .. });
    let (max_sends, watching) = match mode {
        PingMode::Count { count, .. } => (count, false),
        PingMode::Watch { .. } => (u32::MAX, true),
        PingMode::UntilReply { .. } | PingMode::FirstAnswer { .. } => (u32::MAX, false),
    };
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut answered: std::collections::HashSet<u16> = std::collections::HashSet::new();
    let mut report = PingReport::default();
    let mut next_send = start;
    let mut next_quiet_check = start;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 512];
    loop {
        let now = Instant::now();
        if now >= next_send && now < end && report.sent < max_sends {
            let seq = report.sent as u16;
            sent_at.push(Instant::now());
            match fd.get_ref().send_to(&echo_request(v6, seq, token, size), &target) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Too big with DF: the kernel queued the error with the MTU too.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    drain_errors(fd.get_ref(), v6, token, &mut report)
                }
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
        let wake = if report.sent < max_sends { next_send.min(end) } else { end };
        let ready = tokio::time::timeout_at(wake.into(), fd.ready(Interest::READABLE | Interest::ERROR)).await;
        if let Ok(guard) = ready {
            let mut guard = guard?;
            drain_errors(guard.get_inner(), v6, token, &mut report);
            loop {
                match guard.get_inner().recv(&mut buf) {
                    Ok(n) => {
                        // SAFETY: recv initialised the first n bytes.
                        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, n) };
                        if let Some(seq) = parse_reply(v6, bytes, token) {
                            report.received += 1;
                            report.first_reply.get_or_insert(start.elapsed());
                            if let Some(at) = sent_at.get(usize::from(seq)) {
                                if answered.insert(seq) {
                                    report.rtts.push(at.elapsed());
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    // The pending socket error of an ICMP error already read off the
                    // error queue above (or one that raced in: read it now).
                    Err(_) => drain_errors(guard.get_inner(), v6, token, &mut report),
                }
            }
        }
        if (stop_at_first && report.received > 0) || Instant::now() >= end {
            break;
        }
        if stop_at_error && report.reasons.iter().any(|r| *r != Reason::Silence) {
            break;
        }
        if !watching && !stop_at_first && answered.len() as u32 >= max_sends {
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
            // Only a watch: a counted ping waits for its replies, however late.
            if watching && now >= start + *after && now >= next_quiet_check {
                if is_quiet().await {
                    // The kernel marks a failed resolution before the ICMP error it
                    // sends itself has passed its loopback queue: give that a moment.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    drain_errors(fd.get_ref(), v6, token, &mut report);
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

/// A token no other probe of this run (nor, very likely, of another run on the
/// machine) carries: a raw socket sees its node's every echo reply.
fn token() -> u64 {
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_roundtrip_format() {
        let req = echo_request(false, 7, 42, 8);
        assert_eq!(req[0], 8);
        assert_eq!(internet_checksum(&req), 0, "a filled-in checksum sums to zero");
        // What a raw IPv4 socket reads: a 20-byte header, then the reply.
        let mut reply = vec![0x45u8];
        reply.resize(20, 0);
        reply.extend_from_slice(&req);
        reply[20] = 0;
        assert_eq!(parse_reply(false, &reply, 42), Some(7));
        assert_eq!(parse_reply(false, &reply, 43), None);
        assert_eq!(parse_reply(false, &reply[..30], 42), None);
        let mut v6 = echo_request(true, 9, 42, 8);
        assert_eq!(v6[0], 128);
        v6[0] = 129;
        assert_eq!(parse_reply(true, &v6, 42), Some(9));
        assert_eq!(parse_reply(true, &reply, 42), None);
        assert!(is_our_request(false, &req, 42));
        assert!(!is_our_request(false, &req, 41));
        assert!(!is_our_request(true, &req, 42));
    }

    #[test]
    fn a_request_has_the_data_size_asked_for() {
        let req = echo_request(false, 1, 42, 1400);
        assert_eq!(req.len(), 8 + 1400, "ping -s 1400: 1400 data bytes after the 8-byte header");
        assert_eq!(internet_checksum(&req), 0);
        assert!(is_our_request(false, &req, 42));
        assert_eq!(echo_request(false, 1, 42, 0).len(), 16, "never less than the token");
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2; the checksum is its complement.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(token(), token());
    }
}
