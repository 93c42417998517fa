//! Answers that are not what they claim: a compressed stream nobody asked for, a
//! stream whose type a proxy dropped or rewrote, a page where a stream was expected,
//! a status answer about something else, and pages that only look like the API's
//! answer to a token check.

use crate::common;

use common::raw::{self, within, RawServer, Step, PATIENCE};
use laracopilot::tokens::TokenCheck;
use laracopilot::{Client, Error, Outcome};

const EVENTS: &[&str] = &[
    r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.example"}"#,
    r#"{"type":"file_created","path":"routes/web.php"}"#,
    r#"{"type":"stream_end","project_id":"p1"}"#,
];

fn client(server: &RawServer) -> Client {
    raw::builder(&server.base_url()).build().unwrap()
}

async fn both_generate_calls(client: &Client) -> [laracopilot::Result<Outcome>; 2] {
    let generate = within(PATIENCE, "generate", async {
        client.generate("Build an app").await?.finish().await
    })
    .await;
    let follow_up = within(PATIENCE, "follow_up", async {
        client.follow_up("p1", "Add a page").await?.finish().await
    })
    .await;
    [generate, follow_up]
}

#[tokio::test]
async fn a_compressed_event_stream_is_an_api_error_naming_the_coding() {
    for coding in ["gzip", "GZIP", "br", "deflate", "x-gzip", "gzip, identity"] {
        let mut answer = raw::head(
            200,
            &[
                ("Content-Type", "text/event-stream"),
                ("Content-Encoding", coding),
                ("Connection", "close"),
            ],
        );
        // The start of a gzip member, as a compressing proxy would send it.
        answer.extend_from_slice(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x48\xcd");
        let server = RawServer::start(move |_| vec![Step::Write(answer.clone()), Step::Close]);
        for outcome in both_generate_calls(&client(&server)).await {
            let error = outcome.expect_err("a body the SDK cannot read");
            let Error::Api {
                status: 200,
                message: Some(message),
                ..
            } = &error
            else {
                panic!("{coding}: {error:?}");
            };
            assert!(message.contains(coding), "{coding}: {message}");
            assert!(
                !matches!(error, Error::Incomplete { .. }),
                "not an empty stream"
            );
        }
    }
}

#[tokio::test]
async fn compressed_status_and_error_answers_say_so() {
    let server = RawServer::start(|request| {
        let status = if request.method == "GET" { 200 } else { 500 };
        vec![Step::Write(raw::response(
            status,
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
            ],
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
        ))]
    });
    let client = client(&server);
    let error = within(PATIENCE, "project", client.project("p1"))
        .await
        .unwrap_err();
    let Error::Api {
        status: 200,
        message: Some(message),
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(message.contains("gzip"), "{message}");
    let error = within(PATIENCE, "generate", client.generate("Build an app"))
        .await
        .unwrap_err();
    let Error::Api {
        status: 500, body, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert!(body.contains("gzip"), "{body}");
}

#[tokio::test]
async fn an_identity_coding_is_no_compression() {
    let mut answer = raw::head(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Content-Encoding", "identity"),
            ("Connection", "close"),
        ],
    );
    answer.extend_from_slice(raw::sse_events(EVENTS).as_bytes());
    let server = RawServer::start(move |_| vec![Step::Write(answer.clone()), Step::Close]);
    for outcome in both_generate_calls(&client(&server)).await {
        assert_eq!(outcome.expect("streamed").stats().events, 3);
    }
}

/// How the start of a stream may look, as a proxy passes it on.
fn stream_starts() -> Vec<(&'static str, Vec<u8>)> {
    let events = raw::sse_events(EVENTS);
    vec![
        ("data", events.clone().into_bytes()),
        (
            "a byte order mark",
            [b"\xEF\xBB\xBF".as_slice(), events.as_bytes()].concat(),
        ),
        ("a comment", format!(": ok\n\n{events}").into_bytes()),
        ("blank lines", format!("\r\n\r\n{events}").into_bytes()),
        (
            "an event field",
            format!("event: message\n{events}").into_bytes(),
        ),
        (
            "a retry field",
            format!("retry: 3000\n\n{events}").into_bytes(),
        ),
    ]
}

#[tokio::test]
async fn an_event_stream_whose_type_was_dropped_or_rewritten_is_streamed() {
    let mut cases: Vec<(String, Vec<Step>)> = Vec::new();
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/octet-stream"),
        Some("text/html"),
        Some("application/json"),
        Some("text/event-stream; charset=utf-8"),
        Some("TEXT/EVENT-STREAM"),
        Some(""),
    ] {
        for (start, body) in stream_starts() {
            for piecewise in [false, true] {
                let mut head: Vec<(&str, &str)> = vec![("Connection", "close")];
                if let Some(kind) = content_type {
                    head.push(("Content-Type", kind));
                }
                let mut steps = vec![Step::Write(raw::head(200, &head))];
                if piecewise {
                    // A byte at a time: too little to tell, at first.
                    steps.extend(body[..12].iter().map(|b| Step::write([*b])));
                    steps.push(Step::write(&body[12..]));
                } else {
                    steps.push(Step::Write(body.clone()));
                }
                steps.push(Step::Close);
                let context =
                    format!("{content_type:?}, starting with {start}, piecewise {piecewise}");
                cases.push((context, steps));
            }
        }
    }
    // One server for all the cases, in order: a generate and a follow-up each.
    let scripts: Vec<Vec<Step>> = cases.iter().map(|(_, steps)| steps.clone()).collect();
    let server = RawServer::start(move |request| scripts[request.index / 2].clone());
    let client = client(&server);
    for (context, _) in &cases {
        let [generate, follow_up] = both_generate_calls(&client).await;
        let generate = generate.unwrap_or_else(|e| panic!("{context}: {e:?}"));
        assert_eq!(
            generate.project_id().map(|id| id.as_str()),
            Some("p1"),
            "{context}"
        );
        assert_eq!(generate.stats().events, 3, "{context}");
        assert_eq!(generate.files, ["routes/web.php"], "{context}");
        let follow_up = follow_up.unwrap_or_else(|e| panic!("{context}: {e:?}"));
        assert_eq!(follow_up.stats().events, 3, "{context}");
    }
    assert_eq!(server.count("POST"), cases.len() * 2);
}

#[tokio::test]
async fn a_2xx_answer_that_is_not_an_event_stream_is_an_api_error_naming_its_type() {
    let pages: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an HTML page",
            raw::response(
                200,
                &[("Content-Type", "text/html; charset=UTF-8")],
                "<!DOCTYPE html><html><body>Sign in</body></html>",
            ),
            "text/html",
        ),
        (
            "a JSON answer",
            raw::json(200, r#"{"status":true,"project_id":"p1"}"#),
            "application/json",
        ),
        (
            "plain text",
            raw::response(200, &[("Content-Type", "text/plain")], "OK"),
            "text/plain",
        ),
        (
            "an empty body without a type",
            raw::response(200, &[], ""),
            "no content type",
        ),
        (
            "a body that starts like a field but is not one",
            raw::response(200, &[("Content-Type", "text/plain")], "database: down"),
            "text/plain",
        ),
        (
            "no content",
            raw::head(204, &[("Connection", "close")]),
            "no content type",
        ),
    ];
    for (what, answer, named) in pages {
        let server = RawServer::start(move |_| vec![Step::Write(answer.clone()), Step::Close]);
        for outcome in both_generate_calls(&client(&server)).await {
            let error = outcome.expect_err("not a stream");
            let Error::Api {
                message: Some(message),
                ..
            } = &error
            else {
                panic!("{what}: {error:?}");
            };
            assert!(message.contains(named), "{what}: {message}");
            assert!(
                error.may_have_started_work(),
                "{what}: it reached the server"
            );
        }
    }
}

#[tokio::test]
async fn a_status_answer_not_saying_status_true_about_the_project_asked_for_is_not_a_project() {
    for body in [
        r#"{"status":"true","project_id":"p1","project_status":"ready"}"#,
        r#"{"status":1,"project_id":"p1","project_status":"ready"}"#,
        r#"{"status":"yes","project_id":"p1"}"#,
        r#"{"status":null,"project_id":"p1"}"#,
        r#"{"status":[true],"project_id":"p1"}"#,
        r#"{"project_id":"p1","project_status":"ready"}"#,
        r#"{"data":{"status":true,"project_id":"p1"}}"#,
        r#"{"status":true,"status":"true","project_id":"p1"}"#,
        r#"{"status":true,"project_id":"p2","project_status":"ready"}"#,
        r#"{"status":true,"project_id":"P1"}"#,
        r#"{"status":true,"project_id":"p1 "}"#,
        r#"{"status":true,"project_id":1}"#,
        r#"{"status":false,"message":"Project not found."}"#,
    ] {
        let server = RawServer::answering(raw::json(200, body));
        let error = within(PATIENCE, "project", client(&server).project("p1"))
            .await
            .expect_err(body);
        assert!(
            matches!(error, Error::Api { status: 200, .. }),
            "{body}: {error:?}"
        );
        assert_eq!(
            error.project_id().map(|id| id.as_str()),
            Some("p1"),
            "{body}"
        );
    }
    for (asked, body) in [
        ("p1", r#"{"status":true}"#),
        ("p1", r#"{"status":false,"status":true,"project_id":"p1"}"#),
        ("42", r#"{"status":true,"project_id":42}"#),
        ("42", r#"{"status":true,"project_id":"42"}"#),
    ] {
        let server = RawServer::answering(raw::json(200, body));
        let project = within(PATIENCE, "project", client(&server).project(asked))
            .await
            .unwrap_or_else(|e| panic!("{body}: {e:?}"));
        assert_eq!(project.project_id.as_str(), asked);
    }
}

/// What `verify_token` makes of `answer`, and the path it asked.
async fn verify(answer: Vec<u8>) -> (laracopilot::Result<TokenCheck>, String) {
    let server = RawServer::answering(answer);
    let check = within(PATIENCE, "verify_token", client(&server).verify_token()).await;
    let target = server.requests()[0].target.clone();
    (check, target)
}

#[tokio::test]
async fn verify_token_never_takes_a_page_that_is_not_the_apis_for_an_answer() {
    let html = "<!DOCTYPE html><html><body>Page not found</body></html>";
    for (what, answer) in [
        (
            "a 200 HTML page",
            raw::response(200, &[("Content-Type", "text/html")], html),
        ),
        (
            "a 404 HTML page",
            raw::response(404, &[("Content-Type", "text/html")], html),
        ),
        (
            "a generic Laravel 404",
            raw::json(404, r#"{"message":"Not Found"}"#),
        ),
        (
            "a 404 whose status is a string",
            raw::json(404, r#"{"status":"false","message":"Project not found."}"#),
        ),
        (
            "a 404 whose status is a number",
            raw::json(404, r#"{"status":0,"message":"Project not found."}"#),
        ),
        ("an empty 404", raw::response(404, &[], "")),
        (
            "a 200 about another project",
            raw::json(200, r#"{"status":true,"project_id":"p2"}"#),
        ),
        ("a 200 that is not JSON", raw::json(200, "OK")),
        (
            "a redirect to a sign-in page",
            raw::response(302, &[("Location", "https://sso.example/login")], ""),
        ),
        (
            "a 500",
            raw::json(500, r#"{"status":false,"message":"Server Error"}"#),
        ),
    ] {
        let (check, target) = verify(answer).await;
        assert_eq!(target, "/api/v1/agent/project/laracopilot-sdk-token-probe");
        assert!(check.is_err(), "{what} was taken for a verdict: {check:?}");
    }
}

#[tokio::test]
async fn verify_token_accepts_the_apis_documented_answers() {
    for (what, answer, want) in [
        (
            "the documented 404",
            raw::json(404, r#"{"status": false, "message": "Project not found."}"#),
            "Accepted",
        ),
        (
            "a 404 without a message",
            raw::json(404, r#"{"status":false}"#),
            "Accepted",
        ),
        (
            "the probe as a project",
            raw::json(
                200,
                r#"{"status":true,"project_id":"laracopilot-sdk-token-probe"}"#,
            ),
            "Accepted",
        ),
        (
            "the documented 401",
            raw::json(401, r#"{"status": false, "message": "Unauthorized."}"#),
            r#"Unauthorized { message: Some("Unauthorized.") }"#,
        ),
        (
            "an expired token",
            raw::json(
                401,
                r#"{"status": false, "message": "API token has expired."}"#,
            ),
            "Expired { locally: false }",
        ),
    ] {
        let (check, _) = verify(answer).await;
        assert_eq!(
            format!("{:?}", check.unwrap_or_else(|e| panic!("{what}: {e:?}"))),
            want,
            "{what}"
        );
    }
}
