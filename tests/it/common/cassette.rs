//! Helpers of the cassette tests: a raw HTTP/1.1 server on `std::net` that frames
//! and paces its chunks exactly as told (so that a recording can be compared with
//! what was really sent), a raw reqwest client that reads frame by frame, and
//! recording against the offline LaraCopilot.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use laracopilot::reqwest;

/// Every connection of a raw server is served within this time, or given up.
const CONNECTION_LIMIT: Duration = Duration::from_secs(20);
/// A raw server accepts at most this many connections.
const MAX_CONNECTIONS: usize = 64;

/// A request as the raw server read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    /// `(lowercase name, value bytes)`, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// What the raw server answers: a status, headers (raw bytes allowed), and chunks,
/// each sent after its pause with its own `write` (chunked transfer encoding).
#[derive(Debug, Clone)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub chunks: Vec<(Duration, Vec<u8>)>,
}

impl RawReply {
    pub fn new(status: u16, content_type: &str) -> Self {
        RawReply {
            status,
            headers: vec![("Content-Type".into(), content_type.as_bytes().to_vec())],
            chunks: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn chunk(mut self, pause: Duration, data: impl Into<Vec<u8>>) -> Self {
        self.chunks.push((pause, data.into()));
        self
    }
}

type Handler = dyn Fn(&RawRequest) -> RawReply + Send + Sync;

/// A raw HTTP/1.1 server on 127.0.0.1: one thread per connection (at most
/// [`MAX_CONNECTIONS`]), one request per connection (`Connection: close`).
pub struct RawServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
}

impl RawServer {
    pub fn start(handler: impl Fn(&RawRequest) -> RawReply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let accept = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || accept_loop(listener, stop, handler, requests))
        };
        RawServer {
            addr,
            stop,
            accept: Some(accept),
            requests,
        }
    }

    /// The base URL of the API on this server.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<RawRequest>>>,
) {
    let accepted = AtomicUsize::new(0);
    let mut connections = Vec::new();
    let started = Instant::now();
    while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(120) {
        match listener.accept() {
            Ok((stream, _)) if accepted.fetch_add(1, Ordering::SeqCst) < MAX_CONNECTIONS => {
                let handler = Arc::clone(&handler);
                let requests = Arc::clone(&requests);
                connections.push(std::thread::spawn(move || {
                    serve(stream, &*handler, &requests);
                }));
            }
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, requests: &Mutex<Vec<RawRequest>>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(CONNECTION_LIMIT));
    let _ = stream.set_write_timeout(Some(CONNECTION_LIMIT));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    requests.lock().unwrap().push(request.clone());
    let reply = handler(&request);
    let mut head = format!("HTTP/1.1 {} Whatever\r\n", reply.status).into_bytes();
    for (name, value) in &reply.headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    if stream.write_all(&head).is_err() {
        return;
    }
    for (pause, data) in &reply.chunks {
        std::thread::sleep(*pause);
        let mut framed = format!("{:x}\r\n", data.len()).into_bytes();
        framed.extend_from_slice(data);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let _ = stream.flush();
    // Let the client read the end before the connection closes.
    std::thread::sleep(Duration::from_millis(20));
}

fn read_request(stream: &mut TcpStream) -> Option<RawRequest> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut byte).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&byte[..n]);
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = buf[..head_end].to_vec();
    let mut body = buf[head_end + 4..].to_vec();
    let mut lines = head.split(|&b| b == b'\n');
    let request_line = String::from_utf8_lossy(lines.next()?).trim().to_owned();
    let mut parts = request_line.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            Some((name, line[colon + 1..].trim_ascii().to_vec()))
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = stream.read(&mut byte).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&byte[..n]);
    }
    body.truncate(length);
    Some(RawRequest {
        method,
        path,
        headers,
        body,
    })
}

/// A plain reqwest client (no SDK in between), for reading a replay frame by frame.
pub fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a reqwest client")
}

/// The frames of a body as the client's HTTP stack hands them over, each with its
/// arrival time since `sent`; bounded in count and time.
pub async fn frames(mut response: reqwest::Response, sent: Instant) -> Vec<(Duration, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("the body makes progress")
            .expect("the body does not break");
        match chunk {
            Some(data) => frames.push((sent.elapsed(), data.to_vec())),
            None => return frames,
        }
        assert!(frames.len() < 100_000, "runaway body");
    }
}

/// POSTs `body` to `path` under `base` as the SDK's generate call does.
pub async fn raw_generate(base: &str, path: &str, body: &str) -> (Instant, reqwest::Response) {
    let sent = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        raw_client()
            .post(format!("{base}{path}"))
            .header("accept", "text/event-stream")
            .header("content-type", "application/json")
            .header("authorization", "Bearer lcp_any_value_will_do_here")
            .body(body.to_owned())
            .send(),
    )
    .await
    .expect("an answer in time")
    .expect("an answer");
    (sent, response)
}

/// A fresh temporary directory for one test's cassettes.
pub fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}
