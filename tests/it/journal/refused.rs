//! Calls refused at sending are settled as failed without work started; calls that
//! may have started work and got no answer are left unfinished; calls refused
//! before sending leave no record at all.

use super::*;

use laracopilot::TimeoutKind;
use laracopilot_mock::{Fault, MockServer, Reply};

/// A client of `server` (adjusted by `adjust`) over a journal of `db`, without
/// retries.
fn client_of(
    server: &MockServer,
    db: &Db,
    adjust: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Client {
    adjust(
        server
            .client_builder()
            .retry_policy(laracopilot::RetryPolicy::none()),
    )
    .journal(db.open())
    .build()
    .unwrap()
}

/// A call refused by the server is settled as failed, without work started, before
/// its error reaches the caller: the journal's word for "sent, and answered no".
#[tokio::test]
async fn a_call_the_server_refuses_is_settled_as_failed_without_work_started() {
    for db in Db::all("refused::a_call_the_server_refuses") {
        // 422: the prompt is too short.
        let server = MockServer::start();
        let client = client_of(&server, &db, |b| b);
        let error = failed(client.generate("short").await);
        assert!(matches!(error, Error::Validation { .. }), "{error:?}");
        assert!(!error.may_have_started_work());
        assert_eq!(db.states(), ["sent failed validation false"], "{db:?}");
        assert!(client.unfinished().await.unwrap().is_empty());

        // 401: a revoked token.
        let server = MockServer::builder()
            .token("lcp_mock_revoked_journal_token")
            .start()
            .unwrap();
        server.revoke("lcp_mock_revoked_journal_token");
        let client = client_of(&server, &db, |b| b);
        let error = failed(client.generate(common::mock::PROMPT).await);
        assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
        assert_eq!(db.states()[1], "sent failed unauthorized false");

        // 429, not retried.
        let server = MockServer::start();
        let client = client_of(&server, &db, |b| b);
        server.reply_next(1, Reply::rate_limited(Some(30)));
        let error = failed(client.generate(common::mock::PROMPT).await);
        assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
        assert_eq!(db.states()[2], "sent failed rate_limited false");

        // 404: a follow-up on a project the API does not know.
        let error = failed(client.follow_up("p404", "Add a dark mode").await);
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        assert_eq!(db.states()[3], "sent p404 failed not_found false");

        // A refused connection.
        let port = common::raw::closed_port();
        let refused = laracopilot::Client::builder()
            .token(common::token())
            .base_url(format!("http://127.0.0.1:{port}/api/v1"))
            .retry_policy(laracopilot::RetryPolicy::none())
            .journal(db.open())
            .build()
            .unwrap();
        let error = failed(refused.generate(common::mock::PROMPT).await);
        assert_eq!(error.kind(), "transport", "{error:?}");
        assert!(!error.may_have_started_work(), "{error:?}");
        assert_eq!(db.states()[4], "sent failed transport false");
        assert!(client.unfinished().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_call_sent_without_an_answer_in_time_is_left_unfinished() {
    // It may have started work: before the journal's engines it was settled as a
    // failed timeout; it is left for resuming now, which can tell only what a
    // project id proves.
    for db in Db::all("refused::a_call_sent_without_an_answer") {
        let server = MockServer::start();
        let client = client_of(&server, &db, |b| {
            b.idle_timeout(Some(Duration::from_millis(300)))
        });
        // The server has the POST, and answers long after the test ends.
        server.fault_next(Fault::DelayHeaders(Duration::from_secs(60)));
        let error = failed(client.generate(common::mock::PROMPT).await);
        assert!(
            matches!(
                error,
                Error::Timeout {
                    kind: TimeoutKind::Idle,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.may_have_started_work(), "{error:?}");
        assert_eq!(db.states(), ["sent"], "{db:?}");
        let open = wait_unfinished(&client, 1).await;
        assert_eq!(open[0].project_id, None);
        assert!(!open[0].accepted);
        assert_eq!(
            error.journal_id().map(|id| id.as_str()),
            Some(open[0].local_id.as_str())
        );
    }
}

#[tokio::test]
async fn a_call_refused_before_sending_leaves_no_record() {
    for db in Db::all("refused::a_call_refused_before_sending") {
        // The credits breaker: open after a credits_exhausted.
        let server = MockServer::builder().credits(1).start().unwrap();
        let client = client_of(&server, &db, |b| b);
        let error = common::finish(&client, common::mock::PROMPT)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::CreditsExhausted { .. }), "{error:?}");
        let rows = db.rows().len();
        let error = failed(client.generate(common::mock::PROMPT).await);
        assert!(
            matches!(error, Error::CreditsExhausted { locally: true, .. }),
            "{error:?}"
        );
        assert_eq!(db.rows().len(), rows, "no record for a call never sent");

        // A bad project id.
        let server = MockServer::start();
        let client = client_of(&server, &db, |b| b);
        let error = failed(client.follow_up("../etc", "Add a dark mode").await);
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
        assert_eq!(db.rows().len(), rows);

        // No free slot before the deadline: the first call holds the only one (in
        // a scope of its own: the breaker above is open for the default one).
        let client = client_of(&server, &db, |b| {
            b.scope("slots")
                .max_concurrent_generations(1)
                .stream_deadline(Some(Duration::from_secs(1)))
        });
        let first = client.generate(common::mock::PROMPT).await.unwrap();
        let error = failed(client.generate(common::mock::PROMPT).await);
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
        assert_eq!(error.attempts(), 0, "nothing was sent");
        assert_eq!(db.rows().len(), rows + 1, "only the first call");
        assert_eq!(common::mock::posts(&server), 1);
        drop(first);
    }
}
