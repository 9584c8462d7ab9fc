//! `curl` as run inside a node: an HTTP GET that resolves names the way the
//! node would (its /etc/hosts, then its resolv.conf nameservers) and reports
//! failures in curl's words.
//!
//! Namespaces: every socket here (the TCP connection, the DNS queries) is
//! created by the task that awaits `http_get`, so it lands in the network
//! namespace of the thread running that task. The caller runs `http_get` on a
//! thread that has entered the node's namespace, on a current_thread runtime.
//! That is why nothing here may leave the task's thread: the resolver is
//! plain async UDP (no getaddrinfo, no spawn_blocking), and reqwest is kept
//! from reading proxies or system certificates.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

use super::dns::canonical;
use super::lock;
use crate::outcome::Reason;

/// glibc reads at most this many `nameserver` lines (MAXNS).
const MAX_NAMESERVERS: usize = 3;
/// glibc's per-query wait when resolv.conf has no `options timeout:`.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// glibc caps `options timeout:` here (RES_MAXRETRANS).
const MAX_QUERY_TIMEOUT_SECS: u64 = 30;

/// What a GET got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    /// The body, with invalid UTF-8 replaced (lab servers send text).
    pub body: String,
    /// The address actually connected to.
    pub remote: Option<SocketAddr>,
}

/// How far a request had got when its time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Looking the host name up.
    Resolving,
    /// Connecting, or connected and waiting for the reply's headers (the two
    /// cannot be told apart from outside the HTTP client).
    Connecting,
    /// Headers received, body still coming.
    Receiving { body_bytes: usize },
}

/// Why a GET failed, worded like curl's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CurlError {
    #[error("URL rejected: {0}")]
    BadUrl(String),
    #[error(transparent)]
    Resolve(LookupError),
    #[error("Failed to connect to {host} port {port}: Connection refused")]
    Refused { host: String, port: u16 },
    /// `reason` is the kernel's: no route ("Network is unreachable"), or a route
    /// but no neighbour answers ("No route to host"), or a firewall's reject.
    #[error("Failed to connect to {host} port {port}: {}", curl_wording(reason))]
    Unreachable { host: String, port: u16, reason: Reason },
    #[error("Recv failure: Connection reset by peer")]
    Reset,
    #[error("{}", timeout_message(*stage, host, *port, *after))]
    Timeout { host: String, port: u16, after: Duration, stage: Stage },
    #[error("{0}")]
    Other(String),
}

/// How curl words the kernel's connect errors.
fn curl_wording(reason: &Reason) -> String {
    match reason {
        Reason::NetUnreachable { .. } => "Network is unreachable".into(),
        Reason::HostUnreachable { .. } => "No route to host".into(),
        Reason::Prohibited { .. } => "Permission denied".into(),
        other => other.to_string(),
    }
}

impl CurlError {
    /// Why no HTTP answer came, or `Err` with the lab's own mistake (a malformed
    /// URL or host name), which is never a reason for a negative check to pass.
    pub fn reasons(&self) -> Result<Vec<Reason>, String> {
        match self {
            CurlError::BadUrl(why) => Err(format!("URL rejected: {why}")),
            CurlError::Resolve(e) => e.reasons(),
            CurlError::Refused { .. } => Ok(vec![Reason::Refused]),
            CurlError::Unreachable { reason, .. } => Ok(vec![reason.clone()]),
            CurlError::Reset => Ok(vec![Reason::Reset]),
            CurlError::Timeout { stage: Stage::Receiving { .. }, .. } => Ok(vec![Reason::Other(self.to_string())]),
            CurlError::Timeout { .. } => Ok(vec![Reason::Silence]),
            CurlError::Other(text) => Ok(vec![Reason::Other(text.clone())]),
        }
    }
}

impl LookupError {
    /// Why the name did not resolve, or `Err` for a name that is not a valid
    /// host name (the lab's mistake).
    pub fn reasons(&self) -> Result<Vec<Reason>, String> {
        match self {
            LookupError::InvalidName { host, reason } => Err(format!("{host:?} is not a valid host name: {reason}")),
            LookupError::NotFound { tried, .. } if tried.is_empty() => Ok(vec![Reason::NoNameserver]),
            LookupError::NotFound { tried, .. } => {
                let mut reasons = Vec::new();
                for (_, outcome) in tried {
                    let r = match outcome {
                        NameserverOutcome::NxDomain | NameserverOutcome::NoAddress => Reason::NoSuchName,
                        NameserverOutcome::Timeout(_) => Reason::Silence,
                        NameserverOutcome::Refused => Reason::Refused,
                        NameserverOutcome::Unreachable(r) => r.clone(),
                        other => Reason::Other(other.to_string()),
                    };
                    if !reasons.contains(&r) {
                        reasons.push(r);
                    }
                }
                Ok(reasons)
            }
        }
    }
}

/// A host name as resolvers accept it (RFC 1123 labels; `_` allowed as DNS does):
/// 1 to 63 letters, digits, `-` or `_` per label, at most 253 in all.
pub fn check_host_name(host: &str) -> Result<(), String> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("label {label:?}: each dot-separated part has 1 to 63 characters"));
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(format!("{c:?} is not allowed in a host name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
    }
    Ok(())
}

fn timeout_message(stage: Stage, host: &str, port: u16, after: Duration) -> String {
    let ms = after.as_millis();
    match stage {
        Stage::Resolving => format!("Resolving timed out after {ms} milliseconds"),
        Stage::Connecting => format!(
            "Operation timed out after {ms} milliseconds with 0 bytes received \
             (connecting to {host} port {port})"
        ),
        Stage::Receiving { body_bytes } => {
            format!("Operation timed out after {ms} milliseconds with {body_bytes} bytes received")
        }
    }
}

/// A name lookup that found no address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// `tried` lists each nameserver asked and what it said; empty means the
    /// node has no nameserver at all.
    #[error("Could not resolve host: {host} ({})", describe_tried(tried))]
    NotFound { host: String, tried: Vec<(SocketAddr, NameserverOutcome)> },
    #[error("Could not resolve host: {host} (not a valid host name: {reason})")]
    InvalidName { host: String, reason: String },
}

/// What one nameserver said about a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameserverOutcome {
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// The name exists but has neither A nor AAAA records.
    NoAddress,
    /// No reply within the per-query timeout.
    Timeout(Duration),
    /// ICMP port unreachable: nothing listens on the DNS port there.
    Refused,
    /// An error code other than NXDOMAIN (SERVFAIL, REFUSED, ...).
    Rcode(String),
    /// The reply was cut short (TC) with no address in it; DNS over TCP is
    /// not attempted.
    Truncated,
    /// The kernel could not deliver the query (no route, no neighbour, a reject).
    Unreachable(Reason),
    /// The query could not be sent or received for another reason.
    Io(String),
}

impl std::fmt::Display for NameserverOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NxDomain => f.write_str("NXDOMAIN, no such name"),
            Self::NoAddress => f.write_str("the name has no A or AAAA record"),
            Self::Timeout(t) => write!(f, "no reply within {t:?}"),
            Self::Refused => f.write_str("connection refused, no DNS server listening"),
            Self::Rcode(code) => write!(f, "answered {code}"),
            Self::Truncated => f.write_str("reply truncated and TCP fallback not supported"),
            Self::Unreachable(r) => write!(f, "{r}"),
            Self::Io(e) => f.write_str(e),
        }
    }
}

fn describe_tried(tried: &[(SocketAddr, NameserverOutcome)]) -> String {
    if tried.is_empty() {
        return "no nameserver configured".to_owned();
    }
    let parts: Vec<String> = tried
        .iter()
        .map(|(ns, outcome)| match ns.port() {
            53 => format!("nameserver {}: {outcome}", ns.ip()),
            _ => format!("nameserver {ns}: {outcome}"),
        })
        .collect();
    parts.join("; ")
}

/// How a node resolves names: its /etc/hosts entries and resolv.conf
/// nameservers, given as file contents so nothing is read from the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeResolver {
    hosts: Vec<(String, IpAddr)>,
    nameservers: Vec<SocketAddr>,
    query_timeout: Duration,
}

impl Default for NodeResolver {
    /// No hosts entries, no nameserver: only IP literals and localhost work.
    fn default() -> Self {
        Self { hosts: Vec::new(), nameservers: Vec::new(), query_timeout: DEFAULT_QUERY_TIMEOUT }
    }
}

impl NodeResolver {
    /// Builds the resolver from the node's resolv.conf and hosts contents
    /// (`None`: the file does not exist). Understands `nameserver ADDR`
    /// (port 53, first three kept, as glibc does) and `options timeout:N`;
    /// other lines, and addresses that do not parse, are skipped.
    ///
    /// Unlike glibc, no nameserver means none, not 127.0.0.1: a lab wants
    /// to show "no nameserver configured".
    pub fn from_files(resolv_conf: Option<&str>, hosts: Option<&str>) -> Self {
        let mut resolver = Self { hosts: hosts.map(parse_hosts).unwrap_or_default(), ..Self::default() };
        for line in resolv_conf.unwrap_or_default().lines() {
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    let ip = fields.next().and_then(|f| f.parse::<IpAddr>().ok());
                    if let Some(ip) = ip {
                        if resolver.nameservers.len() < MAX_NAMESERVERS {
                            resolver.nameservers.push(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("options") => {
                    for option in fields {
                        let secs = option.strip_prefix("timeout:");
                        if let Some(secs) = secs.and_then(|n| n.parse::<u64>().ok()) {
                            resolver.query_timeout = Duration::from_secs(secs.clamp(1, MAX_QUERY_TIMEOUT_SECS));
                        }
                    }
                }
                // Comments (# or ;), search/domain and everything else.
                _ => {}
            }
        }
        resolver
    }

    /// A resolver asking only `addr`, on whatever port it names (tests run a
    /// DNS server on an unprivileged port).
    pub fn with_nameserver(addr: SocketAddr) -> Self {
        Self { nameservers: vec![addr], ..Self::default() }
    }

    /// Changes how long each DNS query waits for its reply.
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// The nameservers asked, in order.
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// Resolves `host` like the node would: IP literal, then hosts entries,
    /// then curl's built-in localhost, then each nameserver in turn (A, and
    /// AAAA if there is no A). A nameserver that says NXDOMAIN, or that the
    /// name has no address, settles it; one that fails lets the next try.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(vec![ip]);
        }
        let wanted = canonical(host);
        let listed: Vec<IpAddr> = self.hosts.iter().filter(|(name, _)| *name == wanted).map(|(_, ip)| *ip).collect();
        if !listed.is_empty() {
            return Ok(listed);
        }
        // curl answers these itself, without hosts or DNS (RFC 6761).
        if wanted == "localhost" || wanted.ends_with(".localhost") {
            return Ok(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]);
        }

        check_host_name(host).map_err(|reason| LookupError::InvalidName { host: host.to_owned(), reason })?;
        let mut name = Name::from_utf8(host)
            .map_err(|e| LookupError::InvalidName { host: host.to_owned(), reason: e.to_string() })?;
        // No search domains: the name is taken as complete. Marking it so
        // also makes it compare equal to the question echoed in replies.
        name.set_fqdn(true);
        let mut tried = Vec::new();
        for &ns in &self.nameservers {
            match ask_nameserver(ns, &name, self.query_timeout).await {
                Verdict::Found(ips) => return Ok(ips),
                Verdict::Settled(outcome) => {
                    tried.push((ns, outcome));
                    break;
                }
                Verdict::Failed(outcome) => tried.push((ns, outcome)),
            }
        }
        Err(LookupError::NotFound { host: host.to_owned(), tried })
    }
}

/// hosts(5): an address, then names; `#` starts a comment.
fn parse_hosts(text: &str) -> Vec<(String, IpAddr)> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        if let Some(ip) = fields.next().and_then(|f| f.parse::<IpAddr>().ok()) {
            entries.extend(fields.map(|name| (canonical(name), ip)));
        }
    }
    entries
}

enum Verdict {
    Found(Vec<IpAddr>),
    /// The nameserver answered, and the answer is "no address".
    Settled(NameserverOutcome),
    /// The nameserver could not answer; the next one may.
    Failed(NameserverOutcome),
}

async fn ask_nameserver(ns: SocketAddr, name: &Name, timeout: Duration) -> Verdict {
    // A connected socket: the kernel drops datagrams from anyone else, and
    // an ICMP port unreachable comes back as ECONNREFUSED.
    let any: IpAddr = match ns {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = match UdpSocket::bind(SocketAddr::new(any, 0)).await {
        Ok(socket) => socket,
        Err(e) => return Verdict::Failed(io_outcome(&e)),
    };
    if let Err(e) = socket.connect(ns).await {
        return Verdict::Failed(io_outcome(&e));
    }

    for qtype in [RecordType::A, RecordType::AAAA] {
        match query(&socket, name, qtype, timeout).await {
            Ok(ips) if !ips.is_empty() => return Verdict::Found(ips),
            // No A: maybe there is AAAA.
            Ok(_) => {}
            Err(NameserverOutcome::NxDomain) => return Verdict::Settled(NameserverOutcome::NxDomain),
            Err(outcome) => return Verdict::Failed(outcome),
        }
    }
    Verdict::Settled(NameserverOutcome::NoAddress)
}

/// One question, one answer: the addresses of type `qtype` in the reply.
async fn query(
    socket: &UdpSocket,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Result<Vec<IpAddr>, NameserverOutcome> {
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(name.clone(), qtype));
    let packet = request.to_vec().map_err(|e| NameserverOutcome::Io(format!("could not encode the query: {e}")))?;

    let exchange = async {
        socket.send(&packet).await.map_err(|e| io_outcome(&e))?;
        let mut buf = vec![0u8; 4096];
        loop {
            let len = socket.recv(&mut buf).await.map_err(|e| io_outcome(&e))?;
            // Anything that is not the reply to this very question (garbage,
            // a late reply to an earlier one) is skipped, as resolvers do.
            let Ok(reply) = Message::from_vec(buf.get(..len).unwrap_or_default()) else {
                continue;
            };
            if reply.id == request.id && reply.message_type == MessageType::Response && reply.queries == request.queries
            {
                return Ok(reply);
            }
        }
    };
    let reply = tokio::time::timeout(timeout, exchange).await.map_err(|_| NameserverOutcome::Timeout(timeout))??;

    match reply.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err(NameserverOutcome::NxDomain),
        code => return Err(NameserverOutcome::Rcode(code.to_string())),
    }
    let ips: Vec<IpAddr> = reply
        .answers
        .iter()
        .filter_map(|record| match (qtype, &record.data) {
            (RecordType::A, RData::A(a)) => Some(IpAddr::V4(a.0)),
            (RecordType::AAAA, RData::AAAA(aaaa)) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    if ips.is_empty() && reply.truncation {
        return Err(NameserverOutcome::Truncated);
    }
    Ok(ips)
}

fn io_outcome(e: &std::io::Error) -> NameserverOutcome {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => NameserverOutcome::Refused,
        std::io::ErrorKind::NetworkUnreachable
        | std::io::ErrorKind::HostUnreachable
        | std::io::ErrorKind::PermissionDenied => {
            NameserverOutcome::Unreachable(Reason::from_errno(e.raw_os_error().unwrap_or(0), &e.to_string()))
        }
        _ => NameserverOutcome::Io(e.to_string()),
    }
}

/// The bridge into reqwest. It also notes when resolution starts and ends,
/// so that a timeout can say which stage it cut short.
struct InTaskResolver {
    resolver: NodeResolver,
    stage: Arc<Mutex<Stage>>,
}

impl reqwest::dns::Resolve for InTaskResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.resolver.clone();
        let stage = Arc::clone(&self.stage);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            *lock(&stage) = Stage::Resolving;
            let ips = resolver.lookup(&host).await?;
            *lock(&stage) = Stage::Connecting;
            // Port 0 means "the URL's port" to reqwest.
            let addrs: reqwest::dns::Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A URL as curl takes it: without a scheme it means http://; only http and https.
pub fn parse_url(url: &str) -> Result<reqwest::Url, CurlError> {
    let url = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
    let url = reqwest::Url::parse(&url).map_err(|e| CurlError::BadUrl(format!("{url}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CurlError::BadUrl(format!("{url}: Protocol \"{}\" not supported", url.scheme())));
    }
    Ok(url)
}

/// GETs `url` like `curl URL` inside the node whose name resolution is
/// `resolver`: no proxy, no redirects followed, the whole exchange limited to
/// `timeout` (like `curl --max-time`). A URL without a scheme means http://,
/// as for curl. Must run on the node's thread (see the module docs).
pub async fn http_get(url: &str, resolver: NodeResolver, timeout: Duration) -> Result<HttpReply, CurlError> {
    let url = parse_url(url)?;
    // curl names an IPv6 host without its URL brackets.
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().unwrap_or(80);

    let stage = Arc::new(Mutex::new(Stage::Connecting));
    let client = reqwest::Client::builder()
        // Proxy settings come from the host's environment: never use them.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(InTaskResolver { resolver, stage: Arc::clone(&stage) })
        // Trusting no CA keeps reqwest from loading the host's certificate
        // store; labs have no real CA anyway, so https fails verification.
        .tls_certs_only(Vec::new())
        // Close the connection with the request, as curl does on exit, so
        // no socket of this node outlives the call.
        .pool_max_idle_per_host(0)
        .user_agent("curl/netlab")
        .build()
        .map_err(|e| CurlError::Other(error_chain(&e)))?;

    let exchange = async {
        let mut response = client.get(url).send().await?;
        let status = response.status().as_u16();
        let remote = response.remote_addr();
        *lock(&stage) = Stage::Receiving { body_bytes: 0 };
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            body.extend_from_slice(&chunk);
            *lock(&stage) = Stage::Receiving { body_bytes: body.len() };
        }
        Ok::<_, reqwest::Error>(HttpReply { status, body: String::from_utf8_lossy(&body).into_owned(), remote })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(classify(&e, host, port)),
        Err(_elapsed) => Err(CurlError::Timeout { host, port, after: timeout, stage: *lock(&stage) }),
    }
}

/// `nc -z IP PORT`: a TCP connection opened and closed again at once; how long
/// the handshake took, or why there was none (in curl's words).
pub async fn tcp_connect(addr: SocketAddr, timeout: Duration) -> Result<Duration, CurlError> {
    let (host, port) = (addr.ip().to_string(), addr.port());
    let start = std::time::Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            drop(stream);
            Ok(start.elapsed())
        }
        Ok(Err(io)) => Err(connect_error(&io, host.clone(), port).unwrap_or_else(|| {
            // As curl says it: "Failed to connect to HOST port P: Invalid argument".
            let text = io.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            CurlError::Other(format!("Failed to connect to {host} port {port}: {text}"))
        })),
        Err(_elapsed) => Err(CurlError::Timeout { host, port, after: timeout, stage: Stage::Connecting }),
    }
}

/// The kernel's answer to connect(), as curl words it.
pub(crate) fn connect_error(io: &std::io::Error, host: String, port: u16) -> Option<CurlError> {
    let unreachable = |reason: Reason| CurlError::Unreachable { host: host.clone(), port, reason };
    Some(match io.kind() {
        std::io::ErrorKind::ConnectionRefused => CurlError::Refused { host: host.clone(), port },
        std::io::ErrorKind::NetworkUnreachable => unreachable(Reason::NetUnreachable { from: None }),
        std::io::ErrorKind::HostUnreachable => unreachable(Reason::HostUnreachable { from: None }),
        std::io::ErrorKind::PermissionDenied => unreachable(Reason::Prohibited { from: None }),
        std::io::ErrorKind::ConnectionReset => CurlError::Reset,
        _ => return None,
    })
}

/// Finds the root cause in reqwest's error chain: our own lookup failure, or
/// the kernel's answer to connect().
fn classify(err: &reqwest::Error, host: String, port: u16) -> CurlError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(lookup) = e.downcast_ref::<LookupError>() {
            return CurlError::Resolve(lookup.clone());
        }
        if let Some(known) = e.downcast_ref::<std::io::Error>().and_then(|io| connect_error(io, host.clone(), port)) {
            return known;
        }
        source = e.source();
    }
    CurlError::Other(error_chain(err))
}

/// "outer: inner: root", since reqwest's own message is only the outer part.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{start_dns, start_http, HttpServer};

    const WAIT: Duration = Duration::from_secs(5);

    fn web(body: &str) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        start_http(listener, body.into(), 200).expect("start http")
    }

    /// An address where nothing listens: bound, then released.
    fn closed_tcp_port() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn gets_by_ip_and_the_server_sees_this_client() {
        let server = web("hello\n");
        let url = format!("http://{}/index.html", server.local_addr());
        let reply = http_get(&url, NodeResolver::default(), WAIT).await.expect("GET");

        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, "hello\n");
        assert_eq!(reply.remote, Some(server.local_addr()));
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/index.html");
        assert_eq!(seen[0].peer.ip(), IpAddr::from(Ipv4Addr::LOCALHOST));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn url_without_scheme_means_http() {
        let server = web("plain");
        let reply = http_get(&server.local_addr().to_string(), NodeResolver::default(), WAIT).await.expect("GET");
        assert_eq!(reply.body, "plain");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn gets_by_a_name_from_the_hosts_file() {
        let server = web("via hosts");
        let hosts = "# static table\n127.0.0.1\tlocalhost\n127.0.0.1   web.lab web  # nginx\n";
        let resolver = NodeResolver::from_files(None, Some(hosts));
        let url = format!("http://WEB:{}/", server.local_addr().port());
        let reply = http_get(&url, resolver, WAIT).await.expect("GET");

        assert_eq!(reply.body, "via hosts");
        let seen = server.requests();
        let host = seen.first().and_then(|r| r.host.clone());
        assert_eq!(host, Some(format!("web:{}", server.local_addr().port())));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn gets_by_a_name_resolved_through_the_dns_server() {
        let server = web("via dns");
        let dns_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let dns = start_dns(dns_socket, vec![("web.lab".into(), Ipv4Addr::LOCALHOST.into())]).expect("start dns");

        let resolver = NodeResolver::with_nameserver(dns.local_addr());
        let url = format!("http://web.lab:{}/", server.local_addr().port());
        let reply = http_get(&url, resolver, WAIT).await.expect("GET");

        assert_eq!(reply.body, "via dns");
        let asked: Vec<String> = dns.queries().into_iter().map(|(_, name)| name).collect();
        assert_eq!(asked, vec!["web.lab".to_owned()]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn falls_back_to_aaaa_when_there_is_no_a() {
        let v6: Ipv6Addr = "fd00::80".parse().expect("v6");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let dns = start_dns(socket, vec![("six.lab".into(), v6.into())]).expect("dns");
        let ips = NodeResolver::with_nameserver(dns.local_addr()).lookup("six.lab").await.expect("lookup");
        assert_eq!(ips, vec![IpAddr::V6(v6)]);
        assert_eq!(dns.queries().len(), 2, "asked A, then AAAA");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn refused_connection_is_reported_like_curl() {
        let addr = closed_tcp_port();
        let err =
            http_get(&format!("http://{addr}/"), NodeResolver::default(), WAIT).await.expect_err("nothing listens");
        assert_eq!(err, CurlError::Refused { host: "127.0.0.1".into(), port: addr.port() });
        assert_eq!(err.to_string(), format!("Failed to connect to 127.0.0.1 port {}: Connection refused", addr.port()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unknown_name_names_the_host_and_the_nameserver() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let dns = start_dns(socket, vec![("web.lab".into(), Ipv4Addr::LOCALHOST.into())]).expect("dns");
        let resolver = NodeResolver::with_nameserver(dns.local_addr());
        let err = http_get("http://nope.lab/", resolver, WAIT).await.expect_err("unknown name");

        let CurlError::Resolve(LookupError::NotFound { host, tried }) = &err else {
            panic!("expected a resolve error, got {err:?}");
        };
        assert_eq!(host, "nope.lab");
        assert_eq!(tried, &vec![(dns.local_addr(), NameserverOutcome::NxDomain)]);
        let message = err.to_string();
        assert!(message.starts_with("Could not resolve host: nope.lab ("), "{message}");
        assert!(message.contains(&dns.local_addr().to_string()), "{message}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_nameserver_is_said_plainly() {
        let resolver = NodeResolver::from_files(Some("# nothing here\n"), Some("127.0.0.1 a\n"));
        let err = http_get("http://web.lab/", resolver, WAIT).await.expect_err("no nameserver");
        assert_eq!(err.to_string(), "Could not resolve host: web.lab (no nameserver configured)");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dead_nameserver_is_refused_and_a_silent_one_times_out() {
        let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let dead_addr = dead.local_addr().expect("addr");
        drop(dead);
        // Bound but never read: queries go unanswered.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let silent_addr = silent.local_addr().expect("addr");

        let resolver = NodeResolver { nameservers: vec![dead_addr, silent_addr], ..NodeResolver::default() }
            .with_query_timeout(Duration::from_millis(200));
        let err = resolver.lookup("web.lab").await.expect_err("no answer");
        assert_eq!(
            err,
            LookupError::NotFound {
                host: "web.lab".into(),
                tried: vec![
                    (dead_addr, NameserverOutcome::Refused),
                    (silent_addr, NameserverOutcome::Timeout(Duration::from_millis(200))),
                ],
            }
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn overall_timeout_says_which_stage_it_cut() {
        // Resolving: the nameserver never answers within the GET's time.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let resolver = NodeResolver::with_nameserver(silent.local_addr().expect("addr"));
        let err = http_get("http://web.lab/", resolver, Duration::from_millis(200)).await.expect_err("times out");
        assert!(matches!(err, CurlError::Timeout { stage: Stage::Resolving, .. }), "{err:?}");
        assert_eq!(err.to_string(), "Resolving timed out after 200 milliseconds");

        // Connecting: the kernel completes the handshake into the backlog,
        // but no one ever accepts or answers.
        let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", mute.local_addr().expect("addr"));
        let err = http_get(&url, NodeResolver::default(), Duration::from_millis(200)).await.expect_err("times out");
        assert!(matches!(err, CurlError::Timeout { stage: Stage::Connecting, .. }), "{err:?}");
    }

    #[test]
    fn parses_resolv_conf_like_glibc() {
        let conf = "# generated\n; also a comment\nsearch lab\nnameserver 10.0.0.53\n\
                    nameserver fd00::53\nnameserver not-an-ip\nnameserver 10.0.0.54\n\
                    nameserver 10.0.0.55\noptions ndots:1 timeout:2\n";
        let resolver = NodeResolver::from_files(Some(conf), None);
        let expected: Vec<SocketAddr> =
            ["10.0.0.53:53", "[fd00::53]:53", "10.0.0.54:53"].iter().map(|a| a.parse().expect("addr")).collect();
        assert_eq!(resolver.nameservers(), expected.as_slice());
        assert_eq!(resolver.query_timeout, Duration::from_secs(2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hosts_lookup_is_case_insensitive_and_ignores_the_final_dot() {
        let resolver = NodeResolver::from_files(
            None,
            Some("10.0.0.80 web.lab\nfd00::80 WEB.lab\n10.0.0.5 db # 10.0.0.6 web.lab\n"),
        );
        let ips = resolver.lookup("Web.Lab.").await.expect("lookup");
        let expected: Vec<IpAddr> = vec!["10.0.0.80".parse().expect("ip"), "fd00::80".parse().expect("ip")];
        assert_eq!(ips, expected);
        let localhost = NodeResolver::default().lookup("localhost").await;
        assert_eq!(localhost.map(|ips| ips.len()), Ok(2));
    }

    /// Needs root (unshare of one thread's network namespace; CI runs as root):
    /// proves the request's sockets are made on the calling thread. In a fresh
    /// namespace lo is down, so 127.0.0.1 is unreachable there, while the server
    /// lives in the test's namespace.
    #[test]
    fn sockets_are_created_in_the_calling_threads_namespace() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let server = rt.block_on(async { web("here") });
        let url = format!("http://{}/", server.local_addr());
        let result = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
            Ok::<_, nix::Error>(rt.block_on(http_get(&url, NodeResolver::default(), WAIT)))
        })
        .join()
        .expect("thread");
        let result = result.expect("unshare(CLONE_NEWNET) needs root");
        let err = result.expect_err("lo is down in the new namespace");
        assert!(matches!(err, CurlError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().ends_with("Network is unreachable"), "{err}");
    }
}
