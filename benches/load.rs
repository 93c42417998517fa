//! Load figures: N concurrent generations of M events on one client against the
//! offline LaraCopilot; prints the wall time, the event rate and the peak memory.
//!
//! ```text
//! cargo run --release --example load --features mock -- [GENERATIONS] [EVENTS]
//! ```
//!
//! Defaults: 1,000 generations of 300 events. Linux only for the memory figure
//! (`VmHWM` in /proc/self/status).

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use laracopilot_mock::MockServer;

mod common;

use common::{peak_rss_kib, Failure};

/// Load figures: concurrent generations on one client, against the offline
/// LaraCopilot (no network, no credits).
///
/// Prints the wall time, the event rate and the peak memory (Linux), and fails when
/// any event is missing. Build with --release for meaningful figures.
#[derive(Debug, Parser)]
#[command(name = "load", after_help = common::EXIT_STATUS)]
struct Cli {
    /// Generations running at once
    #[arg(value_name = "GENERATIONS", default_value_t = 1_000)]
    generations: usize,

    /// Events in each generation (at least 9)
    #[arg(value_name = "EVENTS", default_value_t = 300)]
    events: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = common::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => common::fail(&failure, false),
    }
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let Cli {
        generations,
        events,
    } = *cli;
    let builder = MockServer::builder()
        .events_per_generation(events)
        .credits(u64::MAX);
    let server = common::start_mock(builder)?;
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
        let outcome = task
            .await
            .map_err(|e| Failure::Local(format!("a generation task failed: {e}")))??;
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
        return Err(Failure::Local("not every event was delivered".into()));
    }
    Ok(())
}
