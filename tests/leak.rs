//! Proof that the API token never leaks: every public path is driven with a
//! distinctive token, and everything it prints (`Debug`, `Display`, error chains,
//! `tracing` output, the examples' stdout and stderr) is searched for it.
//!
//! The search looks for the whole token and for any piece of it of
//! [`PIECE`] characters, so a truncated or sliced leak is caught too; the dashboard's
//! mask (`****` and the last four characters) is allowed. The search itself is tested
//! on inputs that do leak.

mod common;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use laracopilot::tokens::{
    EnvToken, Expiration, FileToken, FnToken, StaticToken, TokenCheck, TokenInfo, TokenProvider,
    TokenStatus,
};
use laracopilot::{Client, Error, RetryPolicy, Token};
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, ResponseTemplate};

/// A second distinctive token, for rotations.
const SECOND: &str = "lcp_live_R0TAT3D-s3cond-never-print-7a6b";
/// The shortest piece of a secret that counts as a leak (the mask shows four).
const PIECE: usize = 10;

// ---- the search ----

/// Where a secret, or a piece of one, shows up in `text`: the byte offset and the
/// length of the piece, never the text itself.
fn find_leak(text: &str) -> Option<(usize, usize)> {
    for secret in [TOKEN, SECOND] {
        for start in 0..=secret.len() - PIECE {
            if let Some(at) = text.find(&secret[start..start + PIECE]) {
                return Some((at, PIECE));
            }
        }
    }
    None
}

/// Everything a scenario printed, with a label saying where it came from.
#[derive(Default)]
struct Printed {
    texts: Vec<(String, String)>,
}

impl Printed {
    fn text(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.texts.push((label.into(), text.into()));
    }

    /// `{:?}` and `{:#?}`.
    fn debug(&mut self, label: &str, value: &impl Debug) {
        self.text(format!("{label} (Debug)"), format!("{value:?}"));
        self.text(format!("{label} (pretty Debug)"), format!("{value:#?}"));
    }

    /// `Display`, `Debug`, and the whole `source()` chain of an error.
    fn error(&mut self, label: &str, error: &(dyn std::error::Error + 'static)) {
        self.text(format!("{label} (Display)"), error.to_string());
        self.text(format!("{label} (Debug)"), format!("{error:?} {error:#?}"));
        let mut source = error.source();
        let mut depth = 1;
        while let Some(cause) = source {
            self.text(
                format!("{label} (source {depth})"),
                format!("{cause} {cause:?}"),
            );
            source = cause.source();
            depth += 1;
        }
    }

    /// A result: the value's `Debug`, or the error.
    fn result<T: Debug>(&mut self, label: &str, result: &laracopilot::Result<T>) {
        match result {
            Ok(value) => self.debug(label, value),
            Err(error) => self.error(label, error),
        }
    }

    /// A token provider's answer: the token, or its boxed error.
    fn provided(&mut self, label: &str, result: &Result<Token, laracopilot::BoxError>) {
        match result {
            Ok(token) => self.debug(label, token),
            Err(error) => self.error(label, &**error),
        }
    }

    /// The labels of the texts that leak; empty when none does.
    fn leaks(&self) -> Vec<String> {
        self.texts
            .iter()
            .filter_map(|(label, text)| {
                find_leak(text)
                    .map(|(at, len)| format!("{label}: {len} secret characters at byte {at}"))
            })
            .collect()
    }

    /// Fails naming every leaking output (without printing the secret).
    fn assert_clean(&self) {
        assert!(!self.texts.is_empty(), "nothing was checked");
        let leaks = self.leaks();
        assert!(
            leaks.is_empty(),
            "the token leaked in:\n{}",
            leaks.join("\n")
        );
    }
}

/// A type that leaks on purpose: the search must catch it.
struct LeakyDebug(&'static str);

impl Debug for LeakyDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeakyDebug {{ token: {} }}", self.0)
    }
}

#[test]
fn the_leak_check_catches_a_leaking_debug_and_partial_leaks_but_allows_the_mask() {
    let mut leaky = Printed::default();
    leaky.debug("LeakyDebug", &LeakyDebug(TOKEN));
    assert_eq!(leaky.leaks().len(), 2, "both Debug forms leak");
    let caught = std::panic::catch_unwind(|| leaky.assert_clean()).unwrap_err();
    let message = caught.downcast_ref::<String>().unwrap();
    assert!(message.contains("LeakyDebug (Debug)"), "{message}");
    assert!(
        find_leak(message).is_none(),
        "the failure itself must not leak"
    );

    // A slice from the middle, the second secret, and a secret cut in two.
    assert!(find_leak(&format!("x{}y", &TOKEN[7..7 + PIECE])).is_some());
    assert!(find_leak(&format!("Bearer {SECOND}")).is_some());
    assert!(find_leak(&format!("Config {{ message: {:?} }}", &TOKEN[..20])).is_some());

    // What may be shown: the mask, and unrelated text.
    let mut clean = Printed::default();
    clean.debug("token", &token());
    clean.text("mask", format!("{} {}", token().masked(), "lcp_live_"));
    clean.assert_clean();
}

// ---- tracing output captured into a buffer ----

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures every `tracing` event of this thread, at every level, until the guard
/// drops. The tests run on a `current_thread` runtime, so the client's tasks log on
/// this thread too.
fn capture_logs() -> (LogBuffer, impl Drop) {
    use tracing_subscriber::util::SubscriberInitExt;
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let guard = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();
    (buffer, guard)
}

// ---- tokens, providers, builders ----

#[tokio::test]
async fn tokens_providers_and_builders_never_print_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();

    // Bad values that contain the secret: the errors must not repeat it.
    for (label, bad) in [
        ("newline", format!("{TOKEN}\n")),
        ("space", format!("{TOKEN} {TOKEN}")),
        ("tab", format!("\t{TOKEN}")),
        ("control", format!("{TOKEN}\u{7}")),
        ("zero-width", format!("{TOKEN}\u{200B}")),
    ] {
        printed.result(&format!("Token::new({label})"), &Token::new(bad));
    }
    let now = SystemTime::now();
    let info = TokenInfo::new("Production", now, Expiration::Days30);
    let with_info = token().with_info(info.clone());
    printed.debug("Token", &token());
    printed.debug("Token with info", &with_info);
    printed.text("Token::masked", token().masked());
    printed.debug("TokenInfo", &info);
    printed.debug("Expiration", &Expiration::Days90);
    printed.text("Expiration", Expiration::Days90.to_string());
    printed.debug("TokenStatus", &TokenStatus::Expired);
    printed.text("TokenStatus", info.status_at(now).to_string());
    for check in [
        TokenCheck::Accepted,
        TokenCheck::Expired { locally: true },
        TokenCheck::Unauthorized { message: None },
    ] {
        printed.debug("TokenCheck", &check);
        printed.text("TokenCheck", check.to_string());
    }

    // Providers, before and after use.
    let stat = StaticToken::new(with_info.clone());
    printed.debug("StaticToken", &stat);
    let var = "LARACOPILOT_LEAK_TEST_TOKEN";
    std::env::set_var(var, TOKEN);
    let env = EnvToken::new(var).unwrap();
    printed.debug("EnvToken", &env);
    std::env::set_var(var, format!("{SECOND} {TOKEN}"));
    printed.provided("EnvToken::refresh (invalid)", &env.refresh(&token()).await);
    printed.result("EnvToken::new (invalid)", &EnvToken::new(var));
    std::env::remove_var(var);
    printed.result("EnvToken::new (missing)", &EnvToken::new(var));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let from_file = FileToken::new(&file).unwrap();
    printed.debug("FileToken", &from_file);
    std::fs::write(&file, format!("{SECOND} {TOKEN}\n")).unwrap();
    printed.provided("FileToken::token (invalid file)", &from_file.token().await);
    printed.provided(
        "FileToken::refresh (invalid file)",
        &from_file.refresh(&token()).await,
    );
    printed.result("FileToken::new (invalid)", &FileToken::new(&file));
    std::fs::write(&file, [0xff, 0xfe, b'a']).unwrap();
    printed.result("FileToken::new (not UTF-8)", &FileToken::new(&file));
    let closure = FnToken::new(|| std::future::ready(Token::new(SECOND).map_err(Into::into)));
    printed.debug("FnToken (before)", &closure);
    printed.provided("FnToken::token", &closure.token().await);
    printed.debug("FnToken (after)", &closure);

    // Builders and their errors.
    let builder = Client::builder().token(token());
    printed.debug("ClientBuilder", &builder);
    let client = builder.build().unwrap();
    printed.debug("Client", &client);
    for (label, url) in [
        (
            "credentials",
            format!("https://user:{TOKEN}@example.com/api/v1"),
        ),
        ("not a url", TOKEN.to_owned()),
        ("scheme", format!("ftp://example.com/{TOKEN}")),
        ("plain http", "http://example.com/api/v1".to_owned()),
        ("query", format!("https://example.com/api/v1?{TOKEN}")),
    ] {
        let built = Client::builder().token(token()).base_url(url).build();
        printed.result(&format!("build ({label})"), &built);
    }
    let user_agent = Client::builder()
        .token(token())
        .user_agent(format!("agent\n{TOKEN}"))
        .build();
    printed.result("build (user agent)", &user_agent);
    let no_token = Client::builder().build();
    printed.result("build (no token)", &no_token);
    #[cfg(feature = "blocking")]
    {
        let blocking = tokio::task::spawn_blocking(|| {
            let client = Client::builder().token(token()).build_blocking();
            format!("{client:?} {client:#?}")
        })
        .await
        .unwrap();
        printed.text("blocking::Client", blocking);
    }

    printed.text("tracing output", logs.text());
    printed.assert_clean();
}

// ---- every error status ----

/// A client for `server` that makes one attempt per call, so every status is seen
/// as it came.
fn one_attempt(server: &wiremock::MockServer) -> Client {
    builder(server)
        .retry_policy(RetryPolicy::none())
        .idle_timeout(Some(Duration::from_millis(500)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_error_status_never_prints_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();
    let html = "<html><body><h1>500 Internal Server Error</h1></body></html>";
    let answers = [
        ("401 unauthorized", unauthorized()),
        ("401 expired", expired()),
        (
            "404",
            ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
        ),
        (
            "422",
            ResponseTemplate::new(422).set_body_json(serde_json::json!({
                "message": "The prompt field is required.",
                "errors": {"prompt": ["The prompt field is required."]}
            })),
        ),
        (
            "429",
            ResponseTemplate::new(429).insert_header("retry-after", "7"),
        ),
        (
            "500 html",
            ResponseTemplate::new(500).set_body_raw(html, "text/html"),
        ),
        ("503", ResponseTemplate::new(503)),
        (
            "302",
            ResponseTemplate::new(302).insert_header("location", "https://example.com/login"),
        ),
        (
            "200 not json",
            ResponseTemplate::new(200).set_body_raw("<html>ok</html>", "text/html"),
        ),
        (
            "200 status false",
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"status": false, "message": "nope"})),
        ),
    ];
    let mut answered = 0;
    for (label, answer) in answers {
        let server = server().await;
        Mock::given(any()).respond_with(answer).mount(&server).await;
        let client = one_attempt(&server);
        printed.result(
            &format!("{label}: project"),
            &client.project("abc123").await,
        );
        printed.result(
            &format!("{label}: generate"),
            &client.generate("Build a task app").await,
        );
        printed.result(
            &format!("{label}: follow_up"),
            &client.follow_up("abc123", "Add a dark mode").await,
        );
        printed.result(
            &format!("{label}: verify_token"),
            &client.verify_token().await,
        );
        answered += server.received_requests().await.unwrap().len();
    }
    assert!(answered >= 40, "every call reached a server ({answered})");

    // Nothing listening: a transport error, whose chain comes from the HTTP stack.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let client = Client::builder()
        .token(token())
        .base_url(format!("http://{address}/api/v1"))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    printed.result("connection refused", &client.project("abc123").await);

    // Known locally to be expired: refused before sending.
    let old = token().with_info(TokenInfo::new(
        "old",
        SystemTime::now() - Duration::from_secs(31 * 86_400),
        Expiration::Days30,
    ));
    let server = server().await;
    let client = Client::builder()
        .token(old)
        .base_url(format!("{}/api/v1", server.uri()))
        .build()
        .unwrap();
    printed.result("locally expired", &client.project("abc123").await);
    printed.result(
        "locally expired: verify_token",
        &client.verify_token().await,
    );

    printed.text("tracing output", logs.text());
    printed.assert_clean();
}

// ---- stream errors ----

/// A server that sends the headers of an event stream and one event, then stays
/// silent: the idle timeout fires in the middle of the stream.
async fn stalling_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 4096];
        let _ = socket.read(&mut request).await;
        let event = "data: {\"type\":\"project_created\",\"project_id\":\"p1\"}\n\n";
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
            event.len()
        );
        let _ = socket.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    (format!("http://{address}/api/v1"), task)
}

#[tokio::test]
async fn stream_errors_never_print_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();
    let created =
        r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#;
    let bodies = [
        ("incomplete", sse_body(&[created])),
        (
            "decode",
            format!(
                "{}data: {{\"type\":\"file_created\",\"path\":\n\n",
                sse_body(&[created])
            ),
        ),
        (
            "too large",
            sse_body(&[
                created,
                &format!(
                    r#"{{"type":"tool_progress","message":"{}"}}"#,
                    "x".repeat(4096)
                ),
            ]),
        ),
        (
            "credits",
            sse_body(&[created, r#"{"type":"credits_exhausted"}"#]),
        ),
        (
            "success",
            sse_body(&[
                created,
                r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
                r#"{"type":"stream_end","project_id":"p1"}"#,
            ]),
        ),
    ];
    for (label, body) in bodies {
        let server = server().await;
        mount(&server, "POST", "/agent/generate", sse(body)).await;
        let client = builder(&server)
            .max_event_size(1024)
            .retry_policy(RetryPolicy::none())
            // Each body is streamed twice, "credits" included.
            .credits_cooldown(None)
            .build()
            .unwrap();
        let mut generation = client.generate("Build a task app").await.unwrap();
        printed.debug(&format!("{label}: Generation (start)"), &generation);
        let mut items = 0;
        while let Some(item) = tokio::time::timeout(Duration::from_secs(10), generation.next())
            .await
            .expect("the stream makes progress")
        {
            printed.result(&format!("{label}: item {items}"), &item);
            items += 1;
            assert!(items < 100, "runaway stream");
        }
        printed.debug(&format!("{label}: Generation (end)"), &generation);
        let outcome = client
            .generate("Build a task app")
            .await
            .unwrap()
            .finish()
            .await;
        printed.result(&format!("{label}: finish"), &outcome);
    }

    // No answer at all within the idle timeout.
    let server = server().await;
    mount(
        &server,
        "POST",
        "/agent/generate",
        sse(sse_body(&[created])).set_delay(Duration::from_secs(3)),
    )
    .await;
    let client = builder(&server)
        .idle_timeout(Some(Duration::from_millis(200)))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    printed.result(
        "idle before headers",
        &client.generate("Build a task app").await,
    );

    // Silence in the middle of the stream.
    let (base, stalled) = stalling_server().await;
    let client = Client::builder()
        .token(token())
        .base_url(base)
        .idle_timeout(Some(Duration::from_millis(300)))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let generation = client.generate("Build a task app").await.unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(10), generation.finish())
        .await
        .expect("the idle timeout fires");
    assert!(
        matches!(finished, Err(Error::Timeout { .. })),
        "{finished:?}"
    );
    printed.result("idle mid-stream", &finished);
    stalled.abort();

    printed.text("tracing output", logs.text());
    printed.assert_clean();
}

// ---- the token lifecycle, with its logs ----

#[tokio::test]
async fn rotation_refresh_and_expiry_warnings_never_print_the_token() {
    let (logs, _guard) = capture_logs();
    let mut printed = Printed::default();
    let server = server().await;
    mount_for_token(
        &server,
        "GET",
        "/agent/project/abc123",
        TOKEN,
        unauthorized(),
    )
    .await;
    mount_for_token(
        &server,
        "GET",
        "/agent/project/abc123",
        SECOND,
        project_json("abc123"),
    )
    .await;

    // Rotation through a closure, with both tokens expiring soon.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let soon = |value: &str, name: &str| {
        let created = SystemTime::now() - Duration::from_secs(29 * 86_400);
        Token::new(value)
            .unwrap()
            .with_info(TokenInfo::new(name, created, Expiration::Days30))
    };
    let provider = FnToken::new(move || {
        let value = if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            TOKEN
        } else {
            SECOND
        };
        std::future::ready(Ok(soon(value, "Production")))
    });
    let hooked = Arc::new(Mutex::new(Vec::new()));
    let hook_out = Arc::clone(&hooked);
    let client = builder_with(&server, provider)
        .on_token_expiring(Duration::from_secs(7 * 86_400), move |info| {
            hook_out.lock().unwrap().push(format!("{info:?}"));
        })
        .build()
        .unwrap();
    printed.result("rotated call", &client.project("abc123").await);
    printed.result("verify after rotation", &client.verify_token().await);
    printed.text("hook", hooked.lock().unwrap().join("\n"));
    assert_eq!(
        hooked.lock().unwrap().len(),
        2,
        "the hook fired for each token"
    );

    // A refresh that finds nothing new, and one that fails.
    let same = builder_with(&server, StaticToken::new(token()))
        .build()
        .unwrap();
    printed.result("no newer token", &same.project("abc123").await);
    let failing = builder_with(
        &server,
        FnToken::new(|| std::future::ready(Err("the vault is sealed".into()))),
    )
    .build()
    .unwrap();
    printed.result("provider error", &failing.project("abc123").await);

    // A mounted secret caught halfway through a rewrite.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{SECOND}\n")).unwrap();
    let from_file = builder_with(&server, FileToken::new(&file).unwrap())
        .build()
        .unwrap();
    printed.result("file token", &from_file.project("abc123").await);
    std::fs::write(&file, format!("{TOKEN} {SECOND}")).unwrap();
    printed.result(
        "file token (invalid file)",
        &from_file.project("abc123").await,
    );

    let log = logs.text();
    #[cfg(feature = "tracing")]
    {
        // The capture works, and shows tokens only by their masks.
        assert!(log.contains("expires soon"), "{log}");
        assert!(
            log.contains("****9f8e") && log.contains("****7a6b"),
            "{log}"
        );
        assert!(log.contains("refreshed the API token"), "{log}");
    }
    printed.text("tracing output", log);
    printed.assert_clean();
}

// ---- the examples ----

/// Runs a built example off the async threads, bounded in time.
async fn run_example(
    program: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String, String) {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_bounded(&program, &args, &env, Duration::from_secs(60))
    })
    .await
    .expect("the example runner does not panic")
}

/// Answers for the examples: every call rejected, or every call successful.
async fn answer_examples(server: &wiremock::MockServer, success: bool) {
    server.reset().await;
    if !success {
        Mock::given(any())
            .respond_with(unauthorized())
            .mount(server)
            .await;
        return;
    }
    // The token check's probe gets the API's documented 404; a project gets its status.
    Mock::given(method("GET"))
        .and(path("/api/v1/agent/project/laracopilot-sdk-token-probe"))
        .respond_with(
            wiremock::ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
        )
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .respond_with(project_json("abc123"))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/agent/generate"))
        .respond_with(documented_stream())
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse(sse_body(&[
            r#"{"type":"file_created","path":"resources/css/app.css"}"#,
            r#"{"type":"stream_end","project_id":"abc123"}"#,
        ])))
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_never_print_the_token() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.display().to_string();
    let cache = dir.path().join("cache.json");
    let cache_arg = cache.display().to_string();
    let base = format!("{}/api/v1", server.uri());
    let bad_token = format!("{TOKEN} {SECOND}");
    let prompt = "Build a task management app";
    let runs: [(&str, &[&str]); 8] = [
        ("project_status", &["abc123"]),
        ("project_status", &["--json", "abc123"]),
        ("generate", &[prompt]),
        ("generate", &["--json", prompt]),
        ("follow_up", &["abc123", "Add a dark mode"]),
        ("follow_up", &["--json", "abc123", "Add a dark mode"]),
        ("build_script", &["--cache", &cache_arg, "--fresh", prompt]),
        ("token_rotation", &["2", "10"]),
    ];
    let built: Vec<_> = runs
        .iter()
        .filter_map(|(name, args)| example(name).map(|program| (*name, program, *args)))
        .collect();
    if built.is_empty() {
        eprintln!("no example was built: nothing to check");
        return;
    }
    let with_token = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", &base),
    ];
    let with_bad_token = [
        ("LARACOPILOT_API_TOKEN", &bad_token[..]),
        ("LARACOPILOT_BASE_URL", &base),
    ];
    let with_token_file = [
        ("LARACOPILOT_TOKEN_FILE", &token_file[..]),
        ("LARACOPILOT_BASE_URL", &base),
    ];

    let mut printed = Printed::default();
    for success in [false, true] {
        answer_examples(&server, success).await;
        for (name, program, args) in &built {
            let mut scenarios = vec![
                ("token", &with_token[..]),
                ("invalid token", &with_bad_token[..]),
            ];
            if *name == "token_rotation" {
                scenarios.push(("token file", &with_token_file[..]));
            }
            for (scenario, env) in scenarios {
                let (status, stdout, stderr) = run_example(program, args, env).await;
                let label = format!("{name} {args:?} [{scenario}, success: {success}]");
                if scenario == "invalid token" {
                    assert!(!status.success(), "{label} accepted an invalid token");
                } else if *name == "token_rotation" {
                    assert_eq!(status.success(), success, "{label}: {stdout} {stderr}");
                }
                printed.text(format!("{label} stdout"), stdout);
                printed.text(format!("{label} stderr"), stderr);
            }
        }
        let sent = bearers(&server).await;
        assert!(
            sent.iter().any(|b| b == TOKEN),
            "the examples sent the token"
        );
        assert!(
            sent.iter().all(|b| b == TOKEN),
            "only the test token was sent"
        );
    }
    if let Ok(written) = std::fs::read_to_string(&cache) {
        printed.text("build_script cache file", written);
    }
    printed.assert_clean();
}

// ---- where the token may travel ----

#[test]
fn plain_http_to_a_remote_host_is_refused_without_the_opt_in() {
    let build = |url: &str, allow: bool| {
        Client::builder()
            .token(token())
            .base_url(url)
            .allow_http(allow)
            .build()
    };
    for url in [
        "http://builder.laracopilot.com/api/v1",
        "http://10.0.0.7/api/v1",
        "http://[2001:db8::1]/",
    ] {
        let err = build(url, false).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains("https"), "{err}");
        assert!(build(url, true).is_ok(), "{url} with allow_http");
    }
    for url in [
        "http://127.0.0.1:8080/api/v1",
        "http://localhost:8080/",
        "http://[::1]:8080/",
    ] {
        assert!(build(url, false).is_ok(), "{url} is loopback");
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_an_error_and_the_token_never_travels_there() {
    let elsewhere = wiremock::MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("should never be reached"))
        .mount(&elsewhere)
        .await;
    let origin = server().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/api/v1/agent/project/abc123", elsewhere.uri()).as_str(),
        ))
        .mount(&origin)
        .await;
    let client = one_attempt(&origin);
    let project = client.project("abc123").await.unwrap_err();
    assert!(
        matches!(project, Error::Api { status: 302, .. }),
        "{project:?}"
    );
    let generate = client.generate("Build a task app").await.unwrap_err();
    assert!(
        matches!(generate, Error::Api { status: 302, .. }),
        "{generate:?}"
    );
    let verify = client.verify_token().await.unwrap_err();
    assert_eq!(verify.status(), Some(302));
    assert_eq!(origin.received_requests().await.unwrap().len(), 3);
    let reached = elsewhere.received_requests().await.unwrap();
    assert!(
        reached
            .iter()
            .all(|r| r.headers.get("authorization").is_none()),
        "the Authorization header travelled to another origin"
    );
    assert!(reached.is_empty(), "redirects are not followed");
}
