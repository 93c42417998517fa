//! Routes and validation: the documented endpoints, Laravel's 404/405/422 answers,
//! the wire format of events and status answers. Raw requests run in plain
//! `#[test]`s: the server needs no runtime from the test.

use laracopilot::Error;
use laracopilot_mock::MockServer;
use serde_json::json;

use crate::common::mock::*;
use crate::common::*;

#[test]
fn events_are_sse_data_lines_with_the_documented_key_order_in_an_event_stream() {
    let server = raw_token_server();
    let answer = raw_generate(&server);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    let body = answer.text();
    let blocks: Vec<&str> = body.strip_suffix("\n\n").unwrap().split("\n\n").collect();
    assert!(blocks.len() > 10, "{blocks:?}");
    assert_eq!(
        blocks[0],
        r#"data: {"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#,
        "the documented line, with the documented key order"
    );
    assert_eq!(
        blocks[3],
        r#"data: {"type":"container_progress","message":"Installing Laravel...","percentage":40}"#
    );
    assert_eq!(
        blocks.last().copied(),
        Some(
            r#"data: {"type":"stream_end","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#
        )
    );
    for block in blocks {
        let json = block
            .strip_prefix("data: {\"type\":")
            .unwrap_or_else(|| panic!("{block}"));
        assert!(!json.contains('\n'), "{block}");
    }
}

#[test]
fn the_status_answer_has_the_documented_keys_in_the_documented_order() {
    let server = raw_token_server();
    assert_eq!(raw_generate(&server).status, 200);
    let answer = request(
        &server,
        "GET",
        "/api/v1/agent/project/p1",
        Some(RAW_TOKEN),
        "",
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(
        answer.text(),
        r#"{"status":true,"project_id":"p1","app_url":"https://p1.laracopilot.com","project_status":"ready","name":"Task Management App"}"#
    );
}

#[test]
fn percent_encoded_project_ids_are_decoded_before_the_lookup() {
    let server = raw_token_server();
    assert_eq!(raw_generate(&server).status, 200);
    let found = request(
        &server,
        "GET",
        "/api/v1/agent/project/%70%31",
        Some(RAW_TOKEN),
        "",
    );
    assert_eq!(
        (found.status, &found.json()["project_id"]),
        (200, &json!("p1"))
    );
    let missing = request(
        &server,
        "GET",
        "/api/v1/agent/project/p%2F1",
        Some(RAW_TOKEN),
        "",
    );
    assert_eq!(missing.status, 404, "p/1 is another id");
}

#[test]
fn unknown_routes_get_a_json_404_and_wrong_methods_a_405() {
    let server = raw_token_server();
    let unknown = request(&server, "GET", "/api/v1/agent/unknown", Some(RAW_TOKEN), "");
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        json!({"message": "The route api/v1/agent/unknown could not be found."})
    );

    let wrong = request(&server, "GET", "/api/v1/agent/generate", None, "");
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    let wrong = request(&server, "DELETE", "/api/v1/agent/project/p1", None, "");
    assert_eq!(wrong.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        wrong.json()["message"],
        "The DELETE method is not supported for route api/v1/agent/project/p1. Supported methods: GET, HEAD."
    );
}

#[test]
fn missing_non_string_and_non_json_prompts_get_422() {
    let server = raw_token_server();
    let cases: [(&str, &str); 5] = [
        (r#"{}"#, "The prompt field is required."),
        (r#"{"prompt": "   "}"#, "The prompt field is required."),
        (r#"{"prompt": null}"#, "The prompt field is required."),
        (
            r#"{"prompt": 12345678901}"#,
            "The prompt field must be a string.",
        ),
        ("not json at all", "The prompt field is required."),
    ];
    for (body, message) in cases {
        let answer = request(
            &server,
            "POST",
            "/api/v1/agent/generate",
            Some(RAW_TOKEN),
            body,
        );
        assert_eq!(answer.status, 422, "{body}");
        assert_eq!(
            answer.text(),
            format!(r#"{{"message":"{message}","errors":{{"prompt":["{message}"]}}}}"#),
            "{body}: Laravel's body, keys in its order"
        );
    }
    assert!(server.project("p1").is_none(), "nothing was created");
}

#[tokio::test]
async fn a_short_prompt_gets_the_laravel_422_with_the_field_map() {
    let server = MockServer::start();
    let refused = server.client().generate("Too short").await;
    let Err(Error::Validation {
        message, errors, ..
    }) = refused
    else {
        panic!("{refused:?}")
    };
    let expected = "The prompt field must be at least 10 characters.";
    assert_eq!(message, expected);
    assert_eq!(errors["prompt"], vec![expected.to_owned()]);
    assert!(server.project("p1").is_none(), "nothing was created");
}

#[tokio::test]
async fn the_minimum_prompt_length_is_configurable() {
    let server = MockServer::builder().min_prompt_len(40).start().unwrap();
    let refused = server.client().generate(PROMPT).await;
    let Err(Error::Validation { errors, .. }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        errors["prompt"],
        vec!["The prompt field must be at least 40 characters.".to_owned()]
    );
}

#[tokio::test]
async fn an_unknown_project_is_not_found_for_status_and_follow_up() {
    let server = MockServer::start();
    let client = server.client();
    let status = client.project("nope42").await;
    let Err(error @ Error::NotFound { .. }) = status else {
        panic!("{status:?}")
    };
    let Error::NotFound { message, .. } = &error else {
        unreachable!()
    };
    assert_eq!(message.as_deref(), Some("Project not found."));
    assert_eq!(error.project_id().unwrap(), "nope42");

    let follow_up = client.follow_up("nope42", "Add a dark mode please").await;
    assert!(
        matches!(&follow_up, Err(e @ Error::NotFound { .. }) if e.project_id().is_some_and(|id| id == "nope42")),
        "{follow_up:?}"
    );
    assert_eq!(finish_ok(&client, PROMPT).await.project_id().unwrap(), "p1");
}
