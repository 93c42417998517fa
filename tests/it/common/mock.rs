//! Helpers for the tests that run the SDK against the offline LaraCopilot
//! (`laracopilot-mock`): the usual prompt, the POSTs it received, event signatures,
//! and a bounded poll. The mock's own tests have their own helpers in its crate.

use std::time::{Duration, Instant};

use laracopilot::Event;
use laracopilot_mock::MockServer;

/// The documentation's kind of prompt; the mock plans Task files for it.
pub const PROMPT: &str = "Build a task management app";

/// The POSTs (generate and follow-up calls) `server` received.
pub fn posts(server: &MockServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

/// The POSTs whose JSON body asks for `prompt`.
pub fn posts_with_prompt(server: &MockServer, prompt: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.json().is_some_and(|b| b["prompt"] == prompt))
        .count()
}

/// What a test compares: the event's type and its path or message, without ids
/// (which differ from one project to the next).
pub fn signature(event: &Event) -> String {
    let detail = match event {
        Event::FileCreated(e) => e.path.clone(),
        Event::ContainerProgress(e) => Some(e.message.clone()),
        Event::ContainerReady(e) => Some(e.message.clone()),
        Event::ToolProgress(e) => e.message.clone(),
        _ => None,
    };
    format!("{}:{}", event.type_name(), detail.unwrap_or_default())
}

/// Polls `condition` every 10 ms for at most 5 seconds, letting the runtime's
/// other tasks run meanwhile (the client closes connections on them); whether it
/// came true.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}
