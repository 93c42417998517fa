//! Scripts and credits: the default streams, custom scripts (any `Serialize`
//! events), their length and pacing, and the credit balance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use laracopilot::{Error, Event, ProjectId};
use laracopilot_mock::{MockError, MockServer, ProjectStatus};
use serde::Serialize;
use serde_json::json;

use crate::common::mock::*;
use crate::common::*;

#[tokio::test]
async fn the_default_script_yields_project_container_files_and_stream_end_in_order() {
    let server = MockServer::start();
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    let types = types(&events);

    let Event::ProjectCreated(created) = &events[0] else {
        panic!("{:?}", events[0])
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
    assert_eq!(percentages, [10.0, 25.0, 40.0, 60.0, 80.0, 100.0]);
    let ready = types.iter().position(|t| t == "container_ready").unwrap();
    assert_eq!(ready, 7);
    let generation = &types[ready + 1..types.len() - 1];
    assert!(generation
        .iter()
        .all(|t| t == "file_created" || t == "tool_progress"));
    let Some(Event::StreamEnd(end)) = events.last() else {
        panic!("{:?}", events.last())
    };
    assert_eq!(end.project_id.as_ref().map(|p| p.to_string()), Some(id));
    assert_eq!(end.app_url.as_deref(), Some(url.as_str()));

    // The demo plan for "a task management app".
    let paths = paths(&events);
    assert_eq!(paths.len(), 12, "{paths:?}");
    for expected in [
        "database/migrations/2024_01_01_000001_create_tasks_table.php",
        "app/Models/Task.php",
        "database/factories/TaskFactory.php",
        "app/Http/Controllers/TaskController.php",
        "app/Http/Requests/StoreTaskRequest.php",
        "resources/views/tasks/index.blade.php",
        "resources/views/tasks/edit.blade.php",
        "tests/Feature/TaskTest.php",
        "resources/views/layouts/app.blade.php",
        "routes/web.php",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} in {paths:?}"
        );
    }
}

#[tokio::test]
async fn a_finished_generation_leaves_a_ready_project_with_its_files() {
    let server = MockServer::start();
    let client = server.client();
    let outcome = finish_ok(&client, PROMPT).await;
    let id = outcome.project_id().cloned().unwrap();

    let project = client.project(&id).await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(project.name.as_deref(), Some("Task Management App"));
    assert_eq!(project.app_url, outcome.app_url);

    let stored = server.project(&id).unwrap();
    assert_eq!(stored.project_id, id);
    assert_eq!(stored.status, ProjectStatus::Ready);
    assert_eq!(stored.files, outcome.files);
    assert_eq!(stored.prompts, vec![PROMPT.to_owned()]);
}

#[tokio::test]
async fn a_prompt_naming_no_known_model_gets_a_generic_item_and_a_name_from_its_words() {
    let server = MockServer::start();
    let client = server.client();
    let outcome = finish_ok(&client, "Build me a habit tracker with streaks").await;
    assert!(
        outcome.files.iter().any(|f| f == "app/Models/Item.php"),
        "{:?}",
        outcome.files
    );
    let id = outcome.project_id().cloned().unwrap();
    assert_eq!(
        server.project(&id).unwrap().name,
        "Habit Tracker With Streaks"
    );
    let outcome = finish_ok(&client, "Categories of products, please").await;
    assert!(outcome
        .files
        .iter()
        .any(|f| f == "resources/views/categories/index.blade.php"));
    assert!(outcome.files.iter().any(|f| f == "app/Models/Product.php"));
}

#[tokio::test]
async fn a_follow_up_streams_files_without_container_events() {
    let server = MockServer::start();
    let client = server.client();
    let id = finish_ok(&client, PROMPT)
        .await
        .project_id()
        .cloned()
        .unwrap();

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
    assert!(paths(&events).iter().any(|p| p == "app/Models/Comment.php"));

    let dark = client
        .follow_up(&id, "Add a dark mode please")
        .await
        .unwrap();
    let files = bounded(dark.finish()).await.unwrap().files;
    assert_eq!(
        files,
        [
            "resources/views/layouts/app.blade.php",
            "resources/css/app.css",
            "routes/web.php"
        ]
    );

    let stored = server.project(&id).unwrap();
    assert_eq!(stored.status, ProjectStatus::Ready);
    assert_eq!(
        stored.prompts,
        [PROMPT, "Add comments to tasks", "Add a dark mode please"]
    );
    assert!(stored.files.iter().any(|p| p == "app/Models/Comment.php"));
}

#[tokio::test]
async fn running_out_of_credits_ends_the_stream_with_credits_exhausted_and_the_project_id() {
    let server = MockServer::builder().credits(2).start().unwrap();
    let items = collect(server.client().generate(PROMPT).await.unwrap()).await;
    let (last, events) = items.split_last().unwrap();
    let events: Vec<Event> = events.iter().map(|e| e.as_ref().unwrap().clone()).collect();
    assert_eq!(paths(&events).len(), 2, "two credits, two files");
    let Err(error @ Error::CreditsExhausted { raw, .. }) = last else {
        panic!("{last:?}")
    };
    let id = error.project_id().cloned().unwrap();
    assert_eq!(
        raw,
        &format!(
            r#"{{"type":"credits_exhausted","project_id":"{id}","message":"Your team has run out of credits."}}"#
        )
    );
    assert_eq!(server.credits(), 0);
    let stored = server.project(&id).unwrap();
    assert_eq!(stored.status, ProjectStatus::CreditsExhausted);
    assert_eq!(stored.files.len(), 2);

    server.set_credits(1_000);
    let follow_up = server
        .client()
        .follow_up(&id, "Add a dark mode please")
        .await;
    assert!(bounded(follow_up.unwrap().finish()).await.is_ok());
    assert_eq!(server.credits(), 1_000 - 3, "three files in that follow-up");
}

#[tokio::test]
async fn a_custom_script_is_sent_as_given_and_names_the_stored_project() {
    let server = MockServer::start();
    server
        .script_next([
            json!({"type": "project_created", "project_id": "abc123", "app_url": "https://abc123.example"}),
            json!({"type": "thinking", "message": "Planning the schema"}),
            json!({"type": "file_created", "path": "app/Models/Invoice.php", "extra": 1}),
            json!({"type": "stream_end", "project_id": "abc123"}),
        ])
        .unwrap();
    let events = events(server.client().generate(PROMPT).await.unwrap()).await;
    assert_eq!(
        types(&events),
        ["project_created", "thinking", "file_created", "stream_end"]
    );
    assert!(matches!(&events[1], Event::Unknown(u) if u.type_name == "thinking"));
    // A `json!` value is a sorted map: its keys arrive in that order.
    assert_eq!(
        events[2].raw_json(),
        r#"{"extra":1,"path":"app/Models/Invoice.php","type":"file_created"}"#
    );
    let stored = server.project("abc123").unwrap();
    assert_eq!(stored.status, ProjectStatus::Ready);
    assert_eq!(stored.app_url, "https://abc123.example");
    assert_eq!(stored.files, ["app/Models/Invoice.php"]);

    // The queue is used up: the next generation is the default one again.
    let outcome = finish_ok(&server.client(), PROMPT).await;
    assert_eq!(outcome.project_id().unwrap(), "p1");
}

#[tokio::test]
async fn a_custom_script_of_structs_keeps_their_field_order_and_numeric_ids_name_the_project() {
    #[derive(Serialize)]
    struct Created {
        r#type: &'static str,
        project_id: u64,
        note: &'static str,
    }
    let server = MockServer::start();
    let created = Created {
        r#type: "project_created",
        project_id: 42,
        note: "typed",
    };
    server.script_next([created]).unwrap();
    let error = finish(&server.client(), PROMPT).await.unwrap_err();
    assert!(
        matches!(error, Error::Incomplete { events: 1, .. }),
        "{error:?}"
    );
    assert_eq!(error.project_id(), Some(&ProjectId::from("42")));
    let stored = server.project("42").unwrap();
    assert_eq!(stored.app_url, "https://42.laracopilot.com");
    assert_eq!(
        stored.status,
        ProjectStatus::Failed,
        "no stream_end in that script"
    );

    let answer = {
        let server = raw_token_server();
        server
            .script_next([Created {
                r#type: "project_created",
                project_id: 7,
                note: "x",
            }])
            .unwrap();
        raw_generate(&server)
    };
    assert_eq!(
        answer.text(),
        "data: {\"type\":\"project_created\",\"project_id\":7,\"note\":\"x\"}\n\n"
    );
}

#[tokio::test]
async fn an_event_that_cannot_be_serialized_is_refused_and_nothing_is_queued() {
    let server = MockServer::start();
    let mut bad = BTreeMap::new();
    bad.insert(vec![1u8], "a map with a non-string key");
    let refused = server.script_next([BTreeMap::new(), bad]);
    let Err(error @ MockError::Script { index: 1, .. }) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        error.to_string(),
        "event 1 of the script cannot be serialized as JSON"
    );
    assert!(std::error::Error::source(error).is_some());
    let outcome = finish_ok(&server.client(), PROMPT).await;
    assert!(
        outcome.stats().events > 9,
        "the default script ran: {outcome:?}"
    );
}

#[tokio::test]
async fn events_per_generation_fixes_the_length_of_every_default_stream() {
    let server = MockServer::builder()
        .events_per_generation(50)
        .start()
        .unwrap();
    let client = server.client();
    let outcome = finish_ok(&client, PROMPT).await;
    assert_eq!(outcome.stats().events, 50);
    let id = outcome.project_id().cloned().unwrap();
    let follow_up = client
        .follow_up(&id, "Add a dark mode please")
        .await
        .unwrap();
    assert_eq!(
        bounded(follow_up.finish()).await.unwrap().stats().events,
        50
    );
}

#[tokio::test]
async fn pacing_spaces_the_events_out() {
    let server = MockServer::builder()
        .pacing(Duration::from_millis(20))
        .start()
        .unwrap();
    server
        .script_next([
            json!({"type": "project_created", "project_id": "slow1"}),
            json!({"type": "tool_progress"}),
            json!({"type": "tool_progress"}),
            json!({"type": "stream_end"}),
        ])
        .unwrap();
    let started = Instant::now();
    finish_ok(&server.client(), PROMPT).await;
    // A lower bound only: sleeps never end early, however busy the machine.
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_generations_on_one_client_all_complete() {
    const GENERATIONS: usize = 200;
    const EVENTS: usize = 100;
    let server = MockServer::builder()
        .events_per_generation(EVENTS)
        .start()
        .unwrap();
    let client = server.client();
    let credits = server.credits();
    let tasks: Vec<_> = (0..GENERATIONS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { finish_ok(&client, PROMPT).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(bounded(task).await.unwrap().stats().events, EVENTS as u64);
    }
    // 100 events: 9 framing, 45 write_file tool events, 45 file events, 1 command.
    assert_eq!(credits - server.credits(), (GENERATIONS * 45) as u64);
    assert!(server.project(format!("p{GENERATIONS}")).is_some());
}
