//! The nftables probe: `nft add table inet netlab_probe`, sent as the one-message
//! nfnetlink batch nft itself sends, over a NETLINK_NETFILTER socket opened inside
//! the scratch namespace. No crate at hand speaks nf_tables, and three messages
//! are not worth one; the table goes with the namespace.

use std::io::{self, Read};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::Probed;

// From linux/netlink.h, linux/netfilter/nfnetlink.h and nf_tables.h.
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFTA_TABLE_NAME: u16 = 1;
const AF_UNSPEC: u8 = 0;
const NFPROTO_INET: u8 = 1;

/// Sequence number of the NEWTABLE message in the batch.
const TABLE_SEQ: u32 = 2;

/// Without nf_tables the batch is refused with EOPNOTSUPP, without its inet family
/// the table with EAFNOSUPPORT; without nfnetlink there is no such socket at all.
pub(super) fn add_table() -> Probed {
    let absent = &[libc::EOPNOTSUPP, libc::EAFNOSUPPORT, libc::EPROTONOSUPPORT];
    let netfilter = Protocol::from(libc::NETLINK_NETFILTER);
    match Socket::new(Domain::from(libc::AF_NETLINK), Type::RAW, Some(netfilter)) {
        Ok(socket) => ("creating an nftables table (inet)".into(), transact(&socket), absent),
        Err(e) => ("opening a netfilter netlink socket".into(), Err(e), absent),
    }
}

/// Sends the batch and reads the kernel's verdict: the first error message, an
/// acknowledgement (0) of the table or the refusal of the batch.
fn transact(socket: &Socket) -> io::Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut batch = Vec::with_capacity(80);
    let subsys = NFNL_SUBSYS_NFTABLES;
    push_message(&mut batch, NFNL_MSG_BATCH_BEGIN, 0, 1, AF_UNSPEC, subsys, &[]);
    let name = attribute(NFTA_TABLE_NAME, b"netlab_probe\0");
    let flags = NLM_F_CREATE | NLM_F_ACK;
    push_message(&mut batch, subsys << 8 | NFT_MSG_NEWTABLE, flags, TABLE_SEQ, NFPROTO_INET, 0, &name);
    push_message(&mut batch, NFNL_MSG_BATCH_END, 0, TABLE_SEQ + 1, AF_UNSPEC, subsys, &[]);
    socket.send(&batch)?;
    let mut buf = vec![0u8; 8192];
    let mut reader = socket;
    loop {
        let len = reader.read(&mut buf)?;
        match first_error(&buf[..len]) {
            Some(0) => return Ok(()),
            Some(code) => return Err(io::Error::from_raw_os_error(-code)),
            None => continue,
        }
    }
}

/// Appends a netlink message with a struct nfgenmsg header (family, version 0,
/// res_id in network order) and `payload`.
fn push_message(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, payload: &[u8]) {
    let len = 16 + 4 + payload.len();
    out.extend((len as u32).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend((NLM_F_REQUEST | flags).to_ne_bytes());
    out.extend(seq.to_ne_bytes());
    out.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    out.extend([family, 0]);
    out.extend(res_id.to_be_bytes());
    out.extend(payload);
}

/// One netlink attribute, padded to 4 bytes.
fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity(len.next_multiple_of(4));
    out.extend((len as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(value);
    out.resize(len.next_multiple_of(4), 0);
    out
}

/// The error code of the first NLMSG_ERROR in a datagram (0 is an acknowledgement).
fn first_error(mut buf: &[u8]) -> Option<i32> {
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        if len < 16 || len > buf.len() {
            return None;
        }
        if kind == NLMSG_ERROR && len >= 20 {
            return Some(i32::from_ne_bytes(buf[16..20].try_into().ok()?));
        }
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_is_what_nft_sends() {
        let name = attribute(NFTA_TABLE_NAME, b"netlab_probe\0");
        assert_eq!(name.len(), 20);
        assert_eq!(&name[..4], &[17, 0, 1, 0][..]);
        let mut msg = Vec::new();
        push_message(&mut msg, 0x0a00, NLM_F_CREATE | NLM_F_ACK, 2, NFPROTO_INET, 0, &name);
        assert_eq!(msg.len(), 40);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(msg[6..8].try_into().unwrap()), 0x405);
        let mut begin = Vec::new();
        push_message(&mut begin, NFNL_MSG_BATCH_BEGIN, 0, 1, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, &[]);
        assert_eq!(&begin[16..], &[0, 0, 0, 10][..], "res_id in network order");
    }

    #[test]
    fn the_first_error_message_is_the_verdict() {
        let mut reply = Vec::new();
        push_message(&mut reply, 0x0a03, 0, 1, 0, 0, &[0; 4]); // some other message
        let mut error = Vec::new();
        error.extend(36u32.to_ne_bytes());
        error.extend(NLMSG_ERROR.to_ne_bytes());
        error.extend([0u8; 10]);
        error.extend((-libc::EOPNOTSUPP).to_ne_bytes());
        error.extend([0u8; 16]);
        reply.extend(&error);
        assert_eq!(first_error(&reply), Some(-libc::EOPNOTSUPP));
        assert_eq!(first_error(&reply[..24]), None);
        assert_eq!(first_error(&[]), None);
    }
}
