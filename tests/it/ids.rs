//! Project ids are refused, not rewritten: an id that a URL parser or a server would
//! normalize into another path is an `Error::Config` before any connection is made,
//! on every call that takes an id; an odd id that is safe reaches exactly the one
//! path it names, percent-encoded.

use crate::common;

use std::time::Duration;

#[cfg(feature = "blocking")]
use common::raw::on_thread;
use common::raw::{self, within, RawServer, Step, PATIENCE};
use futures::FutureExt as _;
use laracopilot::{Error, WaitOptions};

/// Ids that would leave their path segment, once parsed, decoded or normalized.
fn refused_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2E%2e",
        "%2e%2E",
        ".%2e",
        "%2e.",
        "..%2f",
        "%2e%2e%2f",
        "a\tb",
        "a\rb",
        "a\nb",
        "\r\n",
        "p1\r\nHost: evil.example",
        "a\0b",
        "a\u{7f}b",
        " p1",
        "p1 ",
        " ",
        "a b",
        "%20",
        "%09",
        "a%0Ab",
        "a%0d%0ab",
        "%00",
        "/",
        "a/b",
        "/p1",
        "p1/",
        "\\",
        "a\\b",
        "%2f",
        "%2F",
        "a%2fb",
        "%5C",
        "%5c",
        "..%5c",
        // Unicode separators and other white space.
        "a\u{2028}b",
        "a\u{2029}b",
        "a\u{85}b",
        "a\u{a0}b",
        "a\u{1680}b",
        "a\u{2003}b",
        "a\u{202f}b",
        "a\u{3000}b",
        // Encoded forms of the same.
        "a%E2%80%A8b",
        "a%C2%A0b",
    ]
    .iter()
    .map(|id| id.to_string())
    .collect();
    // Longer than any request line would carry.
    ids.push("x".repeat(1024 * 1024));
    ids.push("x".repeat(1025));
    ids
}

/// A server that answers a status call with a ready project and a generate call
/// with a whole stream, whatever the path.
fn server() -> RawServer {
    RawServer::start(|request| {
        let answer = if request.method == "GET" {
            raw::json(200, r#"{"status":true,"project_status":"ready"}"#)
        } else {
            raw::sse_answer(&[r#"{"type":"stream_end"}"#])
        };
        vec![Step::Write(answer), Step::Close]
    })
}

fn options() -> WaitOptions {
    WaitOptions::default()
        .timeout(Duration::from_secs(5))
        .interval(Duration::from_millis(100), Duration::from_millis(100))
}

fn assert_refused(call: &str, id: &str, outcome: laracopilot::Result<()>) {
    let shown = if id.len() > 40 {
        format!("an id of {} bytes", id.len())
    } else {
        format!("{id:?}")
    };
    match outcome {
        Err(Error::Config { message, .. }) => {
            assert!(message.contains("project id"), "{call}({shown}): {message}");
            assert!(
                message.len() < 200,
                "{call}({shown}): the message stays short"
            );
        }
        other => panic!("{call}({shown}) was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn ids_that_a_url_parser_would_rewrite_are_refused_before_any_connection() {
    let server = server();
    let client = raw::builder(&server.base_url()).build().unwrap();
    // Refused at once, not after a pause: each call is over at its first poll.
    let at_once = |call: &str, id: &str, outcome: Option<laracopilot::Result<()>>| {
        outcome.unwrap_or_else(|| panic!("{call}({id:?}) was not refused at once"))
    };
    for id in refused_ids() {
        let outcome = async { client.follow_up(id.as_str(), "Add a page").await }
            .now_or_never()
            .map(|outcome| outcome.map(|_| ()));
        assert_refused("follow_up", &id, at_once("follow_up", &id, outcome));
        let outcome = async { client.project(id.as_str()).await }
            .now_or_never()
            .map(|outcome| outcome.map(|_| ()));
        assert_refused("project", &id, at_once("project", &id, outcome));
        let outcome = async { client.wait_for_project(id.as_str(), options()).await }
            .now_or_never()
            .map(|outcome| outcome.map(|_| ()));
        assert_refused(
            "wait_for_project",
            &id,
            at_once("wait_for_project", &id, outcome),
        );
    }
    assert_eq!(server.connections(), 0, "{:?}", server.requests());

    // The same client does reach the server with an ordinary id.
    within(PATIENCE, "project", client.project("p1"))
        .await
        .expect("an ordinary id is sent");
    assert_eq!(server.connections(), 1);
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_client_refuses_the_same_ids_before_any_connection() {
    let server = server();
    let base = server.base_url();
    on_thread(PATIENCE, "the blocking calls", move || {
        let client = raw::builder(&base).build_blocking().unwrap();
        for id in refused_ids() {
            let outcome = client
                .follow_up(id.as_str(), "Add a page")
                .send()
                .map(|_| ());
            assert_refused("blocking follow_up", &id, outcome);
            let outcome = client.project(id.as_str()).map(|_| ());
            assert_refused("blocking project", &id, outcome);
            let outcome = client.wait_for_project(id.as_str(), options()).map(|_| ());
            assert_refused("blocking wait_for_project", &id, outcome);
        }
    });
    assert_eq!(server.connections(), 0, "{:?}", server.requests());
}

/// Ids that look odd but stay one path segment, with the segment each must become.
fn safe_ids() -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = [
        ("...", "..."),
        ("....", "...."),
        (".a", ".a"),
        ("a.", "a."),
        ("..a", "..a"),
        ("a..", "a.."),
        ("a?b#c", "a%3Fb%23c"),
        ("?", "%3F"),
        ("#", "%23"),
        ("100%", "100%25"),
        ("%", "%25"),
        // Encoded twice: the server decodes it once, to text.
        ("%252e", "%25252e"),
        ("%zz", "%25zz"),
        ("a;b=c", "a;b=c"),
        ("a+b~c", "a+b~c"),
        ("ÿ€😀", "%C3%BF%E2%82%AC%F0%9F%98%80"),
        ("проект", "%D0%BF%D1%80%D0%BE%D0%B5%D0%BA%D1%82"),
        ("42", "42"),
        ("-7", "-7"),
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("abc123", "abc123"),
    ]
    .iter()
    .map(|(id, path)| (id.to_string(), path.to_string()))
    .collect();
    let longest = "x".repeat(1024);
    ids.push((longest.clone(), longest));
    ids
}

#[tokio::test]
async fn odd_but_safe_ids_reach_exactly_the_one_path_they_name() {
    let server = server();
    let client = raw::builder(&server.base_url()).build().unwrap();
    let mut expected = Vec::new();
    for (id, segment) in safe_ids() {
        let outcome = within(PATIENCE, "follow_up", async {
            client
                .follow_up(id.as_str(), "Add a page")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap_or_else(|e| panic!("follow_up({id:?}): {e:?}"));
        assert_eq!(outcome.project_id().map(|p| p.as_str()), Some(id.as_str()));
        expected.push(("POST", format!("/api/v1/agent/generate/{segment}")));

        let project = within(PATIENCE, "project", client.project(id.as_str()))
            .await
            .unwrap_or_else(|e| panic!("project({id:?}): {e:?}"));
        assert_eq!(project.project_id.as_str(), id);
        expected.push(("GET", format!("/api/v1/agent/project/{segment}")));

        within(
            PATIENCE,
            "wait_for_project",
            client.wait_for_project(id.as_str(), options()),
        )
        .await
        .unwrap_or_else(|e| panic!("wait_for_project({id:?}): {e:?}"));
        expected.push(("GET", format!("/api/v1/agent/project/{segment}")));
    }
    let received: Vec<(String, String)> = server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.target))
        .collect();
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p))
        .collect();
    assert_eq!(received, expected);
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_client_sends_odd_but_safe_ids_to_the_same_paths() {
    let server = server();
    let base = server.base_url();
    on_thread(PATIENCE, "the blocking calls", move || {
        let client = raw::builder(&base).build_blocking().unwrap();
        for (id, _) in safe_ids() {
            client
                .follow_up(id.as_str(), "Add a page")
                .send()
                .and_then(|g| g.finish())
                .unwrap_or_else(|e| panic!("follow_up({id:?}): {e:?}"));
            client
                .project(id.as_str())
                .unwrap_or_else(|e| panic!("project({id:?}): {e:?}"));
            client
                .wait_for_project(id.as_str(), options())
                .unwrap_or_else(|e| panic!("wait_for_project({id:?}): {e:?}"));
        }
    });
    let received: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    let expected: Vec<String> = safe_ids()
        .into_iter()
        .flat_map(|(_, segment)| {
            [
                format!("/api/v1/agent/generate/{segment}"),
                format!("/api/v1/agent/project/{segment}"),
                format!("/api/v1/agent/project/{segment}"),
            ]
        })
        .collect();
    assert_eq!(received, expected);
}
