//! Load figures: N concurrent generations of M events on one client against the
//! offline LaraCopilot; prints the wall time, the event rate and the peak memory.
//!
//! ```text
//! cargo run --release --example load --features mock -- [GENERATIONS] [EVENTS]
//! ```
//!
//! Defaults: 1,000 generations of 300 events. Linux only for the memory figure
//! (`VmHWM` in /proc/self/status).

use std::time::Instant;

use laracopilot::mock::MockServer;

mod common;

use common::peak_rss_kib;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let generations = args.next().transpose()?.unwrap_or(1_000);
    let events = args.next().transpose()?.unwrap_or(300);

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
        let outcome = task.await??;
        delivered += outcome.stats.events;
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
