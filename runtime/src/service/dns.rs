//! A tiny authoritative DNS server over UDP: it knows a fixed list of names
//! and their addresses, answers A and AAAA questions about them, says
//! NXDOMAIN for every other name and never forwards anything anywhere.
//! Every question it answers is logged so a lab can check who asked what.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::task::JoinHandle;

use super::{lock, runtime, ServiceError};

/// TTL of every answer: short, so a lab that changes a record sees it soon.
const TTL: u32 = 60;

/// Largest UDP reply offered to EDNS clients: the size the DNS community
/// agreed never fragments (DNS flag day 2020).
const EDNS_PAYLOAD: u16 = 1232;

/// A running DNS server. Dropping it stops the server.
#[derive(Debug)]
pub struct DnsServer {
    local_addr: SocketAddr,
    seen: Arc<Mutex<Vec<(SocketAddr, String)>>>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Every question answered so far, oldest first: who asked, and the name
    /// asked about (lowercase, without the trailing dot).
    pub fn queries(&self) -> Vec<(SocketAddr, String)> {
        lock(&self.seen).clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts answering DNS questions on `socket`, which the caller has bound
/// inside the right network namespace, from `records` (name, address) pairs.
/// A name may appear several times, with IPv4 and/or IPv6 addresses.
///
/// Must be called from inside a tokio runtime with IO enabled: the server is
/// a task spawned on it.
pub fn start_dns(socket: std::net::UdpSocket, records: Vec<(String, IpAddr)>) -> Result<DnsServer, ServiceError> {
    let records = records
        .into_iter()
        .map(|(name, ip)| Ok((canonical_record_name(&name)?, ip)))
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let handle = runtime()?;

    socket.set_nonblocking(true).map_err(ServiceError::io("DNS socket: set nonblocking"))?;
    let local_addr = socket.local_addr().map_err(ServiceError::io("DNS socket: local address"))?;
    let socket =
        tokio::net::UdpSocket::from_std(socket).map_err(ServiceError::io("DNS socket: register with tokio"))?;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = handle.spawn(serve(socket, records, Arc::clone(&seen)));
    Ok(DnsServer { local_addr, seen, task })
}

async fn serve(
    socket: tokio::net::UdpSocket,
    records: Vec<(String, IpAddr)>,
    seen: Arc<Mutex<Vec<(SocketAddr, String)>>>,
) {
    // Questions are small; a longer datagram is cut and then fails to parse,
    // which is what should happen to it.
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // Leftovers of earlier exchanges (ICMP errors about clients that
            // went away): not this server's problem.
            Err(e) if is_transient(&e) => continue,
            // Anything else would repeat forever; stop rather than spin.
            Err(_) => return,
        };
        let Some((reply, asked)) = reply_to(&records, buf.get(..len).unwrap_or_default()) else {
            continue;
        };
        if let Some(name) = asked {
            let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
            lock(&seen).push((peer, name));
        }
        // A client that cannot be answered any more has given up already.
        let _ = socket.send_to(&reply, peer).await;
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionReset | Interrupted | WouldBlock | HostUnreachable | NetworkUnreachable
    )
}

/// Builds the encoded reply to one datagram, and the name it asked about (to
/// log). `None` means no reply at all: garbage and responses are ignored, the
/// latter so that two servers can never ping-pong.
fn reply_to(records: &[(String, IpAddr)], packet: &[u8]) -> Option<(Vec<u8>, Option<String>)> {
    let request = Message::from_vec(packet).ok()?;
    if request.message_type != MessageType::Query {
        return None;
    }

    let mut response = Message::response(request.id, request.op_code);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.recursion_desired;
    response.queries = request.queries.clone();
    if request.edns.is_some() {
        // RFC 6891: a query with an OPT record gets one back.
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        response.set_edns(edns);
    }

    let mut asked = None;
    response.metadata.response_code = match request.queries.as_slice() {
        _ if request.op_code != OpCode::Query => ResponseCode::NotImp,
        [query] if matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) => {
            let name = canonical(&query.name().to_ascii());
            let known: Vec<IpAddr> = records.iter().filter(|(n, _)| *n == name).map(|(_, ip)| *ip).collect();
            asked = Some(name);
            if known.is_empty() {
                ResponseCode::NXDomain
            } else {
                // A known name without an address of the asked type answers
                // NOERROR with nothing: "the name exists, but not that".
                for ip in known {
                    if let Some(rdata) = rdata_for(query.query_type(), ip) {
                        // The owner name is the question's, letter case
                        // included: resolvers that randomise case check it.
                        let owner = query.name().clone();
                        response.add_answer(Record::from_rdata(owner, TTL, rdata));
                    }
                }
                ResponseCode::NoError
            }
        }
        [_] => ResponseCode::Refused,
        _ => ResponseCode::FormErr,
    };

    let mut bytes = response.to_vec().ok()?;
    let limit = if request.edns.is_some() { usize::from(request.max_payload().min(EDNS_PAYLOAD)) } else { 512 };
    if bytes.len() > limit {
        // Too many records for one datagram: say so (TC), the client can
        // retry over TCP, which this server does not offer.
        response.answers.clear();
        response.metadata.truncation = true;
        bytes = response.to_vec().ok()?;
    }
    Some((bytes, asked))
}

/// The record answering a question of type `qtype` with `ip`, if it does.
fn rdata_for(qtype: RecordType, ip: IpAddr) -> Option<RData> {
    match (qtype, ip) {
        (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => Some(RData::A(A(v4))),
        (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(v6))),
        _ => None,
    }
}

/// Names compare case-insensitively and with or without the final dot.
pub(super) fn canonical(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A configured name in the form questions are compared in, checked to be a
/// real domain name (internationalised names become their xn-- form, as they
/// travel in questions).
fn canonical_record_name(name: &str) -> Result<String, ServiceError> {
    let parsed = Name::from_utf8(name)
        .map_err(|e| ServiceError::InvalidName { name: name.to_owned(), reason: e.to_string() })?;
    Ok(canonical(&parsed.to_ascii()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    const WEB4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 80);
    const WEB6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x80);
    const DB4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    fn server() -> DnsServer {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        start_dns(
            socket,
            vec![("web.lab".into(), WEB4.into()), ("Web.Lab.".into(), WEB6.into()), ("db.lab".into(), DB4.into())],
        )
        .expect("start")
    }

    fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        msg.to_vec().expect("encode")
    }

    /// Sends `packet` from a fresh loopback socket; returns the reply and the
    /// socket's own address. Waits at most 5 s so a broken server fails the
    /// test instead of hanging it.
    async fn ask(server: &DnsServer, packet: &[u8]) -> (Message, SocketAddr) {
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client.connect(server.local_addr()).await.expect("connect");
        client.send(packet).await.expect("send");
        let mut buf = vec![0u8; 4096];
        let len = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .expect("reply within 5 s")
            .expect("recv");
        let reply = Message::from_vec(&buf[..len]).expect("decode reply");
        (reply, client.local_addr().expect("client address"))
    }

    fn addresses(reply: &Message) -> Vec<IpAddr> {
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_a_case_insensitively_and_logs_the_question() {
        let server = server();
        let (reply, me) = ask(&server, &query(7, "WEB.lab.", RecordType::A)).await;

        assert_eq!(reply.id, 7);
        assert_eq!(reply.message_type, MessageType::Response);
        assert!(reply.authoritative);
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&reply), vec![IpAddr::from(WEB4)]);
        assert_eq!(reply.answers[0].ttl, 60);
        assert_eq!(server.queries(), vec![(me, "web.lab".to_owned())]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_aaaa() {
        let server = server();
        let (reply, _) = ask(&server, &query(8, "web.lab", RecordType::AAAA)).await;
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert_eq!(addresses(&reply), vec![IpAddr::from(WEB6)]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn known_name_without_that_type_is_noerror_and_empty() {
        let server = server();
        let (reply, _) = ask(&server, &query(9, "db.lab", RecordType::AAAA)).await;
        assert_eq!(reply.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty(), "{reply:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unknown_name_is_nxdomain() {
        let server = server();
        let (reply, _) = ask(&server, &query(10, "nope.lab", RecordType::A)).await;
        assert_eq!(reply.response_code, ResponseCode::NXDomain);
        assert!(reply.answers.is_empty(), "{reply:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn garbage_is_ignored_and_the_server_keeps_going() {
        let server = server();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client.connect(server.local_addr()).await.expect("connect");
        client.send(b"\x01\x02garbage").await.expect("send garbage");
        // Same socket: had the garbage been answered, that reply would come
        // first, before the one for id 11.
        client.send(&query(11, "db.lab", RecordType::A)).await.expect("send query");
        let mut buf = vec![0u8; 4096];
        let len = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .expect("reply within 5 s")
            .expect("recv");
        let reply = Message::from_vec(&buf[..len]).expect("decode");
        assert_eq!(reply.id, 11);
        assert_eq!(addresses(&reply), vec![IpAddr::from(DB4)]);
        assert_eq!(server.queries().len(), 1);
    }

    #[test]
    fn responses_get_no_reply() {
        let mut msg = Message::response(12, OpCode::Query);
        msg.add_query(Query::query(Name::from_ascii("web.lab").expect("name"), RecordType::A));
        let packet = msg.to_vec().expect("encode");
        assert!(reply_to(&[("web.lab".into(), WEB4.into())], &packet).is_none());
    }

    #[test]
    fn invalid_record_names_are_refused_at_start() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let long_label = format!("{}.lab", "a".repeat(64));
        let err = start_dns(socket, vec![(long_label, WEB4.into())]).expect_err("label > 63");
        assert!(matches!(err, ServiceError::InvalidName { .. }), "{err}");
    }
}
