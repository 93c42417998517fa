//! Helpers shared by the offline LaraCopilot's tests: the SDK's side (a token, bounded
//! waits, a generation driven to its end), the mock's side in [`mock`] (the usual
//! prompt, event summaries, a raw HTTP/1.1 client), and the cassettes' in
//! [`cassette`].
#![allow(dead_code, reason = "each test file uses a different subset")]

pub mod cassette;
pub mod mock;

use std::future::IntoFuture;
use std::time::Duration;

use laracopilot::{Client, Event, Outcome, Result, Token};

/// The idle timeout (or request timeout) of a client whose call must time out in a
/// stall, after its answer's head and first events arrived: above the 0.2 s a fresh
/// connection and its answer took with both cores busy (load average 17), short
/// enough for a quick test.
pub const STALL: Duration = Duration::from_secs(1);

/// A distinctive token: tests assert that it never shows up in any output.
pub const TOKEN: &str = "lcp_live_S3CR3T-t0k3n-never-print-9f8e";

pub fn token() -> Token {
    Token::new(TOKEN).expect("valid test token")
}

/// `future` (or a request, which runs when awaited), bounded to 20 seconds: a
/// test that hangs fails instead.
pub async fn bounded<T>(future: impl IntoFuture<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the test makes progress")
}

/// Collects every item of a generation, bounded in count and time.
pub async fn collect(mut generation: laracopilot::Generation) -> Vec<Result<Event>> {
    let mut items = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), generation.next())
        .await
        .expect("the stream makes progress")
    {
        items.push(item);
        assert!(items.len() < 100_000, "runaway stream");
    }
    items
}

/// Generates from `prompt` and drives the stream to its outcome, bounded in time.
pub async fn finish(client: &Client, prompt: &str) -> Result<Outcome> {
    bounded(async { client.generate(prompt).await?.finish().await }).await
}

/// [`finish`], for a generation that must succeed.
pub async fn finish_ok(client: &Client, prompt: &str) -> Outcome {
    finish(client, prompt)
        .await
        .unwrap_or_else(|e| panic!("the generation of {prompt:?} failed: {e:?}"))
}
