//! The spend guards live in the journal's database: two instances of one database
//! (two clients in one process with memory, two opens of one SQLite file, two
//! connections to one PostgreSQL schema: two hosts) share the concurrency cap of a
//! scope, its credits breaker (seen by the other's next admission) and its budgets;
//! a call they refuse sends nothing and records nothing.

use super::*;

use std::time::SystemTime;

use common::mock::{posts, PROMPT};
use laracopilot::{Budget, TimeoutKind};
use laracopilot_mock::MockServer;

/// A client of `server` over a new instance of `db`'s journal, in `scope`, adjusted
/// by `adjust`.
fn host(
    server: &MockServer,
    db: &Db,
    scope: &str,
    adjust: impl FnOnce(ClientBuilder) -> ClientBuilder,
) -> Client {
    adjust(
        server
            .client_builder()
            .retry_policy(laracopilot::RetryPolicy::none())
            .scope(scope),
    )
    .journal(db.open())
    .build()
    .unwrap()
}

#[tokio::test]
async fn the_concurrency_cap_of_a_scope_is_shared_by_every_instance() {
    for db in Db::all("guards::cap") {
        let server = MockServer::start();
        let capped = |b: ClientBuilder| b.max_concurrent_generations(1);
        let a = host(&server, &db, "acme", capped);
        let b = host(&server, &db, "acme", |b| {
            capped(b).stream_deadline(Some(Duration::from_secs(1)))
        });
        let running = a.generate(PROMPT).await.unwrap();
        // The other host finds the scope's only slot taken: it waits until its
        // deadline, and sends nothing.
        let error = failed(b.generate(PROMPT).await);
        assert!(
            matches!(
                error,
                Error::Timeout {
                    kind: TimeoutKind::Deadline,
                    ..
                }
            ),
            "{db:?}: {error:?}"
        );
        assert_eq!(error.attempts(), 0);
        assert!(!error.may_have_started_work());
        assert_eq!(posts(&server), 1);
        assert_eq!(db.rows().len(), 1, "the refused call is not recorded");
        // Another scope has slots of its own.
        let other = host(&server, &db, "globex", capped);
        common::finish_ok(&other, PROMPT).await;
        // A waiting call gets the slot once the running stream is gone.
        let b = host(&server, &db, "acme", |b| {
            capped(b).stream_deadline(Some(Duration::from_secs(60)))
        });
        let waiting = tokio::spawn(async move { common::finish(&b, PROMPT).await });
        drop(running);
        let outcome = common::bounded(waiting).await.unwrap().unwrap();
        assert_eq!(outcome.stats().attempts, 1);
        assert_eq!(posts(&server), 3);
    }
}

#[tokio::test]
async fn the_credits_breaker_of_a_scope_is_seen_by_every_instance_at_its_next_admission() {
    for db in Db::all("guards::breaker") {
        let server = MockServer::builder().credits(1).start().unwrap();
        let a = host(&server, &db, "acme", |b| b);
        // A host that has not refused anything yet, and asks the database at every
        // admission.
        let b = host(&server, &db, "acme", |b| {
            b.breaker_check_interval(Duration::from_millis(1))
        });
        let error = common::finish(&a, PROMPT).await.unwrap_err();
        assert!(
            matches!(error, Error::CreditsExhausted { locally: false, .. }),
            "{error:?}"
        );
        let (sent, rows) = (server.requests().len(), db.rows().len());
        let error = failed(b.follow_up("p1", "Add a dark mode").await);
        let Error::CreditsExhausted {
            locally: true,
            until: Some(until),
            ..
        } = &error
        else {
            panic!("{db:?}: {error:?}");
        };
        assert!(*until > SystemTime::now(), "open for its cooldown");
        assert!(!error.may_have_started_work());
        assert_eq!(server.requests().len(), sent, "nothing sent");
        assert_eq!(db.rows().len(), rows, "nothing recorded");
        // Another scope's breaker is closed.
        server.set_credits(1_000);
        common::finish_ok(&host(&server, &db, "globex", |b| b), PROMPT).await;
        // A reset by one host reaches the other at its next admission.
        a.reset_credits_breaker().await.unwrap();
        common::finish_ok(&b, PROMPT).await;
    }
}

#[tokio::test]
async fn a_budget_of_a_scope_is_counted_over_every_instance_and_refuses_without_sending() {
    for db in Db::all("guards::budget") {
        let server = MockServer::start();
        let budget = Budget::per_hour(2);
        let a = host(&server, &db, "acme", |b| b.budget(budget));
        let b = host(&server, &db, "acme", |b| b.budget(budget));
        common::finish_ok(&a, PROMPT).await;
        common::finish_ok(&b, PROMPT).await;
        let rows = db.rows().len();
        let asked = SystemTime::now();
        let error = failed(a.generate(PROMPT).await);
        let Error::BudgetExhausted {
            budget: refused,
            scope,
            reset_time,
            ..
        } = &error
        else {
            panic!("{db:?}: {error:?}");
        };
        assert_eq!(*refused, budget);
        assert_eq!(scope, "acme");
        // The current hour's window ends within the hour.
        assert!(*reset_time > asked, "{reset_time:?}");
        assert!(
            *reset_time <= asked + Duration::from_secs(3600),
            "{reset_time:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("2/hour") && text.contains("\"acme\"") && text.contains("resets in"),
            "{text}"
        );
        assert!(!error.may_have_started_work());
        assert_eq!(error.attempts(), 0);
        assert_eq!(posts(&server), 2, "nothing sent");
        assert_eq!(db.rows().len(), rows, "nothing recorded");
        // The other host is over the budget too; another scope is not.
        assert!(matches!(
            b.follow_up("p1", "Add a dark mode").await,
            Err(Error::BudgetExhausted { .. })
        ));
        common::finish_ok(&host(&server, &db, "globex", |b| b.budget(budget)), PROMPT).await;
        assert_eq!(posts(&server), 3);
    }
}

#[tokio::test]
async fn a_budget_needs_a_journal() {
    let server = MockServer::start();
    let client = server.client_builder().budget(Budget::per_day(5)).build();
    match client {
        Err(Error::Config { message, .. }) => assert!(message.contains("journal"), "{message}"),
        Ok(client) => {
            let error = failed(client.generate(PROMPT).await);
            assert!(matches!(error, Error::Config { .. }), "{error:?}");
            assert!(server.requests().is_empty());
        }
        Err(other) => panic!("{other:?}"),
    }
}
