//! Replaying a tape: requests are matched by method, path and body in recorded
//! order; one that is not on the tape fails loudly (a 501 naming what was asked and
//! what the tape expected next) and is kept for the test; a tape written by hand
//! replays as written, a request that got no answer included.

use crate::common;

use std::time::Duration;

use common::cassette::raw_client;
use laracopilot::cassette::Cassette;
use laracopilot::cassette::{CassetteError, Ending, FORMAT_VERSION};
use laracopilot::{Client, Error, RetryPolicy, TimeoutKind};
use laracopilot_mock::{CassetteExt, MockError, MockServer, Unmatched, UNMATCHED_STATUS};

const PROMPT: &str = "Build a task management app";

/// A tape of one generation and one status call, recorded against the offline
/// LaraCopilot.
async fn tape() -> Cassette {
    let dir = common::cassette::dir();
    let path = dir.path().join("tape.cassette");
    let live = MockServer::start();
    let client = live.client_builder().record_to(&path).build().unwrap();
    let outcome = common::finish_ok(&client, PROMPT).await;
    client.project(outcome.project_id().unwrap()).await.unwrap();
    Cassette::load(&path).unwrap()
}

fn one_attempt(server: &MockServer) -> Client {
    server
        .client_builder()
        .retry_policy(RetryPolicy::none())
        .idle_timeout(Some(common::STALL))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_request_not_on_the_tape_gets_a_501_naming_it_and_is_kept() {
    let server = MockServer::replay(tape().await);
    let client = one_attempt(&server);
    assert_eq!(server.unplayed(), 2);

    // Another prompt: not on the tape.
    let error = client
        .generate("Build a blog with comments")
        .await
        .unwrap_err();
    let Error::Api {
        status, message, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*status, UNMATCHED_STATUS);
    let message = message.as_deref().unwrap();
    assert!(
        message.contains(r#"POST /api/v1/agent/generate {"prompt":"Build a blog with comments"} is not on the tape"#),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            r#"next on the tape: POST /api/v1/agent/generate {{"prompt":"{PROMPT}"}}"#
        )),
        "{message}"
    );
    let unmatched: Vec<Unmatched> = server.unmatched();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].request.method, "POST");
    assert_eq!(unmatched[0].request.path, "/api/v1/agent/generate");
    assert_eq!(
        unmatched[0].request.body,
        r#"{"prompt":"Build a blog with comments"}"#
    );
    assert!(unmatched[0]
        .request
        .header("authorization")
        .unwrap()
        .starts_with("Bearer ****"));
    let expected = unmatched[0]
        .expected
        .as_ref()
        .expect("the tape expected something");
    assert_eq!(expected.path, "/agent/generate");
    assert_eq!(unmatched[0].to_string(), message);

    // Out of order: the status call before the generation it comes after is fine
    // (the first unplayed exchange that matches answers), and a follow-up is not
    // on the tape at all.
    client.project("p1").await.unwrap();
    let error = client.follow_up("p1", "Add a dark mode").await.unwrap_err();
    assert_eq!(error.status(), Some(501));
    client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(server.unplayed(), 0);

    // The tape is used up: the same request again is not on it any more.
    let error = client.generate(PROMPT).await.unwrap_err();
    assert_eq!(error.status(), Some(501), "{error:?}");
    let last = server.unmatched().pop().unwrap();
    assert!(last.expected.is_none());
    assert!(last
        .to_string()
        .ends_with("every exchange on the tape was replayed"));
    assert_eq!(server.unmatched().len(), 3);
    // Every request is also among the requests the server saw, the token masked.
    assert_eq!(server.requests().len(), 5);
}

#[tokio::test]
async fn the_501_body_says_what_was_asked_and_what_the_tape_expected() {
    let server = MockServer::replay(tape().await);
    let answer = raw_client()
        .get(format!("{}/agent/project/p9", server.base_url()))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 501);
    let body: serde_json::Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["asked"]["method"], "GET");
    assert_eq!(body["asked"]["path"], "/api/v1/agent/project/p9");
    assert_eq!(body["expected"]["method"], "POST");
    assert_eq!(body["expected"]["path"], "/api/v1/agent/generate");
    assert_eq!(
        body["expected"]["body"],
        format!(r#"{{"prompt":"{PROMPT}"}}"#)
    );
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("is not on the tape"));
}

#[tokio::test]
async fn a_body_matches_as_the_same_json_whatever_its_spacing() {
    let server = MockServer::replay(tape().await);
    let answer = raw_client()
        .post(format!("{}/agent/generate", server.base_url()))
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(format!("{{ \"prompt\" : \"{PROMPT}\" }}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert!(server.unmatched().is_empty());
}

/// A tape written by hand: a status call answered 503 twice, then a project; a
/// generate call that never got an answer because the connection broke; another
/// one the client gave up waiting for.
const HAND_WRITTEN: &str = r#"{"cassette":1,"recorder":"a person"}
{"x":1,"request":{"method":"GET","path":"/agent/project/p7"}}
{"x":1,"t":2,"status":503,"headers":[["content-type","application/json"]]}
{"x":1,"t":2,"data":"{\"message\":\"Service Unavailable\"}"}
{"x":1,"t":2,"end":"complete"}
{"x":2,"request":{"method":"GET","path":"/agent/project/p7"}}
{"x":2,"t":3,"status":200,"headers":[["content-type","application/json"]]}
{"x":2,"t":3,"data":"{\"status\":true,\"project_id\":\"p7\",\"app_url\":\"https://p7.laracopilot.com\",\"project_status\":\"ready\",\"name\":\"Seven\"}"}
{"x":2,"t":3,"end":"complete"}
{"x":3,"request":{"method":"POST","path":"/agent/generate","body":"{\"prompt\":\"Build a broken app\"}"}}
{"x":3,"t":5,"end":"reset","error":"connection refused"}
{"x":4,"request":{"method":"POST","path":"/agent/generate","body":"{\"prompt\":\"Build a silent app\"}"}}
{"x":4,"t":30000,"end":"dropped"}
"#;

#[tokio::test]
async fn a_hand_written_tape_replays_as_written() {
    let tape = Cassette::parse(HAND_WRITTEN.as_bytes()).unwrap();
    assert_eq!(tape.recorder(), Some("a person"));
    assert_eq!(tape.len(), 4);
    assert!(tape.exchange(3).unwrap().answer.is_none());
    assert_eq!(
        tape.exchange(3).unwrap().end.as_ref().unwrap().how,
        Ending::Reset
    );
    let server = MockServer::replay(tape);
    let quick = RetryPolicy::default()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(10));
    let client = server
        .client_builder()
        .retry_policy(quick)
        .idle_timeout(Some(common::STALL))
        .build()
        .unwrap();
    // The status call retries the 503 and gets the project.
    let project = client.project("p7").await.unwrap();
    assert_eq!(project.name.as_deref(), Some("Seven"));
    // No answer, the connection broken: a transport error (not resent: the request
    // may have reached the server).
    let error = client.generate("Build a broken app").await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    // No answer at all: the client's own timeout.
    let error = common::bounded(client.generate("Build a silent app"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: TimeoutKind::Idle,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(server.unmatched().is_empty(), "{:?}", server.unmatched());
}

#[test]
fn replay_settings_are_checked_and_cassette_errors_say_what_is_wrong() {
    for factor in [-1.0, f64::NAN, f64::INFINITY] {
        let started = MockServer::builder()
            .replay(Cassette::default())
            .replay_pacing(factor)
            .start();
        assert!(matches!(started, Err(MockError::Config { .. })), "{factor}");
    }
    assert!(MockServer::builder().replay_pacing(2.5).start().is_ok());
    let missing = Cassette::load("/nonexistent/dir/x.cassette").unwrap_err();
    assert!(matches!(missing, CassetteError::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("/nonexistent/dir/x.cassette"));
    let version = Cassette::parse(b"{\"cassette\":99}\n").unwrap_err();
    assert_eq!(
        version.to_string(),
        format!("the cassette has format version 99; this crate reads version {FORMAT_VERSION}")
    );
    let bad = Cassette::parse(b"{\"cassette\":1}\nnot json\n{\"x\":1}\n").unwrap_err();
    assert!(matches!(bad, CassetteError::Line { line: 2, .. }), "{bad}");
    // A recorder that cannot create its file fails the build, before anything is sent.
    let built = Client::builder()
        .token(common::token())
        .base_url("http://127.0.0.1:9/api/v1")
        .record_to("/nonexistent/dir/x.cassette")
        .build();
    let Err(Error::Config { message, .. }) = built else {
        panic!("{built:?}");
    };
    assert!(
        message.contains("cannot record to /nonexistent/dir/x.cassette"),
        "{message}"
    );
}

#[test]
fn the_public_names_exist() {
    // Compiles only while every name of the cassette workflow exists as documented.
    let _record: fn(laracopilot::ClientBuilder, &str) -> laracopilot::ClientBuilder =
        |builder, path| builder.record_to(path);
    let _load: fn(&str) -> Result<Cassette, CassetteError> = |path| Cassette::load(path);
    let _save: fn(&Cassette, &str) -> Result<(), CassetteError> = |c, path| c.save(path);
    let _variants: [fn(&Cassette) -> Cassette; 9] = [
        |c| c.cut_after(1),
        |c| c.reset_after(1),
        |c| c.stall_before(1),
        |c| c.crlf(),
        |c| c.chunk_size(1),
        |c| c.rate_limited(Some(1)),
        |c| c.unavailable(),
        |c| c.revoked(),
        |c| c.expired(),
    ];
    let _replay: fn(Cassette) -> MockServer = MockServer::replay;
    let _unmatched: fn(&MockServer) -> Vec<Unmatched> = MockServer::unmatched;
    let _builder = MockServer::builder()
        .replay(Cassette::default())
        .replay_pacing(0.0);
}

#[tokio::test]
async fn a_generation_tape_is_small_enough_to_commit() {
    let dir = common::cassette::dir();
    let path = dir.path().join("size.cassette");
    let live = MockServer::start();
    let client = live.client_builder().record_to(&path).build().unwrap();
    let outcome = common::finish_ok(&client, PROMPT).await;
    let file = std::fs::metadata(&path).unwrap().len();
    let body = outcome.stats().bytes;
    println!(
        "the offline LaraCopilot's new-project stream: {} events, a {body}-byte body, a {file}-byte cassette ({:.2}x)",
        outcome.stats().events,
        file as f64 / body as f64
    );
    // One line per chunk: the JSON escaping of the body and a few bytes of "x" and
    // "t" per chunk, plus the header, the request and the answer's head.
    assert!(
        file < body * 3 / 2 + 1024,
        "{file} bytes for a {body}-byte body"
    );
}

#[tokio::test]
async fn a_request_that_never_reached_the_server_is_on_tape_as_unsent_and_skipped() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = common::cassette::dir();
    let path = dir.path().join("refused.cassette");
    let client = Client::builder()
        .token(common::token())
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry_policy(
            RetryPolicy::default()
                .base_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(10)),
        )
        .record_to(&path)
        .build()
        .unwrap();
    let error = common::bounded(client.project("p7")).await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    let refused = Cassette::load(&path).unwrap();
    assert_eq!(refused.len(), 3, "every attempt is on tape");
    for exchange in refused.exchanges() {
        assert!(exchange.answer.is_none());
        assert_eq!(exchange.end.as_ref().unwrap().how, Ending::Unsent);
    }

    // Refused attempts, then the answer that came once the server was up: the
    // replay skips what its server never saw, and answers the first attempt.
    let mut tape = refused.clone();
    let answered = Cassette::parse(HAND_WRITTEN.as_bytes()).unwrap();
    let mut success = answered.exchange(2).unwrap().clone();
    success.id = 9;
    tape.insert_exchange(usize::MAX, success);
    let server = MockServer::replay(tape);
    let project = one_attempt(&server).project("p7").await.unwrap();
    assert_eq!(project.name.as_deref(), Some("Seven"));
    assert_eq!(server.unplayed(), 0);
    assert!(server.unmatched().is_empty());
}
