//! Record once, replay exactly: a session recorded against a server that frames and
//! paces its chunks in its own odd way (chunks of odd sizes, split inside events and
//! inside UTF-8 characters, 30 to 80 ms apart) is on the tape chunk for chunk, and
//! its replay sends the client byte-identical bodies in the same chunks, at factor 0
//! as fast as possible and at factor 1 with the recorded pacing.

use crate::common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::cassette::{frames, raw_generate, RawReply, RawServer};
use laracopilot::cassette::Cassette;
use laracopilot::cassette::Ending;
use laracopilot::{Client, Event};
use laracopilot_mock::MockServer;

const PROMPT: &str = "Build a task management app";

/// The events of the stream, with multi-byte characters to split.
fn events() -> Vec<String> {
    [
        r#"{"type":"project_created","project_id":"p42","app_url":"https://p42.laracopilot.com"}"#,
        r#"{"type":"container_progress","message":"Instalação do Laravel… 🚀","percentage":40}"#,
        r#"{"type":"container_ready","message":"Contêiner pronto ✓"}"#,
        r#"{"type":"tool_progress","message":"Écriture de app/Models/Tâche.php","tool":"write_file"}"#,
        r#"{"type":"file_created","path":"app/Models/Tâche.php","action":"created"}"#,
        r#"{"type":"tool_progress","message":"Ação concluída — 100% ✅","tool":"php artisan migrate"}"#,
        r#"{"type":"stream_end","project_id":"p42","app_url":"https://p42.laracopilot.com"}"#,
    ]
    .iter()
    .map(|e| format!("data: {e}\n\n"))
    .collect()
}

/// The body cut into chunks of odd sizes, with one cut inside the first multi-byte
/// character, and pauses of 30 to 80 ms.
fn plan() -> Vec<(Duration, Vec<u8>)> {
    let body = events().concat().into_bytes();
    let first_wide = body
        .iter()
        .position(|&b| b >= 0x80)
        .expect("a multi-byte character");
    let mut cuts = vec![first_wide + 1];
    let sizes = [7, 13, 29, 5, 61, 3, 17, 41, 97, 53, 11, 71];
    let mut at = 0;
    for size in sizes.iter().cycle() {
        at += size;
        if at >= body.len() {
            break;
        }
        cuts.push(at);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let pauses = [30u64, 55, 80, 42, 67, 38, 74];
    let mut chunks = Vec::new();
    let mut from = 0;
    for (i, cut) in cuts.into_iter().chain([body.len()]).enumerate() {
        let pause = if i == 0 { 0 } else { pauses[i % pauses.len()] };
        chunks.push((Duration::from_millis(pause), body[from..cut].to_vec()));
        from = cut;
    }
    chunks
}

fn server() -> RawServer {
    RawServer::start(|_| reply())
}

/// The stream of [`plan`], as the raw server answers it.
fn reply() -> RawReply {
    let mut reply = RawReply::new(200, "text/event-stream").header("Cache-Control", "no-cache");
    reply.chunks = plan();
    reply
}

fn client(base: &str, record: Option<&std::path::Path>) -> Client {
    let builder = Client::builder()
        .token(common::token())
        .base_url(base)
        .retry_policy(laracopilot::RetryPolicy::none())
        .idle_timeout(Some(Duration::from_secs(10)));
    match record {
        Some(path) => builder.record_to(path),
        None => builder,
    }
    .build()
    .expect("the client builds")
}

/// Records one generation against the raw server; the events the client saw.
async fn record(path: &std::path::Path) -> Vec<Event> {
    let server = server();
    let client = client(&server.base_url(), Some(path));
    let mut generation = client.generate(PROMPT).await.expect("the stream starts");
    let mut seen = Vec::new();
    while let Some(item) = common::bounded(generation.next()).await {
        seen.push(item.expect("no error in this stream"));
    }
    seen
}

fn chunk_bytes(cassette: &Cassette) -> Vec<Vec<u8>> {
    cassette.exchanges()[0]
        .chunks
        .iter()
        .map(|c| c.data.to_vec())
        .collect()
}

#[tokio::test]
async fn the_tape_holds_every_chunk_as_it_arrived_with_its_time() {
    let dir = common::cassette::dir();
    let path = dir.path().join("session.cassette");
    let seen = record(&path).await;
    assert_eq!(seen.len(), events().len());

    let cassette = Cassette::load(&path).expect("the cassette loads");
    assert_eq!(cassette.len(), 1);
    assert_eq!(cassette.torn_line(), None);
    let exchange = &cassette.exchanges()[0];
    assert_eq!(exchange.request.method, "POST");
    assert_eq!(exchange.request.path, "/agent/generate");
    assert_eq!(
        &exchange.request.body[..],
        br#"{"prompt":"Build a task management app"}"#
    );
    assert_eq!(exchange.request.header("accept"), Some("text/event-stream"));
    assert_eq!(
        exchange.request.header("content-type"),
        Some("application/json")
    );
    assert!(exchange
        .request
        .header("user-agent")
        .unwrap()
        .starts_with("laracopilot-rust/"));
    let mask = common::token().masked();
    assert_eq!(
        exchange.request.header("authorization"),
        Some(format!("Bearer {mask}").as_str())
    );
    let answer = exchange.answer.as_ref().expect("an answer");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    assert_eq!(answer.header("cache-control"), Some("no-cache"));
    assert_eq!(
        answer.header("transfer-encoding"),
        None,
        "framing is not kept"
    );

    let sent: Vec<Vec<u8>> = plan().into_iter().map(|(_, data)| data).collect();
    assert_eq!(chunk_bytes(&cassette), sent, "chunk for chunk");
    assert!(
        sent.iter().any(|c| std::str::from_utf8(c).is_err()),
        "a chunk ends inside a character (stored in base64)"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"b64\":"), "{text}");
    // Times grow, and each chunk is on tape no earlier than the server's pauses
    // before it allow (times count from sending, before the server read the
    // request): a loaded machine may read a chunk late, never early.
    let times: Vec<Duration> = exchange.chunks.iter().map(|c| c.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let mut paused = Duration::ZERO;
    for ((pause, _), at) in plan().iter().zip(&times) {
        paused += *pause;
        assert!(*at >= paused, "{times:?}: a chunk before its pause");
    }
    let end = exchange.end.as_ref().expect("an end");
    // The SDK stops reading after `stream_end`: the body ended, or the reader stopped.
    assert!(
        matches!(end.how, Ending::Complete | Ending::Dropped),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_replay_at_factor_0_sends_the_same_bytes_in_the_same_chunks() {
    let dir = common::cassette::dir();
    let path = dir.path().join("session.cassette");
    let recorded_events = record(&path).await;
    let cassette = Cassette::load(&path).unwrap();
    let server = MockServer::replay(cassette.clone());

    let started = Instant::now();
    let (sent, response) = raw_generate(
        server.base_url(),
        "/agent/generate",
        &format!(r#"{{"prompt":"{PROMPT}"}}"#),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let frames = frames(response, sent).await;
    let got: Vec<Vec<u8>> = frames.into_iter().map(|(_, data)| data).collect();
    assert_eq!(got, chunk_bytes(&cassette), "the same chunk boundaries");
    let recorded_total = cassette.exchanges()[0].chunks.last().unwrap().at;
    assert!(
        started.elapsed() < recorded_total,
        "factor 0 is faster than the recording ({:?} vs {recorded_total:?})",
        started.elapsed()
    );

    assert_eq!(server.unplayed(), 0);
    assert!(server.unmatched().is_empty(), "{:?}", server.unmatched());

    // Through the SDK (a fresh replay: each exchange is replayed once): the same
    // events, the same bytes.
    let server = MockServer::replay(cassette.clone());
    let mut generation = server.client().generate(PROMPT).await.unwrap();
    let mut replayed = Vec::new();
    while let Some(item) = common::bounded(generation.next()).await {
        replayed.push(item.unwrap());
    }
    let raw = |events: &[Event]| {
        events
            .iter()
            .map(|e| e.raw_json().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(raw(&replayed), raw(&recorded_events));
    let body_len: usize = chunk_bytes(&cassette).iter().map(Vec::len).sum();
    assert_eq!(generation.stats().bytes, body_len as u64);
    assert!(server.unmatched().is_empty(), "{:?}", server.unmatched());
}

#[tokio::test]
async fn a_replay_at_factor_1_keeps_the_recorded_pacing() {
    let dir = common::cassette::dir();
    let path = dir.path().join("session.cassette");
    record(&path).await;
    let cassette = Cassette::load(&path).unwrap();
    let chunks = cassette.exchanges()[0].chunks.clone();
    let server = MockServer::builder()
        .replay(cassette.clone())
        .replay_pacing(1.0)
        .start()
        .unwrap();

    // When the server has read the request (the replay's schedule starts then).
    let arrived = server.requests_received(1);
    let read = tokio::spawn(async move {
        arrived.await;
        Instant::now()
    });
    let (sent, response) = raw_generate(
        server.base_url(),
        "/agent/generate",
        &format!(r#"{{"prompt":"{PROMPT}"}}"#),
    )
    .await;
    let frames = frames(response, sent).await;
    let got: Vec<Vec<u8>> = frames.iter().map(|(_, data)| data.clone()).collect();
    assert_eq!(
        got,
        chunk_bytes(&cassette),
        "the same chunk boundaries at real time too"
    );

    // The replay sends chunk `i` at its recorded time after the request was read,
    // so the client gets it no earlier than that time after sending, however late a
    // loaded machine reads it; and not much later than that time after the server
    // read the request: less than `LATE`, far below the recording's own span, so
    // that a replay at another factor, or held back to the end, is caught.
    const LATE: Duration = Duration::from_millis(500);
    let read = common::bounded(read).await.unwrap().duration_since(sent);
    let recorded_span = chunks.last().unwrap().at - chunks[0].at;
    assert!(recorded_span > LATE * 2, "{recorded_span:?}");
    for (i, (chunk, (replayed, _))) in chunks.iter().zip(&frames).enumerate() {
        assert!(
            *replayed >= chunk.at,
            "chunk {i}: at {replayed:?}, recorded at {:?}",
            chunk.at
        );
        assert!(
            *replayed < read + chunk.at + LATE,
            "chunk {i}: at {replayed:?}, recorded at {:?}, the request read at {read:?}",
            chunk.at
        );
    }
}

#[tokio::test]
async fn concurrent_streams_recorded_into_one_cassette_stay_apart() {
    let dir = common::cassette::dir();
    let path = dir.path().join("together.cassette");
    // No stream starts before all three requests arrived, so they run at the same
    // time however the machine schedules them (each waits at most 20 s).
    let arrived = Arc::new((Mutex::new(0), Condvar::new()));
    let server = RawServer::start(move |_| {
        let (count, all_in) = &*arrived;
        let mut count = count.lock().unwrap();
        *count += 1;
        all_in.notify_all();
        let _ = all_in
            .wait_timeout_while(count, Duration::from_secs(20), |count| *count < 3)
            .unwrap();
        reply()
    });
    // Two clients and a clone, all recording into the same file at once.
    let first = client(&server.base_url(), Some(&path));
    let second = client(&server.base_url(), Some(&path));
    let runs = [first.clone(), first, second].map(|client| {
        tokio::spawn(async move {
            client
                .generate(PROMPT)
                .await
                .unwrap()
                .finish()
                .await
                .unwrap()
        })
    });
    for run in runs {
        common::bounded(run).await.unwrap();
    }
    let cassette = Cassette::load(&path).unwrap();
    assert_eq!(cassette.len(), 3);
    let mut ids: Vec<u64> = cassette.exchanges().iter().map(|e| e.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3]);
    let sent: Vec<Vec<u8>> = plan().into_iter().map(|(_, data)| data).collect();
    for exchange in cassette.exchanges() {
        let chunks: Vec<Vec<u8>> = exchange.chunks.iter().map(|c| c.data.to_vec()).collect();
        assert_eq!(chunks, sent, "exchange {}", exchange.id);
    }
    // The lines really were interleaved in the file.
    let text = std::fs::read_to_string(&path).unwrap();
    let order: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|line| &line[..line.find(',').unwrap()])
        .collect();
    let first_end = order.iter().rposition(|x| *x == order[0]).unwrap();
    assert!(
        order[..first_end].iter().any(|x| *x != order[0]),
        "the streams ran at the same time"
    );
}
