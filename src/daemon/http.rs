//! The read-only HTTP endpoint of `serve` and `daemon --listen`: `/status` (JSON), `/metrics` (Prometheus),
//! `/healthz` and a dashboard page.
//!
//! HTTP/1.1 is spoken by hyper on the process's tokio runtime ([`crate::runtime`]), not by a parser of our own:
//! hyper is the server under most of Rust's HTTP stack, and it enforces the limits this endpoint needs before
//! any of our code runs. A request head (request line and headers) may be at most [`MAX_HEADER_BYTES`]: a larger
//! one is answered `431 Request Header Fields Too Large` and the connection closed, so a client can make the
//! endpoint hold at most [`MAX_BUFFER_BYTES`] per connection and [`MAX_CONNECTIONS`] connections (later ones
//! wait in the listen backlog). The head must arrive within [`HEADER_TIMEOUT`], a whole exchange within
//! [`CONNECTION_TIMEOUT`]; bodies are never read and connections are not kept alive. What requests see is
//! computed in the background ([`super::refresh`]); answering them ([`super::endpoint`]) touches no storage.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use jiff::Timestamp;

use super::endpoint::{self, Request};
use super::refresh::{Board, Refresher, Source};
use crate::error::{Error, Result};

/// Longest request head (request line and headers) accepted; a larger one gets 431.
pub const MAX_HEADER_BYTES: usize = 32 << 10;
/// Most a connection may buffer (hyper's read buffer; its minimum is 8 KiB).
pub const MAX_BUFFER_BYTES: usize = 64 << 10;
/// Connections served at once; more wait in the kernel's listen backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a whole exchange may take.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the accept loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(250);

/// A bound listener, not yet serving.
pub struct Listener {
    socket: std::net::TcpListener,
    addr: String,
    local: SocketAddr,
}

impl Listener {
    /// The address actually bound (the port chosen for `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Binds the HTTP listener, so that a taken port is an error before anything else starts.
pub fn bind(addr: &str) -> Result<Listener> {
    let cannot = |e: std::io::Error| Error::InvalidInput(format!("cannot listen on {addr}: {e}"));
    let socket = std::net::TcpListener::bind(addr).map_err(cannot)?;
    socket.set_nonblocking(true).map_err(cannot)?;
    let local = socket.local_addr().map_err(cannot)?;
    Ok(Listener { socket, addr: addr.to_string(), local })
}

/// Serves until `stop` is set: publishes the state once (so the first request finds it), then refreshes it in a
/// background thread while this one answers requests. `sync_catalog` as in [`Refresher`]; ages are judged at
/// `now()`.
pub fn serve(
    source: &dyn Source,
    listener: Listener,
    sync_catalog: bool,
    stop: &AtomicBool,
    now: &(dyn Fn() -> Timestamp + Sync),
) -> Result<()> {
    let refresher = Refresher { source, sync_catalog, listen: listener.addr.clone(), now };
    let mut session = source.open()?;
    let board = Arc::new(Board::default());
    let first = refresher.publish(&mut session, &board, super::refresh::DEFAULT_REFRESH);
    let ended = AtomicBool::new(false);
    let either = || stop.load(Ordering::Relaxed) || ended.load(Ordering::Relaxed);
    std::thread::scope(|scope| {
        scope.spawn(|| refresher.run(session, &board, &either, first));
        let served = crate::runtime::block_on(accept_loop(listener, board.clone(), stop));
        ended.store(true, Ordering::Relaxed);
        served.and_then(|r| r)
    })
}

/// Accepts connections until `stop`, each served by hyper with the limits above in a task of its own.
async fn accept_loop(listener: Listener, board: Arc<Board>, stop: &AtomicBool) -> Result<()> {
    let Listener { socket, addr, .. } = listener;
    let socket =
        tokio::net::TcpListener::from_std(socket).map_err(|e| Error::io("serve the status endpoint", &addr, e))?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUFFER_BYTES)
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(slot)) = tokio::time::timeout(TICK, slots.clone().acquire_owned()).await else { continue };
        let (stream, _) = match tokio::time::timeout(TICK, socket.accept()).await {
            Ok(Ok(accepted)) => accepted,
            // Out of file descriptors and the like: wait a little rather than spin.
            Ok(Err(_)) => {
                tokio::time::sleep(TICK).await;
                continue;
            }
            Err(_) => continue,
        };
        let board = board.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let answer = answer(&board, &req);
            async move { Ok::<_, Infallible>(answer) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
    Ok(())
}

/// One request's answer, from the board.
fn answer(board: &Board, req: &hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let headers = req.headers();
    let host = headers.get(HOST).map(HeaderValue::as_bytes);
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    let request = Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        host: host.or(authority),
        authorization: headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
    };
    let reply = endpoint::respond(&request, board.current().as_deref(), Instant::now());
    let mut response = hyper::Response::new(Full::new(reply.body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
