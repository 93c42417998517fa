//! The server's lifecycle: it serves from its own thread whatever kind of test
//! starts it (plain `#[test]`, a `current_thread` runtime, the blocking client on
//! that very thread), stops on `shutdown` or drop, and says why it cannot start.

use std::error::Error as _;
use std::time::{Duration, Instant};

use laracopilot::Error;
use laracopilot_mock::{Fault, MockError, MockServer, Reply};

use crate::common::mock::*;
use crate::common::*;

#[test]
fn a_plain_test_can_drive_the_async_client_on_a_runtime_of_its_own() {
    let server = MockServer::start();
    let client = server.client();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(finish_ok(&client, PROMPT));
    assert_eq!(outcome.project_id().unwrap(), "p1");
    drop(runtime);
    // The server outlives the runtime that used it.
    assert_eq!(
        request(&server, "GET", "/api/v1/agent/project/p1", None, "").status,
        401
    );
}

#[cfg(feature = "blocking")]
#[test]
fn a_plain_test_can_use_the_blocking_client() {
    let server = MockServer::start();
    let client = server.client_builder().build_blocking().unwrap();
    let outcome = client.generate(PROMPT).send().unwrap().finish().unwrap();
    let id = outcome.project_id().cloned().unwrap();
    assert_eq!(
        client.project(&id).unwrap().project_status.as_deref(),
        Some("ready")
    );
}

#[cfg(feature = "blocking")]
#[tokio::test]
async fn the_blocking_client_works_on_the_thread_of_a_current_thread_runtime() {
    let server = MockServer::start();
    // Every call of the SDK is bounded by its own timeouts, so a deadlock would
    // fail here instead of hanging the test.
    let builder = server
        .client_builder()
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5))
        .idle_timeout(Some(Duration::from_secs(5)));
    let client = builder.build_blocking().unwrap();
    let started = Instant::now();
    let outcome = client.generate(PROMPT).send().unwrap().finish().unwrap();
    let id = outcome.project_id().cloned().unwrap();
    assert_eq!(
        client.project(&id).unwrap().project_status.as_deref(),
        Some("ready")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // And the async client on the same runtime, afterwards.
    assert_eq!(
        finish_ok(&server.client(), PROMPT)
            .await
            .project_id()
            .unwrap(),
        "p2"
    );
}

#[tokio::test]
async fn after_shutdown_or_drop_nothing_is_served() {
    let server = MockServer::start();
    let client = server.client();
    server.shutdown();
    let refused = client.generate(PROMPT).await;
    assert!(
        matches!(refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );

    let server = MockServer::start();
    let client = server.client();
    drop(server);
    let refused = client.project("p1").await;
    assert!(
        matches!(refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_a_stalled_stream_from_inside_an_async_context() {
    let server = MockServer::start();
    server.fault_next(Fault::StallBefore(1));
    let mut generation = server.client().generate(PROMPT).await.unwrap();
    bounded(generation.next()).await.unwrap().unwrap();
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let item = bounded(generation.next()).await;
    assert!(
        matches!(item, Some(Err(Error::Transport { .. }))),
        "{item:?}"
    );
}

#[tokio::test]
async fn dropping_the_server_is_quick_even_with_a_hanging_request_open() {
    let server = MockServer::start();
    server.reply_next(1, Reply::hang());
    let client = server
        .client_builder()
        .idle_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let arrived = server.requests_received(1);
    let pending = tokio::spawn(async move { client.generate(PROMPT).await.map(|_| ()) });
    bounded(arrived).await;
    assert_eq!(server.requests().len(), 1, "the request arrived");
    assert!(!pending.is_finished(), "the hang answered");
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let refused = bounded(pending).await.unwrap();
    assert!(
        matches!(refused, Err(Error::Transport { .. })),
        "{refused:?}"
    );
}

#[test]
fn a_taken_port_is_a_bind_error_with_the_system_error_as_its_source() {
    let taken = MockServer::start();
    let refused = MockServer::builder().port(taken.addr().port()).start();
    let Err(error @ MockError::Bind { port, .. }) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(*port, taken.addr().port());
    assert_eq!(
        error.to_string(),
        format!("cannot listen on 127.0.0.1:{port}")
    );
    let source = error.source().expect("the io error");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
}

#[test]
fn out_of_range_settings_are_config_errors_that_name_the_setting() {
    let cases = [
        (
            MockServer::builder().events_per_generation(8),
            "events_per_generation",
        ),
        (MockServer::builder().token("has a space"), "token"),
        (
            MockServer::builder().read_timeout(Duration::ZERO),
            "read_timeout",
        ),
    ];
    for (builder, setting) in cases {
        let refused = builder.start();
        let Err(error @ MockError::Config { .. }) = &refused else {
            panic!("{setting}: {refused:?}")
        };
        let message = error.to_string();
        assert!(
            message.starts_with("invalid mock server setting: "),
            "{message}"
        );
        assert!(message.contains(setting), "{message}");
        assert!(
            !message.ends_with('.') && message == message.to_lowercase(),
            "{message}"
        );
        assert!(error.source().is_none());
    }
    assert!(MockServer::builder()
        .events_per_generation(9)
        .start()
        .is_ok());
}

#[test]
fn a_fixed_port_serves_at_the_base_url_it_reports() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = MockServer::builder().port(port).start().unwrap();
    assert_eq!(server.base_url(), format!("http://127.0.0.1:{port}/api/v1"));
    assert_eq!(server.addr().port(), port);
    assert_eq!(
        request(&server, "GET", "/api/v1/agent/project/p1", None, "").status,
        401
    );
}
