//! Journals that fail to write: an intent that cannot be recorded stops the call
//! before sending; a later write that fails (a full disk, a lost database, or a
//! write fenced out by another instance) does not break the stream, is counted in
//! `Stats::journal_failures`, and leaves the entry for resuming.
//!
//! SQLite and PostgreSQL fail a chosen kind of write through a trigger that raises
//! (see `common::journal`); memory cannot fail a write, and is fenced out instead.

use super::*;

use common::journal::Write;
use laracopilot::journal::JournalOptions;

#[tokio::test]
async fn a_journal_that_cannot_record_the_intent_stops_the_call_before_sending() {
    for db in Db::failing("failing_writes::the_intent") {
        let server = RawServer::start(|_| stream(false, Story::Success));
        let client = raw::builder(&server.base_url())
            .max_concurrent_generations(1)
            .journal(db.open())
            .build()
            .unwrap();
        assert!(db.fail(Write::Intent));
        for _ in 0..3 {
            let error = failed(client.generate("Build a task management app").await);
            let Error::Journal { message, .. } = &error else {
                panic!("{db:?}: {error:?}");
            };
            assert!(message.contains("journal"), "{message}");
            assert!(!error.may_have_started_work());
            assert_eq!(error.attempts(), 0);
        }
        // Its slot was never taken: the cap of one did not block.
        let error = failed(client.follow_up("p1", "Add a dark mode").await);
        assert!(matches!(error, Error::Journal { .. }), "{error:?}");
        assert_eq!(server.requests().len(), 0, "nothing was sent");
        assert!(db.rows().is_empty(), "{db:?}");
        assert!(client.unfinished().await.unwrap().is_empty());
        // Once the journal can write again, so can the client.
        db.heal();
        let outcome = common::bounded(async {
            client
                .generate("Build a task management app")
                .await?
                .finish()
                .await
        })
        .await
        .unwrap();
        assert_eq!(outcome.stats().journal_failures, 0);
        assert_eq!(
            db.states(),
            ["accepted p1 succeeded https://p1.laracopilot.com"]
        );
    }
}

#[tokio::test]
async fn a_write_that_fails_is_counted_and_the_stream_goes_on() {
    // (the write that fails, the entry's final state)
    let cases = [
        (
            Write::Accepted,
            "sent p1 succeeded https://p1.laracopilot.com",
        ),
        (
            Write::ProjectKnown,
            "accepted succeeded https://p1.laracopilot.com",
        ),
        (Write::Settle, "accepted p1"),
    ];
    for (write, last) in cases {
        for db in Db::failing("failing_writes::counted") {
            let server = RawServer::start(|_| stream(false, Story::Success));
            let client = raw::builder(&server.base_url())
                .journal(db.open())
                .build()
                .unwrap();
            assert!(db.fail(write));
            let generation = common::bounded(client.generate("Build a task management app"))
                .await
                .unwrap();
            // The acceptance is written before the stream is handed back.
            let before = generation.stats().journal_failures;
            assert_eq!(
                before,
                u32::from(write == Write::Accepted),
                "{db:?} {write:?}"
            );
            let outcome = common::bounded(generation.finish()).await.unwrap();
            assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
            assert_eq!(outcome.stats().journal_failures, 1, "{db:?} {write:?}");
            assert_eq!(db.states(), [last], "{db:?} {write:?}");
            db.heal();
            // Not settled: unfinished at once (its stream is over), for resuming.
            let open = client.unfinished().await.unwrap();
            assert_eq!(open.len(), usize::from(write == Write::Settle), "{open:?}");
        }
    }
}

#[tokio::test]
async fn a_settlement_that_cannot_be_written_frees_the_slot_and_leaves_the_entry_to_resume() {
    for db in Db::failing("failing_writes::settlement") {
        let server = RawServer::start(|request| {
            if request.method == "GET" {
                return vec![Step::Write(raw::project_answer("p1", "ready")), Step::Close];
            }
            stream(false, Story::Success)
        });
        let client = raw::builder(&server.base_url())
            .max_concurrent_generations(1)
            .stream_deadline(Some(Duration::from_secs(10)))
            .journal(db.open())
            .build()
            .unwrap();
        assert!(db.fail(Write::Settle));
        let outcome = common::finish(&client, "Build a task management app")
            .await
            .unwrap();
        assert_eq!(outcome.stats().journal_failures, 1);
        db.heal();
        // The slot is free: a second call gets it (held, it would wait until its
        // deadline and fail).
        common::finish(&client, "Build a blog").await.unwrap();
        // The first entry is unfinished while its client lives, and resumes.
        let open = client.unfinished().await.unwrap();
        assert_eq!(open.len(), 1, "{db:?}: {open:?}");
        let outcome = client.resume(&open[0], fast()).await.unwrap();
        assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
        assert_eq!(
            db.states(),
            [
                "accepted p1 succeeded https://p1.laracopilot.com",
                "accepted p1 succeeded https://p1.laracopilot.com"
            ]
        );
    }
}

#[test]
fn a_write_fenced_out_by_another_instance_is_counted_and_changes_nothing() {
    // Every engine: an instance whose lease another open under its name ended (it
    // froze, say) finds its entry claimed by a resumer, and its later writes about
    // that entry are refused.
    for db in Db::all("failing_writes::fenced") {
        let rig = Rig::new(db, Story::Success, |b| b);
        let host = JournalOptions::new().instance("host-a");
        let stale = raw::builder(&rig.server.base_url())
            .journal(rig.db.open_with(host.clone()))
            .build()
            .unwrap();
        let rt = runtime();
        let outcome = rt.block_on(async {
            let mut generation = stale.generate("Build a task management app").await.unwrap();
            let first = common::bounded(generation.next()).await.unwrap().unwrap();
            assert!(matches!(first, Event::ProjectCreated(_)), "{first:?}");
            // The same instance opens again: the first open's lease is over, and its
            // entry unfinished; another client resumes it to its end.
            let resumer = raw::builder(&rig.server.base_url())
                .journal(rig.db.open_with(host.clone()))
                .build()
                .unwrap();
            let open = wait_unfinished(&resumer, 1).await;
            resumer.resume(&open[0], fast()).await.unwrap();
            common::bounded(generation.finish()).await.unwrap()
        });
        // The stale stream's settlement was refused, and counted.
        assert_eq!(outcome.stats().journal_failures, 1, "{:?}", rig.db);
        assert_eq!(
            rig.db.states(),
            ["accepted p1 succeeded https://p1.laracopilot.com"]
        );
    }
}
