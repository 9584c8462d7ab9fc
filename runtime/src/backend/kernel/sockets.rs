//! The listening sockets of the calling thread's network namespace, asked of the
//! kernel's sock_diag netlink interface (as `ss -tuln` does). /proc/net/tcp would
//! walk the machine-wide hash of established connections, sized by the machine's
//! memory (milliseconds on a large machine, per call); sock_diag asked for listening
//! sockets walks only those.

use std::io;
use std::net::SocketAddr;

use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use rtnetlink::packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use rtnetlink::sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr as NetlinkAddr};

/// A socket waiting for traffic: a listening TCP socket or a bound UDP one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    pub proto: &'static str,
    pub local: SocketAddr,
}

/// Listening TCP and bound UDP sockets, IPv4 and IPv6, sorted by protocol, port
/// and address. Call it from inside the node's namespace.
pub fn listening() -> io::Result<Vec<Listening>> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&NetlinkAddr::new(0, 0))?;
    let mut all = Vec::new();
    for (family, protocol, proto, states) in [
        (AF_INET, IPPROTO_TCP, "tcp", StateFlags::LISTEN),
        (AF_INET6, IPPROTO_TCP, "tcp", StateFlags::LISTEN),
        (AF_INET, IPPROTO_UDP, "udp", StateFlags::all()),
        (AF_INET6, IPPROTO_UDP, "udp", StateFlags::all()),
    ] {
        let socket_id = if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() };
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol,
            extensions: ExtensionFlags::empty(),
            states,
            socket_id,
        });
        all.extend(dump(&mut socket, request)?.into_iter().map(|local| Listening { proto, local }));
    }
    all.sort_by_key(|s| (s.proto, s.local.port(), s.local.ip()));
    Ok(all)
}

/// Sends one dump request and collects the local addresses it lists.
fn dump(socket: &mut Socket, request: SockDiagMessage) -> io::Result<Vec<SocketAddr>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(header, request.into());
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut found = Vec::new();
    let mut received = vec![0u8; 32 * 1024];
    loop {
        let size = socket.recv(&mut &mut received[..], 0)?;
        let mut offset = 0;
        while offset < size {
            let message = NetlinkMessage::<SockDiagMessage>::deserialize(&received[offset..size])
                .map_err(|e| io::Error::other(format!("sock_diag reply: {e}")))?;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    found.push(SocketAddr::new(r.header.socket_id.source_address, r.header.socket_id.source_port));
                }
                NetlinkPayload::Done(_) => return Ok(found),
                NetlinkPayload::Error(e) => {
                    // No IPv6 (or no UDP diag) in this kernel: nothing of that kind to list.
                    if e.code.is_some_and(|c| c.get() == -libc::ENOENT) {
                        return Ok(found);
                    }
                    return Err(io::Error::other(format!("sock_diag: {e}")));
                }
                _ => {}
            }
            let length = message.header.length as usize;
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}
