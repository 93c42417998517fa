//! End to end over loopback: a local server streams the corpus; the SDK's
//! `Generation` reads it as typed events, against reqwest reading the raw body bytes
//! (the transport limit) and the peer stack (reqwest bytes -> eventsource-stream ->
//! serde_json into a `#[serde(tag = "type")]` enum).
//!
//! The server runs on its own thread and runtime; the client on the bench thread,
//! on a single-threaded runtime. Every line reports the corpus size as
//! `Throughput::Bytes`.
//!
//! The journal's cost: the SDK with a `MemoryJournal`, an `SqliteJournal` (a file in
//! a temporary directory; feature `sqlite`) and a `PostgresJournal` (feature
//! `postgres`, when a server answers at `LARACOPILOT_TEST_POSTGRES`, or at what
//! `.ci/postgres.sh` makes) beside the SDK without one, on the 4 MiB corpus and on a
//! short stream (9 KiB, where the fixed cost of each generation shows most).
//!
//! `cargo bench --features full --bench end_to_end -- --warm-up-time 1 --measurement-time 3`
//!
//! `E2E_JOURNAL=<rounds>` runs the journal paths interleaved instead (none, each
//! engine, and none again as the control, in a new shuffled order every round, over
//! HTTP/1.1), one generation at a time and then 16 and 200 at once
//! (`E2E_JOURNAL_AT=1,16,200`; `E2E_JOURNAL_STREAMS=4MiB,short`), so that a busy
//! machine slows them alike, and prints medians per generation and ratios.
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
use laracopilot::{Client, ClientBuilder, Event, Token};

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/journals.rs"]
mod journals;
#[path = "support/server.rs"]
mod server;

use corpus::{corpus, PeerEvent, Style};
use journals::{Engine, Journals};
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

fn sdk_builder(base: &str, http: reqwest::Client) -> ClientBuilder {
    Client::builder()
        .token(Token::new("lcp_bench_0123456789abcdef").expect("a valid token"))
        .base_url(base)
        .http_client(http)
}

fn sdk_client(base: &str, http: reqwest::Client) -> Client {
    sdk_builder(base, http).build().expect("a client")
}

/// One client per engine (`none` first), each with a journal of its own.
fn journal_clients(
    runtime: &tokio::runtime::Runtime,
    journals: &Journals,
    base: &str,
    http: &reqwest::Client,
) -> Vec<(String, Client)> {
    journals
        .engines()
        .into_iter()
        .map(|engine| {
            let builder =
                runtime.block_on(journals.attach(engine, sdk_builder(base, http.clone())));
            let name = match engine {
                Engine::None => "laracopilot".to_owned(),
                engine => format!("laracopilot+{}_journal", engine.name()),
            };
            (name, builder.build().expect("a client"))
        })
        .collect()
}

/// A short stream: `project_created`, then about 8 KiB of the corpus (23 events, 9 KiB).
fn short_stream() -> (Vec<u8>, usize) {
    let created = b"data: {\"type\":\"project_created\",\"project_id\":\"p1\",\"app_url\":\"https://p1.laracopilot.com\"}\n\n";
    let rest = corpus(Style::Lf, 8 << 10);
    let mut bytes = created.to_vec();
    bytes.extend_from_slice(&rest.bytes);
    (bytes, rest.payloads.len() + 1)
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
    let journals = runtime.block_on(Journals::new());
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
        let clients = journal_clients(&runtime, &journals, &base, &http);
        for (name, client) in clients.iter().skip(1) {
            assert_eq!(
                runtime.block_on(sdk(client)),
                corpus.payloads.len(),
                "{name}"
            );
            timed(name, &|| runtime.block_on(sdk(client)));
        }
        group.finish();
    }
    // The journal on a short stream, where its fixed cost shows most.
    let (bytes, events) = short_stream();
    let frames = server::frames(&bytes, FRAME);
    let addr = server::spawn(Proto::Http1, move |_: &str| {
        Reply::frames(frames.clone(), false)
    });
    let base = format!("http://{addr}/api/v1");
    let http = http_client(Proto::Http1);
    let clients = journal_clients(&runtime, &journals, &base, &http);
    let mut group = c.benchmark_group("end_to_end_short/http1");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    for (name, client) in &clients {
        assert_eq!(runtime.block_on(sdk(client)), events, "{name}");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| black_box(runtime.block_on(sdk(client))))
        });
    }
    group.finish();
    drop(clients);
    runtime.block_on(journals.cleanup());
}

/// `E2E_JOURNAL=<rounds>`: the SDK without a journal, with each engine, and a
/// second client without a journal (the control: the noise floor of the
/// comparison), over HTTP/1.1, on the 4 MiB corpus and on the short stream; and,
/// beside one generation at a time, what the SQLite journal waits for (four small
/// appends, each `fdatasync`ed, in the same directory: admission, acceptance, the
/// project id, the settlement). Every round runs each path once, in a new
/// shuffled order (an `fsync` slows what comes right after it): `reps` times
/// `at` generations at once, joined. Prints each path's median wall time per
/// generation and its ratio to no journal.
fn journal_interleaved(rounds: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let journals = runtime.block_on(Journals::new());
    let levels: Vec<usize> = env_list("E2E_JOURNAL_AT", "1,16,200")
        .iter()
        .map(|n| n.parse().expect("E2E_JOURNAL_AT takes numbers"))
        .collect();
    let streams = env_list("E2E_JOURNAL_STREAMS", "4MiB,short");
    let long = corpus(Style::Lf, CORPUS_BYTES);
    let short = short_stream();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    for (stream, bytes, events, short_reps) in [
        ("4MiB", long.bytes.clone(), long.payloads.len(), 1),
        ("short", short.0, short.1, 20),
    ] {
        if !streams.iter().any(|s| s == stream) {
            continue;
        }
        let frames = server::frames(&bytes, FRAME);
        let addr = server::spawn(Proto::Http1, move |_: &str| {
            Reply::frames(frames.clone(), false)
        });
        let base = format!("http://{addr}/api/v1");
        let http = http_client(Proto::Http1);
        let mut clients = journal_clients(&runtime, &journals, &base, &http);
        clients.push((
            "laracopilot (control)".to_owned(),
            sdk_client(&base, http.clone()),
        ));
        let mut fsynced =
            std::fs::File::create(journals.dir().join("fsync-floor")).expect("a file");
        for &at in &levels {
            // Each measurement covers about `short_reps` generations; fewer rounds
            // when a round moves hundreds of MiB.
            let reps = (short_reps / at).max(1);
            let rounds = if at == 1 {
                rounds
            } else {
                (rounds * 4 / at).max(9)
            };
            let mut names: Vec<String> = clients.iter().map(|(name, _)| name.clone()).collect();
            if at == 1 {
                names.push("4 x append+fdatasync alone".to_owned());
            }
            for (_, client) in &clients {
                let done = runtime.block_on(batch(client, at));
                assert!(done.iter().all(|n| *n == events), "every stream completes");
            }
            let mut times = vec![Vec::new(); names.len()];
            let mut order: Vec<usize> = (0..names.len()).collect();
            for _ in 0..rounds {
                shuffle(&mut order, &mut seed);
                for &i in &order {
                    let start = Instant::now();
                    for _ in 0..reps {
                        match clients.get(i) {
                            Some((_, client)) => {
                                black_box(runtime.block_on(batch(client, at)));
                            }
                            None => {
                                use std::io::Write;
                                for _ in 0..4 {
                                    fsynced.write_all(&[b'x'; 200]).expect("a write");
                                    fsynced.sync_data().expect("an fdatasync");
                                }
                            }
                        }
                    }
                    times[i].push(start.elapsed().as_secs_f64() * 1e6 / (reps * at) as f64);
                }
            }
            let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
            for (name, median) in names.iter().zip(&medians) {
                println!(
                    "journal/{stream}/x{at:<3} {name:<30} median {median:>9.1} us per generation, {:.3}x of no journal ({rounds} rounds)",
                    median / medians[0]
                );
            }
        }
    }
    runtime.block_on(journals.cleanup());
}

/// `at` generations of `client` at once, each read to its end: their event counts.
async fn batch(client: &Client, at: usize) -> Vec<usize> {
    futures::future::join_all((0..at).map(|_| sdk(client))).await
}

/// A comma-separated list from the environment, or `default`.
fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Fisher-Yates with xorshift64*.
fn shuffle(order: &mut [usize], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let j = (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
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
    if let Some(rounds) = std::env::var("E2E_JOURNAL")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        return journal_interleaved(rounds);
    }
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    end_to_end(&mut criterion);
    criterion.final_summary();
}
