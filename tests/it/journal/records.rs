//! A generation's records, whichever way it is consumed: true, in order, and
//! written before the caller sees what caused them.

use super::*;

#[test]
fn a_successful_generation_is_recorded_truly_whichever_way_it_is_consumed() {
    for &store in &STORES {
        for &mode in MODES {
            let rig = Rig::plain(store);
            let outcome =
                run(&rig, mode, PROMPT).unwrap_or_else(|e| panic!("{store:?} {mode:?}: {e:?}"));
            if let Some(outcome) = outcome {
                assert_eq!(
                    outcome.app_url.as_deref(),
                    Some("https://p1.laracopilot.com")
                );
            }
            assert_true_records(
                &rig,
                &[
                    "started generate",
                    "project_known p1",
                    "settled p1 succeeded https://p1.laracopilot.com",
                ],
                "stream_end",
            );
            let open = runtime().block_on(rig.unfinished());
            assert!(open.is_empty(), "{store:?} {mode:?}: {open:?}");
        }
    }
}

#[test]
fn a_stream_that_fails_is_settled_with_its_error_before_the_caller_sees_it() {
    // (fault, server credits, the settled record, what the caller sees last)
    let cases: [(Option<Fault>, u64, &str, &str); 3] = [
        (
            None,
            1,
            "settled p1 failed credits_exhausted true",
            "error:credits_exhausted",
        ),
        (
            Some(Fault::DropAfter(5)),
            u64::MAX,
            "settled p1 failed incomplete true",
            "error:incomplete",
        ),
        (
            Some(Fault::DropMidEvent(5)),
            u64::MAX,
            "settled p1 failed transport true",
            "error:transport",
        ),
    ];
    for &store in &STORES {
        for &mode in MODES {
            for (fault, credits, settled, terminal) in &cases {
                let server = MockServer::builder().credits(*credits).start().unwrap();
                if let Some(fault) = fault {
                    server.fault_next(fault.clone());
                }
                let rig = Rig::new(server, store, |b| b, None);
                let error = run(&rig, mode, PROMPT).unwrap_err();
                let mut want = vec!["started generate", "project_known p1", settled];
                let mut terminal = *terminal;
                if mode == Mode::Recover && *credits == u64::MAX {
                    // The stream broke: recovery polled the project, which the
                    // server marked failed, and that is the last word.
                    want.push("settled p1 failed generation_failed true");
                    terminal = "error:generation_failed";
                    assert!(matches!(error, Error::GenerationFailed { .. }), "{error:?}");
                } else {
                    assert_eq!(
                        format!("error:{}", error.kind()),
                        terminal,
                        "{store:?} {mode:?}"
                    );
                }
                assert_true_records(&rig, &want, terminal);
                assert!(runtime().block_on(rig.unfinished()).is_empty());
            }
        }
    }
}

#[test]
fn a_stream_recovered_to_success_is_settled_as_succeeded() {
    // A server that keeps generating after the stream broke: the stream ends early,
    // the status says ready.
    let rt = runtime();
    for &store in &STORES {
        let wiremock = rt.block_on(common::server());
        let created = r#"{"type":"project_created","project_id":"p1","app_url":"https://p1.laracopilot.com"}"#;
        let file = r#"{"type":"file_created","path":"app/Models/Task.php"}"#;
        rt.block_on(common::mount(
            &wiremock,
            "POST",
            "/agent/generate",
            common::sse(common::sse_body(&[created, file])),
        ));
        rt.block_on(common::mount(
            &wiremock,
            "GET",
            "/agent/project/p1",
            common::project_json("p1"),
        ));
        let log = Log::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let memory = Arc::new(MemoryJournal::new());
        let builder = common::builder(&wiremock);
        let builder = match store {
            Store::Memory => builder.journal(Checked::new(Arc::clone(&memory), None, log.clone())),
            Store::File => builder.journal(Checked::new(
                FileJournal::open(&path).unwrap(),
                None,
                log.clone(),
            )),
        };
        let client = builder.build().unwrap();
        let outcome = rt.block_on(async {
            let generation = client.generate(PROMPT).await.unwrap();
            client.finish_or_recover(generation, fast()).await.unwrap()
        });
        assert!(outcome.recovered.is_some());
        assert_eq!(
            log.written(),
            [
                "started generate",
                "project_known p1",
                "settled p1 failed incomplete true",
                "settled p1 succeeded https://p1.laracopilot.com",
            ]
        );
        if store == Store::File {
            drop(client);
            let (lines, _) = file_lines(&path, false);
            assert_eq!(lines.len(), 4);
            assert_eq!(lines[3]["outcome"], "succeeded");
            let reopened = FileJournal::open(&path).unwrap();
            assert!(rt.block_on(reopened.unfinished()).unwrap().is_empty());
        }
    }
}

#[test]
fn a_follow_up_is_started_with_its_project_and_needs_no_project_known() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        let id = runtime().block_on(async {
            // The project, made without the journal.
            rig.server
                .client()
                .generate(PROMPT)
                .await
                .unwrap()
                .finish()
                .await
                .unwrap()
                .project_id
                .unwrap()
        });
        let before = posts(&rig.server);
        let outcome = runtime().block_on(async {
            let generation = rig
                .client
                .follow_up(&id, "Add a dark mode to every page")
                .await
                .unwrap();
            let log = rig.log.clone();
            generation
                .finish_with(move |e| log.push(Step::Saw(e.type_name().into())))
                .await
                .unwrap()
        });
        assert_eq!(outcome.project_id, Some(id));
        assert_eq!(
            rig.log.written(),
            [
                "started follow_up p1",
                "settled p1 succeeded https://p1.laracopilot.com"
            ]
        );
        assert_eq!(rig.log.write_of("started").unwrap().1, before);
        assert!(rig.log.write_of("settled").unwrap().0 < rig.log.seen_at("stream_end").unwrap());
    }
}

#[test]
fn a_generation_dropped_halfway_stays_unfinished_with_its_project() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        let entry_id = runtime().block_on(async {
            let mut generation = rig.client.generate(PROMPT).await.unwrap();
            for _ in 0..3 {
                let item = generation.next().await.unwrap();
                rig.log.saw(&item);
            }
            let id = generation.journal_id().cloned().unwrap();
            drop(generation);
            // Nothing is written once it is gone.
            tokio::time::sleep(Duration::from_millis(100)).await;
            id
        });
        assert_eq!(rig.log.written(), ["started generate", "project_known p1"]);
        let open = runtime().block_on(rig.unfinished());
        assert_eq!(open.len(), 1, "{open:?}");
        let entry = &open[0];
        assert_eq!(entry.local_id, entry_id);
        assert_eq!(entry.kind, Kind::Generate);
        assert_eq!(entry.project_id.as_ref().map(|p| p.as_str()), Some("p1"));
        assert_eq!(entry.prompt, PROMPT);
        assert!(
            entry.token.starts_with("****") && entry.token.len() == 8,
            "{}",
            entry.token
        );
        let age = SystemTime::now().duration_since(entry.started_at).unwrap();
        assert!(age < Duration::from_secs(60), "{age:?}");
    }
}

#[cfg(feature = "blocking")]
#[test]
fn a_blocking_generation_dropped_halfway_stays_unfinished_too() {
    for &store in &STORES {
        let rig = Rig::plain(store);
        let client = laracopilot::blocking::Client::from_async(rig.client.clone()).unwrap();
        let mut generation = client.generate(PROMPT).unwrap();
        for item in generation.by_ref().take(4) {
            rig.log.saw(&item);
        }
        drop(generation);
        assert_eq!(rig.log.written(), ["started generate", "project_known p1"]);
        let open = runtime().block_on(rig.unfinished());
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
    }
}
