//! netlab's router advertisement sender: what radvd does on one link (RFC 4861
//! 6.2), so the hosts of the link configure themselves by SLAAC (RFC 4862).
//!
//! It sends an unsolicited advertisement to all nodes (ff02::1) when it starts,
//! every `PERIOD` after, whenever a router solicitation arrives, and whenever netlab's
//! readiness wait asks (`kick`). Each carries the router's MAC (source link-layer
//! address option) and a prefix information option per prefix, on-link and
//! autonomous. The raw ICMPv6 socket is made by the caller inside the node (see
//! `advert_socket`); the kernel fills in the checksum and, as the source, the
//! link's link-local address, which must have passed DAD (until then a send fails
//! and the next one is tried).

use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::ServiceError;
use crate::model::RouterAdvert;

const ROUTER_SOLICITATION: u8 = 133;
const ROUTER_ADVERTISEMENT: u8 = 134;
/// Between unsolicited advertisements (radvd's MinRtrAdvInterval floor is 3 s).
const PERIOD: Duration = Duration::from_secs(4);
/// Lifetimes of a prefix (radvd's defaults: AdvValidLifetime, AdvPreferredLifetime).
const VALID_LIFETIME: u32 = 86_400;
const PREFERRED_LIFETIME: u32 = 14_400;

/// A running sender; it stops when dropped.
pub struct RaSender {
    kick: Arc<Notify>,
    sent: Arc<AtomicU64>,
    solicited: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RaSender {
    /// Sends an advertisement now (the readiness wait's nudge for hosts that have
    /// not configured themselves yet).
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Advertisements sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Router solicitations received so far.
    pub fn solicited(&self) -> u64 {
        self.solicited.load(Ordering::Relaxed)
    }
}

impl Drop for RaSender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sender's socket, made inside the router's node: raw ICMPv6 on the link
/// `ifindex`, hop limit 255 (hosts drop an advertisement with any other, RFC 4861
/// 6.1.2), member of all-routers (ff02::2) to hear solicitations, and only those let
/// through; its own advertisements are not looped back to the router.
pub fn advert_socket(ifindex: u32) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    sock.set_nonblocking(true)?;
    sock.bind_device_by_index_v6(std::num::NonZeroU32::new(ifindex))?;
    sock.set_multicast_hops_v6(255)?;
    sock.set_unicast_hops_v6(255)?;
    sock.set_multicast_loop_v6(false)?;
    sock.set_multicast_if_v6(ifindex)?;
    sock.join_multicast_v6(&"ff02::2".parse().expect("all-routers"), ifindex)?;
    // linux/icmpv6.h: struct icmp6_filter, a bit set blocks that type.
    let mut filter = [u32::MAX; 8];
    filter[usize::from(ROUTER_SOLICITATION >> 5)] &= !(1 << (ROUTER_SOLICITATION & 31));
    // SAFETY: setsockopt with a pointer to a live array and its size.
    let r = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::IPPROTO_ICMPV6,
            1, // ICMPV6_FILTER
            filter.as_ptr().cast(),
            std::mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// Starts the sender on `socket` (see `advert_socket`) for the link `ifindex`
/// whose MAC is `mac`.
pub fn start_ra(socket: Socket, ifindex: u32, mac: [u8; 6], ra: &RouterAdvert) -> Result<RaSender, ServiceError> {
    let handle = super::runtime()?;
    let fd = {
        let _guard = handle.enter();
        // SAFETY: the socket is ours and stays open as long as the AsyncFd holds it.
        unsafe { AsyncFd::register(socket) }
            .map_err(|e| ServiceError::Io { what: "RA socket: register with tokio", source: e.into() })?
    };
    let packet = advertisement(mac, ra);
    let (kick, sent, solicited) = (Arc::new(Notify::new()), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let task = handle.spawn(serve(fd, ifindex, packet, kick.clone(), sent.clone(), solicited.clone()));
    Ok(RaSender { kick, sent, solicited, task })
}

async fn serve(
    fd: AsyncFd<Socket>,
    ifindex: u32,
    packet: Vec<u8>,
    kick: Arc<Notify>,
    sent: Arc<AtomicU64>,
    solicited: Arc<AtomicU64>,
) {
    let all_nodes = SockAddr::from(SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, ifindex));
    let send = || {
        // Fails while the link-local source is tentative or the link is down: the
        // next occasion tries again.
        if fd.get_ref().send_to(&packet, &all_nodes).is_ok() {
            sent.fetch_add(1, Ordering::Relaxed);
        }
    };
    send();
    let mut period = tokio::time::interval(PERIOD);
    period.tick().await;
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1500];
    loop {
        tokio::select! {
            _ = period.tick() => send(),
            _ = kick.notified() => send(),
            ready = fd.readable() => {
                let Ok(mut guard) = ready else { return };
                match guard.try_io(|s| s.get_ref().recv_from(&mut buf)) {
                    Ok(Ok((len, _))) if len >= 8 => {
                        solicited.fetch_add(1, Ordering::Relaxed);
                        send();
                    }
                    Ok(_) | Err(_) => {}
                }
            }
        }
    }
}

/// The advertisement (RFC 4861 4.2) with a source link-layer address option (4.6.1)
/// and a prefix information option (4.6.2) per prefix; the checksum is the kernel's.
pub fn advertisement(mac: [u8; 6], ra: &RouterAdvert) -> Vec<u8> {
    let mut p = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 64, 0];
    p.extend_from_slice(&ra.router_lifetime().to_be_bytes());
    p.extend_from_slice(&[0; 8]); // reachable time, retrans timer: unspecified
    p.extend_from_slice(&[1, 1]);
    p.extend_from_slice(&mac);
    for prefix in &ra.prefixes {
        let IpNet::V6(net) = prefix.trunc() else { continue };
        p.extend_from_slice(&[3, 4, net.prefix_len(), 0xc0]); // L (on-link) and A (autonomous)
        p.extend_from_slice(&VALID_LIFETIME.to_be_bytes());
        p.extend_from_slice(&PREFERRED_LIFETIME.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&net.addr().octets());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertisement_carries_the_mac_and_each_prefix() {
        let ra = RouterAdvert { prefixes: vec!["2001:db8:1::/64".parse().unwrap()], default_route: true };
        let p = advertisement([2, 0, 0, 0, 0, 1], &ra);
        assert_eq!(p.len(), 16 + 8 + 32);
        assert_eq!(&p[..8], &[134, 0, 0, 0, 64, 0, 0x07, 0x08]);
        assert_eq!(&p[16..24], &[1, 1, 2, 0, 0, 0, 0, 1]);
        assert_eq!(&p[24..28], &[3, 4, 64, 0xc0]);
        assert_eq!(&p[40..44], &[0x20, 0x01, 0x0d, 0xb8]);
        let quiet = RouterAdvert { prefixes: vec![], default_route: false };
        assert_eq!(&advertisement([0; 6], &quiet)[6..8], &[0, 0]);
    }
}
