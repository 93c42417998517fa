//! `resume` in each situation: a project that succeeded, failed, is unknown, does
//! not settle in time, or was never named.

use super::*;
use laracopilot_mock::OnClientDrop;

/// A rig whose journal lost the `Settled` of one successful generation of `p1` (the
/// process stopped right before writing it).
fn lost_settlement(store: Store) -> Rig {
    let rig = Rig::new(
        MockServer::start(),
        store,
        |b| b,
        Some(|r| matches!(r, Record::Settled { .. })),
    );
    run(&rig, Mode::Finish, PROMPT).unwrap();
    rig
}

#[test]
fn resume_settles_a_project_that_succeeded_without_sending_a_generate_call() {
    for &store in &STORES {
        let rig = lost_settlement(store);
        let rt = runtime();
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        assert_eq!(open.len(), 1);
        let before = posts(&rig.server);
        let outcome = rt.block_on(client.resume(&open[0], fast())).unwrap();
        assert_eq!(posts(&rig.server), before, "resume never POSTs");
        assert_eq!(outcome.project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert_eq!(
            outcome.app_url.as_deref(),
            Some("https://p1.laracopilot.com")
        );
        assert_eq!(
            outcome.recovered.unwrap().project_status.as_deref(),
            Some("ready")
        );
        assert_eq!(
            rig.log.written().last().map(String::as_str),
            Some("settled p1 succeeded https://p1.laracopilot.com")
        );
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
        drop(client);
        assert!(rt.block_on(rig.unfinished()).is_empty());
    }
}

#[test]
fn resume_reports_and_records_a_project_that_failed() {
    for &store in &STORES {
        let server = MockServer::builder()
            .on_client_drop(OnClientDrop::Fail)
            .start()
            .unwrap();
        let rig = Rig::new(server, store, |b| b, None);
        // Held after the first events (for longer than any test runs), so that the
        // rest is not already on its way when the caller leaves, however late.
        rig.server
            .fault_next(Fault::DelayBefore(2, Duration::from_secs(60)));
        let rt = runtime();
        rt.block_on(async {
            let mut generation = rig.client.generate(PROMPT).await.unwrap();
            generation.next().await.unwrap().unwrap();
        });
        // This server marks a stream its client left as failed.
        assert!(rt.block_on(eventually(|| {
            rig.server
                .project("p1")
                .is_some_and(|p| p.status == ProjectStatus::Failed)
        })));
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        let error = rt.block_on(client.resume(&open[0], fast())).unwrap_err();
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert_eq!(
            rig.log.written().last().map(String::as_str),
            Some("settled p1 failed generation_failed true")
        );
        assert_eq!(posts(&rig.server), 1);
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
    }
}

#[test]
fn resume_records_an_unknown_project_as_failed_after_it_may_have_started_work() {
    // A journal written against another server (or a project since deleted).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    std::fs::write(
        &path,
        concat!(
            r#"{"v":1,"record":"started","local_id":"lcj-a","kind":"generate","project_id":null,"prompt":"Build a task management app","at":1764618266123,"token":"****9f8e"}"#,
            "\n",
            r#"{"v":1,"record":"project_known","local_id":"lcj-a","project_id":"elsewhere1","at":1764618268001}"#,
            "\n",
            r#"{"v":1,"record":"started","local_id":"lcj-b","kind":"follow_up","project_id":"elsewhere2","prompt":"Add a dark mode","at":1764618269000,"token":"****9f8e"}"#,
            "\n",
        ),
    )
    .unwrap();
    let server = MockServer::start();
    let client = server
        .client_builder()
        .journal(FileJournal::open(&path).unwrap())
        .build()
        .unwrap();
    let rt = runtime();
    let open = rt.block_on(client.unfinished()).unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].kind, Kind::Generate);
    assert_eq!(open[1].kind, Kind::FollowUp);
    for entry in &open {
        let error = rt.block_on(client.resume(entry, fast())).unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    }
    assert!(server.requests().iter().all(|r| r.method == "GET"));
    drop(client);
    let (lines, _) = file_lines(&path, false);
    for line in &lines[3..] {
        assert_eq!(line["record"], "settled");
        assert_eq!(line["outcome"], "failed");
        assert_eq!(line["error"], "not_found");
        assert_eq!(line["may_have_started_work"], true, "{line}");
    }
    assert_eq!(lines.len(), 5);
}

#[test]
fn resume_that_times_out_leaves_the_entry_unfinished_to_try_again() {
    for &store in &STORES {
        let rig = lost_settlement(store);
        // Another generation on p1 runs (and hangs): the project is generating.
        let rt = runtime();
        rig.server.fault_next(Fault::StallBefore(1));
        let other = rt
            .block_on(
                rig.server
                    .client()
                    .follow_up("p1", "Add a dark mode to every page"),
            )
            .unwrap();
        assert_eq!(
            rig.server.project("p1").unwrap().status,
            ProjectStatus::Generating
        );
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        let records = rig.log.written().len();
        let error = rt
            .block_on(client.resume(&open[0], fast().timeout(Duration::from_millis(400))))
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
        assert_eq!(rig.log.written().len(), records, "nothing recorded");
        assert_eq!(rt.block_on(client.unfinished()).unwrap().len(), 1);
        // Once the other stream is gone the project settles, and so does the entry.
        drop(other);
        let error = rt.block_on(client.resume(&open[0], fast())).unwrap_err();
        assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
    }
}

#[test]
fn resume_without_a_project_id_reports_the_outcome_unknown_and_sends_nothing() {
    for &store in &STORES {
        // The caller gave up while the server had the POST and had not answered
        // (it never answers before the test ends): once the server has it.
        let rig = Rig::plain(store);
        rig.server
            .fault_next(Fault::DelayHeaders(Duration::from_secs(60)));
        let rt = runtime();
        let arrived = rig.server.requests_received(1);
        let gave_up = rt.block_on(async {
            tokio::select! {
                answered = rig.client.generate(PROMPT) => Err(answered),
                () = common::bounded(arrived) => Ok(()),
            }
        });
        assert!(gave_up.is_ok(), "{gave_up:?}");
        assert_eq!(posts(&rig.server), 1);
        let client = rig.restarted();
        let open = rt.block_on(client.unfinished()).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id, None);
        let sent = rig.server.requests().len();
        let error = rt.block_on(client.resume(&open[0], fast())).unwrap_err();
        let Error::OutcomeUnknown { local_id, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(local_id, &open[0].local_id);
        assert!(error.may_have_started_work());
        assert_eq!(rig.server.requests().len(), sent, "nothing sent");
        assert_eq!(
            rig.log.written().last().map(String::as_str),
            Some("settled - unknown")
        );
        assert!(rt.block_on(client.unfinished()).unwrap().is_empty());
    }
}

#[test]
fn unfinished_and_resume_need_a_journal() {
    let server = MockServer::start();
    let client = server.client();
    let rt = runtime();
    assert!(matches!(
        rt.block_on(client.unfinished()),
        Err(Error::Config { .. })
    ));
    // An entry from another client's journal.
    let rig = lost_settlement(Store::Memory);
    let entry = rt.block_on(rig.client.unfinished()).unwrap().remove(0);
    assert!(matches!(
        rt.block_on(client.resume(&entry, fast())),
        Err(Error::Config { .. })
    ));
}
