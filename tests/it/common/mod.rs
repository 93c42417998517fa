//! Helpers shared by the integration tests: a wiremock server per test, a client
//! pointed at it, fixtures read from files, bounded waits, a test run alone in a
//! child process ([`alone`]); the offline LaraCopilot's helpers in [`mock`], the
//! misbehaving servers in [`raw`], the cassette servers in [`cassette`], the
//! journal's in [`journal`], the event-stream generators and checkers in [`sse`].
#![allow(dead_code, reason = "each test file uses a different subset")]

pub mod cassette;
pub mod journal;
pub mod mock;
pub mod raw;
#[cfg(feature = "__internal")]
pub mod sse;

use std::future::IntoFuture;
use std::time::Duration;

use laracopilot::tokens::StaticToken;
use laracopilot::{Client, Event, Outcome, Result, Token};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A distinctive token: tests assert that it never shows up in any output.
pub const TOKEN: &str = "lcp_live_S3CR3T-t0k3n-never-print-9f8e";

pub fn token() -> Token {
    Token::new(TOKEN).expect("valid test token")
}

/// A wiremock server whose unmatched requests answer 418 with a body naming the
/// request, so a test that sends something unexpected says what it sent.
pub async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(|req: &wiremock::Request| {
            ResponseTemplate::new(418).set_body_string(format!(
                "unexpected request: {} {}",
                req.method,
                req.url.path()
            ))
        })
        .with_priority(u8::MAX)
        .mount(&server)
        .await;
    server
}

/// A client for `server`, with the API's `/api/v1` prefix. It does not retry, so
/// each test sees exactly the requests it provokes (tests of retries set a policy).
pub fn client(server: &MockServer) -> Client {
    builder(server).build().expect("client builds")
}

pub fn builder(server: &MockServer) -> laracopilot::ClientBuilder {
    builder_with(server, StaticToken::new(token()))
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// An SSE answer with `body`.
pub fn sse(body: impl Into<Vec<u8>>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.into(), "text/event-stream")
}

/// Mounts `response` for `METHOD /api/v1{route}`.
pub async fn mount(server: &MockServer, verb: &str, route: &str, response: ResponseTemplate) {
    Mock::given(method(verb))
        .and(path(format!("/api/v1{route}")))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Mounts `first` for the first `times` requests to `METHOD /api/v1{route}`, then
/// `then` for the rest.
pub async fn mount_then(
    server: &MockServer,
    verb: &str,
    route: &str,
    first: ResponseTemplate,
    times: u64,
    then: ResponseTemplate,
) {
    Mock::given(method(verb))
        .and(path(format!("/api/v1{route}")))
        .respond_with(first)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
    mount(server, verb, route, then).await;
}

/// How many requests `server` received that `matches` accepts.
pub async fn count_requests(
    server: &MockServer,
    matches: impl Fn(&wiremock::Request) -> bool,
) -> usize {
    let received = server.received_requests().await.unwrap_or_default();
    received.iter().filter(|r| matches(r)).count()
}

/// The API documentation's example stream, as an SSE answer.
pub fn documented_stream() -> ResponseTemplate {
    sse(fixture("documented_stream.txt"))
}

/// Mounts the documentation's example stream for `POST /api/v1/agent/generate`.
pub async fn mount_documented_generate(server: &MockServer) {
    mount(server, "POST", "/agent/generate", documented_stream()).await;
}

/// SSE body from JSON event objects, framed with blank lines.
pub fn sse_body(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
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

// ---- token lifecycle helpers (tests/tokens.rs, tests/leak.rs) ----

/// A builder for `server` with `provider` instead of the fixed test token.
pub fn builder_with(
    server: &MockServer,
    provider: impl laracopilot::tokens::TokenProvider,
) -> laracopilot::ClientBuilder {
    Client::builder()
        .token_provider(provider)
        .base_url(format!("{}/api/v1", server.uri()))
        .idle_timeout(Some(Duration::from_secs(5)))
        .retry_policy(laracopilot::RetryPolicy::none())
}

/// The documented 401 for an invalid or revoked token.
pub fn unauthorized() -> ResponseTemplate {
    ResponseTemplate::new(401)
        .set_body_json(serde_json::json!({"status": false, "message": "Unauthorized."}))
}

/// The documented 401 for an expired token.
pub fn expired() -> ResponseTemplate {
    ResponseTemplate::new(401)
        .set_body_json(serde_json::json!({"status": false, "message": "API token has expired."}))
}

/// A status answer for project `id`.
pub fn project_json(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "status": true, "project_id": id, "app_url": format!("https://{id}.laracopilot.com"),
        "project_status": "ready", "name": "Tasks"
    }))
}

/// Mounts `response` for `METHOD /api/v1{route}` sent with `Authorization: Bearer {token}`.
pub async fn mount_for_token(
    server: &MockServer,
    verb: &str,
    route: &str,
    token: &str,
    response: ResponseTemplate,
) {
    Mock::given(method(verb))
        .and(path(format!("/api/v1{route}")))
        .and(wiremock::matchers::header(
            "authorization",
            format!("Bearer {token}").as_str(),
        ))
        .respond_with(response)
        .mount(server)
        .await;
}

/// The bearer token of every request the server received, in order.
pub async fn bearers(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_start_matches("Bearer ").to_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// The lines of an example's `--json` stdout, each parsed (a line that is not JSON
/// fails the test, naming it).
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// Runs `program` with `args` and `env`, bounded to `limit`; returns its exit status,
/// stdout and stderr. Output goes through files, so a chatty child never blocks.
pub fn run_bounded(
    program: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (std::process::ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut command = std::process::Command::new(program);
    command
        .args(args)
        .env_remove("LARACOPILOT_API_TOKEN")
        .env_remove("LARACOPILOT_BASE_URL")
        .env_remove("LARACOPILOT_TOKEN_FILE")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("the example starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within {limit:?}", program.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    };
    (status, read(&out_path), read(&err_path))
}

/// Set in a child process started by [`alone`]: the name of the one test it runs.
pub const ALONE: &str = "LARACOPILOT_IT_ALONE";

/// Whether this process is the child that [`alone`] started to run test `name`.
pub fn is_alone(name: &str) -> bool {
    std::env::var(ALONE).is_ok_and(|value| value == name)
}

/// Starts test `name` (its path in this binary, `module::test`) again in a child
/// process of its own, with [`ALONE`] set to `name` and `env` set, its output
/// discarded: for a test that kills it. The caller reaps it.
pub fn spawn_alone(name: &str, env: &[(&str, &str)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("the test binary");
    let mut command = std::process::Command::new(exe);
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("the test binary starts")
}

/// Runs test `name` (its path in this binary, `module::test`) again in a child
/// process of its own, with [`ALONE`] set to `name` so that the test knows it may
/// change what the whole process shares (the environment, say); bounded to 60
/// seconds. Fails with the child's output unless that one test ran and passed.
pub fn alone(name: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let (status, stdout, stderr) = run_bounded(
        &exe,
        &["--exact", name, "--nocapture", "--test-threads=1"],
        &[(ALONE, name)],
        Duration::from_secs(60),
    );
    assert!(
        status.success() && stdout.contains(&format!("test {name} ... ok")),
        "{name} alone in a child process: {status}\n{stdout}\n{stderr}"
    );
}
