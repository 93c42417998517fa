//! Idempotent calls, on every engine: the first call with a key sends; a repeat, on
//! any instance of the same database and scope, sends nothing and answers the first
//! call's result (a replay of its outcome, its project polled to its end while it
//! runs, the failure that ended it, or `OutcomeUnknown` when it may have started
//! work and nothing proves which); a first call refused before any work gives its
//! key up; keys are per scope.

use super::*;

use common::mock::{posts, posts_with_prompt, PROMPT};
use laracopilot_mock::{Fault, MockServer, Reply};

/// A client of `server` over a new instance of `db`'s journal, in `scope`, without
/// retries.
fn client_in(server: &MockServer, db: &Db, scope: &str) -> Client {
    server
        .client_builder()
        .retry_policy(laracopilot::RetryPolicy::none())
        .scope(scope)
        .journal(db.open())
        .build()
        .unwrap()
}

/// The items of a generation, bounded.
async fn items(generation: laracopilot::Generation) -> Vec<laracopilot::Result<Event>> {
    common::collect(generation).await
}

#[tokio::test]
async fn a_repeat_on_another_instance_sends_nothing_and_replays_the_first_outcome() {
    for db in Db::all("idempotency::replay") {
        let server = MockServer::start();
        let first = client_in(&server, &db, "default");
        let generation = first
            .generate(PROMPT)
            .idempotency_key("onboarding-42")
            .await
            .unwrap();
        assert!(!generation.is_replay());
        let outcome = common::bounded(generation.finish()).await.unwrap();
        assert_eq!(posts(&server), 1);

        // Another host (instance), another prompt even: the key decides.
        let second = client_in(&server, &db, "default");
        let replay = second
            .generate("Build a blog")
            .idempotency_key("onboarding-42")
            .await
            .unwrap();
        assert!(replay.is_replay());
        assert_eq!(replay.project_id(), outcome.project_id());
        assert_eq!(replay.stats().attempts, 0);
        let items = items(replay).await;
        assert_eq!(items.len(), 1, "one terminal item: {items:?}");
        let Ok(Event::StreamEnd(end)) = &items[0] else {
            panic!("{items:?}");
        };
        assert_eq!(end.project_id.as_ref(), outcome.project_id());
        assert_eq!(end.app_url, outcome.app_url);
        // The first client repeats too: the same.
        let again = common::bounded(async {
            first
                .generate(PROMPT)
                .idempotency_key("onboarding-42")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap();
        assert_eq!(again.project_id(), outcome.project_id());
        assert_eq!(again.app_url, outcome.app_url);
        assert_eq!(posts(&server), 1, "nothing sent by a repeat");
        assert_eq!(posts_with_prompt(&server, "Build a blog"), 0);
        let rows = db.rows();
        assert_eq!(rows.len(), 1, "a repeat records nothing: {rows:?}");
        assert_eq!(rows[0].idempotency_key.as_deref(), Some("onboarding-42"));
    }
}

#[cfg(feature = "blocking")]
#[test]
fn a_blocking_repeat_replays_too() {
    for db in Db::all("idempotency::blocking") {
        let server = MockServer::start();
        let first = client_in(&server, &db, "default").clone();
        let first = laracopilot::blocking::Client::from_async(first).unwrap();
        let outcome = first
            .generate(PROMPT)
            .idempotency_key("nightly-1")
            .send()
            .unwrap()
            .finish()
            .unwrap();
        let second =
            laracopilot::blocking::Client::from_async(client_in(&server, &db, "default")).unwrap();
        let replay = second
            .generate(PROMPT)
            .idempotency_key("nightly-1")
            .send()
            .unwrap();
        assert!(replay.is_replay());
        let again = replay.finish().unwrap();
        assert_eq!(again.project_id(), outcome.project_id());
        assert_eq!(posts(&server), 1);
    }
}

#[tokio::test]
async fn a_repeat_while_the_first_still_runs_polls_its_project_to_its_end() {
    for db in Db::all("idempotency::running") {
        // The first call's stream names p1, then goes quiet; its project is
        // generating when first asked, ready from then on.
        let server = {
            let polls = std::sync::atomic::AtomicUsize::new(0);
            RawServer::start(move |request| {
                if request.method == "GET" {
                    let status = match polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                        0 => "generating",
                        _ => "ready",
                    };
                    return vec![Step::Write(raw::project_answer("p1", status)), Step::Close];
                }
                vec![Step::Write(raw::sse_answer(&[CREATED])), Step::Stall]
            })
        };
        let client = |db: &Db| {
            raw::builder(&server.base_url())
                .idle_timeout(Some(Duration::from_secs(60)))
                .journal(db.open())
                .build()
                .unwrap()
        };
        let first = client(&db);
        let mut running = first.generate(PROMPT).idempotency_key("k").await.unwrap();
        let created = common::bounded(running.next()).await.unwrap().unwrap();
        assert!(matches!(created, Event::ProjectCreated(_)), "{created:?}");

        let second = client(&db);
        let repeat = tokio::spawn(async move {
            let generation = second
                .generate(PROMPT)
                .idempotency_key("k")
                .deadline(Duration::from_secs(60))
                .await?;
            assert!(generation.is_replay());
            generation.finish().await
        });
        // The repeat polls the project while it runs, to its end.
        let outcome = common::bounded(repeat).await.unwrap().unwrap();
        assert_eq!(server.count("GET"), 2, "generating, then ready");
        assert_eq!(outcome.project_id().map(|p| p.as_str()), Some("p1"));
        assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
        assert_eq!(server.count("POST"), 1, "the repeat sent nothing");
        drop(running);
    }
}

#[tokio::test]
async fn a_repeat_of_a_first_call_that_failed_after_starting_work_answers_its_failure() {
    for db in Db::all("idempotency::failed") {
        // The first call ran out of credits: settled as failed, work started.
        let server = MockServer::builder().credits(1).start().unwrap();
        let first = client_in(&server, &db, "default");
        let error = common::bounded(async {
            first
                .generate(PROMPT)
                .idempotency_key("k")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap_err();
        assert!(matches!(error, Error::CreditsExhausted { .. }), "{error:?}");
        // Another host's repeat (its breaker closed: another scope would not share
        // the key, so the breaker is reset first) sends nothing and tells the same.
        first.reset_credits_breaker().await.unwrap();
        let second = client_in(&server, &db, "default");
        let error = failed(second.generate(PROMPT).idempotency_key("k").await);
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert_eq!(error.project_id().map(|p| p.as_str()), Some("p1"));
        assert_eq!(posts(&server), 1);
    }
}

#[tokio::test]
async fn a_first_call_refused_before_any_work_gives_its_key_up() {
    for db in Db::all("idempotency::refused") {
        let server = MockServer::start();
        let client = client_in(&server, &db, "default");
        // 422: the prompt is too short; 429: not now. Neither started work.
        let error = failed(client.generate("short").idempotency_key("k").await);
        assert!(matches!(error, Error::Validation { .. }), "{error:?}");
        server.reply_next(1, Reply::rate_limited(Some(1)));
        let error = failed(client.generate(PROMPT).idempotency_key("k").await);
        assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
        // The key is free: the next call with it sends, and keeps it.
        let outcome = common::bounded(async {
            client
                .generate(PROMPT)
                .idempotency_key("k")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap();
        assert_eq!(posts(&server), 3);
        assert_eq!(
            db.states(),
            [
                "sent failed validation false",
                "sent failed rate_limited false",
                "accepted p1 succeeded https://p1.laracopilot.com"
            ]
        );
        let keys: Vec<_> = db.rows().into_iter().map(|r| r.idempotency_key).collect();
        assert_eq!(keys, [None, None, Some("k".to_owned())]);
        let replay = client.generate(PROMPT).idempotency_key("k").await.unwrap();
        assert!(replay.is_replay());
        assert_eq!(replay.project_id(), outcome.project_id());
    }
}

#[tokio::test]
async fn a_first_call_that_may_have_started_work_without_a_project_id_answers_outcome_unknown() {
    for db in Db::all("idempotency::unknown") {
        let server = MockServer::start();
        let client = client_in(&server, &db, "default");
        // The server has the POST and never answers (before the test ends); the
        // caller gives up.
        server.fault_next(Fault::DelayHeaders(Duration::from_secs(60)));
        let arrived = server.requests_received(1);
        let gave_up = tokio::select! {
            answered = client.generate(PROMPT).idempotency_key("k").send() => Err(answered),
            () = common::bounded(arrived) => Ok(()),
        };
        assert!(gave_up.is_ok(), "{gave_up:?}");
        let other = client_in(&server, &db, "default");
        wait_unfinished(&other, 1).await;
        let error = failed(other.generate(PROMPT).idempotency_key("k").await);
        let Error::OutcomeUnknown { accepted, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(!accepted);
        assert!(error.may_have_started_work());
        assert_eq!(posts(&server), 1, "never sent again");
        assert_eq!(db.states(), ["sent"], "nothing recorded by the repeat");
    }
}

#[tokio::test]
async fn keys_are_per_scope() {
    for db in Db::all("idempotency::scopes") {
        let server = MockServer::start();
        let a = client_in(&server, &db, "tenant-a");
        let b = client_in(&server, &db, "tenant-b");
        for client in [&a, &b] {
            let generation = client.generate(PROMPT).idempotency_key("k").await.unwrap();
            assert!(!generation.is_replay());
            common::bounded(generation.finish()).await.unwrap();
        }
        assert_eq!(posts(&server), 2, "one call in each scope");
        let replay = a.generate(PROMPT).idempotency_key("k").await.unwrap();
        assert!(replay.is_replay());
        assert_eq!(replay.project_id().map(|p| p.as_str()), Some("p1"));
        let replay = b.generate(PROMPT).idempotency_key("k").await.unwrap();
        assert_eq!(replay.project_id().map(|p| p.as_str()), Some("p2"));
        let scopes: Vec<_> = db.rows().into_iter().map(|r| r.scope).collect();
        assert_eq!(scopes, ["tenant-a", "tenant-b"]);
        assert_eq!(posts(&server), 2);
    }
}

#[tokio::test]
async fn an_idempotency_key_needs_a_journal_and_at_most_one_kibibyte() {
    let server = MockServer::start();
    let error = failed(server.client().generate(PROMPT).idempotency_key("k").await);
    let Error::Config { message, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(message.contains("journal"), "{message}");
    let client = client_in(&server, &Db::memory(), "default");
    for key in [String::new(), "k".repeat(1025)] {
        let error = failed(client.generate(PROMPT).idempotency_key(key).await);
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
    }
    assert!(server.requests().is_empty());
}
