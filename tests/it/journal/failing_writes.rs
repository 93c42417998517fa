//! Journals that fail to write: an intent that cannot be recorded stops the call
//! before sending, a later record that fails does not break the stream, and a
//! write cut short by a full disk leaves no partial line.

use super::*;

#[test]
fn a_journal_that_cannot_record_the_intent_stops_the_call_before_sending() {
    for &store in &STORES {
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b.max_concurrent_generations(1),
            Some(|r| matches!(r, Record::Started(_))),
        );
        let rt = runtime();
        for _ in 0..3 {
            let error = rt.block_on(rig.client.generate(PROMPT)).unwrap_err();
            let Error::Journal { message, .. } = &error else {
                panic!("{error:?}");
            };
            assert!(message.contains("journal"), "{message}");
            assert!(!error.may_have_started_work());
        }
        assert!(rig.server.requests().is_empty(), "nothing was sent");
        // Its slot was given back each time: the cap of one did not block.
        let error = rt
            .block_on(rig.client.follow_up("p1", "Add a dark mode"))
            .unwrap_err();
        assert!(matches!(error, Error::Journal { .. }));
        assert!(rt.block_on(rig.unfinished()).is_empty());
    }
}

#[test]
fn a_journal_that_cannot_record_progress_does_not_break_the_stream() {
    for &store in &STORES {
        // ProjectKnown fails: the stream goes on, and its end is recorded.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b,
            Some(|r| matches!(r, Record::ProjectKnown { .. })),
        );
        run(&rig, Mode::Finish, PROMPT).unwrap();
        assert!(runtime().block_on(rig.unfinished()).is_empty());

        // Settled fails: the stream succeeds, and the entry stays unfinished with its
        // project, for resume to settle.
        let rig = Rig::new(
            MockServer::start(),
            store,
            |b| b,
            Some(|r| matches!(r, Record::Settled { .. })),
        );
        run(&rig, Mode::Finish, PROMPT).unwrap();
        let open = runtime().block_on(rig.unfinished());
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].project_id.as_ref().map(|p| p.as_str()), Some("p1"));
    }
}

/// Marks the child process of [`a_write_that_fails_halfway_leaves_no_partial_line`].
const SHORT_DISK: &str = "LARACOPILOT_JOURNAL_TEST_SHORT_DISK";

/// The child side: under a file size limit (`ulimit -f`, with SIGXFSZ ignored, so
/// that a write past it fails with EFBIG after writing what fits), generates until
/// the journal cannot record an intent; the file must end with whole lines.
#[test]
fn child_writes_a_journal_on_a_full_disk() {
    let Ok(path) = std::env::var(SHORT_DISK) else {
        return;
    };
    let server = MockServer::start();
    let client = server
        .client_builder()
        .journal(FileJournal::open(&path).unwrap())
        .build()
        .unwrap();
    let rt = runtime();
    let mut failed = None;
    for _ in 0..1_000 {
        match rt.block_on(client.generate(PROMPT)) {
            Ok(generation) => drop(rt.block_on(generation.finish())),
            Err(error) => {
                failed = Some(error);
                break;
            }
        }
    }
    let error = failed.expect("the disk filled up");
    assert!(matches!(error, Error::Journal { .. }), "{error:?}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() <= 2048 && !bytes.is_empty(),
        "{} bytes",
        bytes.len()
    );
    assert_eq!(bytes.last(), Some(&b'\n'), "a partial line was left behind");
    let reopened = FileJournal::open(&path).unwrap();
    assert_eq!(reopened.torn_lines(), 0);
    println!("short disk: ok after {} bytes", bytes.len());
}

#[cfg(unix)]
#[test]
fn a_write_that_fails_halfway_leaves_no_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let exe = std::env::current_exe().unwrap();
    // 4 blocks of 512 bytes.
    let script = "trap '' XFSZ; ulimit -f 4 && exec \"$0\" --exact journal::failing_writes::child_writes_a_journal_on_a_full_disk --nocapture --test-threads=1";
    let Ok(child) = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .arg(&exe)
        .env(SHORT_DISK, &path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("skipping: no /bin/sh");
        return;
    };
    let started = std::time::Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
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
    assert!(text.contains("short disk: ok"), "{text}");
}
