//! Built-in servers started inside a node: HTTP, DNS and UDP echo, plus a
//! curl-like HTTP client probe and a UDP echo probe.
//!
//! Namespace rule that shapes this module: a socket belongs to the network
//! namespace of the thread that created it. So the servers never create their
//! own sockets; the caller binds them while its thread is inside the node's
//! namespace and hands them over as std sockets. The client probe (`curl`)
//! creates its sockets in the task that runs it, so the caller runs it on a
//! thread that already sits in the node's namespace.
//!
//! Nothing here reads host configuration or sends traffic anywhere but the
//! addresses it is given.

pub mod curl;
pub mod dns;
pub mod http;
pub mod ra;
pub mod throughput;
pub mod udp;

pub use curl::{http_get, CurlError, HttpReply, LookupError, NameserverOutcome, NodeResolver};
pub use dns::{start_dns, DnsServer};
pub use http::{start_http, HttpServer, SeenRequest};
pub use ra::{advert_socket, start_ra, RaSender};
pub use udp::{start_udp_echo, udp_exchange, UdpEchoServer, UdpError};

/// Why a built-in server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The socket handed over could not be prepared (nonblocking mode,
    /// registration with tokio, reading its local address).
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Servers are tokio tasks; starting one outside a runtime would panic
    /// inside tokio, so it is reported instead.
    #[error("a built-in server must be started from inside a tokio runtime")]
    NoRuntime,
    /// HTTP status codes are three digits (100..=999).
    #[error("invalid HTTP status {0}: must be between 100 and 999")]
    InvalidStatus(u16),
    /// A DNS record's name is not a valid domain name.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
}

impl ServiceError {
    fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}

/// The runtime handle to spawn servers on, or `NoRuntime` instead of the
/// panic tokio would raise.
fn runtime() -> Result<tokio::runtime::Handle, ServiceError> {
    tokio::runtime::Handle::try_current().map_err(|_| ServiceError::NoRuntime)
}

/// Locks a mutex even if a panicking thread poisoned it: the logs kept here
/// are plain lists that cannot be left half-updated.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
