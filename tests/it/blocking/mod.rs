//! The blocking facade: iteration, outcome, status, errors, its own builder
//! (`blocking::Client::builder()`), a panic inside a call resumed on the caller,
//! and safety from plain threads and from inside tokio runtimes; on every kind of
//! runtime, without a deadlock (`runtime`).

use crate::common;

mod runtime;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use laracopilot::{blocking, Error, Event, ProjectId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::ResponseTemplate;

/// The longest any test waits for anything.
const PATIENCE: Duration = Duration::from_secs(20);

/// A wiremock server and the runtime it was set up on, kept alive together.
struct Server {
    server: wiremock::MockServer,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("test runtime");
        let server = runtime.block_on(server());
        Server { server, runtime }
    }

    fn mount(&self, verb: &str, route: &str, response: ResponseTemplate) -> &Self {
        self.runtime
            .block_on(mount(&self.server, verb, route, response));
        self
    }

    fn client(&self) -> blocking::Client {
        builder(&self.server)
            .request_timeout(Duration::from_secs(5))
            .build_blocking()
            .expect("blocking client builds")
    }
}

/// Runs `f` on a new plain thread and waits for its result, bounded in time.
fn on_plain_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    let thread = std::thread::spawn(move || sender.send(f()));
    match receiver.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the plain thread did not finish"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(_) => unreachable!("the thread sends before it ends"),
        },
    }
}

fn stream_with_files() -> ResponseTemplate {
    sse(sse_body(&[
        r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.example"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
        r#"{"type":"file_created","path":"routes/web.php"}"#,
        r#"{"type":"file_created","path":"app/Models/Task.php"}"#,
        r#"{"type":"stream_end","project_id":"p1","app_url":"https://p1.example/app"}"#,
    ]))
}

/// Every item of `generation`, bounded in count.
fn collect(generation: &mut blocking::Generation) -> Vec<laracopilot::Result<Event>> {
    let items: Vec<_> = generation.by_ref().take(1_000).collect();
    assert!(items.len() < 1_000, "runaway stream");
    items
}

#[test]
fn a_generation_is_an_iterator_of_its_events_that_ends_with_none() {
    let server = Server::start();
    server.mount("POST", "/agent/generate", documented_stream());
    let client = server.client();

    let (events, project_id, after_end) = on_plain_thread(move || {
        let mut generation = client
            .generate("Build a task management app")
            .send()
            .unwrap();
        let events: Vec<Event> = collect(&mut generation)
            .into_iter()
            .map(|item| item.unwrap())
            .collect();
        let after_end = generation.next().is_none();
        (events, generation.project_id().cloned(), after_end)
    });

    assert_eq!(events.len(), 4);
    assert!(matches!(&events[0], Event::ProjectCreated(e) if e.project_id == "abc123"));
    assert!(
        matches!(&events[1], Event::ContainerProgress(e) if e.message == "Installing Laravel...")
    );
    assert!(matches!(&events[2], Event::ContainerReady(_)));
    assert!(
        matches!(&events[3], Event::StreamEnd(e) if e.app_url.as_deref() == Some("https://abc123.laracopilot.com"))
    );
    assert_eq!(project_id.as_ref().map(ProjectId::as_str), Some("abc123"));
    assert!(after_end, "the iterator stays ended");
}

#[test]
fn finish_sums_up_the_generation() {
    let server = Server::start();
    server.mount("POST", "/agent/generate", stream_with_files());

    let outcome = on_plain_thread(move || {
        server
            .client()
            .generate("Build a task management app")
            .send()?
            .finish()
    })
    .unwrap();

    assert_eq!(outcome.project_id().map(ProjectId::as_str), Some("p1"));
    assert_eq!(outcome.app_url.as_deref(), Some("https://p1.example/app"));
    assert_eq!(outcome.files, ["app/Models/Task.php", "routes/web.php"]);
    assert_eq!(outcome.stats().events, 5);
}

#[test]
fn a_stream_cut_short_is_incomplete_and_keeps_the_project_id() {
    let server = Server::start();
    server.mount(
        "POST",
        "/agent/generate",
        sse(sse_body(&[
            r#"{"type":"project_created","project_id":"p2"}"#,
            r#"{"type":"file_created","path":"a.php"}"#,
        ])),
    );

    let error = on_plain_thread(move || server.client().generate("Build an app").send()?.finish())
        .unwrap_err();

    assert!(
        matches!(&error, Error::Incomplete { events: 2, .. }),
        "{error:?}"
    );
    assert_eq!(error.project_id().map(ProjectId::as_str), Some("p2"));
}

#[test]
fn follow_up_accepts_a_str_and_a_project_id() {
    let server = Server::start();
    server.mount(
        "POST",
        "/agent/generate/abc123",
        sse(sse_body(&[
            r#"{"type":"file_created","path":"resources/css/app.css"}"#,
            r#"{"type":"stream_end","app_url":"https://abc123.example"}"#,
        ])),
    );
    let client = server.client();

    let (by_str, by_id) = on_plain_thread(move || -> laracopilot::Result<_> {
        let by_str = client
            .follow_up("abc123", "Add a dark mode")
            .send()?
            .finish()?;
        let id = ProjectId::from("abc123");
        let generation = client.follow_up(&id, "Add a dark mode").send()?;
        assert_eq!(generation.project_id(), Some(&id), "known before any event");
        Ok((by_str, generation.finish()?))
    })
    .unwrap();

    for outcome in [by_str, by_id] {
        assert_eq!(outcome.project_id().map(ProjectId::as_str), Some("abc123"));
        assert_eq!(outcome.files, ["resources/css/app.css"]);
    }
}

#[test]
fn project_returns_the_status_answer() {
    let server = Server::start();
    server.mount(
        "GET",
        "/agent/project/abc123",
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "status": true, "project_id": "abc123", "app_url": "https://abc123.example",
            "project_status": "ready", "name": "Tasks"
        })),
    );

    let project = on_plain_thread(move || server.client().project("abc123")).unwrap();

    assert_eq!(project.project_id, "abc123");
    assert_eq!(project.project_status.as_deref(), Some("ready"));
    assert_eq!(project.name.as_deref(), Some("Tasks"));
}

#[test]
fn request_errors_surface_as_typed_errors() {
    let server = Server::start();
    server
        .mount(
            "POST",
            "/agent/generate",
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"status": false, "message": "Unauthorized."})),
        )
        .mount(
            "GET",
            "/agent/project/nope",
            ResponseTemplate::new(404)
                .set_body_json(serde_json::json!({"status": false, "message": "Not found."})),
        );
    let client = server.client();

    let (generate, project) = on_plain_thread(move || {
        (
            client.generate("Build an app").send().unwrap_err(),
            client.project("nope").unwrap_err(),
        )
    });

    assert!(
        matches!(generate, Error::Unauthorized { .. }),
        "{generate:?}"
    );
    assert!(matches!(project, Error::NotFound { .. }), "{project:?}");
    assert_eq!(project.project_id().map(ProjectId::as_str), Some("nope"));
}

#[test]
fn credits_exhausted_ends_the_iterator_with_an_error() {
    let server = Server::start();
    server.mount(
        "POST",
        "/agent/generate",
        sse(sse_body(&[
            r#"{"type":"project_created","project_id":"p3"}"#,
            r#"{"type":"credits_exhausted"}"#,
            r#"{"type":"file_created","path":"never.php"}"#,
        ])),
    );

    let items = on_plain_thread(move || {
        collect(&mut server.client().generate("Build an app").send().unwrap())
    });

    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items[0].is_ok());
    let Err(error) = &items[1] else {
        panic!("{:?}", items[1])
    };
    assert!(matches!(error, Error::CreditsExhausted { .. }), "{error:?}");
    assert_eq!(error.project_id().map(ProjectId::as_str), Some("p3"));
}

#[test]
fn one_client_serves_several_threads_at_once() {
    let server = Server::start();
    server.mount(
        "GET",
        "/agent/project/abc123",
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"status": true, "project_id": "abc123"})),
    );
    let client = server.client();

    let ids = on_plain_thread(move || {
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| client.project("abc123").map(|p| p.project_id)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        })
    });

    assert_eq!(ids.len(), 4);
    for id in ids {
        assert_eq!(id.unwrap(), "abc123");
    }
}

#[test]
fn finish_with_calls_back_with_every_event_on_the_calling_thread() {
    let server = Server::start();
    server.mount("POST", "/agent/generate", stream_with_files());

    let (types, outcome) = on_plain_thread(move || -> laracopilot::Result<_> {
        let caller = std::thread::current().id();
        let mut types = Vec::new();
        let outcome = server
            .client()
            .generate("Build an app")
            .send()?
            .finish_with(|event| {
                assert_eq!(std::thread::current().id(), caller);
                types.push(event.type_name().to_owned());
            })?;
        Ok((types, outcome))
    })
    .unwrap();

    assert_eq!(
        types,
        [
            "project_created",
            "file_created",
            "file_created",
            "file_created",
            "stream_end"
        ]
    );
    assert_eq!(outcome.files, ["app/Models/Task.php", "routes/web.php"]);
}

#[test]
fn wait_for_project_polls_until_the_project_settles() {
    let server = Server::start();
    server.mount(
        "GET",
        "/agent/project/abc123",
        ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"status": true, "project_id": "abc123", "project_status": "ready"}),
        ),
    );
    let options = laracopilot::WaitOptions::default()
        .timeout(Duration::from_secs(5))
        .interval(Duration::from_millis(10), Duration::from_millis(10));

    let project =
        on_plain_thread(move || server.client().wait_for_project("abc123", options)).unwrap();

    assert_eq!(project.project_status.as_deref(), Some("ready"));
}

#[test]
fn verify_token_tells_an_accepted_token_from_a_rejected_one() {
    let accepting = Server::start();
    accepting.mount(
        "GET",
        "/agent/project/laracopilot-sdk-token-probe",
        ResponseTemplate::new(404)
            .set_body_json(serde_json::json!({"status": false, "message": "Project not found."})),
    );
    let rejecting = Server::start();
    rejecting.mount(
        "GET",
        "/agent/project/laracopilot-sdk-token-probe",
        ResponseTemplate::new(401).set_body_json(serde_json::json!({"message": "Unauthorized."})),
    );

    let (accepted, rejected) = on_plain_thread(move || {
        (
            accepting.client().verify_token().unwrap(),
            rejecting.client().verify_token().unwrap(),
        )
    });

    assert!(accepted.is_accepted(), "{accepted}");
    assert!(!rejected.is_accepted(), "{rejected}");
}

#[tokio::test]
async fn calling_from_inside_a_current_thread_runtime_works_without_panicking() {
    let server = server().await;
    mount(&server, "POST", "/agent/generate", stream_with_files()).await;
    mount(
        &server,
        "GET",
        "/agent/project/p1",
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"status": true, "project_id": "p1"})),
    )
    .await;
    let client = builder(&server).build_blocking().unwrap();

    // Directly from the async fn: the blocking calls hand off to the client's thread.
    let mut generation = client
        .generate("Build a task management app")
        .send()
        .unwrap();
    let first = generation.next().unwrap().unwrap();
    assert!(matches!(first, Event::ProjectCreated(e) if e.project_id == "p1"));
    let mut seen = Vec::new();
    let outcome = generation
        .finish_with(|event| seen.push(event.type_name().to_owned()))
        .unwrap();
    assert_eq!(outcome.files, ["app/Models/Task.php", "routes/web.php"]);
    assert_eq!(seen.len(), 4, "the events after the first: {seen:?}");
    assert_eq!(client.project("p1").unwrap().project_id, "p1");

    // The runtime still works afterwards.
    tokio::task::yield_now().await;
    assert_eq!(
        tokio::spawn(async { 42 }).await.unwrap(),
        42,
        "runtime is usable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_from_inside_a_multi_thread_runtime_works_without_panicking() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let client = builder(&server).build_blocking().unwrap();

    let mut generation = client
        .generate("Build a task management app")
        .send()
        .unwrap();
    let items = collect(&mut generation);

    assert_eq!(items.len(), 4);
    assert!(items.iter().all(Result::is_ok), "{items:?}");
    assert_eq!(
        generation.project_id().map(ProjectId::as_str),
        Some("abc123")
    );
}

#[tokio::test]
async fn dropping_the_client_and_its_generation_inside_a_runtime_does_not_panic() {
    let server = server().await;
    mount_documented_generate(&server).await;
    let client = builder(&server).build_blocking().unwrap();
    let mut generation = client
        .generate("Build a task management app")
        .send()
        .unwrap();
    assert!(generation.next().unwrap().is_ok());

    // The generation now holds the last reference to the client's runtime.
    drop(client);
    drop(generation);

    // A client never used is dropped here too.
    drop(builder(&server).build_blocking().unwrap());
    tokio::task::yield_now().await;
}

#[test]
fn dropping_a_generation_mid_stream_closes_the_connection() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let (closed_sender, closed) = mpsc::channel();
    runtime.spawn(async move {
        let result = tokio::time::timeout(PATIENCE, stream_until_the_client_leaves(listener)).await;
        let _ = closed_sender.send(result);
    });
    let client = laracopilot::Client::builder()
        .token(token())
        .base_url(format!("http://{address}/api/v1"))
        .build_blocking()
        .unwrap();

    let first = on_plain_thread(move || {
        let mut generation = client.generate("Build an app").send().unwrap();
        let first = generation.next().unwrap().unwrap();
        drop(generation);
        first
    });

    assert!(matches!(first, Event::ProjectCreated(e) if e.project_id == "slow"));
    let writes = closed
        .recv_timeout(PATIENCE)
        .expect("the server task reports")
        .expect("the server noticed the client left before the deadline")
        .expect("the server served the request");
    assert!(writes < 100, "noticed after {writes} writes");
}

/// Accepts one request, answers an event stream that never ends (one event, then a
/// comment every 20 ms) and returns how many comments it wrote once a write fails.
async fn stream_until_the_client_leaves(listener: tokio::net::TcpListener) -> std::io::Result<u32> {
    let (mut socket, _) = listener.accept().await?;
    let mut request = Vec::new();
    let mut buffer = [0; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        request.extend_from_slice(&buffer[..read]);
    }
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await?;
    let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
    socket
        .write_all(
            chunk("data: {\"type\":\"project_created\",\"project_id\":\"slow\"}\n\n").as_bytes(),
        )
        .await?;
    for writes in 0..1_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if socket
            .write_all(chunk(": still working\n\n").as_bytes())
            .await
            .is_err()
        {
            return Ok(writes);
        }
    }
    Err(std::io::ErrorKind::TimedOut.into())
}

#[test]
fn debug_output_never_shows_the_token() {
    let server = Server::start();
    server.mount("POST", "/agent/generate", documented_stream());
    let client = server.client();

    let (client_debug, generation_debug) = on_plain_thread(move || {
        let generation = client.generate("Build an app").send().unwrap();
        (format!("{client:?}"), format!("{generation:?}"))
    });

    assert!(client_debug.contains("base_url"), "{client_debug}");
    for text in [client_debug, generation_debug] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains("S3CR3T"), "{text}");
    }
}

#[test]
fn the_client_is_clone_send_and_sync_and_the_generation_is_send() {
    fn clone_send_sync<T: Clone + Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    clone_send_sync::<blocking::Client>();
    send::<blocking::Generation>();

    let server = Server::start();
    let client = server.client();
    let clone = client.clone();
    assert_eq!(clone.base_url(), client.base_url());
    assert!(client.base_url().starts_with("http://127.0.0.1:"));
}

#[test]
fn a_missing_token_is_a_config_error() {
    let error = laracopilot::Client::builder().build_blocking().unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
}

#[test]
fn blocking_client_builder_builds_a_blocking_client() {
    let server = Server::start();
    server.mount("POST", "/agent/generate", stream_with_files());
    server.mount("GET", "/agent/project/p1", project_json("p1"));
    let base = format!("{}/api/v1", server.server.uri());
    let outcome = on_plain_thread(move || -> laracopilot::Result<_> {
        let client: blocking::Client = blocking::Client::builder()
            .token(token())
            .base_url(base)
            .request_timeout(Duration::from_secs(5))
            .retry_policy(laracopilot::RetryPolicy::none())
            .build()?;
        let outcome = client.generate("Build a task app").send()?.finish()?;
        assert_eq!(
            client.project("p1")?.project_status.as_deref(),
            Some("ready")
        );
        Ok(outcome)
    })
    .unwrap();
    assert_eq!(outcome.project_id().map(ProjectId::as_str), Some("p1"));
    // Its settings are checked at `build`, as the async builder's.
    let error = blocking::Client::builder()
        .token(token())
        .base_url("ftp://example.com/api/v1")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
}

#[test]
fn a_panic_inside_a_call_reaches_the_caller_and_the_client_goes_on() {
    let server = Server::start();
    server.mount("GET", "/agent/project/p1", project_json("p1"));
    let base = format!("{}/api/v1", server.server.uri());
    let (panicked, after) = on_plain_thread(move || {
        // A token provider that panics on its first call (a bug in the caller's
        // vault client, say): it runs on the client's own runtime thread.
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let provider = laracopilot::tokens::FnToken::new(move || {
            let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move {
                assert!(!first, "the vault client panicked");
                Ok(token())
            }
        });
        let client = blocking::Client::builder()
            .token_provider(provider)
            .base_url(base)
            .retry_policy(laracopilot::RetryPolicy::none())
            .build()
            .unwrap();
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client.project("p1")))
                .unwrap_err();
        // The runtime thread survived its task's panic.
        let after = client.project("p1").map(|p| p.project_status);
        (panicked, after)
    });
    let message = panicked
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panicked.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(message.contains("the vault client panicked"), "{message:?}");
    assert_eq!(after.unwrap().as_deref(), Some("ready"));
}
