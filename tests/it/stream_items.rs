//! An `Err` is always the last item of a stream: whatever odd lines arrive in the
//! middle (not JSON, not an object, a documented event without its id, invalid
//! UTF-8, SSE fields the API does not document, look-alikes of the terminal events),
//! the canonical `match event? { .. }` loop and `finish()` reach `stream_end`, the odd
//! payloads are `Event::Malformed` with their text and a reason, and nothing follows
//! a terminal item.

use crate::common;

use std::time::Duration;

use common::raw::{self, within, RawServer, Step, PATIENCE};
use laracopilot::{Client, Error, Event, Generation, MalformedEvent};

/// One line of the stream, and what it must become (`None`: not an event at all).
struct Line {
    bytes: &'static [u8],
    becomes: Option<&'static str>,
}

const fn line(bytes: &'static [u8], becomes: Option<&'static str>) -> Line {
    Line { bytes, becomes }
}

/// The odd middle of the stream, between its start and `stream_end`.
const MIDDLE: &[Line] = &[
    line(b": a comment\n\n", None),
    line(b":\n\n", None),
    line(b"data: ping\n\n", Some("malformed")),
    line(b"data: [DONE]\n\n", Some("malformed")),
    line(
        br#"data: {"type":"file_created","path":7}

"#,
        Some("file_created"),
    ),
    line(
        br#"data: {"type":"container_progress","message":"a","message":"b","percentage":40,"percentage":41}

"#,
        Some("container_progress"),
    ),
    line(
        br#"data: {"type":"container_progress","message":"big","percentage":1e999}

"#,
        Some("container_progress"),
    ),
    line(
        br#"data: {"type":"tool_progress","extra":[1e999,-1e999,{"deep":[[[]]]}]}

"#,
        Some("tool_progress"),
    ),
    line(
        br#"data: {"type":"project_created"}

"#,
        Some("malformed"),
    ),
    line(
        br#"data: {"type":"project_created","project_id":null}

"#,
        Some("malformed"),
    ),
    line(
        br#"data: {"type":"project_created","project_id":1.5}

"#,
        Some("malformed"),
    ),
    line(b"data: 42\n\n", Some("malformed")),
    line(b"data: \"stream_end\"\n\n", Some("malformed")),
    line(b"data: null\n\n", Some("malformed")),
    line(
        br#"data: [{"type":"stream_end"}]

"#,
        Some("malformed"),
    ),
    // Truncated look-alikes of the terminal events are not terminal.
    line(
        br#"data: {"type":"stream_end"

"#,
        Some("malformed"),
    ),
    line(
        br#"data: {"type":"credits_exhausted"

"#,
        Some("malformed"),
    ),
    // Invalid UTF-8, inside a JSON string and alone.
    line(
        b"data: {\"type\":\"tool_progress\",\"message\":\"\xff\xfe\"}\n\n",
        Some("tool_progress"),
    ),
    line(b"data: \xff\xfe\xc3\n\n", Some("malformed")),
    // SSE fields the API does not document.
    line(
        b"event: error\nid: 7\nretry: 10\ndata: {\"message\":\"boom\"}\n\n",
        Some("malformed"),
    ),
    line(
        b"event: stream_end\nretry: soon\ndata: {\"type\":\"tool_progress\",\"tool\":\"t\"}\n\n",
        Some("tool_progress"),
    ),
    line(b"id: \nevent:\n\n", None),
    line(
        b"data: {\"type\":\ndata: \"tool_progress\"}\n\n",
        Some("tool_progress"),
    ),
    line(
        br#"data:{"type":"deploy_started"}

"#,
        Some("unknown:deploy_started"),
    ),
    line(
        br#"data: {"type":"stream_end ","project_id":"p1"}

"#,
        Some("unknown:stream_end "),
    ),
    line(
        br#"data: {"type":"STREAM_END"}

"#,
        Some("unknown:STREAM_END"),
    ),
    line(
        br#"data: {"type":"error","message":"internal"}

"#,
        Some("unknown:error"),
    ),
    line(
        br#"data: {"type":7}

"#,
        Some("malformed"),
    ),
    line(b"data: {}\n\n", Some("malformed")),
    line(b"data:\n\n", None),
    line(b"data: \n\n", None),
];

const PROJECT_CREATED: &[u8] =
    br#"data: {"type":"project_created","project_id":"p1","app_url":"https://p1.example"}

"#;
const STREAM_END: &[u8] =
    br#"data: {"type":"stream_end","project_id":"p1","app_url":"https://p1.example/app"}

"#;
/// What a server sends after `stream_end`, in the same chunk and later.
const AFTER_END: &[u8] = br#"data: {"type":"tool_progress"}

data: {"type":"credits_exhausted"}

data: ping

"#;
const LATE: &[u8] = br#"data: {"type":"file_created","path":"late.php"}

data: {"type":"credits_exhausted"}

"#;

fn malformed_count() -> u64 {
    MIDDLE
        .iter()
        .filter(|l| l.becomes == Some("malformed"))
        .count() as u64
}

/// The labels the middle of the stream must produce, in order.
fn expected_middle() -> Vec<String> {
    MIDDLE
        .iter()
        .filter_map(|l| l.becomes)
        .map(str::to_owned)
        .collect()
}

fn label(event: &Event) -> String {
    match event {
        Event::Malformed(_) => "malformed".to_owned(),
        Event::Unknown(unknown) => format!("unknown:{}", unknown.type_name),
        other => other.type_name().to_owned(),
    }
}

/// The whole body of a generation (`new`: with `project_created` first).
fn body(new: bool) -> Vec<u8> {
    let mut body = Vec::new();
    if new {
        body.extend_from_slice(PROJECT_CREATED);
    }
    for line in MIDDLE {
        body.extend_from_slice(line.bytes);
    }
    body.extend_from_slice(STREAM_END);
    body.extend_from_slice(AFTER_END);
    body
}

/// A server streaming [`body`] for both generate calls, in one write or in pieces
/// of `piece` bytes, then more events after a pause.
fn server(piece: Option<usize>) -> RawServer {
    RawServer::start(move |request| {
        let new = request.target == "/api/v1/agent/generate";
        let mut steps = vec![Step::Write(raw::sse_head())];
        let body = body(new);
        match piece {
            None => steps.push(Step::Write(body)),
            Some(size) => steps.extend(body.chunks(size).map(Step::write)),
        }
        steps.push(Step::sleep_ms(100));
        steps.push(Step::write(LATE));
        steps.push(Step::Close);
        steps
    })
}

async fn start(client: &Client, new: bool) -> Generation {
    within(PATIENCE, "the generate call", async {
        if new {
            client.generate("Build a task management app").await
        } else {
            client.follow_up("p1", "Add a dark mode").await
        }
    })
    .await
    .expect("the stream starts")
}

/// The canonical loop of the docs, with `?` on every item; the labels it saw
/// before `stream_end`, and whether it reached it.
async fn canonical_loop(generation: &mut Generation) -> laracopilot::Result<(Vec<String>, bool)> {
    let mut labels = Vec::new();
    let mut reached_end = false;
    while let Some(event) = generation.next().await {
        match event? {
            Event::StreamEnd(end) => {
                assert_eq!(end.app_url.as_deref(), Some("https://p1.example/app"));
                reached_end = true;
            }
            other => labels.push(label(&other)),
        }
        assert!(labels.len() < 1_000, "runaway stream");
    }
    Ok((labels, reached_end))
}

#[tokio::test]
async fn the_canonical_loop_reaches_stream_end_through_every_odd_line() {
    for piece in [None, Some(1), Some(7)] {
        let server = server(piece);
        let client = raw::builder(&server.base_url()).build().unwrap();
        for new in [true, false] {
            let mut generation = start(&client, new).await;
            let (labels, reached_end) = within(
                PATIENCE,
                "the canonical loop",
                canonical_loop(&mut generation),
            )
            .await
            .unwrap_or_else(|e| panic!("an Err item mid-stream ({piece:?}): {e:?}"));
            assert!(reached_end, "{piece:?}");
            let mut expected = expected_middle();
            if new {
                expected.insert(0, "project_created".into());
            }
            assert_eq!(labels, expected, "{piece:?}");
            assert_eq!(generation.project_id().map(|id| id.as_str()), Some("p1"));
            // After the terminal item: nothing, though the server sent more.
            for _ in 0..3 {
                let after = within(PATIENCE, "next after the end", generation.next()).await;
                assert!(after.is_none(), "{after:?}");
            }
            assert_eq!(generation.stats().malformed, malformed_count());
        }
    }
}

#[tokio::test]
async fn finish_succeeds_and_counts_exactly_the_malformed_events() {
    let server = server(Some(3));
    let client = raw::builder(&server.base_url()).build().unwrap();
    for new in [true, false] {
        let generation = start(&client, new).await;
        let outcome = within(PATIENCE, "finish", generation.finish())
            .await
            .expect("finish reaches stream_end");
        let events = expected_middle().len() as u64 + 1 + u64::from(new);
        assert_eq!(outcome.stats().events, events);
        assert_eq!(outcome.stats().malformed, malformed_count());
        assert_eq!(outcome.project_id().map(|id| id.as_str()), Some("p1"));
        assert_eq!(outcome.app_url.as_deref(), Some("https://p1.example/app"));
        assert!(
            outcome.files.is_empty(),
            "a path of 7 is no path: {:?}",
            outcome.files
        );
    }
}

/// What a malformed event says about itself.
fn describe(malformed: &MalformedEvent) -> (Option<&str>, &str, &str) {
    (
        malformed.type_name.as_deref(),
        malformed.reason.as_str(),
        malformed.raw_json(),
    )
}

#[tokio::test]
async fn a_malformed_event_keeps_its_text_and_says_why() {
    let server = server(None);
    let client = raw::builder(&server.base_url()).build().unwrap();
    let mut generation = start(&client, false).await;
    let mut malformed = Vec::new();
    let mut others = Vec::new();
    within(PATIENCE, "the stream", async {
        while let Some(item) = generation.next().await {
            match item.expect("no Err before the end") {
                Event::Malformed(m) => malformed.push(m),
                other => others.push(other),
            }
        }
    })
    .await;
    assert_eq!(malformed.len() as u64, malformed_count());
    for m in &malformed {
        let (_, reason, raw) = describe(m);
        assert!(!reason.is_empty(), "{m:?}");
        assert!(!raw.is_empty(), "{m:?}");
        assert_eq!(Event::Malformed(m.clone()).raw_json(), raw);
    }
    let by_raw = |raw: &str| {
        malformed
            .iter()
            .map(describe)
            .find(|(_, _, r)| *r == raw)
            .unwrap_or_else(|| panic!("no malformed event {raw:?}"))
    };
    assert_eq!(by_raw("ping").0, None);
    assert!(
        by_raw("ping").1.starts_with("not JSON"),
        "{:?}",
        by_raw("ping")
    );
    assert_eq!(by_raw("[DONE]").1, "not a JSON object");
    assert_eq!(by_raw(r#"{"type":"stream_end""#).1, "truncated JSON");
    let (type_name, reason, _) = by_raw(r#"{"type":"project_created"}"#);
    assert_eq!(type_name, Some("project_created"));
    assert!(reason.contains("project_id"), "{reason}");
    assert_eq!(
        by_raw(r#"{"message":"boom"}"#).1,
        "the event has no \"type\" string"
    );
    assert_eq!(
        by_raw("\u{fffd}\u{fffd}\u{fffd}").0,
        None,
        "invalid UTF-8 is replaced"
    );

    // The lenient readings of the events that were understood.
    let progress: Vec<_> = others
        .iter()
        .filter_map(|e| match e {
            Event::ContainerProgress(p) => Some((p.message.as_str(), p.percentage)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [("b", Some(41.0)), ("big", None)]);
    let tool_messages: Vec<_> = others
        .iter()
        .filter_map(|e| match e {
            Event::ToolProgress(t) => Some(t.message.clone()),
            _ => None,
        })
        .collect();
    assert!(
        tool_messages.contains(&Some("\u{fffd}\u{fffd}".to_owned())),
        "{tool_messages:?}"
    );
}

/// Every item of a generation, bounded in count and time.
async fn items(mut generation: Generation) -> Vec<laracopilot::Result<Event>> {
    let mut items = Vec::new();
    within(PATIENCE, "the stream", async {
        while let Some(item) = generation.next().await {
            items.push(item);
            assert!(items.len() < 1_000, "runaway stream");
        }
        for _ in 0..3 {
            assert!(generation.next().await.is_none(), "nothing after the end");
        }
    })
    .await;
    items
}

#[tokio::test]
async fn an_err_item_is_the_last_one_whatever_ends_the_stream() {
    let odd: Vec<u8> = MIDDLE
        .iter()
        .flat_map(|l| l.bytes.iter().copied())
        .collect();
    let oversized = format!(
        "data: {{\"type\":\"tool_progress\",\"message\":\"{}\"}}\n\n",
        "x".repeat(4096)
    );
    let endings: Vec<(&str, Vec<Step>)> = vec![
        (
            "credits_exhausted then more",
            vec![Step::write(
                [
                    &br#"data: {"type":"credits_exhausted","project_id":"p1"}

"#[..],
                    STREAM_END,
                    AFTER_END,
                ]
                .concat(),
            )],
        ),
        ("a reset", vec![Step::sleep_ms(50), Step::Reset]),
        ("a close without a terminal event", vec![Step::Close]),
        (
            "an oversized event then more",
            vec![Step::write([oversized.as_bytes(), STREAM_END].concat())],
        ),
        ("silence past the idle timeout", vec![Step::Stall]),
    ];
    for (ending, steps) in endings {
        let mut script = vec![
            Step::Write(raw::sse_head()),
            Step::write(PROJECT_CREATED),
            Step::Write(odd.clone()),
        ];
        script.extend(steps);
        script.push(Step::sleep_ms(50));
        script.push(Step::Close);
        let server = RawServer::start(move |_| script.clone());
        let client = raw::builder(&server.base_url())
            .max_event_size(1024)
            // Fires only in the silence: above the 0.2 s a loaded machine took for a
            // fresh connection's answer.
            .idle_timeout(Some(Duration::from_secs(1)))
            .build()
            .unwrap();
        let generation = start(&client, true).await;
        let items = items(generation).await;
        let errors: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, item)| item.is_err())
            .map(|(at, _)| at)
            .collect();
        assert_eq!(errors, [items.len() - 1], "{ending}: {items:?}");
        let Some(Err(error)) = items.last() else {
            unreachable!()
        };
        assert_eq!(
            error.project_id().map(|id| id.as_str()),
            Some("p1"),
            "{ending}"
        );
        let expected = match ending {
            "credits_exhausted then more" => matches!(error, Error::CreditsExhausted { .. }),
            "a reset" => matches!(error, Error::Transport { .. }),
            "a close without a terminal event" => matches!(error, Error::Incomplete { .. }),
            "an oversized event then more" => matches!(error, Error::EventTooLarge { .. }),
            _ => matches!(error, Error::Timeout { .. }),
        };
        assert!(expected, "{ending}: {error:?}");
        // Everything before the error was delivered, odd lines included.
        let delivered = items.len() as u64 - 1;
        assert_eq!(delivered, expected_middle().len() as u64 + 1, "{ending}");
    }
}
