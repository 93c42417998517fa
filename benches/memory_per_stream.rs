//! Memory per open stream: N generations held open at once against a loopback
//! server, over HTTP/1.1 (one connection each) and over h2c (HTTP/2 with prior
//! knowledge, all streams on one connection), with the SDK and with raw reqwest
//! bodies.
//!
//! Every case runs in a fresh client process (so that its peak RSS is its own) and
//! the server in another process (so that its memory is not counted). The client
//! reads `VmRSS` and `VmHWM` from /proc/self/status before opening any stream and
//! once all N are open, having read each stream's first events; then the server
//! lets every stream finish and the client checks that all N end properly.
//!
//! `cargo bench --features full --bench memory_per_stream [-- --streams 1000,10000 --proto http1,h2c]`
//!
//! 10,000 streams over HTTP/1.1 need 10,000 descriptors in the client and as many in
//! the server process: check `ulimit -n` (the run says what it needs).
//!
//! Where the bytes are: with `MEM_EXIT_OPEN=1`, a `measure` child exits at the
//! moment it measures, so that a heap profiler's "leaked" report is what the open
//! streams hold, by allocation site:
//!
//! ```sh
//! B=$(ls target/release/deps/memory_per_stream-* | grep -v '\.d$')
//! sleep 600 | $B serve h2c &   # prints PORT n; serves while its stdin is open
//! MEM_EXIT_OPEN=1 heaptrack $B measure sdk h2c 10000 n   # and `raw`
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure stops the measurement"
)]

use std::alloc::System;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use laracopilot::{Client, Event, Generation, Token};

#[path = "support/server.rs"]
mod server;

use server::{Proto, Reply};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

/// Counts live heap bytes (as requested, without the allocator's own overhead).
#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn heap_bytes() -> i64 {
    let stats = HEAP.stats();
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64 + stats.bytes_reallocated as i64
}

/// How many streams are being opened at once.
const OPENING: usize = 256;
/// No run may take longer than this.
const LIMIT: Duration = Duration::from_secs(300);

/// The first events of a new project, sent at once; then the stream is held open.
fn head() -> Vec<String> {
    let mut events = vec![
        r#"{"type":"project_created","project_id":"abc123","app_url":"https://abc123.laracopilot.com"}"#.to_owned(),
    ];
    for (step, percentage) in [
        ("Installing Laravel...", 20),
        ("Installing npm dependencies...", 40),
        ("Running migrations...", 60),
    ] {
        events.push(format!(
            r#"{{"type":"container_progress","message":"{step}","percentage":{percentage}}}"#
        ));
    }
    events.push(
        r#"{"type":"container_ready","message":"Container ready. Starting AI generation..."}"#
            .to_owned(),
    );
    events.push(
        r#"{"type":"tool_progress","tool":"write_file","message":"Writing app/Models/Task.php"}"#
            .to_owned(),
    );
    events.push(format!(
        r#"{{"type":"file_created","path":"app/Models/Task.php","content":"{}"}}"#,
        "<?php\\n\\nnamespace App\\\\Models;\\n\\nclass Task extends Model {}\\n".repeat(4)
    ));
    events
}

fn sse(events: &[String]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|e| format!("data: {e}\n\n").into_bytes())
        .collect()
}

const TOKEN: &str = "lcp_bench_0123456789abcdef";

const TAIL: &str = "data: {\"type\":\"stream_end\",\"project_id\":\"abc123\"}\n\n";

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn proto(name: &str) -> Proto {
    match name {
        "h2c" => Proto::Http2,
        _ => Proto::Http1,
    }
}

/// The server process: prints its port, serves until its stdin closes.
fn serve(name: &str) {
    let proto = proto(name);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("a nonblocking listener");
    let port = listener.local_addr().expect("a bound address").port();
    println!("PORT {port}");
    std::io::stdout().flush().expect("stdout");
    std::thread::spawn(|| {
        // The parent holds our stdin: when it exits, so do we.
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let head: Arc<[Bytes]> = Arc::new([Bytes::from(sse(&head()))]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        let serving = server::run(listener, proto, move |_: &str| {
            Reply::held(head.clone(), Bytes::from_static(TAIL.as_bytes()))
        });
        let _ = tokio::time::timeout(LIMIT, serving).await;
    });
}

enum Open {
    Raw(reqwest::Body),
    Sdk(Box<Generation>),
}

async fn open_raw(http: &reqwest::Client, url: &str, head: usize) -> Result<Open, String> {
    // The same request as the SDK's, so that only what the SDK keeps differs.
    let response = http
        .post(url)
        .bearer_auth(TOKEN)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION")),
        )
        .body("{\"prompt\":\"memory\"}")
        .send()
        .await;
    let mut body = reqwest::Body::from(response.map_err(|e| format!("{e:?}"))?);
    let mut read = 0;
    while read < head {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.into_data().map(|d| d.len()).unwrap_or(0),
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the body ended early".into()),
        }
    }
    Ok(Open::Raw(body))
}

async fn open_sdk(client: &Client, head: usize) -> Result<Open, String> {
    let mut generation = client
        .generate("memory")
        .await
        .map_err(|e| format!("{e:?}"))?;
    for _ in 0..head {
        match generation.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the stream ended early".into()),
        }
    }
    Ok(Open::Sdk(Box::new(generation)))
}

/// Reads a stream to its end; whether it ended as it should.
async fn complete(open: Open) -> bool {
    match open {
        Open::Raw(mut body) => {
            let mut tail = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => tail += frame.into_data().map(|d| d.len()).unwrap_or(0),
                    Err(_) => return false,
                }
            }
            tail == TAIL.len()
        }
        Open::Sdk(mut generation) => {
            matches!(generation.next().await, Some(Ok(Event::StreamEnd(_))))
                && generation.next().await.is_none()
        }
    }
}

/// One case, in this process: prints a `RESULT` line.
fn measure(kind: &str, proto_name: &str, streams: usize, port: u16) {
    let proto = proto(proto_name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let url = format!("{base}/agent/generate");
    let head_bytes = sse(&head()).len();
    let head_events = head().len();
    let http = match proto {
        Proto::Http1 => reqwest::Client::builder().http1_only(),
        Proto::Http2 => reqwest::Client::builder().http2_prior_knowledge(),
    }
    .build()
    .expect("a reqwest client");
    let client = Client::builder()
        .token(Token::new(TOKEN).expect("a valid token"))
        .base_url(&base)
        .http_client(http.clone())
        .idle_timeout(if std::env::var_os("MEM_IDLE_NONE").is_some() {
            None
        } else {
            Some(Duration::from_secs(300))
        })
        .build()
        .expect("a client");
    let open = |_| async {
        match kind {
            "sdk" => open_sdk(&client, head_events).await,
            _ => open_raw(&http, &url, head_bytes).await,
        }
    };
    let result = runtime.block_on(async {
        tokio::time::timeout(LIMIT, async {
            // Warm up: one stream, dropped, so that lazily built state is in place.
            drop(open(0).await?);
            let before = status_kib("VmRSS:");
            let heap_before = heap_bytes();
            let started = Instant::now();
            let opened: Vec<Result<Open, String>> = futures::stream::iter(0..streams)
                .map(open)
                .buffer_unordered(OPENING)
                .collect()
                .await;
            let opened: Vec<Open> = opened.into_iter().collect::<Result<_, _>>()?;
            let open_time = started.elapsed();
            let (rss, hwm) = (status_kib("VmRSS:"), status_kib("VmHWM:"));
            let heap = heap_bytes() - heap_before;
            if std::env::var_os("MEM_EXIT_OPEN").is_some() {
                println!("RESULT-AT-EXIT heap {heap}");
                std::process::exit(0);
            }
            http.post(format!("{base}/release"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let done = futures::future::join_all(opened.into_iter().map(complete)).await;
            let completed = done.into_iter().filter(|ok| *ok).count();
            Ok::<_, String>((before, rss, hwm, heap, completed, open_time))
        })
        .await
        .map_err(|_| "timed out".to_owned())?
    });
    match result {
        Ok((before, rss, hwm, heap, completed, open_time)) => println!(
            "RESULT {before} {rss} {hwm} {heap} {completed} {:.3}",
            open_time.as_secs_f64()
        ),
        Err(e) => println!("FAILED {e}"),
    }
}

fn child(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("this executable"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("a child process");
    let stdout = BufReader::new(child.stdout.take().expect("a piped stdout"));
    (child, stdout)
}

fn first_line(stdout: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    line.trim().to_owned()
}

fn list<'a>(args: &'a [String], flag: &str, default: &'a str) -> Vec<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, String::as_str)
        .split(',')
        .collect()
}

fn run_all(args: &[String]) {
    let counts: Vec<usize> = list(args, "--streams", "1000,10000")
        .iter()
        .map(|n| n.parse().expect("--streams takes numbers"))
        .collect();
    let protos = list(args, "--proto", "http1,h2c");
    println!("{}", sizes());
    let limit = open_files_limit();
    println!(
        "open files limit (soft): {limit}; HTTP/1.1 needs about one per stream in each process"
    );
    println!(
        "{:<6} {:>7} {:<12} {:>9} {:>11} {:>11} {:>11} {:>12} {:>7}",
        "proto",
        "streams",
        "client",
        "base MiB",
        "heap B/str",
        "RSS B/str",
        "peak B/str",
        "completed",
        "open s"
    );
    for proto_name in protos {
        let (mut server, mut server_out) = child(&["serve", proto_name]);
        let port_line = first_line(&mut server_out);
        let port = port_line.trim_start_matches("PORT ").to_owned();
        for &streams in &counts {
            if proto_name == "http1" && (streams as u64) + 64 > limit {
                println!(
                    "{proto_name:<6} {streams:>7} skipped: raise `ulimit -n` above {}",
                    streams + 64
                );
                continue;
            }
            let mut per_stream = Vec::new();
            for kind in ["raw", "sdk"] {
                let label = if kind == "sdk" {
                    "laracopilot"
                } else {
                    "raw_reqwest"
                };
                let n = streams.to_string();
                let (mut client, mut out) = child(&["measure", kind, proto_name, &n, &port]);
                let line = first_line(&mut out);
                let _ = client.wait();
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.first() != Some(&"RESULT") || fields.len() != 7 {
                    println!("{proto_name:<6} {streams:>7} {label:<12} {line}");
                    continue;
                }
                let num = |i: usize| fields[i].parse::<f64>().unwrap_or(0.0);
                let per = |v: f64| v / streams as f64;
                let (before, rss, hwm, heap) = (num(1), num(2), num(3), num(4));
                let row = [
                    per(heap),
                    per((rss - before) * 1024.0),
                    per((hwm - before) * 1024.0),
                ];
                per_stream.push(row);
                println!(
                    "{proto_name:<6} {streams:>7} {label:<12} {:>9.1} {:>11.0} {:>11.0} {:>11.0} {:>12} {:>7}",
                    before / 1024.0,
                    row[0],
                    row[1],
                    row[2],
                    format!("{}/{streams}", fields[5]),
                    fields[6]
                );
            }
            if let [raw, sdk] = per_stream[..] {
                println!(
                    "{proto_name:<6} {streams:>7} {:<12} {:>9} {:>11.0} {:>11.0} {:>11.0}",
                    "sdk - raw",
                    "",
                    sdk[0] - raw[0],
                    sdk[1] - raw[1],
                    sdk[2] - raw[2]
                );
            }
        }
        // Closing its stdin ends the server; `kill` (of our own child) if it lingers.
        drop(server.stdin.take());
        if server.wait_timeout_ms(2000).is_none() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// What the SDK keeps per stream by construction: the `Generation` (boxed here, as
/// a spawned task would hold it), and the sizes of some of its parts.
fn sizes() -> String {
    use std::mem::size_of;
    #[cfg(feature = "__internal")]
    let reader = format!(
        ", EventReader {}",
        size_of::<laracopilot::__private::EventReader>()
    );
    #[cfg(not(feature = "__internal"))]
    let reader = String::new();
    format!(
        "size_of::<Generation>() = {} bytes (Progress {}, Result<Event> {}{reader}, reqwest::Body {}, tokio Sleep {} boxed)",
        size_of::<Generation>(),
        size_of::<laracopilot::Progress>(),
        size_of::<laracopilot::Result<Event>>(),
        size_of::<reqwest::Body>(),
        size_of::<tokio::time::Sleep>(),
    )
}

/// `Child::wait` with a bound.
trait WaitTimeout {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout_ms(&mut self, ms: u64) -> Option<std::process::ExitStatus> {
        for _ in 0..ms / 10 {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn main() {
    // `cargo bench` passes `--bench`; criterion-style filters are ignored.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(args.get(1).map_or("http1", String::as_str)),
        Some("measure") if args.len() == 5 => {
            let streams = args[3].parse().expect("a stream count");
            let port = args[4].parse().expect("a port");
            measure(&args[1], &args[2], streams, port);
        }
        _ => run_all(&args),
    }
}
