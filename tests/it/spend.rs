//! The spend guards, each proven against the offline LaraCopilot: the offline guard
//! (`.offline(true)`, and `LARACOPILOT_OFFLINE` through `from_env`, checked in child
//! processes since the environment is global), the concurrency cap (at most `n`
//! streams in flight over clones, the wait reported, bounded and given up when
//! dropped) and the credits breaker (no request while it is open, status calls
//! unaffected, reset, cool-down, off).
//!
//! "This call waits for a slot" is checked on events, not after a sleep: the call's
//! future is polled once (`poll!`), which runs it up to its first wait, and the
//! offline LaraCopilot counts what it received; how long a call waited
//! (`Stats::slot_wait`) is checked against instants the test took around those
//! events.

use crate::common;

use std::future::Future;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mock::{posts, posts_with_prompt, PROMPT};
use common::{bounded, finish, finish_ok};
use futures::{poll, FutureExt as _};
use laracopilot::{Client, Error, TimeoutKind, Token};
use laracopilot_mock::{MockServer, ProjectStatus};

fn prompt(i: usize) -> String {
    format!("Build a task management app, number {i}")
}

// ---- the offline guard ----

#[tokio::test]
async fn an_offline_client_works_against_the_offline_laracopilot() {
    let server = MockServer::start();
    let client = server.client_builder().offline(true).build().unwrap();
    let outcome = finish_ok(&client, PROMPT).await;
    let id = outcome.project_id().cloned().unwrap();
    assert_eq!(
        client.project(&id).await.unwrap().project_status.as_deref(),
        Some("ready")
    );
}

#[test]
fn an_offline_client_refuses_the_real_api_before_sending_anything() {
    for url in [
        laracopilot::DEFAULT_BASE_URL,
        "https://staging.example.com/api/v1",
        "http://192.168.1.10:8080/api/v1",
    ] {
        let built = Client::builder()
            .token(Token::new("lcp_0123456789abcdef").unwrap())
            .base_url(url)
            .allow_http(true)
            .offline(true)
            .build();
        let Err(Error::Config { message, .. }) = built else {
            panic!("{url} was allowed: {built:?}");
        };
        assert!(message.contains("offline"), "{message}");
    }
}

/// Marks the child processes of the environment tests.
const CHILD: &str = "LARACOPILOT_SPEND_TEST_CHILD";

/// Runs [`child_reads_the_offline_guard_from_the_environment`] in a child process
/// with `env` (and only the variables named here of the laracopilot ones), bounded
/// to 30 seconds; whether it passed, and its output.
fn run_child(env: &[(&str, &str)], want: &str) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            "spend::child_reads_the_offline_guard_from_the_environment",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove(laracopilot::TOKEN_ENV)
        .env_remove(laracopilot::BASE_URL_ENV)
        .env_remove(laracopilot::OFFLINE_ENV)
        .env(CHILD, want)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();
    let output = wait_bounded(child, Duration::from_secs(30));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Waits for `child` at most `limit` (killing and reaping it past that).
fn wait_bounded(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The child side: builds a client with `from_env` and checks the outcome named by
/// [`CHILD`]. A no-op in the normal test run.
#[test]
fn child_reads_the_offline_guard_from_the_environment() {
    let Ok(want) = std::env::var(CHILD) else {
        return;
    };
    let built = Client::builder().from_env().build();
    match want.as_str() {
        "refused" => {
            let Err(Error::Config { message, .. }) = built else {
                panic!("built: {built:?}");
            };
            assert!(message.contains("offline"), "{message}");
        }
        "invalid" => {
            let Err(Error::Config { message, .. }) = built else {
                panic!("built: {built:?}");
            };
            assert!(message.contains(laracopilot::OFFLINE_ENV), "{message}");
        }
        "built" => {
            built.unwrap();
        }
        "works" => {
            // Offline and pointed at the offline LaraCopilot: a whole generation.
            let server = MockServer::builder()
                .token("lcp_mock_spend_child_token")
                .start()
                .unwrap();
            assert_eq!(
                std::env::var(laracopilot::BASE_URL_ENV).ok().as_deref(),
                Some("http://127.0.0.1:1/api/v1"),
            );
            let client = Client::builder()
                .from_env()
                .base_url(server.base_url())
                .build()
                .unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async { finish_ok(&client, PROMPT).await });
            // And the same environment refuses the real API.
            let real = Client::builder()
                .from_env()
                .base_url(laracopilot::DEFAULT_BASE_URL)
                .build();
            assert!(matches!(real, Err(Error::Config { .. })), "{real:?}");
        }
        other => panic!("unknown child case {other}"),
    }
    println!("child case {want}: ok");
}

#[test]
fn laracopilot_offline_in_the_environment_refuses_any_base_url_but_loopback() {
    let token = (laracopilot::TOKEN_ENV, "lcp_mock_spend_child_token");
    let cases: &[(&[(&str, &str)], &str)] = &[
        // The default base URL (the real API), offline: refused.
        (&[token, (laracopilot::OFFLINE_ENV, "1")], "refused"),
        (
            &[
                token,
                (laracopilot::OFFLINE_ENV, "true"),
                (
                    laracopilot::BASE_URL_ENV,
                    "https://staging.example.com/api/v1",
                ),
            ],
            "refused",
        ),
        (&[token, (laracopilot::OFFLINE_ENV, " YES ")], "refused"),
        // Offline and loopback: allowed, and a generation runs.
        (
            &[
                token,
                (laracopilot::OFFLINE_ENV, "on"),
                (laracopilot::BASE_URL_ENV, "http://127.0.0.1:1/api/v1"),
            ],
            "works",
        ),
        // Not offline: the real API may be built.
        (&[token, (laracopilot::OFFLINE_ENV, "0")], "built"),
        (&[token, (laracopilot::OFFLINE_ENV, "")], "built"),
        (&[token], "built"),
        // A value that is neither: refused, naming the variable.
        (&[token, (laracopilot::OFFLINE_ENV, "maybe")], "invalid"),
    ];
    for (env, want) in cases {
        let (passed, output) = run_child(env, want);
        assert!(passed, "{env:?} should be {want}:\n{output}");
        assert!(
            output.contains(&format!("child case {want}: ok")),
            "{env:?}: the child did not run its case:\n{output}"
        );
    }
}

// ---- the concurrency cap ----

/// A server whose default streams take about `20 * pacing`.
fn paced(pacing: Duration) -> MockServer {
    MockServer::builder()
        .pacing(pacing)
        .events_per_generation(20)
        .start()
        .unwrap()
}

/// A call to `generate` that owns what it needs, to poll here and spawn later.
type Call<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_n_streams_run_at_once_over_clones_and_the_queued_ones_say_how_long_they_waited() {
    let pacing = Duration::from_millis(20);
    let server = Arc::new(paced(pacing));
    let client = server
        .client_builder()
        .max_concurrent_generations(2)
        .build()
        .unwrap();
    // Samples the streams the server has open (its projects still generating).
    let done = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (server, done, most) = (Arc::clone(&server), Arc::clone(&done), Arc::clone(&most));
        tokio::spawn(async move {
            for _ in 0..5_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let open = (1..=5)
                    .filter_map(|i| server.project(format!("p{i}")))
                    .filter(|p| p.status == ProjectStatus::Generating)
                    .count();
                most.fetch_max(open, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    // Each call is polled once before any is spawned: the first two take the slots
    // and send, the other three wait for a slot, all asked within `asking`. A
    // stream lasts at least 19 pacing delays after its POST (the server sleeps
    // before every event but the first), so the three waited at least that long
    // minus `asking`, and the first two at most `asking`, however slow the machine.
    let mut calls: Vec<Call<laracopilot::Result<laracopilot::Outcome>>> = (0..5)
        .map(|i| {
            let client = client.clone();
            Box::pin(async move { finish(&client, &prompt(i)).await }) as Call<_>
        })
        .collect();
    let before = Instant::now();
    for call in &mut calls {
        assert!(poll!(call.as_mut()).is_pending());
    }
    let asking = before.elapsed();
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut waits = Vec::new();
    for task in tasks {
        let outcome = task.await.unwrap().expect("every generation succeeds");
        waits.push(outcome.stats().slot_wait);
    }
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();
    assert_eq!(posts(&server), 5);
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "streams open at once at the server"
    );
    waits.sort();
    // Two went at once; three waited for a stream (about 400 ms) to end.
    let shortest_stream = pacing * 19;
    assert!(
        waits[..2].iter().all(|w| *w <= asking),
        "{waits:?} {asking:?}"
    );
    assert!(
        waits[2..].iter().all(|w| *w + asking >= shortest_stream),
        "{waits:?} {asking:?}"
    );
}

#[tokio::test]
async fn a_dropped_generation_frees_its_slot() {
    let server = paced(Duration::from_millis(1));
    let client = server
        .client_builder()
        .max_concurrent_generations(1)
        .build()
        .unwrap();
    let first = client.generate(prompt(1)).await.unwrap();
    // The slot is taken: the next call waits, having sent nothing.
    let mut waiting = Box::pin(async { client.generate(prompt(2)).await });
    assert!(
        poll!(waiting.as_mut()).is_pending(),
        "the second call did not wait"
    );
    assert_eq!(posts(&server), 1);
    drop(waiting);
    drop(first);
    let second = bounded(client.generate(prompt(3))).await.unwrap();
    assert!(second.stats().slot_wait < Duration::from_secs(1));
    second.finish().await.unwrap();
    assert_eq!(posts_with_prompt(&server, &prompt(2)), 0);
}

#[tokio::test]
async fn a_finished_generation_frees_its_slot_at_its_terminal_event() {
    let server = MockServer::start();
    let client = server
        .client_builder()
        .max_concurrent_generations(1)
        .build()
        .unwrap();
    for i in 0..3 {
        let outcome = finish_ok(&client, &prompt(i)).await;
        assert!(outcome.stats().slot_wait < Duration::from_secs(1));
    }
    // A stream that ends in an error frees it too.
    server.fault_next(laracopilot_mock::Fault::DropAfter(3));
    assert!(finish(&client, &prompt(3)).await.is_err());
    finish_ok(&client, &prompt(4)).await;
}

#[tokio::test]
async fn a_dropped_waiting_call_gives_up_its_place_and_sends_nothing() {
    let server = paced(Duration::from_millis(1));
    let client = server
        .client_builder()
        .max_concurrent_generations(1)
        .build()
        .unwrap();
    let first = client.generate(prompt(1)).await.unwrap();
    // Waits, then is dropped while waiting.
    let mut gave_up = Box::pin(async { client.generate(prompt(2)).await });
    assert!(poll!(gave_up.as_mut()).is_pending());
    drop(gave_up);
    // The next one in line is served as soon as the slot frees, not after a ghost.
    let mut third = Box::pin({
        let client = client.clone();
        async move { client.generate(prompt(3)).await.map(|g| g.stats()) }
    });
    assert!(
        poll!(third.as_mut()).is_pending(),
        "the third call must wait for the slot"
    );
    let parked = Instant::now();
    assert_eq!(posts(&server), 1, "only the first call was sent");
    let released = Instant::now();
    drop(first);
    let stats = bounded(third).await.unwrap();
    assert!(released.elapsed() < Duration::from_secs(10));
    // It asked before `parked` and got the slot after `released`.
    assert!(
        stats.slot_wait >= released.duration_since(parked),
        "{stats:?}"
    );
    assert_eq!(
        posts_with_prompt(&server, &prompt(2)),
        0,
        "the dropped call sent nothing"
    );
    assert_eq!(posts(&server), 2);
}

#[tokio::test]
async fn the_wait_for_a_slot_ends_at_the_stream_deadline_without_sending() {
    let server = paced(Duration::from_millis(1));
    // The first call must get its answer's head within it too: above the 0.2 s a
    // fresh connection and its answer took with both cores busy (load average 17).
    let deadline = Duration::from_secs(1);
    let client = server
        .client_builder()
        .max_concurrent_generations(1)
        .stream_deadline(Some(deadline))
        .build()
        .unwrap();
    let first = client.generate(prompt(1)).await.unwrap();
    let asked = Instant::now();
    let error = bounded(client.generate(prompt(2))).await.unwrap_err();
    let waited = asked.elapsed();
    assert!(
        matches!(
            error,
            Error::Timeout {
                kind: TimeoutKind::Deadline,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.may_have_started_work(), "nothing was sent");
    assert_eq!(error.attempts(), 0);
    assert!(waited >= deadline - Duration::from_millis(10), "{waited:?}");
    assert!(waited < deadline * 5, "{waited:?}");
    assert_eq!(posts_with_prompt(&server, &prompt(2)), 0);
    drop(first);
}

// ---- the credits breaker ----

/// A server with one credit: the first generation's second file ends it with
/// `credits_exhausted`.
fn one_credit() -> MockServer {
    MockServer::builder().credits(1).start().unwrap()
}

/// Runs a generation into `credits_exhausted` (from the server); its project id.
async fn exhaust(client: &Client) -> laracopilot::ProjectId {
    let error = finish(client, PROMPT).await.unwrap_err();
    assert!(
        matches!(error, Error::CreditsExhausted { locally: false, .. }),
        "{error:?}"
    );
    error.project_id().cloned().unwrap()
}

fn refused_locally(result: laracopilot::Result<laracopilot::Generation>) -> Error {
    match result {
        Err(error @ Error::CreditsExhausted { locally: true, .. }) => {
            assert!(!error.may_have_started_work());
            error
        }
        other => panic!("not refused locally: {other:?}"),
    }
}

#[tokio::test]
async fn after_credits_run_out_generate_and_follow_up_fail_at_once_without_a_request() {
    let server = one_credit();
    let client = server.client();
    let id = exhaust(&client).await;
    let sent = server.requests().len();
    // At once: each call is over at its first poll, having waited for nothing.
    let at_once = |call: Call<laracopilot::Result<laracopilot::Generation>>| {
        call.now_or_never()
            .expect("refused at once, without waiting")
    };
    let generate = |client: Client, p: String| Box::pin(async move { client.generate(p).await });
    refused_locally(at_once(generate(client.clone(), prompt(2))));
    let follow_up = {
        let (client, id) = (client.clone(), id.clone());
        Box::pin(async move { client.follow_up(&id, "Add a dark mode").await })
    };
    let error = refused_locally(at_once(follow_up));
    assert_eq!(error.project_id(), Some(&id));
    // Clones share the breaker.
    refused_locally(at_once(generate(client.clone(), prompt(3))));
    assert_eq!(server.requests().len(), sent, "nothing reached the server");
    // Status calls are not affected.
    let project = client.project(&id).await.unwrap();
    assert_eq!(project.project_status.as_deref(), Some("credits_exhausted"));
    assert_eq!(server.requests().len(), sent + 1);
}

#[tokio::test]
async fn resetting_the_breaker_lets_the_next_call_through() {
    let server = one_credit();
    let client = server.client();
    exhaust(&client).await;
    refused_locally(client.generate(prompt(2)).await);
    server.set_credits(1_000);
    client.reset_credits_breaker().await.unwrap();
    finish_ok(&client, &prompt(3)).await;
    assert_eq!(posts_with_prompt(&server, &prompt(3)), 1);
}

#[tokio::test]
async fn the_breaker_closes_by_itself_after_its_cooldown() {
    let server = one_credit();
    let cooldown = Duration::from_millis(300);
    let client = server
        .client_builder()
        .credits_cooldown(Some(cooldown))
        .build()
        .unwrap();
    // The breaker trips between these two instants.
    let exhausting = Instant::now();
    exhaust(&client).await;
    let tripped = Instant::now();
    refused_locally(client.generate(prompt(2)).await);
    server.set_credits(1_000);
    // Asked again and again: refused while the cool-down may still run, let through
    // once it certainly ran, whatever the machine's speed (bounded in count).
    let mut refusals = 0;
    let generation = loop {
        let asked = Instant::now();
        let result = client.generate(prompt(3)).await;
        let answered = Instant::now();
        match result {
            Ok(generation) => {
                assert!(
                    answered.duration_since(exhausting) >= cooldown,
                    "let through before the cool-down"
                );
                break generation;
            }
            Err(error) => {
                refused_locally(Err(error));
                assert!(
                    asked.duration_since(tripped) < cooldown,
                    "still refused after the cool-down"
                );
            }
        }
        refusals += 1;
        assert!(refusals < 1_000, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    bounded(generation.finish()).await.unwrap();
    assert_eq!(posts_with_prompt(&server, &prompt(3)), 1);
}

#[tokio::test]
async fn without_a_cooldown_there_is_no_breaker() {
    let server = one_credit();
    let client = server
        .client_builder()
        .credits_cooldown(None)
        .build()
        .unwrap();
    exhaust(&client).await;
    // Sent, and the server itself says so again.
    let error = finish(&client, &prompt(2)).await.unwrap_err();
    assert!(
        matches!(error, Error::CreditsExhausted { locally: false, .. }),
        "{error:?}"
    );
    assert_eq!(posts_with_prompt(&server, &prompt(2)), 1);
}

#[tokio::test]
async fn a_call_waiting_for_a_slot_is_refused_when_the_breaker_trips_meanwhile() {
    let server = MockServer::builder()
        .credits(1)
        .pacing(Duration::from_millis(10))
        .start()
        .unwrap();
    let client = server
        .client_builder()
        .max_concurrent_generations(1)
        .build()
        .unwrap();
    let first = client.generate(PROMPT).await.unwrap();
    // Past the breaker (still closed: the first stream is not read yet), waiting for
    // the slot.
    let mut waiting = Box::pin(async { client.generate(prompt(2)).await });
    assert!(
        poll!(waiting.as_mut()).is_pending(),
        "the second call waits for the slot"
    );
    assert_eq!(posts(&server), 1);
    let error = bounded(first.finish()).await.unwrap_err();
    assert!(matches!(error, Error::CreditsExhausted { .. }), "{error:?}");
    refused_locally(bounded(waiting).await);
    assert_eq!(posts_with_prompt(&server, &prompt(2)), 0);
}
