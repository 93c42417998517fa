//! Servers on 127.0.0.1 that misbehave on purpose, where wiremock cannot: a body that
//! stalls after its headers, a half-written chunk, a reset, a flood, a delayed answer,
//! a proxy that records who connects, and an HTTP/2 answer that never ends.
//!
//! Each server runs on its own thread (with its own small runtime), so that it answers
//! whatever the flavour of the test that talks to it; dropping the handle stops it
//! (bounded: its tasks are cancelled, their sockets closed).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest a test waits for anything a server or the SDK should do promptly.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The head of a request is refused beyond this size (the connection is closed).
const MAX_HEAD: usize = 8 * 1024 * 1024;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its place among all the requests of the server, from 0.
    pub index: usize,
    /// The connection it came on, from 0.
    pub connection: usize,
    pub method: String,
    /// The request target exactly as written on the request line (a path, or an
    /// absolute URL when sent to a proxy).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a server does with one request, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// Writes the bytes and flushes.
    Write(Vec<u8>),
    /// Waits.
    Sleep(Duration),
    /// Keeps the connection open, writing nothing, until the client closes it or the
    /// server stops.
    Stall,
    /// Closes the connection (FIN).
    Close,
    /// Resets the connection (RST).
    Reset,
    /// Writes `bytes` every `every`, until the client goes away or `limit` passes;
    /// then closes.
    Repeat {
        bytes: Vec<u8>,
        every: Duration,
        limit: Duration,
    },
    /// Writes `bytes` back to back, as fast as the client takes them, until the client
    /// goes away, `max_total` bytes were written, or `limit` passes; then closes.
    Flood {
        bytes: Vec<u8>,
        max_total: u64,
        limit: Duration,
    },
}

impl Step {
    pub fn write(bytes: impl AsRef<[u8]>) -> Step {
        Step::Write(bytes.as_ref().to_vec())
    }

    pub fn sleep_ms(ms: u64) -> Step {
        Step::Sleep(Duration::from_millis(ms))
    }
}

type Script = dyn Fn(&Recorded) -> Vec<Step> + Send + Sync;

struct Shared {
    script: Box<Script>,
    connections: AtomicUsize,
    active: AtomicUsize,
    bytes_written: AtomicU64,
    requests: Mutex<Vec<Recorded>>,
}

/// An HTTP/1.1 server that plays a script for every request.
pub struct RawServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RawServer {
    /// Starts a server on 127.0.0.1 playing `script(request)` for each request. After
    /// the steps, the connection waits for the next request (keep-alive), unless a
    /// step ended it.
    pub fn start(script: impl Fn(&Recorded) -> Vec<Step> + Send + Sync + 'static) -> RawServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            script: Box::new(script),
            connections: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            bytes_written: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("raw-server".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("server runtime");
                    runtime.block_on(accept_loop(listener, shared, stopped));
                    runtime.shutdown_timeout(Duration::from_secs(2));
                })
                .expect("server thread")
        };
        RawServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A server that answers every request with the same bytes (and keeps the
    /// connection for the next request).
    pub fn answering(bytes: Vec<u8>) -> RawServer {
        RawServer::start(move |_| vec![Step::Write(bytes.clone())])
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/api/v1`
    pub fn base_url(&self) -> String {
        format!("{}/api/v1", self.url())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests with `method` were received.
    pub fn count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    /// Bytes the sockets accepted from the server so far, over all connections.
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes_written.load(Ordering::SeqCst)
    }

    /// Waits until no connection is being served any more (every client went away or
    /// every script ended), up to `limit`; whether that happened. For async tests,
    /// whose runtime must go on running the client's connections meanwhile.
    pub async fn quiet(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.shared.active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// As [`RawServer::quiet`], blocking the calling thread (not for async tests).
    pub fn wait_until_quiet(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.shared.active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let connection = shared.connections.fetch_add(1, Ordering::SeqCst);
                shared.active.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, connection, Arc::clone(&shared)));
            }
            _ = &mut stopped => return,
        }
    }
}

/// Decrements the count of active connections however the handler ends (cancelled
/// included).
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(mut stream: TcpStream, connection: usize, shared: Arc<Shared>) {
    let _active = Active(Arc::clone(&shared));
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    // Bounded: a client sends a handful of requests per connection in these tests.
    for _ in 0..10_000 {
        let Some(mut request) = read_request(&mut stream, &mut buffer, connection).await else {
            return;
        };
        {
            let mut requests = shared
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            request.index = requests.len();
            requests.push(request.clone());
        }
        let steps = (shared.script)(&request);
        let mut steps = VecDeque::from(steps);
        while let Some(step) = steps.pop_front() {
            match step {
                Step::Write(bytes) => {
                    if write_counted(&mut stream, &bytes, &shared).await.is_err() {
                        return;
                    }
                }
                Step::Sleep(pause) => tokio::time::sleep(pause).await,
                Step::Stall => {
                    stall(&mut stream).await;
                    return;
                }
                Step::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Step::Reset => {
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    return;
                }
                Step::Repeat {
                    bytes,
                    every,
                    limit,
                } => {
                    let started = Instant::now();
                    while started.elapsed() < limit {
                        if write_counted(&mut stream, &bytes, &shared).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(every).await;
                    }
                    return;
                }
                Step::Flood {
                    bytes,
                    max_total,
                    limit,
                } => {
                    let started = Instant::now();
                    let mut total = 0u64;
                    while started.elapsed() < limit && total < max_total {
                        match write_counted(&mut stream, &bytes, &shared).await {
                            Ok(()) => total += bytes.len() as u64,
                            Err(_) => return,
                        }
                    }
                    return;
                }
            }
        }
    }
}

/// Writes `bytes`, counting what the socket accepted, and flushes.
async fn write_counted(
    stream: &mut TcpStream,
    mut bytes: &[u8],
    shared: &Shared,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = stream.write(bytes).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        shared
            .bytes_written
            .fetch_add(written as u64, Ordering::SeqCst);
        bytes = &bytes[written..];
    }
    stream.flush().await
}

/// Reads and discards until the client closes (the runtime's shutdown also ends it).
async fn stall(stream: &mut TcpStream) {
    let mut scratch = [0u8; 4096];
    loop {
        match stream.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Reads one request (head, then a body of `Content-Length` bytes); `None` when the
/// client closed the connection or sent something that is not a request.
async fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    connection: usize,
) -> Option<Recorded> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 16 * 1024];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    buffer.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.splitn(3, ' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < length {
        let mut chunk = [0u8; 16 * 1024];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body: Vec<u8> = buffer.drain(..length).collect();
    Some(Recorded {
        index: 0,
        connection,
        method,
        target,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// A status line and headers, and the blank line; no `Content-Length` added.
pub fn head(status: u16, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// A whole response with its `Content-Length`, and `Connection: close` unless the
/// headers say otherwise: a script may close the connection after any answer, and
/// the client must not take it for one it can send the next request on (that would
/// race with the close).
pub fn response(status: u16, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let length = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Content-Length", &length));
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("connection"))
    {
        all.push(("Connection", "close"));
    }
    let mut bytes = head(status, &all);
    bytes.extend_from_slice(body);
    bytes
}

/// A JSON response.
pub fn json(status: u16, body: &str) -> Vec<u8> {
    response(status, &[("Content-Type", "application/json")], body)
}

/// The head of an event stream whose body lasts until the connection closes.
pub fn sse_head() -> Vec<u8> {
    head(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Connection", "close"),
        ],
    )
}

/// A whole event stream (head and body), ending when the connection closes.
pub fn sse_answer(events: &[&str]) -> Vec<u8> {
    let mut bytes = sse_head();
    bytes.extend_from_slice(sse_events(events).as_bytes());
    bytes
}

/// `data: {event}` lines framed with blank lines.
pub fn sse_events(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// One chunk of a `Transfer-Encoding: chunked` body.
pub fn chunk(data: impl AsRef<[u8]>) -> Vec<u8> {
    let data = data.as_ref();
    let mut bytes = format!("{:x}\r\n", data.len()).into_bytes();
    bytes.extend_from_slice(data);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// A status answer describing project `id` with `project_status`.
pub fn project_answer(id: &str, project_status: &str) -> Vec<u8> {
    json(
        200,
        &format!(
            r#"{{"status":true,"project_id":"{id}","app_url":"https://{id}.laracopilot.com","project_status":"{project_status}","name":"Tasks"}}"#
        ),
    )
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port
}

/// A client builder for `base_url` with the test token, no retries, and timeouts
/// that end a broken test quickly.
pub fn builder(base_url: &str) -> laracopilot::ClientBuilder {
    laracopilot::Client::builder()
        .token(super::token())
        .base_url(base_url)
        .idle_timeout(Some(Duration::from_secs(5)))
        .request_timeout(Duration::from_secs(5))
        .retry_policy(laracopilot::RetryPolicy::none())
}

/// Awaits `future`, failing the test if it takes longer than `limit`.
pub async fn within<F: IntoFuture>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Waits for project `p1` with `options`, which must end in a wait timeout (bounded
/// by [`PATIENCE`]); the error and how long the wait took.
pub async fn wait_timeout(
    client: &laracopilot::Client,
    options: laracopilot::WaitOptions,
) -> (laracopilot::Error, Duration) {
    let started = Instant::now();
    let error = within(PATIENCE, "the wait", client.wait_for_project("p1", options))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            error,
            laracopilot::Error::Timeout {
                kind: laracopilot::TimeoutKind::Wait,
                ..
            }
        ),
        "{error:?}"
    );
    (error, took)
}

/// Runs `f` on a new plain thread and returns its result, failing the test if it
/// takes longer than `limit` (the thread is then left behind; the test fails).
pub fn on_thread<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    match receiver.recv_timeout(limit) {
        Ok(value) => {
            let _ = thread.join();
            value
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not finish within {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what} ended without a result"),
        },
    }
}

mod h2;
#[allow(unused_imports, reason = "each test file uses a different subset")]
pub use h2::H2Server;
