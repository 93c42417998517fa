//! Bounded memory: a server that sends one endless line (a 4 GiB event, written piece
//! by piece) gets a clear error once the event-size cap is passed, and the process's
//! peak memory stays near the cap instead of growing with the line.
//!
//! ```text
//! cargo run --release --example bounded_memory --features mock
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use laracopilot_mock::{Fault, MockServer};
use laracopilot::Error;

mod common;

use common::{peak_rss_kib, Failure};

/// Bounded memory: one endless line (a 4 GiB event) is cut at the event-size cap.
///
/// Against the offline LaraCopilot, for caps of 1 MiB and 16 MiB: the generation
/// ends with EventTooLarge, and the peak memory (Linux) stays near the cap. Build with
/// --release: the line is written piece by piece until the cap is passed.
#[derive(Debug, Parser)]
#[command(name = "bounded_memory", after_help = common::EXIT_STATUS)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    let _cli: Cli = common::parse();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => common::fail(&failure, false),
    }
}

async fn run() -> Result<(), Failure> {
    const ENDLESS: usize = 4 << 30;
    let server = common::start_mock(MockServer::builder())?;
    let before = peak_rss_kib().unwrap_or(0);
    println!("peak RSS before: {:.1} MiB", before as f64 / 1024.0);
    for cap in [1 << 20, 16 << 20] {
        server.fault_next(Fault::OversizedEvent(ENDLESS));
        let client = server.client_builder().max_event_size(cap).build()?;
        let started = Instant::now();
        let result = client
            .generate("Build a task management app")
            .await?
            .finish()
            .await;
        let peak = peak_rss_kib().unwrap_or(0);
        match result {
            Err(Error::EventTooLarge { limit, project_id, .. }) => println!(
                "cap {:>2} MiB: EventTooLarge (limit {limit}, project {}) after {:.2} s; peak RSS {:.1} MiB",
                cap >> 20,
                project_id.map(|p| p.to_string()).unwrap_or_default(),
                started.elapsed().as_secs_f64(),
                peak as f64 / 1024.0
            ),
            Err(error) => return Err(error.into()),
            Ok(outcome) => {
                return Err(Failure::Local(format!(
                    "expected EventTooLarge, the generation succeeded with {} events",
                    outcome.stats.events
                )))
            }
        }
    }
    Ok(())
}
