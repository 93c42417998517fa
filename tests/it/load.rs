//! Load: concurrent generations of 300 events each on one client, against the
//! offline LaraCopilot, every one delivered completely and in order, with one
//! request per generation.
//!
//! By default a smoke run of 50 generations. Set `LARACOPILOT_FULL_LOAD=1` for the
//! full run of 1,000 (`.ci/run` does, in a step of its own):
//!
//! ```text
//! LARACOPILOT_FULL_LOAD=1 cargo test --features full -p laracopilot --test it load::
//! ```
//!
//! Figures (wall time, peak memory) come from `examples/load.rs` in release mode,
//! not from here.

use crate::common;

use std::time::Duration;

use common::mock::{signature, PROMPT};
use laracopilot_mock::MockServer;

const EVENTS: usize = 300;

/// 1,000 with `LARACOPILOT_FULL_LOAD=1`, else 50.
fn generations() -> usize {
    match std::env::var("LARACOPILOT_FULL_LOAD").as_deref() {
        Ok("1") => 1_000,
        _ => 50,
    }
}

async fn signatures(client: laracopilot::Client) -> Vec<String> {
    let mut generation = client.generate(PROMPT).await.expect("accepted");
    let mut seen = Vec::with_capacity(EVENTS);
    while let Some(item) = generation.next().await {
        seen.push(signature(&item.expect("no error under load")));
        assert!(seen.len() <= EVENTS, "more events than sent");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_generations_arrive_complete_and_in_order_with_one_request_each() {
    let generations = generations();
    let server = MockServer::builder()
        .events_per_generation(EVENTS)
        .credits(u64::MAX)
        .start()
        .expect("mock starts");
    let client = server.client();
    let reference = signatures(client.clone()).await;
    assert_eq!(reference.len(), EVENTS);
    assert_eq!(reference.last().map(String::as_str), Some("stream_end:"));

    let tasks: Vec<_> = (0..generations)
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
    assert_eq!(complete, generations);
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(
        posts,
        generations + 1,
        "one request per generation, none resent"
    );
}
