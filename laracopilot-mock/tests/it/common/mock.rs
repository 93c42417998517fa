//! Helpers for tests of the offline LaraCopilot: the usual
//! prompt, event summaries, and a raw HTTP/1.1 client on `std::net` for requests
//! the SDK never sends (no runtime needed, every read bounded).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use laracopilot::{Client, Event, Generation, RetryPolicy};
use laracopilot_mock::MockServer;

use super::collect;

/// The documentation's kind of prompt; the mock plans Task files for it.
pub const PROMPT: &str = "Build a task management app";

/// The mock's default token is random; tests that send requests without the SDK
/// give the server this one.
pub const RAW_TOKEN: &str = "lcp_mock_raw_http_token_0001";

/// A server that accepts [`RAW_TOKEN`].
pub fn raw_token_server() -> MockServer {
    MockServer::builder().token(RAW_TOKEN).start().unwrap()
}

/// A client that makes one attempt per call, so that each canned reply is observed
/// as it is.
pub fn one_attempt(server: &MockServer) -> Client {
    server
        .client_builder()
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// The POSTs (generate and follow-up calls) `server` received.
pub fn posts(server: &MockServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

/// The POSTs whose JSON body asks for `prompt`.
pub fn posts_with_prompt(server: &MockServer, prompt: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.json().is_some_and(|b| b["prompt"] == prompt))
        .count()
}

/// The events of a generation that must succeed.
pub async fn events(generation: Generation) -> Vec<Event> {
    collect(generation)
        .await
        .into_iter()
        .map(|item| item.expect("no error in this stream"))
        .collect()
}

pub fn types(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.type_name().to_owned()).collect()
}

pub fn paths(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::FileCreated(file) => file.path.clone(),
            _ => None,
        })
        .collect()
}

/// What a test compares: the event's type and its path or message, without ids
/// (which differ from one project to the next).
pub fn signature(event: &Event) -> String {
    let detail = match event {
        Event::FileCreated(e) => e.path.clone(),
        Event::ContainerProgress(e) => Some(e.message.clone()),
        Event::ContainerReady(e) => Some(e.message.clone()),
        Event::ToolProgress(e) => e.message.clone(),
        _ => None,
    };
    format!("{}:{}", event.type_name(), detail.unwrap_or_default())
}

/// Polls `condition` every 10 ms for at most 5 seconds, letting the runtime's
/// other tasks run meanwhile (the client closes connections on them); whether it
/// came true.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// An HTTP/1.1 answer read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The status line and the headers.
    pub head: String,
    /// The body, with a chunked transfer encoding undone.
    pub body: Vec<u8>,
    /// The chunks of a chunked body, as the server framed them.
    pub chunks: Vec<Vec<u8>>,
}

impl RawAnswer {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("a JSON body ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A connection to `addr` whose reads and writes give up after 10 seconds.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("the mock accepts connections");
    let limit = Some(Duration::from_secs(10));
    stream.set_read_timeout(limit).unwrap();
    stream.set_write_timeout(limit).unwrap();
    stream
}

/// Everything the server sends on `stream` until it closes the connection.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the server closes the connection in time");
    answer
}

/// `method path` on its own connection (`Connection: close`), with `Bearer token`
/// when given and `body` as JSON, then the parsed answer.
pub fn request(
    server: &MockServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> RawAnswer {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr(),
        body.len()
    );
    let mut stream = connect(server.addr());
    stream.write_all(request.as_bytes()).unwrap();
    parse(&read_to_close(&mut stream))
}

/// A generate request with [`PROMPT`] and [`RAW_TOKEN`].
pub fn raw_generate(server: &MockServer) -> RawAnswer {
    let body = serde_json::json!({ "prompt": PROMPT }).to_string();
    request(
        server,
        "POST",
        "/api/v1/agent/generate",
        Some(RAW_TOKEN),
        &body,
    )
}

/// Parses one HTTP/1.1 answer.
pub fn parse(answer: &[u8]) -> RawAnswer {
    let split = memchr::memmem::find(answer, b"\r\n\r\n").expect("a complete head");
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let mut answer = RawAnswer {
        status,
        head,
        body: answer[split + 4..].to_vec(),
        chunks: Vec::new(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut rest = &answer.body[..];
        loop {
            let line_end = memchr::memmem::find(rest, b"\r\n").expect("a chunk size");
            let size = std::str::from_utf8(&rest[..line_end]).unwrap();
            let size = usize::from_str_radix(size, 16).unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            answer.chunks.push(rest[..size].to_vec());
            rest = &rest[size + 2..];
            assert!(answer.chunks.len() < 1_000_000, "runaway body");
        }
        answer.body = answer.chunks.concat();
    }
    answer
}
