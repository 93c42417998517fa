//! Bounded memory: a server that sends one endless line (a 4 GiB event, written piece
//! by piece) gets a clear error once the event-size cap is passed, and the process's
//! peak memory stays near the cap instead of growing with the line.
//!
//! ```text
//! cargo bench --bench bounded_memory
//! ```

use std::time::Instant;

use laracopilot::Error;
use laracopilot_mock::{Fault, MockServer};

/// The process's peak resident memory in KiB (`VmHWM`; Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const ENDLESS: usize = 4 << 30;
    let server = MockServer::builder().start()?;
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
            Err(error @ Error::EventTooLarge { .. }) => println!(
                "cap {:>2} MiB: {error} after {:.2} s; peak RSS {:.1} MiB",
                cap >> 20,
                started.elapsed().as_secs_f64(),
                peak as f64 / 1024.0
            ),
            Err(error) => return Err(error.into()),
            Ok(outcome) => {
                return Err(format!(
                    "expected EventTooLarge, the generation succeeded with {} events",
                    outcome.stats().events
                )
                .into())
            }
        }
    }
    Ok(())
}
