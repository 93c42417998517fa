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

/// Set in the child of [`a_journal_on_a_disk_that_fills_up_refuses_calls_and_still_opens_whole`]:
/// the journal's path.
#[cfg(all(unix, feature = "sqlite"))]
const SHORT_DISK: &str = "LARACOPILOT_JOURNAL_TEST_SHORT_DISK";

/// The child side (a no-op in a normal run): under a file size limit (`ulimit -f`,
/// with SIGXFSZ ignored, so that a write past it fails with EFBIG), generates with
/// an SQLite journal until the journal cannot record an intent.
#[cfg(all(unix, feature = "sqlite"))]
#[test]
fn child_journals_on_a_disk_that_fills_up() {
    let Ok(path) = std::env::var(SHORT_DISK) else {
        return;
    };
    let server = laracopilot_mock::MockServer::start();
    let client = server
        .client_builder()
        .journal(laracopilot::journal::SqliteJournal::open(&path).unwrap())
        .build()
        .unwrap();
    let rt = runtime();
    let mut refused = None;
    for _ in 0..10_000 {
        let sent = common::mock::posts(&server);
        match rt.block_on(client.generate(common::mock::PROMPT).send()) {
            Ok(generation) => drop(rt.block_on(generation.finish())),
            Err(error) => {
                assert_eq!(common::mock::posts(&server), sent, "sent: {error:?}");
                refused = Some(error);
                break;
            }
        }
    }
    let error = refused.expect("the disk filled up");
    assert!(matches!(error, Error::Journal { .. }), "{error:?}");
    assert!(!error.may_have_started_work());
    println!(
        "short disk: refused after {} calls",
        common::mock::posts(&server)
    );
}

#[cfg(all(unix, feature = "sqlite"))]
#[test]
fn a_journal_on_a_disk_that_fills_up_refuses_calls_and_still_opens_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("laracopilot.db");
    let exe = std::env::current_exe().unwrap();
    // 256 blocks of 512 bytes: room for the journal and a few calls.
    let script = "trap '' XFSZ; ulimit -f 256 && exec \"$0\" --exact journal::failing_writes::child_journals_on_a_disk_that_fills_up --nocapture --test-threads=1";
    let Ok(mut child) = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .arg(&exe)
        .env(SHORT_DISK, &path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), b"skipping: no /bin/sh\n");
        return;
    };
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let calls: usize = text
        .split("short disk: refused after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(calls >= 1, "{text}");
    // Without the limit, the journal opens whole: every call that was sent is in
    // it, the refused one is not.
    let journal = laracopilot::journal::SqliteJournal::open(&path).unwrap();
    let client = laracopilot::Client::builder()
        .token(common::token())
        .base_url("http://127.0.0.1:9/api/v1")
        .journal(journal)
        .build()
        .unwrap();
    runtime().block_on(client.unfinished()).unwrap();
    let connection = rusqlite::Connection::open(&path).unwrap();
    let check: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let entries: i64 = connection
        .query_row("SELECT count(*) FROM entries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(usize::try_from(entries).unwrap(), calls, "{text}");
}
