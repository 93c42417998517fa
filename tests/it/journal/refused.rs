//! Calls refused before or at sending: settled as failed without work started,
//! or leaving no record at all.

use super::*;

/// A call refused by the server is settled as failed, without work started: the
/// journal's word for "sent, and answered no".
#[test]
fn a_call_the_server_refuses_is_settled_as_failed_without_work_started() {
    for &store in &STORES {
        // 422: the prompt is too short.
        let rig = Rig::plain(store);
        let error = runtime()
            .block_on(rig.client.generate("short"))
            .unwrap_err();
        assert!(matches!(error, Error::Validation { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed validation false"]
        );
        assert_eq!(rig.log.write_of("started").unwrap().1, 0);
        assert_eq!(
            rig.log.write_of("settled").unwrap().1,
            1,
            "settled after the POST"
        );
        assert!(runtime().block_on(rig.unfinished()).is_empty());

        // 401: a revoked token.
        let server = MockServer::builder()
            .token("lcp_mock_revoked_journal_token")
            .start()
            .unwrap();
        server.revoke("lcp_mock_revoked_journal_token");
        let rig = Rig::new(server, store, |b| b, None);
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed unauthorized false"]
        );

        // 429, not retried.
        let rig = Rig::plain(store);
        rig.server.reply_next(1, Reply::rate_limited(Some(30)));
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed rate_limited false"]
        );

        // 404: a follow-up on an unknown project.
        let rig = Rig::plain(store);
        let error = runtime()
            .block_on(rig.client.follow_up("p404", "Add a dark mode"))
            .unwrap_err();
        assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
        assert_eq!(
            rig.log.written(),
            [
                "started follow_up p404",
                "settled p404 failed not_found false"
            ]
        );

        // No answer in time: sent, so it may have started work, and the caller is told.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b.idle_timeout(Some(Duration::from_millis(200))),
            None,
        );
        rig.server
            .fault_next(Fault::DelayHeaders(Duration::from_secs(2)));
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(error.may_have_started_work(), "{error:?}");
        assert_eq!(
            rig.log.written(),
            ["started generate", "settled - failed timeout true"]
        );
        assert!(runtime().block_on(rig.unfinished()).is_empty());
    }
}

#[test]
fn a_call_refused_before_sending_leaves_no_record() {
    for &store in &STORES {
        // The credits breaker: open after a credits_exhausted.
        let rig = Rig::new(
            MockServer::builder().credits(1).start().unwrap(),
            store,
            |b| b,
            None,
        );
        run(&rig, Mode::Finish, PROMPT).unwrap_err();
        let records = rig.log.written().len();
        let error = runtime().block_on(rig.client.generate(PROMPT)).unwrap_err();
        assert!(
            matches!(error, Error::CreditsExhausted { locally: true, .. }),
            "{error:?}"
        );
        assert_eq!(
            rig.log.written().len(),
            records,
            "no record for a call never sent"
        );

        // A bad project id.
        let rig = Rig::plain(store);
        let error = runtime()
            .block_on(rig.client.follow_up("../etc", "Add a dark mode"))
            .unwrap_err();
        assert!(matches!(error, Error::Config { .. }), "{error:?}");
        assert!(rig.log.written().is_empty());
        // No free slot before the deadline (which the first call's answer must
        // beat: above the 0.2 s a fresh connection and its answer took with both
        // cores busy).
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| {
                b.max_concurrent_generations(1)
                    .stream_deadline(Some(Duration::from_secs(1)))
            },
            None,
        );
        let rt = runtime();
        let first = rt.block_on(rig.client.generate(PROMPT)).unwrap();
        let error = rt.block_on(rig.client.generate(PROMPT)).unwrap_err();
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
        assert_eq!(
            rig.log.written(),
            ["started generate"],
            "only the first call"
        );
        drop(first);
    }
}
