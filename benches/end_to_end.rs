//! End to end over loopback: a local server streams the corpus; the SDK's
//! `Generation` reads it as typed events, against reqwest reading the raw body bytes
//! (the transport limit) and the peer stack (reqwest bytes -> eventsource-stream ->
//! serde_json into a `#[serde(tag = "type")]` enum).
//!
//! The server runs on its own thread and runtime; the client on the bench thread,
//! on a single-threaded runtime. Every line reports the corpus size as
//! `Throughput::Bytes`.
//!
//! `cargo bench --all-features --bench end_to_end -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure stops the measurement"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use http_body_util::BodyExt;
use laracopilot::{Client, Event, Token};

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/server.rs"]
mod server;

use corpus::{corpus, PeerEvent, Style};
use server::{Proto, Reply};

const CORPUS_BYTES: usize = 4 << 20;
/// The size of the body frames the server writes.
const FRAME: usize = 16 * 1024;

fn http_client(proto: Proto) -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = match proto {
        Proto::Http1 => builder.http1_only(),
        Proto::Http2 => builder.http2_prior_knowledge(),
    };
    builder.build().expect("a reqwest client")
}

fn sdk_client(base: &str, http: reqwest::Client) -> Client {
    Client::builder()
        .token(Token::new("lcp_bench_0123456789abcdef").expect("a valid token"))
        .base_url(base)
        .http_client(http)
        .build()
        .expect("a client")
}

/// reqwest's raw body bytes: the transport limit.
async fn raw(http: &reqwest::Client, url: &str) -> usize {
    let response = http
        .post(url)
        .body("{\"prompt\":\"bench\"}")
        .send()
        .await
        .expect("the server answers");
    let mut body = reqwest::Body::from(response);
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the body streams").into_data() {
            bytes += black_box(data).len();
        }
    }
    bytes
}

/// The SDK: every typed event, up to `stream_end`.
async fn sdk(client: &Client) -> usize {
    let mut generation = client.generate("bench").await.expect("the server answers");
    let mut events = 0;
    while let Some(event) = generation.next().await {
        let event = event.expect("the corpus decodes");
        events += 1;
        if matches!(black_box(event), Event::StreamEnd(_)) {
            break;
        }
    }
    events
}

/// The peer stack end to end.
async fn peer(http: &reqwest::Client, url: &str) -> usize {
    let response = http
        .post(url)
        .body("{\"prompt\":\"bench\"}")
        .send()
        .await
        .expect("the server answers");
    let mut events = reqwest::Body::from(response)
        .into_data_stream()
        .eventsource();
    let mut count = 0;
    while let Some(event) = events.next().await {
        let event = event.expect("the body streams");
        let typed: PeerEvent = serde_json::from_str(&event.data).expect("the corpus decodes");
        black_box(typed);
        count += 1;
    }
    count
}

fn end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let corpus = corpus(Style::Lf, CORPUS_BYTES);
    let frames = server::frames(&corpus.bytes, FRAME);
    for proto in [Proto::Http1, Proto::Http2] {
        let served = frames.clone();
        let addr = server::spawn(proto, move |_: &str| Reply::frames(served.clone(), false));
        let base = format!("http://{addr}/api/v1");
        let url = format!("{base}/agent/generate");
        let http = http_client(proto);
        let client = sdk_client(&base, http.clone());
        runtime.block_on(async {
            assert_eq!(raw(&http, &url).await, corpus.bytes.len());
            assert_eq!(sdk(&client).await, corpus.payloads.len());
            assert_eq!(peer(&http, &url).await, corpus.payloads.len());
        });

        let mut group = c.benchmark_group(format!("end_to_end/{}", proto.name()));
        group.throughput(Throughput::Bytes(corpus.bytes.len() as u64));
        let mut timed = |name: &str, run: &dyn Fn() -> usize| {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(run());
                    }
                    start.elapsed()
                })
            });
        };
        timed("raw_bytes", &|| runtime.block_on(raw(&http, &url)));
        timed("laracopilot", &|| runtime.block_on(sdk(&client)));
        timed("peer_stack", &|| runtime.block_on(peer(&http, &url)));
        group.finish();
    }
}

/// `E2E_ONLY=<raw|sdk|peer>` runs that path ten times over HTTP/1.1 and exits, for
/// instruction counts under `valgrind --tool=callgrind`.
fn only(what: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let corpus = corpus(Style::Lf, CORPUS_BYTES);
    let frames = server::frames(&corpus.bytes, FRAME);
    let addr = server::spawn(Proto::Http1, move |_: &str| {
        Reply::frames(frames.clone(), false)
    });
    let base = format!("http://{addr}/api/v1");
    let url = format!("{base}/agent/generate");
    let http = http_client(Proto::Http1);
    let client = sdk_client(&base, http.clone());
    runtime.block_on(async {
        for _ in 0..10 {
            black_box(match what {
                "raw" => raw(&http, &url).await,
                "sdk" => sdk(&client).await,
                "peer" => peer(&http, &url).await,
                _ => 0,
            });
        }
    });
}

fn main() {
    if let Ok(what) = std::env::var("E2E_ONLY") {
        return only(&what);
    }
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    end_to_end(&mut criterion);
    criterion.final_summary();
}
