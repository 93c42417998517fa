//! Crash safety of recording: the cassette on disk is readable at every moment. Read
//! mid-stream it holds every chunk received so far (nothing is buffered); a stream
//! dropped halfway is on tape up to where it was read; a file cut at any byte loads,
//! with a torn last line reported, not an error; and a recording process killed
//! mid-stream (a child run of this test binary) leaves a tape that loads and
//! replays up to its last chunk.

use crate::common;

use std::time::{Duration, Instant};

use laracopilot::cassette::Cassette;
use laracopilot::cassette::Ending;
use laracopilot::{Error, Event};
use laracopilot_mock::{Fault, MockServer};

const PROMPT: &str = "Build a task management app";

fn paced_server() -> MockServer {
    MockServer::builder()
        .pacing(Duration::from_millis(20))
        .start()
        .unwrap()
}

#[tokio::test]
async fn the_file_holds_every_chunk_received_so_far_and_a_dropped_stream_says_so() {
    let dir = common::cassette::dir();
    let path = dir.path().join("halfway.cassette");
    let live = paced_server();
    let client = live.client_builder().record_to(&path).build().unwrap();
    let mut generation = client.generate(PROMPT).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let event = common::bounded(generation.next()).await.unwrap().unwrap();
        seen.push(event);
        // At every point the file already holds what was received: read it as a
        // crash would leave it.
        let now = Cassette::load(&path).unwrap();
        let exchange = &now.exchanges()[0];
        assert!(exchange.end.is_none(), "the stream is still running");
        let on_tape: usize = exchange.chunks.iter().map(|c| c.data.len()).sum();
        assert_eq!(
            on_tape as u64,
            generation.stats().bytes,
            "every byte received is on tape"
        );
    }
    drop(generation);
    drop(client);
    let cassette = Cassette::load(&path).unwrap();
    let exchange = &cassette.exchanges()[0];
    assert_eq!(exchange.end.as_ref().map(|e| e.how), Some(Ending::Dropped));
    assert_eq!(exchange.events(), 6);
    assert_eq!(cassette.torn_line(), None);
}

#[tokio::test]
async fn a_cassette_cut_at_any_byte_loads_every_complete_line() {
    let dir = common::cassette::dir();
    let path = dir.path().join("whole.cassette");
    let live = MockServer::start();
    let client = live.client_builder().record_to(&path).build().unwrap();
    common::finish_ok(&client, PROMPT).await;
    drop(client);
    let bytes = std::fs::read(&path).unwrap();
    let whole = Cassette::parse(&bytes).unwrap();
    let chunks = &whole.exchanges()[0].chunks;
    for cut in 0..=bytes.len() {
        let torn = &bytes[..cut];
        let read = Cassette::parse(torn).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let complete_lines = torn.iter().filter(|&&b| b == b'\n').count();
        let mid_line = !torn.is_empty() && !torn.ends_with(b"\n");
        match read.torn_line() {
            Some(line) => {
                assert!(mid_line, "cut at {cut}");
                assert_eq!(line, complete_lines + 1, "cut at {cut}");
            }
            // A cut right after a line's closing brace leaves a whole object.
            None => assert!(!mid_line || torn.ends_with(b"}"), "cut at {cut}"),
        }
        // Every complete chunk line before the cut is there, in order.
        if let Some(exchange) = read.exchanges().first() {
            assert_eq!(
                exchange.chunks[..],
                chunks[..exchange.chunks.len()],
                "cut at {cut}"
            );
            let lines_before = complete_lines.saturating_sub(3);
            assert!(
                exchange.chunks.len() >= lines_before.min(chunks.len()),
                "cut at {cut}: {} chunks for {complete_lines} lines",
                exchange.chunks.len()
            );
        }
    }
}

/// The recording child of [`a_recording_process_killed_mid_stream_leaves_a_tape_that_loads_and_replays`].
const RECORDER: &str = "cassette::crash::child_records_a_generation_until_it_is_killed";

/// Set in that child: where it records.
const RECORDING: &str = "LARACOPILOT_IT_RECORDING";

/// The events the child's server sends before it goes quiet for good.
const BEFORE_STALL: usize = 12;

/// The child side (a no-op in a normal run): records a generation whose server
/// goes quiet after [`BEFORE_STALL`] events, and waits to be killed.
#[test]
fn child_records_a_generation_until_it_is_killed() {
    if !common::is_alone(RECORDER) {
        return;
    }
    let path = std::env::var(RECORDING).expect("where to record");
    let server = paced_server();
    server.fault_next(Fault::StallBefore(BEFORE_STALL));
    let client = server
        .client_builder()
        .record_to(&path)
        .idle_timeout(None)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let generation = client.generate(PROMPT).await.unwrap();
        // Nothing ends this but the kill (bounded, should the parent be gone).
        let ended = tokio::time::timeout(Duration::from_secs(120), generation.finish()).await;
        panic!("not killed in time: {ended:?}");
    });
}

#[test]
fn a_recording_process_killed_mid_stream_leaves_a_tape_that_loads_and_replays() {
    let dir = common::cassette::dir();
    let path = dir.path().join("killed.cassette");
    let shown = path.to_str().unwrap();
    let mut child = common::spawn_alone(RECORDER, &[(RECORDING, shown)]);
    // Killed once the tape holds every event its server sends (read as a crash
    // would leave it).
    let on_tape = || {
        Cassette::load(&path)
            .ok()
            .and_then(|tape| tape.exchanges().first().map(|e| e.events()))
            .unwrap_or(0)
    };
    let started = Instant::now();
    while on_tape() < BEFORE_STALL {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the recording child ended too soon"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the tape did not fill in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill the recording process");
    child.wait().unwrap();
    let cassette = Cassette::load(&path).expect("a killed recording loads");
    let exchange = &cassette.exchanges()[0];
    assert!(exchange.end.is_none(), "killed before the end: no end line");
    // Every chunk received is on tape: every event the server sent.
    assert_eq!(exchange.events(), BEFORE_STALL);
    assert!(!exchange.chunks.is_empty());

    // The replay sends what is on tape, then breaks the connection: the SDK sees the
    // events, then a transport error that keeps the project id.
    let server = MockServer::replay(cassette.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let generation = server.client().generate(PROMPT).await.unwrap();
        let mut events: Vec<Event> = Vec::new();
        let result = common::bounded(generation.finish_with(|e| events.push(e.clone()))).await;
        let error = result.unwrap_err();
        assert!(matches!(error, Error::Transport { .. }), "{error:?}");
        assert!(error.project_id().is_some());
        assert_eq!(events.len(), exchange.events());
    });
}
