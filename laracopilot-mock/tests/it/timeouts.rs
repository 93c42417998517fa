//! Read timeouts: a client that never finishes its request head, or its body, is
//! cut off after the server's read timeout, and an idle connection is closed.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use laracopilot_mock::MockServer;

use crate::common::mock::*;

const TIMEOUT: Duration = Duration::from_millis(300);

fn server() -> MockServer {
    MockServer::builder()
        .token(RAW_TOKEN)
        .read_timeout(TIMEOUT)
        .start()
        .unwrap()
}

/// Connects, writes `bytes`, then reads until the server closes the connection;
/// what it sent, and how long that took from before the connection (so at least as
/// long as any timer the server started).
fn send_and_wait(server: &MockServer, bytes: &[u8]) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut stream = connect(server.addr());
    stream.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    // A reset is a close too.
    let _ = stream.read_to_end(&mut answer);
    (answer, started.elapsed())
}

#[test]
fn a_request_head_that_never_ends_is_cut_off_without_an_answer() {
    let server = server();
    let (answer, waited) = send_and_wait(
        &server,
        b"POST /api/v1/agent/generate HTTP/1.1\r\nHost: x\r\n",
    );
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(waited >= TIMEOUT, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(
        server.requests().is_empty(),
        "nothing was read as a request"
    );
}

#[test]
fn a_body_that_stalls_gets_408_and_the_connection_closed() {
    let server = server();
    let head = format!(
        "POST /api/v1/agent/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RAW_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"prompt\": \"Build a"
    );
    let (answer, waited) = send_and_wait(&server, head.as_bytes());
    let answer = parse(&answer);
    assert_eq!(answer.status, 408);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(
        answer.text(),
        r#"{"message":"The request body did not arrive in time."}"#
    );
    assert!(waited >= TIMEOUT, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    let recorded = server.requests();
    assert_eq!((recorded.len(), recorded[0].body.as_str()), (1, ""));
    assert!(server.project("p1").is_none(), "nothing was generated");
}

#[test]
fn an_idle_connection_is_closed_after_the_read_timeout() {
    let server = server();
    let request = "GET /api/v1/agent/project/p1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (answer, waited) = send_and_wait(&server, request.as_bytes());
    assert_eq!(parse(&answer).status, 401, "answered, then kept alive");
    assert!(waited >= TIMEOUT, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn a_client_that_keeps_sending_in_time_is_served() {
    // Pauses far shorter than the read timeout, even when a loaded machine runs
    // this thread late after each one.
    let server = MockServer::builder()
        .token(RAW_TOKEN)
        .read_timeout(TIMEOUT * 10)
        .start()
        .unwrap();
    let body = format!("{{\"prompt\": \"{PROMPT}\"}}");
    let head = format!(
        "POST /api/v1/agent/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {RAW_TOKEN}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = connect(server.addr());
    for part in [head.as_bytes(), body.as_bytes()] {
        stream.write_all(part).unwrap();
        std::thread::sleep(TIMEOUT / 3);
    }
    let answer = parse(&read_to_close(&mut stream));
    assert_eq!(answer.status, 200);
    assert!(answer.text().contains("\"type\":\"stream_end\""));
}
