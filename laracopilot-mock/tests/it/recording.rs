//! Recorded requests, with the token masked by `Token`'s own rule, and the caps on
//! what the server keeps: requests by count and by body bytes, prompts per project.
//! Waiting for request `n`, from a plain thread or from async code.

use std::future::Future as _;
use std::io::Write;
use std::task::{Context, Waker};
use std::time::Duration;

use laracopilot_mock::{
    MockServer, Reply, MAX_FILES_PER_PROJECT, MAX_PROMPTS_PER_PROJECT, MAX_RECORDED_BODY_BYTES,
    MAX_RECORDED_REQUESTS,
};
use serde_json::json;

use crate::common::mock::*;
use crate::common::*;

#[tokio::test]
async fn requests_are_recorded_with_the_token_masked() {
    let secret = "lcp_mock_S3CR3T_never_printed_9f8e";
    let server = MockServer::builder().token(secret).start().unwrap();
    let client = server.client();
    let id = finish_ok(&client, PROMPT)
        .await
        .project_id()
        .cloned()
        .unwrap();
    client.project(&id).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let (post, get) = (&requests[0], &requests[1]);
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, "/api/v1/agent/generate");
    assert_eq!(post.json(), Some(json!({ "prompt": PROMPT })));
    assert_eq!(post.header("accept"), Some("text/event-stream"));
    assert_eq!(post.header("Authorization"), Some("Bearer ****9f8e"));
    assert_eq!(get.method, "GET");
    assert_eq!(get.path, format!("/api/v1/agent/project/{id}"));
    assert_eq!(get.body, "");

    for output in [
        format!("{requests:?}"),
        format!("{server:?}"),
        format!("{:?}", server.token()),
        format!("{:?}", MockServer::builder().token(secret)),
    ] {
        assert!(!output.contains("S3CR3T"), "{output}");
    }
}

#[test]
fn credentials_are_masked_as_the_token_masks_itself_and_invalid_ones_completely() {
    let server = raw_token_server();
    for (value, recorded) in [
        ("Bearer lcp_live_0123456789", "Bearer ****6789"),
        ("Bearer short", "Bearer ****"),
        ("Basic dXNlcjpwYXNzd29yZA==", "Basic ****ZA=="),
        ("rawtokenvalue1234", "****1234"),
        ("Bearer two words here", "Bearer ****"),
    ] {
        let raw = format!("GET /api/v1/x HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\nConnection: close\r\n\r\n");
        let mut stream = connect(server.addr());
        stream.write_all(raw.as_bytes()).unwrap();
        assert_eq!(parse(&read_to_close(&mut stream)).status, 404);
        let last = server.requests().pop().unwrap();
        assert_eq!(last.header("authorization"), Some(recorded), "{value}");
    }
}

/// Sends `count` requests on one connection, all written before any answer is
/// read (HTTP/1.1 pipelining), the last one closing the connection.
fn pipeline(server: &MockServer, count: usize, body: &str) {
    let mut stream = connect(server.addr());
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let body = body.to_owned();
        std::thread::spawn(move || {
            for i in 0..count {
                let close = if i + 1 == count {
                    "Connection: close\r\n"
                } else {
                    ""
                };
                let request = format!(
                    "POST /api/v1/unrouted/{i} HTTP/1.1\r\nHost: x\r\n{close}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(request.as_bytes()).unwrap();
            }
        })
    };
    let answers = read_to_close(&mut stream);
    writer.join().unwrap();
    let count_404 = memchr::memmem::find_iter(&answers, b"HTTP/1.1 404").count();
    assert_eq!(count_404, count, "every request was answered");
}

#[test]
fn at_most_the_latest_max_recorded_requests_are_kept() {
    let server = raw_token_server();
    pipeline(&server, MAX_RECORDED_REQUESTS + 5, "");
    let requests = server.requests();
    assert_eq!(requests.len(), MAX_RECORDED_REQUESTS);
    assert_eq!(
        requests[0].path, "/api/v1/unrouted/5",
        "the oldest five were dropped"
    );
    let last = MAX_RECORDED_REQUESTS + 4;
    assert_eq!(
        requests.last().unwrap().path,
        format!("/api/v1/unrouted/{last}")
    );
    // The count of requests received is not capped.
    assert!(server.wait_for_requests(MAX_RECORDED_REQUESTS + 5, Duration::ZERO));
    assert!(!server.wait_for_requests(MAX_RECORDED_REQUESTS + 6, Duration::ZERO));
}

#[test]
fn waiting_for_request_n_ends_once_it_is_recorded_even_unanswered() {
    let server = raw_token_server();
    assert!(
        !server.wait_for_requests(1, Duration::from_millis(50)),
        "nothing was sent"
    );
    server.reply_next(1, Reply::hang());
    let addr = server.addr();
    let hanging = std::thread::spawn(move || {
        let mut stream = connect(addr);
        stream
            .write_all(b"GET /api/v1/agent/project/p1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_to_close(&mut stream)
    });
    assert!(server.wait_for_requests(1, Duration::from_secs(20)));
    assert_eq!(server.requests()[0].path, "/api/v1/agent/project/p1");
    assert!(
        !hanging.is_finished(),
        "a hanging request is never answered"
    );
    let answered = request(&server, "GET", "/api/v1/agent/project/p1", None, "");
    assert_eq!(answered.status, 401);
    assert!(server.wait_for_requests(2, Duration::ZERO));
    drop(server);
    assert_eq!(hanging.join().unwrap(), b"", "closed without an answer");
}

#[tokio::test]
async fn requests_received_leaves_the_runtime_free_to_send_them() {
    let server = MockServer::start();
    server.reply_next(1, Reply::hang());
    let client = server.client();
    // Created before the request is sent; awaited on the runtime that sends it.
    let arrived = server.requests_received(1);
    let call = tokio::spawn(async move { client.project("p1").await });
    bounded(arrived).await;
    assert_eq!(server.requests().len(), 1);
    assert!(!call.is_finished(), "the request hangs, unanswered");
    // A request that never comes: not even the server's shutdown ends the wait.
    let never = server.requests_received(2);
    drop(server);
    let mut never = std::pin::pin!(never);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        never.as_mut().poll(&mut cx).is_pending(),
        "a server shut down receives nothing more"
    );
    assert!(
        bounded(call).await.unwrap().is_err(),
        "closed by the shutdown"
    );
}

#[test]
fn recorded_bodies_are_capped_in_total_bytes_dropping_the_oldest_requests() {
    let server = raw_token_server();
    let body = "x".repeat(1024 * 1024 - 1);
    let count = MAX_RECORDED_BODY_BYTES / body.len() + 3;
    pipeline(&server, count, &body);
    let requests = server.requests();
    let total: usize = requests.iter().map(|r| r.body.len()).sum();
    assert!(total <= MAX_RECORDED_BODY_BYTES, "{total}");
    assert_eq!(requests.len(), MAX_RECORDED_BODY_BYTES / body.len());
    let last = count - 1;
    assert_eq!(
        requests.last().unwrap().path,
        format!("/api/v1/unrouted/{last}")
    );
    assert_eq!(
        requests[0].path,
        format!("/api/v1/unrouted/{}", count - requests.len())
    );
}

#[test]
fn a_body_over_one_mebibyte_is_refused_with_413_and_recorded_empty() {
    let server = raw_token_server();
    let body = "x".repeat(1024 * 1024 + 1);
    let answer = request(
        &server,
        "POST",
        "/api/v1/agent/generate",
        Some(RAW_TOKEN),
        &body,
    );
    assert_eq!(answer.status, 413);
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(server.requests()[0].body, "");
    assert!(server.project("p1").is_none());
}

#[test]
fn at_most_the_latest_max_prompts_per_project_are_kept() {
    let server = raw_token_server();
    assert_eq!(raw_generate(&server).status, 200);
    for i in 0..MAX_PROMPTS_PER_PROJECT {
        let body = json!({ "prompt": format!("Follow-up number {i}") }).to_string();
        let answer = request(
            &server,
            "POST",
            "/api/v1/agent/generate/p1",
            Some(RAW_TOKEN),
            &body,
        );
        assert_eq!(answer.status, 200);
        assert!(
            answer.text().contains("data: {\"type\":\"stream_end\""),
            "{}",
            answer.text()
        );
    }
    let prompts = server.project("p1").unwrap().prompts;
    assert_eq!(prompts.len(), MAX_PROMPTS_PER_PROJECT);
    assert_eq!(
        prompts[0], "Follow-up number 0",
        "the generation's prompt was dropped"
    );
    let last = MAX_PROMPTS_PER_PROJECT - 1;
    assert_eq!(prompts.last().unwrap(), &format!("Follow-up number {last}"));
}

#[test]
fn at_most_the_first_max_files_per_project_are_kept_and_every_file_is_charged() {
    let server = raw_token_server();
    let files = (0..=MAX_FILES_PER_PROJECT)
        .map(|i| json!({"type": "file_created", "path": format!("app/F{i}.php")}));
    let end = std::iter::once(json!({"type": "stream_end"}));
    server.script_next(files.chain(end)).unwrap();
    let credits = server.credits();
    let answer = raw_generate(&server);
    assert_eq!(
        answer.text().matches("\"file_created\"").count(),
        MAX_FILES_PER_PROJECT + 1
    );
    let kept = server.project("p1").unwrap().files;
    assert_eq!(kept.len(), MAX_FILES_PER_PROJECT);
    assert_eq!(
        kept.last().unwrap(),
        &format!("app/F{}.php", MAX_FILES_PER_PROJECT - 1)
    );
    assert_eq!(credits - server.credits(), MAX_FILES_PER_PROJECT as u64 + 1);
}
