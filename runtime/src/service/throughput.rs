//! A throughput measurement with netlab's own sink: TCP sent as fast as the path
//! takes it, counted where it arrives. The sink's listener is bound inside the
//! server's node by the caller (a socket belongs to the namespace it was made in);
//! the sender connects from the thread this runs on, inside the sending node.
//!
//! The rate is what the receiver got, not what the sender wrote (socket buffers
//! would count megabytes that never crossed the link): from the sink's first read
//! (not counted: a token bucket lets its burst through at once) for `duration`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::curl::{connect_error, CurlError, Stage};

/// What a measurement saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Bytes received after the first read.
    pub bytes: u64,
    /// Time from the first read to the end of the measurement.
    pub elapsed: Duration,
}

impl Throughput {
    pub fn bits_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.bytes as f64 * 8.0 / secs
    }
}

/// Sends to `dst` and counts what `listener` (the sink, in the server's node)
/// receives for `duration`; `timeout` bounds the connection and the first byte.
pub async fn measure(
    listener: std::net::TcpListener,
    dst: SocketAddr,
    duration: Duration,
    timeout: Duration,
) -> Result<Throughput, CurlError> {
    let (host, port) = (dst.ip().to_string(), dst.port());
    let other = |what: &str, e: std::io::Error| CurlError::Other(format!("{what}: {e}"));
    listener.set_nonblocking(true).map_err(|e| other("preparing netlab's sink", e))?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| other("preparing netlab's sink", e))?;
    let timed_out = |stage| CurlError::Timeout { host: host.clone(), port, after: timeout, stage };
    let accept = listener.accept();
    tokio::pin!(accept);
    let mut sender = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(dst)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(io)) => {
            return Err(connect_error(&io, host.clone(), port)
                .unwrap_or_else(|| CurlError::Other(format!("Failed to connect to {host} port {port}: {io}"))))
        }
        Err(_) => return Err(timed_out(Stage::Connecting)),
    };
    let mut receiver = match tokio::time::timeout(timeout, &mut accept).await {
        Ok(Ok((stream, _))) => stream,
        Ok(Err(e)) => return Err(other("accepting in netlab's sink", e)),
        Err(_) => {
            return Err(CurlError::Other(format!(
                "the connection to {dst} did not reach netlab's sink (a NAT rule leads it elsewhere? give \
                 server: the node it reaches)"
            )))
        }
    };
    let counting = async {
        let mut buf = vec![0u8; 256 * 1024];
        match tokio::time::timeout(timeout, receiver.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => return Err(CurlError::Reset),
            Ok(Err(e)) => return Err(other("receiving", e)),
            Err(_) => return Err(timed_out(Stage::Receiving { body_bytes: 0 })),
        }
        let start = Instant::now();
        let end = start + duration;
        let mut bytes = 0u64;
        loop {
            match tokio::time::timeout_at(end.into(), receiver.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => bytes += n as u64,
                Ok(Err(e)) => return Err(other("receiving", e)),
            }
        }
        Ok(Throughput { bytes, elapsed: start.elapsed().min(duration) })
    };
    let sending = async {
        let chunk = vec![0u8; 128 * 1024];
        loop {
            if let Err(e) = sender.write_all(&chunk).await {
                return e;
            }
        }
    };
    tokio::select! {
        measured = counting => measured,
        e = sending => Err(match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => CurlError::Reset,
            _ => other("sending", e),
        }),
    }
}
