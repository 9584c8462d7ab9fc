//! A tiny web server, the "nginx" of a tutorial: every request to any path
//! gets the same status and plain-text body, and every request is logged so a
//! lab can check who asked (source address and port), for which Host and path.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use tokio::task::JoinHandle;

use super::{lock, runtime, ServiceError};

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// The client's source address and port.
    pub peer: SocketAddr,
    /// The Host header, if the client sent one.
    pub host: Option<String>,
    /// The request path, without the query string.
    pub path: String,
}

/// A running HTTP server. Dropping it stops the server.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: JoinHandle<()>,
    /// A second handle on the listening socket, kept only so that `drop` can
    /// close it at once (see `Drop`).
    listener: std::net::TcpListener,
}

impl HttpServer {
    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.seen).clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Aborting the task only schedules the listener's drop for the next
        // time the runtime gets control, so a probe made right after stopping
        // the server could still be accepted. shutdown() on a listening socket
        // makes Linux reset queued and new connections immediately, so "stop
        // the server, then curl is refused" holds without any waiting. A
        // failure just means the socket is already closed.
        let _ = socket2::SockRef::from(&self.listener).shutdown(std::net::Shutdown::Both);
        // Connections still open are closed gracefully by axum once its
        // accept loop is gone.
        self.task.abort();
    }
}

/// What every request gets, shared by all connections.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    body: Bytes,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

/// Starts serving `status` and `body` on `listener`, which the caller has
/// bound (and set listening) inside the right network namespace.
///
/// Must be called from inside a tokio runtime with IO enabled: the server is
/// a task spawned on it.
pub fn start_http(listener: std::net::TcpListener, body: String, status: u16) -> Result<HttpServer, ServiceError> {
    let status = StatusCode::from_u16(status).map_err(|_| ServiceError::InvalidStatus(status))?;
    let handle = runtime()?;

    listener.set_nonblocking(true).map_err(ServiceError::io("HTTP listener: set nonblocking"))?;
    let local_addr = listener.local_addr().map_err(ServiceError::io("HTTP listener: local address"))?;
    let stopper = listener.try_clone().map_err(ServiceError::io("HTTP listener: duplicate handle"))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(ServiceError::io("HTTP listener: register with tokio"))?;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let app =
        Router::new().fallback(answer).with_state(Reply { status, body: Bytes::from(body), seen: Arc::clone(&seen) });
    // Connect info is what gives the handler the client's address.
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
    let task = handle.spawn(async move {
        // axum's accept loop never ends on its own (it retries accept errors),
        // so there is nothing to report here.
        let _ = server.await;
    });

    Ok(HttpServer { local_addr, seen, task, listener: stopper })
}

/// The one handler: log the request, answer the configured reply.
async fn answer(
    State(reply): State<Reply>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> impl IntoResponse {
    // A dual-stack [::] listener reports IPv4 clients as ::ffff:a.b.c.d; a lab
    // checks for the plain IPv4 address.
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    lock(&reply.seen).push(SeenRequest { peer, host, path: uri.path().to_owned() });
    (reply.status, [(header::CONTENT_TYPE, "text/plain")], reply.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn loopback_listener() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
    }

    /// Sends one raw HTTP/1.1 request and returns the whole response text and
    /// the client's own address.
    async fn raw_get(addr: SocketAddr, host: &str, path: &str) -> (String, SocketAddr) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let me = stream.local_addr().expect("client address");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read response");
        (response, me)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_any_path_and_records_the_client() {
        let server = start_http(loopback_listener(), "hello from web\n".into(), 200).expect("start");
        let (response, me) = raw_get(server.local_addr(), "web.lab", "/some/page?x=1").await;

        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("content-type: text/plain\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\nhello from web\n"), "{response}");
        assert_eq!(
            server.requests(),
            vec![SeenRequest { peer: me, host: Some("web.lab".into()), path: "/some/page".into() }]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn answers_the_configured_status() {
        let server = start_http(loopback_listener(), "gone".into(), 404).expect("start");
        let (response, _) = raw_get(server.local_addr(), "x", "/").await;
        assert!(response.starts_with("HTTP/1.1 404 Not Found\r\n"), "{response}");
        assert!(response.ends_with("\r\n\r\ngone"), "{response}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn rejects_an_impossible_status() {
        let err = start_http(loopback_listener(), String::new(), 42).expect_err("status 42");
        assert!(matches!(err, ServiceError::InvalidStatus(42)), "{err}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropping_the_server_refuses_new_connections_at_once() {
        let server = start_http(loopback_listener(), "x".into(), 200).expect("start");
        let addr = server.local_addr();
        drop(server);
        // No await in between: the refusal must not depend on the runtime
        // getting round to dropping the task.
        let err = std::net::TcpStream::connect(addr).expect_err("server is stopped");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn starting_outside_a_runtime_is_an_error_not_a_panic() {
        let err = start_http(loopback_listener(), String::new(), 200).expect_err("no runtime");
        assert!(matches!(err, ServiceError::NoRuntime), "{err}");
    }
}
