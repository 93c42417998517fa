//! `resume` on every engine tells only the truth: it polls a new project whose id
//! is known, or a follow-up the server accepted; a project that succeeded, failed
//! or that the API does not know is recorded so; a poll that proves nothing (a
//! timeout, a proxy's page) records nothing; anything else is `OutcomeUnknown`,
//! without a request. Of resumers of one entry, exactly one proceeds; an outcome
//! nobody reported is not recorded.

use super::*;

use common::mock::{eventually, posts, PROMPT};
use laracopilot::journal::Kind;
use laracopilot::TimeoutKind;
use laracopilot_mock::{Fault, MockServer, OnClientDrop, ProjectStatus};

/// A client of `server` over a new instance of `db`'s journal, without retries.
fn client_of(server: &MockServer, db: &Db) -> Client {
    server
        .client_builder()
        .retry_policy(laracopilot::RetryPolicy::none())
        .journal(db.open())
        .build()
        .unwrap()
}

/// Starts a generation with `client`, reads its first event (`project_created`,
/// `p1` on a fresh server) and drops it: an entry accepted, with its project, left
/// unfinished.
async fn dropped_after_the_project(client: &Client) {
    let mut generation = client.generate(PROMPT).await.unwrap();
    let first = common::bounded(generation.next()).await.unwrap().unwrap();
    assert!(matches!(first, Event::ProjectCreated(_)), "{first:?}");
}

/// Starts a call with `client` and gives it up once the server has its POST, which
/// it never answers (the test ends first): an entry sent, never accepted.
async fn given_up_once_sent(server: &MockServer, client: &Client, follow_up: bool) {
    server.fault_next(Fault::DelayHeaders(Duration::from_secs(60)));
    let arrived = server.requests_received(server.requests().len() + 1);
    let call = match follow_up {
        false => client.generate(PROMPT),
        true => client.follow_up("p1", "Add a dark mode"),
    };
    let gave_up = tokio::select! {
        answered = call => Err(answered),
        () = common::bounded(arrived) => Ok(()),
    };
    assert!(gave_up.is_ok(), "{gave_up:?}");
}

#[tokio::test]
async fn resume_settles_a_project_that_succeeded_without_sending_a_generate_call() {
    for db in Db::all("resume::succeeded") {
        let server = MockServer::start();
        dropped_after_the_project(&client_of(&server, &db)).await;
        // The offline LaraCopilot finishes a generation its client left, as the real
        // service does.
        assert!(
            eventually(|| server
                .project("p1")
                .is_some_and(|p| p.status == ProjectStatus::Ready))
            .await
        );
        // After a restart: another instance of the journal.
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 1).await;
        assert_eq!(open.len(), 1);
        let before = posts(&server);
        let outcome = client.resume(&open[0], fast()).await.unwrap();
        assert_eq!(posts(&server), before, "resume never POSTs");
        assert_eq!(outcome.project_id().map(|p| p.as_str()), Some("p1"));
        assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
        assert_eq!(outcome.journal_id(), Some(&open[0].local_id));
        assert_eq!(outcome.progress.phase(), laracopilot::Phase::Recovered);
        assert_eq!(
            outcome.recovered.unwrap().project_status.as_deref(),
            Some("ready")
        );
        assert_eq!(
            db.states(),
            ["accepted p1 succeeded https://p1.laracopilot.com"]
        );
        assert!(client.unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn resume_reports_and_records_a_project_that_failed() {
    for db in Db::all("resume::failed") {
        let server = MockServer::builder()
            .on_client_drop(OnClientDrop::Fail)
            .start()
            .unwrap();
        // Held after the first events (for longer than any test runs), so that the
        // rest is not already on its way when the caller leaves, however late.
        server.fault_next(Fault::DelayBefore(2, Duration::from_secs(60)));
        dropped_after_the_project(&client_of(&server, &db)).await;
        // This server marks a stream its client left as failed.
        assert!(
            eventually(|| server
                .project("p1")
                .is_some_and(|p| p.status == ProjectStatus::Failed))
            .await
        );
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 1).await;
        let error = client.resume(&open[0], fast()).await.unwrap_err();
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert_eq!(error.journal_id(), Some(&open[0].local_id));
        assert_eq!(db.states(), ["accepted p1 failed generation_failed true"]);
        assert_eq!(posts(&server), 1);
        assert!(client.unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn resume_records_a_project_the_api_does_not_know_as_failed_after_it_may_have_started_work() {
    for db in Db::all("resume::not_found") {
        // Entries made against another server: a generation and a follow-up its
        // server accepted, both left.
        let elsewhere = MockServer::start();
        let first = client_of(&elsewhere, &db);
        dropped_after_the_project(&first).await;
        drop(first.follow_up("p1", "Add a dark mode").await.unwrap());
        // Resumed against a server that knows neither project: the API's own 404.
        let server = MockServer::start();
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 2).await;
        assert_eq!(open[0].kind, Kind::Generate);
        assert_eq!(open[1].kind, Kind::FollowUp);
        for entry in &open {
            let error = client.resume(entry, fast()).await.unwrap_err();
            assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        }
        assert!(server.requests().iter().all(|r| r.method == "GET"));
        assert_eq!(
            db.states(),
            [
                "accepted p1 failed not_found true",
                "accepted p1 failed not_found true"
            ]
        );
    }
}

#[tokio::test]
async fn a_proxy_page_that_says_404_settles_nothing() {
    for db in Db::all("resume::proxy_404") {
        let elsewhere = MockServer::start();
        dropped_after_the_project(&client_of(&elsewhere, &db)).await;
        // A portal in front of the API answers with a page of its own.
        let proxy = RawServer::start(|_| {
            vec![
                Step::Write(raw::response(
                    404,
                    &[("Content-Type", "text/html")],
                    "<html><body><h1>404 Not Found</h1></body></html>",
                )),
                Step::Close,
            ]
        });
        let client = raw::builder(&proxy.base_url())
            .journal(db.open())
            .build()
            .unwrap();
        let open = wait_unfinished(&client, 1).await;
        let error = client.resume(&open[0], fast()).await.unwrap_err();
        assert!(matches!(error, Error::Api { status: 404, .. }), "{error:?}");
        assert_eq!(proxy.count("GET"), 1, "asked once: a page is no answer");
        assert_eq!(db.states(), ["accepted p1"], "nothing recorded");
        // Left for a later resume, against the API this time.
        let open = wait_unfinished(&client, 1).await;
        assert_eq!(open.len(), 1);
        let outcome = client_of(&elsewhere, &db)
            .resume(&open[0], fast())
            .await
            .unwrap();
        assert_eq!(outcome.project_id().map(|p| p.as_str()), Some("p1"));
    }
}

#[tokio::test]
async fn resume_that_times_out_leaves_the_entry_unfinished_to_try_again() {
    for db in Db::all("resume::times_out") {
        let server = MockServer::start();
        dropped_after_the_project(&client_of(&server, &db)).await;
        assert!(
            eventually(|| server
                .project("p1")
                .is_some_and(|p| p.status == ProjectStatus::Ready))
            .await
        );
        // Another generation on p1 runs (and hangs): the project is generating.
        server.fault_next(Fault::StallBefore(1));
        let other = common::bounded(
            server
                .client()
                .follow_up("p1", "Add a dark mode to every page"),
        )
        .await
        .unwrap();
        assert_eq!(
            server.project("p1").unwrap().status,
            ProjectStatus::Generating
        );
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 1).await;
        let error = client
            .resume(&open[0], fast().timeout(Duration::from_millis(400)))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Timeout {
                    kind: TimeoutKind::Wait,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(db.states(), ["accepted p1"], "nothing recorded");
        assert_eq!(wait_unfinished(&client, 1).await.len(), 1);
        // Once the other stream is gone the project settles (the hung generation
        // failed), and so does the entry.
        drop(other);
        assert!(
            eventually(|| server
                .project("p1")
                .is_some_and(|p| p.status == ProjectStatus::Failed))
            .await
        );
        let error = client.resume(&open[0], fast()).await.unwrap_err();
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert!(client.unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn resume_without_a_project_id_reports_the_outcome_unknown_and_sends_nothing() {
    for db in Db::all("resume::no_project_id") {
        let server = MockServer::start();
        given_up_once_sent(&server, &client_of(&server, &db), false).await;
        assert_eq!(posts(&server), 1);
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 1).await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id, None);
        let sent = server.requests().len();
        let error = client.resume(&open[0], fast()).await.unwrap_err();
        let Error::OutcomeUnknown {
            local_id, accepted, ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(local_id, &open[0].local_id);
        assert!(!accepted);
        assert!(error.may_have_started_work());
        assert_eq!(server.requests().len(), sent, "nothing sent");
        assert_eq!(db.states(), ["sent unknown"]);
        assert!(client.unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_follow_up_never_accepted_is_outcome_unknown_and_its_project_is_not_polled() {
    // The status endpoint describes the project, not this follow-up: `ready` would
    // only say how its earlier generation ended.
    for db in Db::all("resume::follow_up_never_accepted") {
        let server = MockServer::start();
        common::finish_ok(&server.client(), PROMPT).await;
        given_up_once_sent(&server, &client_of(&server, &db), true).await;
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 1).await;
        assert_eq!(open[0].kind, Kind::FollowUp);
        assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert!(!open[0].accepted);
        let sent = server.requests().len();
        let error = client.resume(&open[0], fast()).await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::OutcomeUnknown {
                    accepted: false,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.project_id().map(|p| p.as_str()), Some("p1"));
        assert_eq!(server.requests().len(), sent, "never polled");
        assert_eq!(db.states(), ["sent p1 unknown"]);

        // The same follow-up once the server accepted it: polled, and settled.
        drop(
            client_of(&server, &db)
                .follow_up("p1", "Add a dark mode")
                .await
                .unwrap(),
        );
        let open = wait_unfinished(&client, 1).await;
        assert!(open[0].accepted);
        let gets = server.requests().len();
        let outcome = client.resume(&open[0], fast()).await.unwrap();
        assert!(server.requests().len() > gets, "polled");
        assert_eq!(outcome.project_id().map(|p| p.as_str()), Some("p1"));
    }
}

#[tokio::test]
async fn of_resumers_of_one_entry_exactly_one_proceeds_and_the_others_are_told_it_is_taken() {
    for db in Db::all("resume::concurrent") {
        let server = MockServer::start();
        dropped_after_the_project(&client_of(&server, &db)).await;
        // Four instances (hosts), each resuming the entry at once.
        let clients: Vec<Client> = (0..4).map(|_| client_of(&server, &db)).collect();
        let open = wait_unfinished(&clients[0], 1).await;
        let entry = open[0].clone();
        let results = common::bounded(futures::future::join_all(
            clients.iter().map(|client| client.resume(&entry, fast())),
        ))
        .await;
        let (proceeded, taken): (Vec<_>, Vec<_>) = results.iter().partition(|r| r.is_ok());
        assert_eq!(proceeded.len(), 1, "{db:?}: {results:?}");
        assert_eq!(taken.len(), 3);
        for result in taken {
            let error = result.as_ref().unwrap_err();
            let Error::EntryTaken { local_id, .. } = error else {
                panic!("{error:?}");
            };
            assert_eq!(local_id, &entry.local_id);
            assert!(!error.may_have_started_work());
        }
        assert_eq!(
            db.states(),
            ["accepted p1 succeeded https://p1.laracopilot.com"]
        );
        assert_eq!(posts(&server), 1);
    }
}

#[tokio::test]
async fn an_outcome_nobody_reported_is_not_recorded() {
    for db in Db::all("resume::reported") {
        let server = MockServer::start();
        dropped_after_the_project(&client_of(&server, &db)).await;
        let client = client_of(&server, &db);
        let open = wait_unfinished(&client, 1).await;
        let mut reported = None;
        let outcome = client
            .resume_reported(&open[0], fast(), |result| {
                reported = Some(result.as_ref().map(|o| o.app_url.clone()).ok());
                // The report could not be made (its output pipe closed, say).
                false
            })
            .await
            .unwrap();
        assert_eq!(reported, Some(Some(Some(APP_URL.to_owned()))));
        assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
        assert_eq!(db.states(), ["accepted p1"], "nothing recorded");
        // Left for the next resume, which reports it and records it.
        let open = wait_unfinished(&client, 1).await;
        let outcome = client
            .resume_reported(&open[0], fast(), |result| result.is_ok())
            .await
            .unwrap();
        assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
        assert_eq!(
            db.states(),
            ["accepted p1 succeeded https://p1.laracopilot.com"]
        );
        assert!(client.unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn unfinished_and_resume_need_a_journal() {
    let server = MockServer::start();
    let client = server.client();
    assert!(matches!(
        client.unfinished().await,
        Err(Error::Config { .. })
    ));
    // An entry from another client's journal.
    let db = Db::memory();
    dropped_after_the_project(&client_of(&server, &db)).await;
    let entry = wait_unfinished(&client_of(&server, &db), 1).await.remove(0);
    assert!(matches!(
        client.resume(&entry, fast()).await,
        Err(Error::Config { .. })
    ));
}
