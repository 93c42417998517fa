//! The offline LaraCopilot (`laracopilot::mock`) driven through the SDK: default
//! scripts, tokens, validation, projects, credits, every fault and canned reply, and
//! the recorded requests.
#![cfg(feature = "mock")]

use std::future::Future;
use std::time::Duration;

use laracopilot::mock::{Fault, MockServer, ProjectStatus, Reply, TokenState};
use laracopilot::{Client, Error, Event, Generation, Result, RetryPolicy, TimeoutKind, Token};
use serde_json::json;

const PROMPT: &str = "Build a task management app";

#[allow(dead_code, reason = "compile-time assertion only")]
fn mock_types_can_be_shared_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MockServer>();
    send_sync::<laracopilot::mock::MockServerBuilder>();
    send_sync::<laracopilot::mock::RecordedRequest>();
    send_sync::<laracopilot::mock::MockProject>();
}

/// Bounds every wait of a test.
async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test makes progress")
}

/// Every item of a generation, bounded in count and time.
async fn collect(mut generation: Generation) -> Vec<Result<Event>> {
    let mut items = Vec::new();
    while let Some(item) = bounded(generation.next()).await {
        items.push(item);
        assert!(items.len() < 100_000, "runaway stream");
    }
    items
}

/// The events of a generation that must succeed.
async fn events(generation: Generation) -> Vec<Event> {
    collect(generation)
        .await
        .into_iter()
        .map(|item| item.expect("no error in this stream"))
        .collect()
}

fn types(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.type_name().to_owned()).collect()
}

fn paths(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::FileCreated(file) => file.path.clone(),
            _ => None,
        })
        .collect()
}

/// A client that makes one attempt per call, so that each canned reply is observed
/// as it is.
fn one_attempt(server: &MockServer) -> Client {
    server
        .client_builder()
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// A plain HTTP client, for requests the SDK never sends.
fn raw() -> reqwest::Client {
    reqwest::Client::new()
}

async fn raw_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&bytes).expect("a JSON body");
    (status, body)
}

#[tokio::test]
async fn the_default_script_yields_project_container_files_and_stream_end_in_order() {
    let server = MockServer::start().await;
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    let types = types(&events);

    assert_eq!(types[0], "project_created");
    let Event::ProjectCreated(created) = &events[0] else {
        unreachable!()
    };
    let id = created.project_id.to_string();
    let url = format!("https://{id}.laracopilot.com");
    assert_eq!(created.app_url.as_deref(), Some(url.as_str()));

    let percentages: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::ContainerProgress(p) => {
                assert!(p.message.ends_with("..."), "{}", p.message);
                p.percentage
            }
            _ => None,
        })
        .collect();
    assert!(percentages.len() >= 3, "{percentages:?}");
    assert!(
        percentages.windows(2).all(|w| w[0] < w[1]),
        "{percentages:?}"
    );
    assert_eq!(percentages.last(), Some(&100.0));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::ContainerProgress(p) if p.message == "Installing Laravel...")));

    let ready = types.iter().position(|t| t == "container_ready").unwrap();
    assert!(types[1..ready].iter().all(|t| t == "container_progress"));
    let generation = &types[ready + 1..types.len() - 1];
    assert!(generation
        .iter()
        .all(|t| t == "file_created" || t == "tool_progress"));
    assert!(generation.iter().any(|t| t == "tool_progress"));
    let Some(Event::StreamEnd(end)) = events.last() else {
        panic!("{:?}", events.last())
    };
    assert_eq!(end.project_id.as_ref().map(|p| p.to_string()), Some(id));
    assert_eq!(end.app_url.as_deref(), Some(url.as_str()));

    let paths = paths(&events);
    for expected in [
        "app/Models/Task.php",
        "app/Http/Controllers/TaskController.php",
        "resources/views/tasks/index.blade.php",
        "routes/web.php",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} in {paths:?}"
        );
    }
    assert!(paths
        .iter()
        .any(|p| p.starts_with("database/migrations/") && p.ends_with("_create_tasks_table.php")));
}

#[tokio::test]
async fn a_finished_generation_leaves_a_ready_project_with_its_files() {
    let server = MockServer::start().await;
    let client = server.client();
    let outcome = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    let id = outcome.project_id.clone().unwrap();

    let project = client.project(&id).await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(project.name.as_deref(), Some("Task Management App"));
    assert_eq!(project.app_url, outcome.app_url);

    let stored = server.project(&id).unwrap();
    assert_eq!(stored.status, ProjectStatus::Ready);
    assert_eq!(stored.files, outcome.files);
    assert_eq!(stored.prompts, vec![PROMPT.to_owned()]);
}

#[tokio::test]
async fn events_are_sse_data_lines_with_type_first_in_an_event_stream() {
    let server = server_with_raw_token().await;
    let response = raw()
        .post(format!("{}/agent/generate", server.base_url()))
        .bearer_auth(RAW_TOKEN)
        .header("content-type", "application/json")
        .body(json!({ "prompt": PROMPT }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let body = bounded(response.text()).await.unwrap();
    let blocks: Vec<&str> = body.strip_suffix("\n\n").unwrap().split("\n\n").collect();
    assert!(blocks.len() > 10);
    assert_eq!(
        blocks[0],
        r#"data: {"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#,
        "the documented line, with the documented key order"
    );
    for block in blocks {
        let json = block
            .strip_prefix("data: {\"type\":")
            .unwrap_or_else(|| panic!("{block}"));
        assert!(!json.contains('\n'), "{block}");
    }
}

/// The mock's default token is random; tests that send requests without the SDK
/// give the server this one.
const RAW_TOKEN: &str = "lcp_mock_raw_http_token_0001";

async fn server_with_raw_token() -> MockServer {
    MockServer::builder()
        .token(RAW_TOKEN)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_token_state_gets_its_typed_answer() {
    let server = MockServer::start().await;
    let with = |value: &str| {
        server
            .client_builder()
            .token(Token::new(value).unwrap())
            .build()
            .unwrap()
    };
    server.add_token("lcp_mock_valid_0000000001", TokenState::Valid);
    server.add_token("lcp_mock_expired_000000002", TokenState::Expired);
    server.add_token("lcp_mock_revoked_000000003", TokenState::Revoked);

    let valid = with("lcp_mock_valid_0000000001");
    assert!(valid.generate(PROMPT).await.unwrap().finish().await.is_ok());
    let expired = with("lcp_mock_expired_000000002").generate(PROMPT).await;
    assert!(
        matches!(expired, Err(Error::TokenExpired { locally: false, .. })),
        "{expired:?}"
    );
    for value in ["lcp_mock_revoked_000000003", "lcp_mock_never_registered"] {
        let refused = with(value).generate(PROMPT).await;
        let Err(Error::Unauthorized { message, .. }) = refused else {
            panic!("{value}: {refused:?}")
        };
        assert_eq!(message.as_deref(), Some("Unauthorized."));
    }
}

#[tokio::test]
async fn revoking_a_token_takes_effect_on_the_next_request() {
    let server = server_with_raw_token().await;
    let client = server.client();
    let outcome = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    server.revoke(RAW_TOKEN);
    let id = outcome.project_id.unwrap();
    assert!(matches!(
        client.project(&id).await,
        Err(Error::Unauthorized { .. })
    ));
    server.add_token(RAW_TOKEN, TokenState::Valid);
    assert!(client.project(&id).await.is_ok());
}

#[tokio::test]
async fn missing_or_malformed_authorization_gets_the_documented_401() {
    let server = MockServer::start().await;
    let url = format!("{}/agent/project/p1", server.base_url());
    for header in [None, Some("Basic abc"), Some("Bearer")] {
        let mut request = raw().get(&url);
        if let Some(value) = header {
            request = request.header("authorization", value);
        }
        let (status, body) = raw_json(request.send().await.unwrap()).await;
        assert_eq!(status, 401, "{header:?}");
        assert_eq!(body, json!({"status": false, "message": "Unauthorized."}));
    }
}

#[tokio::test]
async fn a_short_prompt_gets_the_laravel_422_with_the_field_map() {
    let server = MockServer::start().await;
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
    let server = MockServer::builder()
        .min_prompt_len(40)
        .start()
        .await
        .unwrap();
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
async fn missing_non_string_and_non_json_prompts_get_422() {
    let server = server_with_raw_token().await;
    let url = format!("{}/agent/generate", server.base_url());
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
        let response = raw()
            .post(&url)
            .bearer_auth(RAW_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = raw_json(response).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            json,
            json!({"message": message, "errors": {"prompt": [message]}}),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_unknown_project_is_not_found_for_status_and_follow_up() {
    let server = MockServer::start().await;
    let client = server.client();
    let status = client.project("nope42").await;
    let Err(Error::NotFound {
        message,
        project_id,
        ..
    }) = status
    else {
        panic!("{status:?}")
    };
    assert_eq!(message.as_deref(), Some("Project not found."));
    assert_eq!(project_id.unwrap(), "nope42");

    let follow_up = client.follow_up("nope42", "Add a dark mode please").await;
    assert!(
        matches!(&follow_up, Err(Error::NotFound { project_id: Some(id), .. }) if id == "nope42"),
        "{follow_up:?}"
    );
}

#[tokio::test]
async fn the_status_is_generating_while_a_stream_runs_and_failed_when_the_client_leaves() {
    let server = MockServer::start().await;
    let client = server.client();
    server.fault_next(Fault::StallBefore(3));
    let mut generation = client.generate(PROMPT).await.unwrap();
    for _ in 0..3 {
        bounded(generation.next()).await.unwrap().unwrap();
    }
    let id = generation.project_id().cloned().unwrap();
    let project = client.project(&id).await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("generating"));

    drop(generation);
    let mut status = None;
    for _ in 0..200 {
        status = server.project(&id).map(|p| p.status);
        if status == Some(ProjectStatus::Failed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(ProjectStatus::Failed));
}

#[tokio::test]
async fn a_follow_up_streams_files_without_container_events() {
    let server = MockServer::start().await;
    let client = server.client();
    let first = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    let id = first.project_id.unwrap();

    let generation = client
        .follow_up(&id, "Add comments to tasks")
        .await
        .unwrap();
    assert_eq!(generation.project_id(), Some(&id));
    let events = events(generation).await;
    let types = types(&events);
    assert!(
        types
            .iter()
            .all(|t| !t.starts_with("container_") && t != "project_created"),
        "{types:?}"
    );
    assert_eq!(types.last().map(String::as_str), Some("stream_end"));
    let paths = paths(&events);
    assert!(
        paths.iter().any(|p| p == "app/Models/Comment.php"),
        "{paths:?}"
    );

    let stored = server.project(&id).unwrap();
    assert_eq!(stored.status, ProjectStatus::Ready);
    assert_eq!(stored.prompts.len(), 2);
    assert!(stored.files.iter().any(|p| p == "app/Models/Comment.php"));
}

#[tokio::test]
async fn running_out_of_credits_ends_the_stream_with_credits_exhausted_and_the_project_id() {
    let server = MockServer::builder().credits(2).start().await.unwrap();
    let items = collect(server.client().generate(PROMPT).await.unwrap()).await;
    let (last, events) = items.split_last().unwrap();
    let events: Vec<Event> = events.iter().map(|e| e.as_ref().unwrap().clone()).collect();
    assert_eq!(paths(&events).len(), 2, "two credits, two files");
    let Err(Error::CreditsExhausted {
        project_id, raw, ..
    }) = last
    else {
        panic!("{last:?}")
    };
    let id = project_id.clone().unwrap();
    assert!(raw.contains("credits_exhausted"));
    assert_eq!(server.credits(), 0);
    let stored = server.project(&id).unwrap();
    assert_eq!(stored.status, ProjectStatus::CreditsExhausted);
    assert_eq!(stored.files.len(), 2);

    server.set_credits(1_000);
    let outcome = server
        .client()
        .follow_up(&id, "Add a dark mode please")
        .await
        .unwrap();
    assert!(outcome.finish().await.is_ok());
    assert!(server.credits() < 1_000);
}

/// Event types and file paths of a default generation with `faults`.
async fn run_with(faults: Vec<Fault>) -> (Vec<String>, Vec<String>) {
    let server = MockServer::start().await;
    server.faults_next(faults);
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    (types(&events), paths(&events))
}

#[tokio::test]
async fn chunked_and_crlf_streams_still_yield_every_event() {
    let baseline = run_with(vec![]).await;
    for faults in [
        vec![Fault::ChunkSize(1)],
        vec![Fault::ChunkSize(7)],
        vec![Fault::Crlf],
        vec![Fault::ChunkSize(3), Fault::Crlf],
    ] {
        assert_eq!(run_with(faults.clone()).await, baseline, "{faults:?}");
    }
}

#[tokio::test]
async fn drop_after_n_events_is_incomplete_with_the_project_id() {
    let server = MockServer::start().await;
    server.fault_next(Fault::DropAfter(4));
    let items = collect(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 5);
    let Some(Err(Error::Incomplete {
        project_id, events, ..
    })) = items.last()
    else {
        panic!("{:?}", items.last())
    };
    assert_eq!(*events, 4);
    let id = project_id.clone().unwrap();
    assert_eq!(server.project(&id).unwrap().status, ProjectStatus::Failed);
}

#[tokio::test]
async fn a_drop_in_the_middle_of_an_event_is_a_transport_error_after_the_whole_events() {
    let server = MockServer::start().await;
    server.fault_next(Fault::DropMidEvent(3));
    let items = collect(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[..3].iter().all(Result::is_ok));
    let Err(error @ Error::Transport { .. }) = &items[3] else {
        panic!("{:?}", items[3])
    };
    let id = error.project_id().unwrap();
    assert_eq!(server.project(id).unwrap().status, ProjectStatus::Failed);
}

#[tokio::test]
async fn a_stall_with_a_short_idle_timeout_is_a_timeout_with_the_project_id() {
    let server = MockServer::start().await;
    server.fault_next(Fault::StallBefore(2));
    let client = server
        .client_builder()
        .idle_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let items = collect(client.generate(PROMPT).await.unwrap()).await;
    assert_eq!(items.len(), 3, "{items:?}");
    let Err(Error::Timeout {
        kind: TimeoutKind::Idle,
        project_id: Some(_),
        ..
    }) = &items[2]
    else {
        panic!("{:?}", items[2])
    };
}

#[tokio::test]
async fn an_oversized_event_over_the_client_limit_is_event_too_large() {
    let server = MockServer::start().await;
    server.fault_next(Fault::OversizedEvent(256 * 1024));
    let client = server
        .client_builder()
        .max_event_size(4096)
        .build()
        .unwrap();
    let items = collect(client.generate(PROMPT).await.unwrap()).await;
    let Some(Err(Error::EventTooLarge {
        limit: 4096,
        project_id: Some(_),
        ..
    })) = items.last()
    else {
        panic!("{:?}", items.last())
    };
    assert_eq!(items.len(), 2, "project_created, then the oversized event");
}

#[tokio::test]
async fn an_oversized_event_within_the_limit_arrives_whole() {
    let server = MockServer::start().await;
    server.fault_next(Fault::OversizedEvent(300_000));
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(events[1].type_name(), "container_progress");
    assert_eq!(events[1].raw_json().len(), 300_000);
    let padded: serde_json::Value = serde_json::from_str(events[1].raw_json()).unwrap();
    assert_eq!(padded["percentage"], 10);
    assert_eq!(events.last().unwrap().type_name(), "stream_end");
}

#[tokio::test]
async fn an_invalid_utf8_byte_is_replaced_and_every_event_still_arrives() {
    let baseline = run_with(vec![]).await;
    let server = MockServer::start().await;
    server.fault_next(Fault::InvalidUtf8);
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!((types(&events), paths(&events)), baseline);
    let Event::ContainerProgress(progress) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(progress.message, "Provisioning container...\u{FFFD}");
}

#[tokio::test]
async fn a_rate_limited_reply_is_rate_limited_with_retry_after_then_serving_resumes() {
    let server = MockServer::start().await;
    let client = one_attempt(&server);
    server.reply_next(
        1,
        Reply::RateLimited {
            retry_after: Some(7),
        },
    );
    let refused = client.generate(PROMPT).await;
    let Err(Error::RateLimited { retry_after, .. }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));

    server.reply_next(1, Reply::RateLimited { retry_after: None });
    let refused = client.project("p1").await;
    assert!(
        matches!(
            refused,
            Err(Error::RateLimited {
                retry_after: None,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .is_ok());
}

#[tokio::test]
async fn unavailable_html_and_custom_status_replies_are_api_errors() {
    let server = MockServer::start().await;
    let client = one_attempt(&server);

    server.reply_next(1, Reply::Unavailable);
    let Err(Error::Api {
        status, message, ..
    }) = client.generate(PROMPT).await
    else {
        panic!("expected an API error")
    };
    assert_eq!(
        (status, message.as_deref()),
        (503, Some("Service Unavailable"))
    );

    server.reply_next(1, Reply::ServerErrorHtml);
    let Err(Error::Api {
        status,
        message,
        body,
        ..
    }) = client.generate(PROMPT).await
    else {
        panic!("expected an API error")
    };
    assert_eq!((status, message), (500, None));
    assert!(body.contains("<html"), "{body}");

    server.reply_next(
        1,
        Reply::Status(418, r#"{"message": "I'm a teapot"}"#.into()),
    );
    let Err(Error::Api {
        status, message, ..
    }) = client.project("p1").await
    else {
        panic!("expected an API error")
    };
    assert_eq!((status, message.as_deref()), (418, Some("I'm a teapot")));
}

#[tokio::test]
async fn a_reply_for_n_requests_answers_exactly_n_requests() {
    let server = MockServer::start().await;
    let client = one_attempt(&server);
    let id = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap()
        .project_id
        .unwrap();
    server.reply_next(2, Reply::Unavailable);
    for _ in 0..2 {
        assert_eq!(client.project(&id).await.unwrap_err().status(), Some(503));
    }
    assert!(client.project(&id).await.is_ok());
}

#[tokio::test]
async fn requests_are_recorded_with_the_token_redacted() {
    let secret = "lcp_mock_S3CR3T_never_printed_9f8e";
    let server = MockServer::builder().token(secret).start().await.unwrap();
    let client = server.client();
    let outcome = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    let id = outcome.project_id.unwrap();
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

#[tokio::test]
async fn unknown_routes_get_a_json_404_and_wrong_methods_a_405() {
    let server = server_with_raw_token().await;
    let base = server.base_url();
    let response = raw()
        .get(format!("{base}/agent/unknown"))
        .bearer_auth(RAW_TOKEN)
        .send()
        .await
        .unwrap();
    let (status, body) = raw_json(response).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["message"],
        "The route api/v1/agent/unknown could not be found."
    );

    let response = raw()
        .get(format!("{base}/agent/generate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(raw_json(response).await.0, 405);
}

#[tokio::test]
async fn a_custom_script_is_sent_as_given_and_names_the_stored_project() {
    let server = MockServer::start().await;
    server.script_next(vec![
        json!({"type": "project_created", "project_id": "abc123", "app_url": "https://abc123.laracopilot.com"}),
        json!({"type": "thinking", "message": "Planning the schema"}),
        json!({"type": "file_created", "path": "app/Models/Invoice.php", "extra": 1}),
        json!({"type": "stream_end", "project_id": "abc123", "app_url": "https://abc123.laracopilot.com"}),
    ]);
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(
        types(&events),
        ["project_created", "thinking", "file_created", "stream_end"]
    );
    assert!(matches!(&events[1], Event::Unknown(u) if u.type_name == "thinking"));
    assert_eq!(
        events[2].raw_json(),
        r#"{"type":"file_created","path":"app/Models/Invoice.php","extra":1}"#
    );
    let stored = server.project("abc123").unwrap();
    assert_eq!(stored.status, ProjectStatus::Ready);
    assert_eq!(stored.files, ["app/Models/Invoice.php"]);

    // The queue is used up: the next generation is the default one again.
    let outcome = server
        .client()
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_ne!(outcome.project_id.unwrap(), "abc123");
}

#[tokio::test]
async fn a_custom_script_without_stream_end_leaves_the_project_failed() {
    let server = MockServer::start().await;
    server.script_next(vec![
        json!({"type": "project_created", "project_id": "half1"}),
        json!({"type": "tool_progress", "message": "Working"}),
    ]);
    let error = server
        .client()
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Incomplete { events: 2, .. }),
        "{error:?}"
    );
    assert_eq!(error.project_id().unwrap(), "half1");
    assert_eq!(
        server.project("half1").unwrap().status,
        ProjectStatus::Failed
    );
}

#[tokio::test]
async fn events_per_generation_fixes_the_length_of_every_default_stream() {
    let server = MockServer::builder()
        .events_per_generation(50)
        .start()
        .await
        .unwrap();
    let client = server.client();
    let outcome = client
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(outcome.stats.events, 50);
    let id = outcome.project_id.unwrap();
    let follow_up = client
        .follow_up(&id, "Add a dark mode please")
        .await
        .unwrap();
    assert_eq!(follow_up.finish().await.unwrap().stats.events, 50);

    let too_few = MockServer::builder().events_per_generation(8).start().await;
    assert_eq!(
        too_few.unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[tokio::test]
async fn pacing_spaces_the_events_out() {
    let server = MockServer::builder()
        .pacing(Duration::from_millis(20))
        .start()
        .await
        .unwrap();
    server.script_next(vec![
        json!({"type": "project_created", "project_id": "slow1"}),
        json!({"type": "tool_progress"}),
        json!({"type": "tool_progress"}),
        json!({"type": "stream_end"}),
    ]);
    let started = tokio::time::Instant::now();
    let outcome = server
        .client()
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await;
    assert!(outcome.is_ok());
    // A lower bound only: sleeps never end early, however busy the machine.
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn after_shutdown_or_drop_nothing_is_served() {
    let server = MockServer::start().await;
    let client = server.client();
    bounded(server.shutdown()).await;
    let refused = client.generate(PROMPT).await;
    assert!(
        matches!(refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );

    let server = MockServer::start().await;
    let client = server.client();
    drop(server);
    tokio::task::yield_now().await;
    let refused = client.project("p1").await;
    assert!(
        matches!(refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_a_stalled_stream() {
    let server = MockServer::start().await;
    server.fault_next(Fault::StallBefore(1));
    let mut generation = server.client().generate(PROMPT).await.unwrap();
    bounded(generation.next()).await.unwrap().unwrap();
    bounded(server.shutdown()).await;
    let item = bounded(generation.next()).await;
    assert!(
        matches!(item, Some(Err(Error::Transport { .. }))),
        "{item:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_generations_on_one_client_all_complete() {
    const GENERATIONS: usize = 200;
    const EVENTS: usize = 100;
    let server = MockServer::builder()
        .events_per_generation(EVENTS)
        .start()
        .await
        .unwrap();
    let client = server.client();
    let credits = server.credits();
    let tasks: Vec<_> = (0..GENERATIONS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.generate(PROMPT).await?.finish().await })
        })
        .collect();
    let mut finished = 0;
    for task in tasks {
        let outcome = bounded(task).await.unwrap().unwrap();
        assert_eq!(outcome.stats.events, EVENTS as u64);
        finished += 1;
    }
    assert_eq!(finished, GENERATIONS);
    // 100 events: 9 framing, 45 write_file tool events, 45 file events, 1 command.
    assert_eq!(credits - server.credits(), (GENERATIONS * 45) as u64);
}

#[tokio::test]
async fn a_429_before_any_event_is_retried_by_the_default_client_without_a_second_project() {
    let server = MockServer::start().await;
    server.reply_next(
        1,
        Reply::RateLimited {
            retry_after: Some(0),
        },
    );
    let outcome = server
        .client()
        .generate(PROMPT)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 2, "the refused attempt and the accepted one");
    assert_eq!(outcome.project_id.unwrap(), "p1");
    assert!(
        server.project("p2").is_none(),
        "only one project was created"
    );
}

/// The raw HTTP/1.1 answer to a generate request: the head, and the body's chunks
/// (chunked transfer encoding) as the server framed them.
async fn raw_generate(server: &MockServer) -> (String, Vec<Vec<u8>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = json!({ "prompt": PROMPT }).to_string();
    let request = format!(
        "POST /api/v1/agent/generate HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {RAW_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    bounded(stream.read_to_end(&mut answer)).await.unwrap();

    let split = memchr::memmem::find(&answer, b"\r\n\r\n").unwrap();
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let mut rest = &answer[split + 4..];
    let mut chunks = Vec::new();
    loop {
        let line_end = memchr::memmem::find(rest, b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            break;
        }
        chunks.push(rest[..size].to_vec());
        rest = &rest[size + 2..];
        assert!(chunks.len() < 1_000_000, "runaway body");
    }
    (head, chunks)
}

#[tokio::test]
async fn chunk_size_frames_the_body_in_pieces_of_at_most_k_bytes() {
    let server = server_with_raw_token().await;
    let (_, whole) = raw_generate(&server).await;
    server.fault_next(Fault::ChunkSize(5));
    let (head, chunks) = raw_generate(&server).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 5));
    let body: Vec<u8> = chunks.concat();
    assert_eq!(
        body.len(),
        whole.concat().len(),
        "the same events (p2 instead of p1)"
    );
    assert!(chunks.len() >= body.len() / 5);
}

#[tokio::test]
async fn crlf_and_invalid_utf8_change_the_bytes_on_the_wire() {
    let server = server_with_raw_token().await;
    server.faults_next([Fault::Crlf, Fault::InvalidUtf8]);
    let (_, chunks) = raw_generate(&server).await;
    let body = chunks.concat();
    assert!(body.ends_with(b"\r\n\r\n"));
    let lf = body.iter().filter(|&&b| b == b'\n').count();
    let crlf = body.windows(2).filter(|w| w == b"\r\n").count();
    assert_eq!(lf, crlf, "every line ends with CRLF");
    assert_eq!(body.iter().filter(|&&b| b == 0xFF).count(), 1);
    assert!(memchr::memmem::find(&body, b"Provisioning container...\xFF\"").is_some());
}

#[tokio::test]
async fn drop_after_closes_the_connection_after_a_clean_end_of_body() {
    let server = server_with_raw_token().await;
    server.fault_next(Fault::DropAfter(2));
    let (head, chunks) = raw_generate(&server).await;
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let body = String::from_utf8(chunks.concat()).unwrap();
    assert_eq!(body.matches("data: ").count(), 2);
}
