//! `Progress` as a generation keeps it: after every item of real streams (the
//! documented order, a follow-up, unknown and malformed events, `credits_exhausted`,
//! a stream kept alive by comments only), in the outcome, and on the blocking facade;
//! `Outcome` and `Progress` as JSON, with their facts; a progress of its own on
//! tokio's clock.

use crate::common;

use std::time::Duration;

use common::*;
use laracopilot::{Event, Phase, ProjectId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The phase after each item of `generation`, bounded in count and time.
async fn phases(generation: &mut laracopilot::Generation) -> Vec<Phase> {
    let mut seen = Vec::new();
    while let Some(_item) = tokio::time::timeout(Duration::from_secs(10), generation.next())
        .await
        .expect("the stream makes progress")
    {
        seen.push(generation.progress().phase());
        assert!(seen.len() < 1_000, "runaway stream");
    }
    seen
}

fn provisioning(phase: &Phase) -> Option<Option<f64>> {
    match phase {
        Phase::Provisioning { percentage, .. } => Some(*percentage),
        _ => None,
    }
}

#[tokio::test]
async fn the_documented_stream_moves_through_provisioning_generating_and_finished() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let client = client(&server);
    let mut generation = client
        .generate("Build a task management app")
        .await
        .unwrap();
    assert_eq!(generation.progress().phase(), Phase::Waiting);
    assert!(
        generation.progress().start_time().is_some(),
        "the clock starts at the request"
    );

    let seen = phases(&mut generation).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(provisioning(&seen[0]), Some(None));
    assert_eq!(provisioning(&seen[1]), Some(Some(40.0)));
    assert_eq!(seen[2], Phase::Generating);
    assert_eq!(seen[3], Phase::Finished);

    let progress = generation.progress();
    assert_eq!(progress.project_id().map(ProjectId::as_str), Some("abc123"));
    assert_eq!(
        progress.message(),
        Some("Container ready. Starting AI generation...")
    );
    assert_eq!(progress.events(), generation.stats().events);
    let total = progress.elapsed();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        generation.progress().elapsed(),
        total,
        "the clock stopped at the end"
    );
}

#[tokio::test]
async fn the_outcome_carries_the_final_progress() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p1"}"#,
        r#"{"type":"container_ready","message":"ready"}"#,
        r#"{"type":"tool_progress","tool":"write_file","message":"Writing app/Models/Task.php"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php","action":"created"}"#,
        r#"{"type":"file_created","path":"routes/web.php","action":"modified"}"#,
        r#"{"type":"file_created","path":"routes/web.php","action":"updated"}"#,
        r#"{"type":"stream_end","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let outcome = client(&server)
        .generate("Build a task management app")
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    let progress = &outcome.progress;
    assert_eq!(progress.phase(), Phase::Finished);
    assert_eq!(
        (progress.files_created(), progress.files_modified()),
        (1, 2)
    );
    assert_eq!(outcome.files.len(), 2, "the outcome keeps distinct paths");
    assert_eq!(progress.last_path(), Some("routes/web.php"));
    assert_eq!(progress.tool_steps(), 1);
    assert_eq!(progress.events(), outcome.stats().events);
}

#[tokio::test]
async fn a_follow_up_starts_with_its_project_and_goes_straight_to_generating() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"tool_progress","tool":"write_file","message":"Writing resources/css/app.css"}"#,
        r#"{"type":"file_created","path":"resources/css/app.css","action":"modified"}"#,
        r#"{"type":"stream_end","project_id":"abc123"}"#,
    ]);
    mount(&server, "POST", "/agent/generate/abc123", sse(body)).await;
    let mut generation = client(&server)
        .follow_up("abc123", "Add a dark mode")
        .await
        .unwrap();
    assert_eq!(
        generation.progress().project_id().map(ProjectId::as_str),
        Some("abc123")
    );
    let seen = phases(&mut generation).await;
    assert_eq!(
        seen,
        [Phase::Generating, Phase::Generating, Phase::Finished]
    );
    assert!(seen.iter().all(|p| provisioning(p).is_none()));
    assert_eq!(generation.progress().files_modified(), 1);
}

#[tokio::test]
async fn unknown_and_malformed_events_are_only_counted() {
    let server = server().await;
    let body = format!(
        "{}data: ping\n\n{}",
        sse_body(&[
            r#"{"type":"project_created","project_id":"p2"}"#,
            r#"{"type":"agent_thinking","message":"Planning the models"}"#,
        ]),
        sse_body(&[r#"{"type":"stream_end"}"#]),
    );
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let mut generation = client(&server)
        .generate("Build a task management app")
        .await
        .unwrap();
    let seen = phases(&mut generation).await;
    assert_eq!(provisioning(&seen[1]), Some(None), "unknown: no change");
    assert_eq!(provisioning(&seen[2]), Some(None), "malformed: no change");
    let progress = generation.progress();
    assert_eq!(progress.events(), 4);
    assert_eq!(progress.unknown_events(), 1);
    assert_eq!(progress.malformed_events(), generation.stats().malformed);
    assert_eq!(
        progress.message(),
        None,
        "an unknown event's message is not taken"
    );
}

#[tokio::test]
async fn credits_exhausted_ends_the_progress_as_failed() {
    let server = server().await;
    let body = sse_body(&[
        r#"{"type":"project_created","project_id":"p3"}"#,
        r#"{"type":"container_ready","message":"ready"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
        r#"{"type":"credits_exhausted"}"#,
    ]);
    mount(&server, "POST", "/agent/generate", sse(body)).await;
    let mut generation = client(&server)
        .generate("Build a task management app")
        .await
        .unwrap();
    let seen = phases(&mut generation).await;
    assert!(
        matches!(
            seen.last(),
            Some(Phase::Failed {
                kind: "credits_exhausted",
                ..
            })
        ),
        "{seen:?}"
    );
    let progress = generation.progress();
    assert_eq!(progress.files(), 1);
    assert_eq!(progress.events(), 3, "the error is not an event");
    assert!(
        !progress.stalled(Duration::ZERO),
        "an ended generation never stalls"
    );
}

#[tokio::test]
async fn keep_alive_comments_keep_the_connection_but_the_progress_stalls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _server = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 8192];
        let mut read = 0;
        while read < buf.len() {
            match socket.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
            if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && buf[..read].ends_with(b"}") {
                break;
            }
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
        let event = "data: {\"type\":\"project_created\",\"project_id\":\"p4\"}\n\n";
        if socket.write_all(head.as_bytes()).await.is_err()
            || socket.write_all(event.as_bytes()).await.is_err()
        {
            return;
        }
        for _ in 0..250 {
            if socket.write_all(b": keep-alive\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let client = laracopilot::Client::builder()
        .token(token())
        .base_url(format!("http://{addr}/api/v1"))
        .idle_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let mut generation = client
        .generate("Build a task management app")
        .await
        .unwrap();
    let first = generation.next().await.unwrap().unwrap();
    assert!(matches!(first, Event::ProjectCreated(_)));
    let threshold = Duration::from_millis(300);
    let mut stalled = false;
    for _ in 0..40 {
        // Nothing but comments arrive: the wait always runs out.
        let waited = tokio::time::timeout(Duration::from_millis(50), generation.next()).await;
        assert!(waited.is_err(), "no item while only comments arrive");
        if generation.progress().stalled(threshold) {
            stalled = true;
            break;
        }
    }
    assert!(stalled, "{:?}", generation.progress());
    assert!(generation.progress().since_last_event() > threshold);
    assert!(generation.stats().bytes > 0 && generation.stats().events == 1);
    assert!(!generation.progress().stalled(Duration::MAX));
}

#[cfg(feature = "blocking")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_generation_keeps_its_progress_too() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let builder = builder(&server);
    let phases = tokio::task::spawn_blocking(move || {
        let client = builder.build_blocking().unwrap();
        let mut generation = client
            .generate("Build a task management app")
            .send()
            .unwrap();
        let mut seen = vec![generation.progress().phase()];
        while let Some(item) = generation.next() {
            item.unwrap();
            seen.push(generation.progress().phase());
            assert!(seen.len() < 1_000, "runaway stream");
        }
        seen
    })
    .await
    .unwrap();
    assert_eq!(phases.first(), Some(&Phase::Waiting));
    assert_eq!(phases.last(), Some(&Phase::Finished));
    assert_eq!(phases.len(), 5, "{phases:?}");
}

#[tokio::test]
async fn an_outcome_and_its_progress_serialize_to_json_with_their_facts() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let journal = std::sync::Arc::new(laracopilot::journal::MemoryJournal::new());
    let client = builder(&server)
        .journal(std::sync::Arc::clone(&journal))
        .build()
        .unwrap();
    let mut generation = client
        .generate("Build a task management app")
        .await
        .unwrap();
    let first = bounded(generation.next()).await.unwrap().unwrap();
    assert!(matches!(first, Event::ProjectCreated(_)));
    let entry = journal.entries()[0].local_id.as_str().to_owned();

    // A progress mid-stream: what a service returns while it runs.
    let json = serde_json::to_value(generation.progress()).unwrap();
    assert_eq!(
        json["phase"],
        serde_json::json!({"name": "provisioning", "percentage": null})
    );
    assert_eq!(json["project_id"], "abc123");
    assert_eq!(json["journal_id"], entry.as_str());
    assert_eq!(json["events"], 1);
    assert!(json["elapsed_ms"].is_u64() && json["since_last_event_ms"].is_u64());
    assert_eq!(json["stats"]["events"], 1);
    assert_eq!(json["stats"]["attempts"], 1);

    let outcome = bounded(generation.finish()).await.unwrap();
    let json = serde_json::to_value(&outcome).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "project_id",
        "journal_id",
        "app_url",
        "files",
        "recovered",
        "progress",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(json["project_id"], "abc123");
    assert_eq!(json["journal_id"], entry.as_str());
    assert_eq!(json["app_url"], "https://abc123.laracopilot.com");
    assert_eq!(json["files"], serde_json::json!([]));
    assert_eq!(json["recovered"], serde_json::Value::Null);
    let progress = &json["progress"];
    assert_eq!(progress["phase"], serde_json::json!({"name": "finished"}));
    assert_eq!(progress["events"], 4);
    assert_eq!(
        progress["message"],
        "Container ready. Starting AI generation..."
    );
    let stats = &progress["stats"];
    assert_eq!(stats["events"], 4);
    assert_eq!(stats["malformed"], 0);
    assert_eq!(stats["attempts"], 1);
    assert_eq!(stats["journal_failures"], 0);
    assert_eq!(stats["slot_wait_ms"], 0);
    assert!(stats["bytes"].as_u64().unwrap() > 0);
    assert!(stats["time_to_first_event_ms"].is_u64());
    assert!(stats["longest_gap_ms"].is_u64());
    // The facts are the outcome's own.
    assert_eq!(stats["bytes"], outcome.stats().bytes);
}

#[tokio::test]
async fn a_recovered_outcome_serializes_the_polled_project() {
    let server = server().await;
    let created = r#"{"type":"project_created","project_id":"p1"}"#;
    mount(
        &server,
        "POST",
        "/agent/generate",
        sse(sse_body(&[created])),
    )
    .await;
    mount(&server, "GET", "/agent/project/p1", project_json("p1")).await;
    let client = client(&server);
    let generation = client.generate("Build a task app").await.unwrap();
    let options = laracopilot::WaitOptions::default()
        .interval(Duration::from_millis(10), Duration::from_millis(10))
        .timeout(Duration::from_secs(10));
    let outcome = bounded(client.finish_or_recover(generation, options))
        .await
        .unwrap();
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(
        json["progress"]["phase"],
        serde_json::json!({"name": "recovered"})
    );
    assert_eq!(json["recovered"]["project_id"], "p1");
    assert_eq!(json["recovered"]["project_status"], "ready");
    assert_eq!(json["recovered"]["name"], "Tasks");
    assert_eq!(json["app_url"], "https://p1.laracopilot.com");
    assert_eq!(json["journal_id"], serde_json::Value::Null);
}

#[tokio::test(start_paused = true)]
async fn a_progress_of_its_own_follows_tokios_clock() {
    // The `_at(now)` methods are gone: paused time moves the clock.
    let mut progress = laracopilot::Progress::started();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(progress.elapsed(), Duration::from_secs(30));
    assert!(progress.stalled(Duration::from_secs(29)), "no event yet");
    let ready = Event::from_json(r#"{"type":"container_ready","message":"ok"}"#).unwrap();
    progress.apply(&ready);
    assert_eq!(progress.phase(), Phase::Generating);
    assert!(!progress.stalled(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(121)).await;
    assert!(progress.stalled(Duration::from_secs(120)));
    assert_eq!(progress.since_last_event(), Duration::from_secs(121));
    let json = serde_json::to_value(&progress).unwrap();
    assert_eq!(json["elapsed_ms"], 151_000);
    assert_eq!(json["since_last_event_ms"], 121_000);
    assert_eq!(json["phase"], serde_json::json!({"name": "generating"}));
}
