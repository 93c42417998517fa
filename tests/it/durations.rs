//! `Duration::MAX` in any timeout, deadline, wait or retry setting never panics: the
//! client builds, streams a whole generation, polls a ready project and retries a
//! 429, and a wait or deadline that is short ends on time whatever the other
//! settings say.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

#[cfg(feature = "blocking")]
use common::raw::on_thread;
use common::raw::{self, wait_timeout, within, RawServer, Step, PATIENCE};
use common::TOKEN;
use laracopilot::tokens::{Expiration, TokenInfo};
use laracopilot::{Client, ClientBuilder, Error, RetryPolicy, Token, WaitOptions};

const MAX: Duration = Duration::MAX;

fn retry_max() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(u32::MAX)
        .base_delay(MAX)
        .max_delay(MAX)
        .max_retry_after(MAX)
}

/// A builder with `Duration::MAX` everywhere, and a token that expires in 30 days
/// (so that the expiry warning, whose window is `Duration::MAX`, fires).
fn everything_max(base: &str, warned: &Arc<AtomicUsize>) -> ClientBuilder {
    let info = TokenInfo::new("CI Pipeline", SystemTime::now(), Expiration::Days30);
    let warned = Arc::clone(warned);
    Client::builder()
        .token(Token::new(TOKEN).unwrap().with_info(info))
        .base_url(base)
        .connect_timeout(MAX)
        .request_timeout(MAX)
        .idle_timeout(Some(MAX))
        .stream_deadline(Some(MAX))
        .on_token_expiring(MAX, move |_| {
            warned.fetch_add(1, Ordering::SeqCst);
        })
        .retry_policy(retry_max())
}

/// A server with a whole generation, a ready project, and a 429 that asks for no
/// wait before every other answer.
fn server() -> RawServer {
    RawServer::start(|request| {
        if request.index % 2 == 0 {
            return vec![Step::Write(raw::response(429, &[("Retry-After", "0")], ""))];
        }
        let answer = if request.method == "GET" {
            raw::project_answer("p1", "ready")
        } else {
            raw::sse_answer(&[
                r#"{"type":"project_created","project_id":"p1"}"#,
                r#"{"type":"container_progress","message":"Installing Laravel...","percentage":40}"#,
                r#"{"type":"file_created","path":"routes/web.php"}"#,
                r#"{"type":"stream_end","project_id":"p1","app_url":"https://p1.example"}"#,
            ])
        };
        vec![Step::Write(answer), Step::Close]
    })
}

#[tokio::test]
async fn duration_max_everywhere_builds_streams_polls_and_retries_a_429() {
    for idle in [Some(MAX), None] {
        let server = server();
        let warned = Arc::new(AtomicUsize::new(0));
        let client = everything_max(&server.base_url(), &warned)
            .idle_timeout(idle)
            .build()
            .expect("Duration::MAX builds");

        let generation = within(PATIENCE, "generate", client.generate("Build an app"))
            .await
            .expect("the 429 is retried at once");
        assert_eq!(generation.stats().attempts, 2);
        let outcome = within(PATIENCE, "finish", generation.finish())
            .await
            .expect("the whole generation");
        assert_eq!(outcome.files, ["routes/web.php"]);
        assert_eq!(outcome.stats().events, 4);

        let outcome = within(PATIENCE, "follow_up", async {
            client.follow_up("p1", "Add a page").await?.finish().await
        })
        .await
        .expect("the whole follow-up");
        assert_eq!(outcome.stats().attempts, 2);

        let project = within(PATIENCE, "project", client.project("p1"))
            .await
            .expect("a ready project");
        assert_eq!(project.project_status.as_deref(), Some("ready"));

        let options = WaitOptions::default().timeout(MAX).interval(MAX, MAX);
        let project = within(
            PATIENCE,
            "wait_for_project",
            client.wait_for_project("p1", options),
        )
        .await
        .expect("a ready project ends the wait at once");
        assert_eq!(project.project_status.as_deref(), Some("ready"));

        assert!(warned.load(Ordering::SeqCst) >= 1, "the expiry hook fired");
        assert_eq!(server.requests().len(), 8);
    }
}

#[cfg(feature = "blocking")]
#[test]
fn duration_max_everywhere_works_through_the_blocking_client() {
    let server = server();
    let base = server.base_url();
    on_thread(PATIENCE, "the blocking calls", move || {
        let warned = Arc::new(AtomicUsize::new(0));
        let client = everything_max(&base, &warned).build_blocking().unwrap();
        let outcome = client
            .generate("Build an app")
            .send()
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(outcome.stats().events, 4);
        let project = client
            .wait_for_project("p1", WaitOptions::default().timeout(MAX).interval(MAX, MAX))
            .unwrap();
        assert_eq!(project.project_status.as_deref(), Some("ready"));
    });
}

#[tokio::test]
async fn a_wait_with_an_interval_of_duration_max_still_ends_at_its_timeout() {
    let server = RawServer::answering(raw::project_answer("p1", "generating"));
    let client = raw::builder(&server.base_url()).build().unwrap();
    let options = WaitOptions::default()
        .timeout(Duration::from_secs(1))
        .interval(MAX, MAX);
    let (_, took) = wait_timeout(&client, options).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(server.count("GET"), 1);
}

#[tokio::test]
async fn a_retry_delay_of_duration_max_is_cut_by_a_wait_or_a_stream_deadline() {
    // 429s without Retry-After: the policy's own delay, a random part of MAX.
    let server = RawServer::answering(raw::json(429, "{}"));
    let client = raw::builder(&server.base_url())
        .retry_policy(retry_max())
        .stream_deadline(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    let started = Instant::now();
    let options = WaitOptions::default()
        .timeout(Duration::from_millis(1_500))
        .interval(Duration::from_millis(100), Duration::from_millis(100));
    wait_timeout(&client, options).await;
    let error = within(PATIENCE, "generate", client.generate("Build an app"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    assert_eq!(
        error.attempts(),
        1,
        "a retry after the deadline is no retry"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_expiry_warning_window_of_duration_max_never_fires_for_a_token_that_never_expires() {
    let server = RawServer::answering(raw::project_answer("p1", "ready"));
    let warned = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&warned);
    let info = TokenInfo::new("Production", SystemTime::UNIX_EPOCH, Expiration::Never);
    let client = raw::builder(&server.base_url())
        .token(Token::new(TOKEN).unwrap().with_info(info))
        .on_token_expiring(MAX, move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    within(PATIENCE, "project", client.project("p1"))
        .await
        .expect("a token that never expires is sent");
    assert_eq!(warned.load(Ordering::SeqCst), 0, "it never expires");
    assert_eq!(server.count("GET"), 1);
}
