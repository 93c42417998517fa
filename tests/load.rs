//! Load: 1,000 concurrent generations of 300 events each on one client, against the
//! offline LaraCopilot, every one delivered completely and in order. Figures (wall
//! time, peak memory) come from `examples/load.rs` in release mode, not from here.
#![cfg(feature = "mock")]

use std::time::Duration;

use laracopilot::mock::MockServer;
use laracopilot::Event;

const GENERATIONS: usize = 1_000;
const EVENTS: usize = 300;

fn signature(event: &Event) -> String {
    match event {
        Event::FileCreated(e) => format!("file:{}", e.path.as_deref().unwrap_or_default()),
        Event::ToolProgress(e) => format!("tool:{}", e.message.as_deref().unwrap_or_default()),
        other => other.type_name().to_owned(),
    }
}

async fn signatures(client: laracopilot::Client) -> Vec<String> {
    let mut generation = client
        .generate("Build a task management app")
        .await
        .expect("accepted");
    let mut seen = Vec::with_capacity(EVENTS);
    while let Some(item) = generation.next().await {
        seen.push(signature(&item.expect("no error under load")));
        assert!(seen.len() <= EVENTS, "more events than sent");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_generations_arrive_complete_and_in_order() {
    let server = MockServer::builder()
        .events_per_generation(EVENTS)
        .credits(u64::MAX)
        .start()
        .expect("mock starts");
    let client = server.client();
    let reference = signatures(client.clone()).await;
    assert_eq!(reference.len(), EVENTS);
    assert_eq!(reference.last().map(String::as_str), Some("stream_end"));

    let tasks: Vec<_> = (0..GENERATIONS)
        .map(|_| tokio::spawn(signatures(client.clone())))
        .collect();
    let all = async {
        let mut complete = 0;
        for task in tasks {
            let seen = task.await.expect("task ran");
            assert_eq!(
                seen, reference,
                "a generation lost, duplicated or reordered events"
            );
            complete += 1;
        }
        complete
    };
    let complete = tokio::time::timeout(Duration::from_secs(240), all)
        .await
        .expect("load finishes in time");
    assert_eq!(complete, GENERATIONS);
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(
        posts,
        GENERATIONS + 1,
        "one request per generation, none resent"
    );
}
