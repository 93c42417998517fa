//! Helpers shared by the tests: running the `laracopilot` binary bounded in time, a
//! wiremock server per test that answers like the API, and readers of the output.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A distinctive token: tests assert that it never shows up in any output.
pub const TOKEN: &str = "lcp_live_S3CR3T-t0k3n-never-print-9f8e";

/// The binary under test; cargo builds it for the tests, so a test can never pass
/// without it.
pub const BIN: &str = env!("CARGO_BIN_EXE_laracopilot");

/// Every run is bounded to this.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A subcommand of the binary (what an example was before).
#[derive(Debug, Clone, Copy)]
pub struct Sub(pub &'static str);

/// The subcommand `name`.
pub fn cli(name: &'static str) -> Sub {
    Sub(name)
}

/// The variables a run never inherits from the test's environment.
const CLEARED: [&str; 6] = [
    "LARACOPILOT_API_TOKEN",
    "LARACOPILOT_BASE_URL",
    "LARACOPILOT_TOKEN_FILE",
    "LARACOPILOT_TOKEN_EXPIRES",
    "LARACOPILOT_OFFLINE_STORE",
    "NO_COLOR",
];

/// The command `laracopilot SUB ARGS...` with `env`, and a fresh store of offline
/// projects (in `dir`) unless `env` names one.
pub fn command(sub: Sub, args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command.arg(sub.0).args(args).stdin(Stdio::null());
    for name in CLEARED {
        command.env_remove(name);
    }
    command.env(
        "LARACOPILOT_OFFLINE_STORE",
        dir.join("offline-projects.json"),
    );
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Runs `laracopilot SUB` with `args` and `env`, bounded to `limit`; returns its exit
/// status, stdout and stderr. Output goes through files, so a chatty child never
/// blocks.
pub fn run_bounded(
    sub: &Sub,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut command = command(*sub, args, env, dir.path());
    command
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let mut child = command.spawn().expect("the binary starts");
    let status = wait_bounded(&mut child, limit, sub);
    let read = |p: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
    };
    (status, read(&out_path), read(&err_path))
}

/// Waits for `child`, killing it (and failing the test) after `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &impl std::fmt::Debug) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for the binary") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("laracopilot {what:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// [`run_bounded`] off the async runtime (which keeps serving the wiremock server).
pub async fn run_async(
    sub: Sub,
    args: &[&str],
    env: &[(&str, &str)],
) -> (ExitStatus, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_bounded(&sub, &args, &env, LIMIT)
    })
    .await
    .expect("the runner does not panic")
}

/// Runs `sub` with a token and the base URL of `server`.
pub async fn against(server: &MockServer, sub: Sub, args: &[&str]) -> (ExitStatus, String, String) {
    let base = format!("{}/api/v1", server.uri());
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", base.as_str()),
    ];
    run_async(sub, args, &env).await
}

/// The lines of a `--json` stdout, each parsed (a line that is not JSON fails the
/// test, naming it).
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// A fresh path in `dir`, as a string argument.
pub fn arg_path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path()
        .join(name)
        .to_str()
        .expect("a UTF-8 path")
        .to_owned()
}

/// Reads what a child wrote to its piped stdout until `needle` shows up (or the
/// limit passes); what was read.
pub fn read_until(child: &mut Child, needle: &str, limit: Duration) -> String {
    let mut stdout = child.stdout.take().expect("a piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    let wanted = needle.to_owned();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..n]);
            if String::from_utf8_lossy(&seen).contains(&wanted) {
                break;
            }
        }
        let _ = sender.send((String::from_utf8_lossy(&seen).into_owned(), stdout));
    });
    match receiver.recv_timeout(limit) {
        Ok((seen, stdout)) => {
            child.stdout = Some(stdout);
            seen
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {needle:?} on stdout within {limit:?}");
        }
    }
}

// ---- a wiremock server that answers like the API ----

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

/// SSE body from JSON event objects, framed with blank lines.
pub fn sse_body(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// The API documentation's example stream, as an SSE answer.
pub fn documented_stream() -> ResponseTemplate {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "documented_stream.txt",
    ]
    .iter()
    .collect();
    sse(std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display())))
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

/// The API's 404 for the token check's probe: the token was looked at.
pub async fn mount_probe_not_found(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/v1/agent/project/laracopilot-sdk-token-probe"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
        )
        .with_priority(1)
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
