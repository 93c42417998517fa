//! Latency over loopback: the server writes one small event per millisecond, stamped
//! with the time of the write; the client measures, on arrival, how long ago that
//! was: for the SDK when `Generation::next` hands out the typed event, for raw
//! reqwest when the body chunk holding it is in hand.
//!
//! Rounds of both alternate in the order raw, SDK, SDK, raw, ... so that a busy
//! machine, whose load changes over seconds, hits both alike. Prints p50, p90, p99
//! and max, and the SDK's ratios to raw.
//!
//! `cargo bench --features full --bench latency` (about 10 seconds; set
//! `LATENCY_EVENTS` and `LATENCY_ROUNDS` to change the 500 events x 10 rounds of
//! each).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure stops the measurement"
)]

use std::time::Duration;

use http_body_util::BodyExt;
use laracopilot::{Client, Event, Token};

#[path = "support/server.rs"]
mod server;

use server::{now_ns, stamp, Proto, Reply};

const PERIOD: Duration = Duration::from_millis(1);

/// Microseconds from the server's write to each event in the caller's hands.
async fn raw(http: &reqwest::Client, url: &str, samples: &mut Vec<f64>) {
    let response = http
        .post(url)
        .body("{}")
        .send()
        .await
        .expect("the server answers");
    let mut body = reqwest::Body::from(response);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.expect("the body streams").into_data() else {
            continue;
        };
        let now = now_ns();
        // A chunk may hold several events when the client fell behind.
        for event in memchr::memmem::find_iter(&data, b"data: ") {
            if let Some(sent) = stamp(&data[event..]) {
                samples.push(now.saturating_sub(sent) as f64 / 1e3);
            }
        }
    }
}

async fn sdk(client: &Client, samples: &mut Vec<f64>) {
    let mut generation = client.generate("bench").await.expect("the server answers");
    while let Some(event) = generation.next().await {
        let event = event.expect("the events decode");
        let now = now_ns();
        if let Event::ContainerProgress(progress) = &event {
            if let Some(sent) = stamp(progress.raw_json().as_bytes()) {
                samples.push(now.saturating_sub(sent) as f64 / 1e3);
            }
        }
        if matches!(event, Event::StreamEnd(_)) {
            break;
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events = env("LATENCY_EVENTS", 500);
    let rounds = env("LATENCY_ROUNDS", 10);
    now_ns();
    let addr = server::spawn(Proto::Http1, move |_: &str| {
        Reply::ticks(PERIOD, events + 1)
    });
    let base = format!("http://{addr}/api/v1");
    let url = format!("{base}/agent/generate");
    let http = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("a reqwest client");
    let client = Client::builder()
        .token(Token::new("lcp_bench_0123456789abcdef").expect("a valid token"))
        .base_url(&base)
        .http_client(http.clone())
        .build()
        .expect("a client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let (mut raw_samples, mut sdk_samples) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..rounds {
            if round % 2 == 0 {
                raw(&http, &url, &mut raw_samples).await;
                sdk(&client, &mut sdk_samples).await;
            } else {
                sdk(&client, &mut sdk_samples).await;
                raw(&http, &url, &mut raw_samples).await;
            }
        }
    });
    let mut rows = Vec::new();
    for (name, samples) in [
        ("raw_bytes", &mut raw_samples),
        ("laracopilot", &mut sdk_samples),
    ] {
        assert_eq!(
            samples.len(),
            events * rounds,
            "{name}: every event measured"
        );
        samples.sort_by(f64::total_cmp);
        let row = [0.5, 0.9, 0.99, 1.0].map(|p| percentile(samples, p));
        println!(
            "latency/{name:<12} n={:<6} p50 {:8.1} us  p90 {:8.1} us  p99 {:8.1} us  max {:8.1} us",
            samples.len(),
            row[0],
            row[1],
            row[2],
            row[3]
        );
        rows.push(row);
    }
    println!(
        "latency/ratio laracopilot/raw_bytes: p50 {:.2}x  p90 {:.2}x  p99 {:.2}x",
        rows[1][0] / rows[0][0],
        rows[1][1] / rows[0][1],
        rows[1][2] / rows[0][2]
    );
}
