//! Bounded memory: a server that sends one endless line (a 4 GiB event, written piece
//! by piece) gets a clear error once the event-size cap is passed, and the process's
//! peak memory stays near the cap instead of growing with the line.
//!
//! ```text
//! cargo run --release --example bounded_memory --features mock
//! ```

use std::time::Instant;

use laracopilot::mock::{Fault, MockServer};
use laracopilot::Error;

mod common;

use common::peak_rss_kib;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const ENDLESS: usize = 4 << 30;
    let server = MockServer::start();
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
            other => return Err(format!("expected EventTooLarge, got {other:?}").into()),
        }
    }
    Ok(())
}
