//! The request values of generate and follow-up calls: a call's own `deadline`
//! wins over the client's stream deadline (both ways), from the async and the
//! blocking client; `label`s reach the call's journal entry on every engine, in
//! order, duplicates kept (their tracing span is in `tracing.rs`); and a request
//! that is never sent sends nothing. Idempotency keys are in `journal/idempotency.rs`.

use crate::common;

use std::time::{Duration, Instant};

use common::journal::Db;
use common::mock::{posts, PROMPT};
use laracopilot::{Error, TimeoutKind};
use laracopilot_mock::{Fault, MockServer};

/// Whether `result` is a stream deadline's timeout.
fn deadline_passed<T: std::fmt::Debug>(result: &laracopilot::Result<T>) -> bool {
    matches!(
        result,
        Err(Error::Timeout {
            kind: TimeoutKind::Deadline,
            ..
        })
    )
}

#[tokio::test]
async fn a_calls_deadline_ends_a_stream_the_clients_would_let_run() {
    let server = MockServer::start();
    // The stream names its project, then goes quiet for good.
    let client = server
        .client_builder()
        .idle_timeout(None)
        .stream_deadline(None)
        .build()
        .unwrap();
    for follow_up in [false, true] {
        server.fault_next(Fault::StallBefore(2));
        let started = Instant::now();
        let result = common::bounded(async {
            let request = match follow_up {
                false => client.generate(PROMPT),
                true => client.follow_up("p1", PROMPT),
            };
            request
                .deadline(Duration::from_millis(500))
                .await?
                .finish()
                .await
        })
        .await;
        assert!(deadline_passed(&result), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(500));
        let error = result.unwrap_err();
        assert_eq!(error.project_id().map(|p| p.as_str()), Some("p1"));
        assert!(error.may_have_started_work());
    }
}

#[tokio::test]
async fn a_calls_deadline_lets_a_stream_outlive_the_clients() {
    // Events 60 ms apart: the whole stream takes longer than the client's deadline.
    let server = MockServer::builder()
        .pacing(Duration::from_millis(60))
        .start()
        .unwrap();
    let deadline = Duration::from_millis(400);
    let client = server
        .client_builder()
        .stream_deadline(Some(deadline))
        .build()
        .unwrap();
    let started = Instant::now();
    let outcome = common::bounded(async {
        client
            .generate(PROMPT)
            .deadline(Duration::from_secs(120))
            .await?
            .finish()
            .await
    })
    .await
    .unwrap();
    assert!(started.elapsed() > deadline, "{:?}", started.elapsed());
    // Paced, the stream lasts well over the client's deadline whatever the machine.
    let paced = Duration::from_millis(60) * u32::try_from(outcome.stats().events).unwrap();
    assert!(paced > deadline * 2, "{paced:?}");
    // The same stream without the call's own deadline meets the client's.
    let result = common::bounded(async { client.generate(PROMPT).await?.finish().await }).await;
    assert!(deadline_passed(&result), "{result:?}");
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_request_takes_a_deadline_too() {
    let server = MockServer::start();
    let client = server
        .client_builder()
        .idle_timeout(None)
        .build_blocking()
        .unwrap();
    server.fault_next(Fault::StallBefore(2));
    let result = client
        .generate(PROMPT)
        .deadline(Duration::from_millis(500))
        .send()
        .and_then(laracopilot::blocking::Generation::finish);
    assert!(deadline_passed(&result), "{result:?}");
}

#[tokio::test]
async fn labels_are_in_the_calls_journal_entry_in_order_on_every_engine() {
    for db in Db::all("requests::labels") {
        let server = MockServer::start();
        let client = server.client_builder().journal(db.open()).build().unwrap();
        let outcome = common::bounded(async {
            client
                .generate(PROMPT)
                .label("tenant", "acme")
                .label("job", "nightly-42")
                .label("tenant", "acme-eu")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap();
        common::bounded(async {
            client
                .follow_up(outcome.project_id().unwrap(), "Add a dark mode")
                .label("ticket", "LC-7")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap();
        let labels: Vec<Vec<(String, String)>> = db.rows().into_iter().map(|r| r.labels).collect();
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            labels,
            [
                vec![
                    pair("tenant", "acme"),
                    pair("job", "nightly-42"),
                    pair("tenant", "acme-eu")
                ],
                vec![pair("ticket", "LC-7")],
            ],
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn a_request_sends_nothing_until_it_is_awaited_and_shows_no_prompt() {
    let server = MockServer::start();
    let client = server.client();
    let request = client
        .generate("Build a secret launch page for Project Nightingale")
        .label("tenant", "acme")
        .deadline(Duration::from_secs(60));
    let shown = format!("{request:?}");
    assert!(
        shown.contains("tenant") && shown.contains("prompt_len"),
        "{shown}"
    );
    assert!(!shown.contains("Nightingale"), "{shown}");
    drop(request);
    assert_eq!(posts(&server), 0);
    // `send` is the same call as `.await`, as a named future.
    let generation = common::bounded(client.generate(PROMPT).send())
        .await
        .unwrap();
    common::bounded(generation.finish()).await.unwrap();
    assert_eq!(posts(&server), 1);
}
