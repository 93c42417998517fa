//! Bytes to typed events, without I/O: the SDK's reader against the peer stack
//! (eventsource-stream + serde_json into a `#[serde(tag = "type")]` enum) and against
//! serde_json alone on the same payloads, for several chunk sizes; and the linearity
//! of one 8 MiB event fed in 64-byte chunks.
//!
//! Every line of a group reports the same `Throughput::Bytes` (the stream's size), so
//! the ratio of two throughputs is the inverse ratio of their times.
//!
//! ```text
//! cargo bench --features full,__internal --bench decode -- --warm-up-time 1 --measurement-time 3
//! DECODE_INTERLEAVED=40 cargo bench --features full,__internal --bench decode   # A/B/A/B timing
//! DECODE_ONLY=ours:lf:8192 valgrind --tool=callgrind target/release/deps/decode-<hash>
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure stops the measurement"
)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use laracopilot::__private::{Decoder, EventReader, Frame};

#[path = "support/corpus.rs"]
mod corpus;

use corpus::{corpus, Corpus, FloorWire, PeerEvent, Style};

const CHUNKS: [usize; 4] = [64, 1024, 8 * 1024, 64 * 1024];
const CORPUS_BYTES: usize = 1 << 20;
const MAX_EVENT: usize = 16 << 20;

/// The SDK's full path: SSE decoding, typed events, terminal rules.
fn ours(bytes: &[u8], chunk: usize) -> usize {
    let mut reader = EventReader::new(MAX_EVENT);
    let mut events = 0;
    let all = bytes::Bytes::copy_from_slice(bytes);
    for at in (0..bytes.len()).step_by(chunk) {
        reader.feed_bytes(all.slice(at..(at + chunk).min(bytes.len())));
        while let Some(item) = reader.pop() {
            black_box(item.expect("the corpus decodes"));
            events += 1;
        }
    }
    reader.end();
    while let Some(item) = reader.pop() {
        black_box(item.expect("the corpus ends with stream_end"));
        events += 1;
    }
    events
}

/// The peer stack, polled without I/O.
fn peer(bytes: &[u8], chunk: usize) -> usize {
    let chunks = bytes.chunks(chunk).map(Ok::<_, Infallible>);
    let mut stream = futures::stream::iter(chunks).eventsource();
    futures::executor::block_on(async {
        let mut events = 0;
        while let Some(event) = stream.next().await {
            let event = event.expect("the corpus is valid UTF-8");
            let typed: PeerEvent = serde_json::from_str(&event.data).expect("the corpus decodes");
            black_box(typed);
            events += 1;
        }
        events
    })
}

/// serde_json alone on the payloads: the floor.
fn floor(payloads: &[String]) -> usize {
    for payload in payloads {
        let wire: FloorWire = serde_json::from_str(payload).expect("the corpus decodes");
        black_box(wire);
    }
    payloads.len()
}

/// The floor plus a copy of each payload, as every `Event` keeps its raw JSON.
fn floor_with_raw(payloads: &[String]) -> usize {
    for payload in payloads {
        let wire: FloorWire = serde_json::from_str(payload).expect("the corpus decodes");
        black_box((wire, Box::<str>::from(payload.as_str())));
    }
    payloads.len()
}

/// serde_json alone into the peer's tagged enum (no SSE).
fn peer_enum(payloads: &[String]) -> usize {
    for payload in payloads {
        let typed: PeerEvent = serde_json::from_str(payload).expect("the corpus decodes");
        black_box(typed);
    }
    payloads.len()
}

/// The SSE decoder alone: frames, no JSON.
fn sse_only(bytes: &[u8], chunk: usize) -> usize {
    let mut decoder = Decoder::new(MAX_EVENT);
    let mut events = 0;
    let mut out = |frame: Frame<'_>| {
        black_box(frame.data);
        events += 1;
    };
    for piece in bytes.chunks(chunk) {
        decoder.feed(piece, &mut out).expect("under the cap");
    }
    decoder.finish(&mut out).expect("under the cap");
    events
}

/// The SSE decoder, then the floor and the raw copy for each frame; with `queued`,
/// the items of a chunk are queued and consumed after it, as an eager reader does.
fn sse_floor(bytes: &[u8], chunk: usize, queued: bool) -> usize {
    let mut decoder = Decoder::new(MAX_EVENT);
    let mut events = 0;
    let mut queue = VecDeque::new();
    for piece in bytes.chunks(chunk) {
        let mut out = |frame: Frame<'_>| {
            let wire: FloorWire = serde_json::from_str(frame.data).expect("the corpus decodes");
            let item = (wire, Box::<str>::from(frame.data));
            if queued {
                queue.push_back(item);
            } else {
                black_box(item);
                events += 1;
            }
        };
        decoder.feed(piece, &mut out).expect("under the cap");
        while let Some(item) = queue.pop_front() {
            black_box(item);
            events += 1;
        }
    }
    events
}

/// The plain scan the decoder builds on: every line end found with memchr.
fn memchr_scan(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

fn check(corpus: &Corpus) {
    for chunk in CHUNKS {
        assert_eq!(ours(&corpus.bytes, chunk), corpus.payloads.len());
        assert_eq!(peer(&corpus.bytes, chunk), corpus.payloads.len());
    }
}

fn decode(c: &mut Criterion) {
    for style in [Style::Lf, Style::CrlfMultiLine] {
        let corpus = corpus(style, CORPUS_BYTES);
        check(&corpus);
        let mut group = c.benchmark_group(format!("decode/{}", style.name()));
        group.throughput(Throughput::Bytes(corpus.bytes.len() as u64));
        group.bench_function("memchr_scan", |b| b.iter(|| memchr_scan(&corpus.bytes)));
        group.bench_function("serde_floor", |b| b.iter(|| floor(&corpus.payloads)));
        group.bench_function("serde_floor_with_raw", |b| {
            b.iter(|| floor_with_raw(&corpus.payloads))
        });
        group.bench_function("serde_peer_enum", |b| {
            b.iter(|| peer_enum(&corpus.payloads))
        });
        for chunk in CHUNKS {
            group.bench_with_input(
                BenchmarkId::new("laracopilot", chunk),
                &chunk,
                |b, &chunk| b.iter(|| ours(&corpus.bytes, chunk)),
            );
            group.bench_with_input(
                BenchmarkId::new("peer_stack", chunk),
                &chunk,
                |b, &chunk| b.iter(|| peer(&corpus.bytes, chunk)),
            );
        }
        group.finish();
    }
}

/// One 8 MiB `file_created` event, then `stream_end`.
fn big_event() -> Vec<u8> {
    let content = "x".repeat(8 << 20);
    format!(
        "data: {{\"type\":\"file_created\",\"path\":\"big.bin\",\"content\":\"{content}\"}}\n\n\
         data: {{\"type\":\"stream_end\"}}\n\n"
    )
    .into_bytes()
}

/// The 8 MiB event in 64-byte chunks against one chunk.
fn linearity(c: &mut Criterion) {
    let bytes = &big_event()[..];
    assert_eq!(ours(bytes, 64), 2);
    assert_eq!(ours(bytes, bytes.len()), 2);
    let mut group = c.benchmark_group("linearity/8MiB_event");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(10);
    group.bench_function("one_chunk", |b| b.iter(|| ours(bytes, bytes.len())));
    group.bench_function("64B_chunks", |b| b.iter(|| ours(bytes, 64)));
    group.finish();
}

/// `DECODE_ONLY=<what>:<lf|crlf>:<chunk>` runs one path ten times and exits, for
/// instruction counts under `valgrind --tool=callgrind` (subtract a `none` run for
/// the set-up). `what`: `none`, `ours`, `peer`, `floor`, `floor_with_raw`,
/// `peer_enum`, `sse_only`, or `linear` (the 8 MiB event, once).
fn only(spec: &str) {
    let mut parts = spec.split(':');
    let what = parts.next().unwrap_or("none");
    let style = match parts.next() {
        Some("crlf") => Style::CrlfMultiLine,
        _ => Style::Lf,
    };
    let chunk: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(8192);
    if what == "linear" {
        let bytes = big_event();
        black_box(ours(&bytes, chunk.min(bytes.len())));
        return;
    }
    let corpus = corpus(style, CORPUS_BYTES);
    for _ in 0..10 {
        black_box(match what {
            "ours" => ours(&corpus.bytes, chunk),
            "peer" => peer(&corpus.bytes, chunk),
            "floor" => floor(&corpus.payloads),
            "floor_with_raw" => floor_with_raw(&corpus.payloads),
            "peer_enum" => peer_enum(&corpus.payloads),
            "sse_only" => sse_only(&corpus.bytes, chunk),
            _ => 0,
        });
    }
}

/// `DECODE_INTERLEAVED=<rounds>`: every path of the `decode` groups plus the SSE
/// decoder alone and the eager-queue experiment, run in turn round after round, so
/// that a busy machine slows all alike. Prints each path's minimum and median time,
/// the floor's median over its median, and for the SDK the ratio to its 8 KiB run.
fn interleaved(rounds: usize) {
    for style in [Style::Lf, Style::CrlfMultiLine] {
        let corpus = corpus(style, CORPUS_BYTES);
        let (bytes, payloads) = (&corpus.bytes[..], &corpus.payloads[..]);
        let mut runs: Vec<(String, Box<dyn Fn() -> usize + '_>)> = vec![
            ("serde_floor".into(), Box::new(|| floor(payloads))),
            (
                "serde_floor_with_raw".into(),
                Box::new(|| floor_with_raw(payloads)),
            ),
            ("serde_peer_enum".into(), Box::new(|| peer_enum(payloads))),
        ];
        for chunk in CHUNKS {
            runs.push((
                format!("laracopilot/{chunk}"),
                Box::new(move || ours(bytes, chunk)),
            ));
            runs.push((
                format!("peer_stack/{chunk}"),
                Box::new(move || peer(bytes, chunk)),
            ));
        }
        runs.push(("sse_only/8192".into(), Box::new(|| sse_only(bytes, 8192))));
        runs.push((
            "sse+floor+raw/8192".into(),
            Box::new(|| sse_floor(bytes, 8192, false)),
        ));
        runs.push((
            "sse+floor+raw_queued/8192".into(),
            Box::new(|| sse_floor(bytes, 8192, true)),
        ));
        let mut times = vec![Vec::new(); runs.len()];
        for _ in 0..rounds {
            for ((_, run), times) in runs.iter().zip(&mut times) {
                let start = Instant::now();
                black_box(run());
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let stats: Vec<(f64, f64)> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                (t[0], t[t.len() / 2])
            })
            .collect();
        let median = |name: &str| {
            let at = runs.iter().position(|(n, _)| n == name);
            at.map_or(f64::NAN, |at| stats[at].1)
        };
        let (floor_median, ours_8k) = (median("serde_floor"), median("laracopilot/8192"));
        for ((name, _), (min, median)) in runs.iter().zip(&stats) {
            let vs_8k = if name.starts_with("laracopilot/") {
                format!("  8KiB/this {:.2}x", ours_8k / median)
            } else {
                String::new()
            };
            println!(
                "{:<15} {name:<26} min {min:7.3} ms  median {median:7.3} ms  floor/this {:.2}x{vs_8k}",
                style.name(),
                floor_median / median,
            );
        }
    }
}

fn main() {
    let rounds = std::env::var("DECODE_INTERLEAVED").ok();
    if let Some(rounds) = rounds.and_then(|r| r.parse().ok()) {
        return interleaved(rounds);
    }
    if let Ok(spec) = std::env::var("DECODE_ONLY") {
        return only(&spec);
    }
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    decode(&mut criterion);
    linearity(&mut criterion);
    criterion.final_summary();
}
