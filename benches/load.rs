//! Load figures: concurrent generations on one client, against the offline
//! LaraCopilot (no network, no credits). Prints the wall time, the event rate and
//! the peak memory (Linux), and fails when any event is missing.
//!
//! ```text
//! cargo bench --bench load -- [GENERATIONS] [EVENTS]
//! ```

use std::time::Instant;

use laracopilot_mock::MockServer;

/// The process's peak resident memory in KiB (`VmHWM`; Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`: only numbers count.
    let mut numbers = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let generations = numbers.next().unwrap_or(1_000);
    let events = numbers.next().unwrap_or(300).max(9);
    let server = MockServer::builder()
        .events_per_generation(events)
        .credits(u64::MAX)
        .start()?;
    let client = server.client();
    let before = peak_rss_kib();
    let started = Instant::now();
    let tasks: Vec<_> = (0..generations)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .generate("Build a task management app")
                    .await?
                    .finish()
                    .await
            })
        })
        .collect();
    let mut delivered = 0;
    for task in tasks {
        delivered += task.await??.stats().events;
    }
    let elapsed = started.elapsed();
    let expected = (generations * events) as u64;
    println!("generations: {generations}, events each: {events}");
    println!("delivered:   {delivered} of {expected} events");
    println!(
        "wall time:   {:.2} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64()
    );
    if let (Some(before), Some(peak)) = (before, peak_rss_kib()) {
        println!(
            "peak RSS:    {:.1} MiB (before the load: {:.1} MiB; client and server in one process)",
            peak as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
    if delivered != expected {
        return Err("not every event was delivered".into());
    }
    Ok(())
}
