//! A generation's records, on every engine and whichever way it is consumed: true,
//! in order, and durable before the caller sees what caused them.

use super::*;

use std::time::SystemTime;

#[test]
fn a_successful_generation_is_recorded_in_order_whichever_way_it_is_consumed() {
    for &mode in MODES {
        for db in Db::all("records::a_successful_generation") {
            let rig = Rig::new(db, Story::Success, |b| b);
            let outcome =
                run(&rig, mode, false).unwrap_or_else(|e| panic!("{:?} {mode:?}: {e:?}", rig.db));
            if let Some(outcome) = &outcome {
                assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
                assert_eq!(outcome.stats().journal_failures, 0);
            }
            assert_recorded_in_order(
                &rig,
                false,
                "stream_end",
                "accepted p1 succeeded https://p1.laracopilot.com",
            );
            let open = runtime().block_on(rig.client.unfinished()).unwrap();
            assert!(open.is_empty(), "{:?} {mode:?}: {open:?}", rig.db);
        }
    }
}

#[test]
fn a_follow_up_is_recorded_with_its_project_from_the_intent_on() {
    for &mode in MODES {
        for db in Db::all("records::a_follow_up") {
            let rig = Rig::new(db, Story::Success, |b| b);
            run(&rig, mode, true).unwrap_or_else(|e| panic!("{:?} {mode:?}: {e:?}", rig.db));
            assert_recorded_in_order(
                &rig,
                true,
                "stream_end",
                "accepted p1 succeeded https://p1.laracopilot.com",
            );
            assert_eq!(rig.db.rows()[0].kind, "follow_up");
        }
    }
}

#[test]
fn credits_exhausted_is_settled_before_the_caller_sees_it_and_never_recovered() {
    for &mode in MODES {
        for db in Db::all("records::credits_exhausted") {
            let rig = Rig::new(db, Story::Credits, |b| b);
            let error = run(&rig, mode, false).unwrap_err();
            assert!(
                matches!(error, Error::CreditsExhausted { locally: false, .. }),
                "{:?} {mode:?}: {error:?}",
                rig.db
            );
            assert_recorded_in_order(
                &rig,
                false,
                "error:credits_exhausted",
                "accepted p1 failed credits_exhausted true",
            );
            assert_eq!(rig.server.count("GET"), 0, "an answer is not polled");
        }
    }
}

#[test]
fn a_broken_stream_is_left_unfinished_with_its_project_for_resuming() {
    // Before the journal's engines, a broken stream was settled as failed; it is
    // left unsettled now (the project may still finish), and unfinished once its
    // stream is gone.
    for (story, kind) in [
        (Story::DropAfter, "incomplete"),
        (Story::DropMidEvent, "transport"),
    ] {
        for &mode in MODES.iter().filter(|&&m| m != Mode::Recover) {
            for db in Db::all("records::a_broken_stream") {
                let rig = Rig::new(db, story, |b| b);
                let error = run(&rig, mode, false).unwrap_err();
                assert_eq!(error.kind(), kind, "{:?} {mode:?}: {error:?}", rig.db);
                assert_eq!(error.project_id().map(|p| p.as_str()), Some("p1"));
                assert!(error.may_have_started_work());
                assert_recorded_in_order(&rig, false, &format!("error:{kind}"), "accepted p1");
                let rt = runtime();
                let open = rt.block_on(wait_unfinished(&rig.client, 1));
                assert_eq!(open.len(), 1, "{open:?}");
                assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
                assert!(open[0].accepted && open[0].settlement.is_none());
                assert_eq!(rig.server.count("GET"), 0, "nothing polled");
            }
        }
    }
}

#[test]
fn finish_or_recover_settles_a_broken_stream_with_what_its_poll_proves() {
    // (what the status endpoint says of p1, the caller's last moment, the entry's
    // final state)
    let cases = [
        (
            "ready",
            "end",
            "accepted p1 succeeded https://p1.laracopilot.com",
        ),
        (
            "failed",
            "error:generation_failed",
            "accepted p1 failed generation_failed true",
        ),
        // A proxy's page proves nothing: the entry stays for resuming.
        ("proxy-404", "error:api", "accepted p1"),
    ];
    for story in [Story::DropAfter, Story::DropMidEvent] {
        for (status, terminal, last) in cases {
            for db in Db::all("records::finish_or_recover") {
                let rig = Rig::new(db, story, |b| b);
                *rig.status.lock().unwrap() = status;
                let result = run(&rig, Mode::Recover, false);
                let context = format!("{:?} {story:?} {status}: {result:?}", rig.db);
                match status {
                    "ready" => {
                        let outcome = result.unwrap().unwrap();
                        assert_eq!(outcome.recovered.as_ref().unwrap().project_id, "p1");
                        assert_eq!(outcome.app_url.as_deref(), Some(APP_URL));
                        assert_eq!(outcome.progress.phase(), laracopilot::Phase::Recovered);
                        assert_eq!(outcome.stats().journal_failures, 0);
                    }
                    "failed" => {
                        assert!(
                            matches!(result, Err(Error::GenerationFailed { .. })),
                            "{context}"
                        );
                    }
                    _ => {
                        let error = result.unwrap_err();
                        assert_eq!(error.status(), Some(404), "{context}");
                    }
                }
                assert_recorded_in_order(&rig, false, terminal, last);
                assert!(rig.server.count("GET") >= 1, "{context}");
                let rt = runtime();
                let open = match status {
                    "proxy-404" => rt.block_on(wait_unfinished(&rig.client, 1)),
                    _ => rt.block_on(rig.client.unfinished()).unwrap(),
                };
                assert_eq!(open.len(), usize::from(status == "proxy-404"), "{context}");
            }
        }
    }
}

#[test]
fn a_generation_dropped_halfway_is_left_unfinished_with_its_project() {
    for db in Db::all("records::a_generation_dropped_halfway") {
        let rig = Rig::new(db, Story::Success, |b| b);
        let rt = runtime();
        let entry_id = rt.block_on(async {
            let mut generation = rig
                .client
                .generate("Build a task management app")
                .label("tenant", "acme")
                .await
                .unwrap();
            for _ in 0..2 {
                let item = common::bounded(generation.next()).await.unwrap();
                rig.note(seen(&item));
            }
            let id = generation.progress().journal_id().cloned().unwrap();
            drop(generation);
            id
        });
        let open = rt.block_on(wait_unfinished(&rig.client, 1));
        // Nothing settled it: the stream's end was never read.
        assert_eq!(rig.db.states(), ["accepted p1"], "{:?}", rig.db);
        assert_eq!(open.len(), 1, "{open:?}");
        let entry = &open[0];
        assert_eq!(entry.local_id, entry_id);
        assert_eq!(entry.kind, laracopilot::journal::Kind::Generate);
        assert_eq!(entry.project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert_eq!(entry.prompt, "Build a task management app");
        assert_eq!(entry.scope, "default");
        assert_eq!(entry.labels, [("tenant".to_owned(), "acme".to_owned())]);
        assert!(entry.accepted && entry.settlement.is_none());
        assert!(
            entry.token.starts_with("****") && entry.token.len() == 8,
            "{}",
            entry.token
        );
        assert!(!entry.token.contains(&common::TOKEN[..12]));
        let age = SystemTime::now()
            .duration_since(entry.start_time)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(600), "{age:?}");
    }
}

#[cfg(feature = "blocking")]
#[test]
fn a_blocking_generation_dropped_halfway_is_left_unfinished_too() {
    for db in Db::all("records::a_blocking_generation_dropped_halfway") {
        let rig = Rig::new(db, Story::Success, |b| b);
        let client = laracopilot::blocking::Client::from_async(rig.client.clone()).unwrap();
        let mut generation = client
            .generate("Build a task management app")
            .send()
            .unwrap();
        let seen: Vec<String> = generation.by_ref().take(2).map(|i| seen(&i)).collect();
        assert_eq!(seen, ["project_created", "container_progress"]);
        drop(generation);
        let open = runtime().block_on(wait_unfinished(&rig.client, 1));
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert_eq!(rig.db.states(), ["accepted p1"]);
    }
}
