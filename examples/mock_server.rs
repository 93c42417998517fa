//! Serves the embedded offline LaraCopilot on 127.0.0.1 until Ctrl-C, to try the API
//! with curl or point another program at it (`LARACOPILOT_BASE_URL`).
//!
//! ```text
//! cargo run --example mock_server --features mock -- --port 8787 [--pacing-ms 40] [--credits 5]
//! ```
//!
//! It prints the base URL, a token the server accepts (a demo value of this mock,
//! not a secret) and a curl command.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use laracopilot::mock::MockServer;

mod common;

/// The token this demo server accepts.
const DEMO_TOKEN: &str = "lcp_mock_local_demo_token";

/// Serves the embedded offline LaraCopilot on 127.0.0.1 until Ctrl-C.
///
/// For curl, or another program pointed at it with LARACOPILOT_BASE_URL and the demo
/// token it prints (a value of this mock, not a secret). No network, no credits.
#[derive(Debug, Parser)]
#[command(name = "mock_server", after_help = common::EXIT_STATUS)]
struct Cli {
    /// The port on 127.0.0.1 (0: any free port)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    port: u16,

    /// Milliseconds between two events of a stream
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 40)]
    pacing_ms: u64,

    /// The team's credit balance: each generated file spends one, and a stream that
    /// runs out ends with credits_exhausted [default: plenty]
    #[arg(long, value_name = "CREDITS")]
    credits: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = common::parse();
    let builder = MockServer::builder()
        .port(cli.port)
        .pacing(Duration::from_millis(cli.pacing_ms))
        .token(DEMO_TOKEN);
    let builder = match cli.credits {
        Some(credits) => builder.credits(credits),
        None => builder,
    };
    let server = match common::start_mock(builder) {
        Ok(server) => server,
        Err(failure) => return common::fail(&failure, false),
    };
    let base = server.base_url();
    println!("Offline LaraCopilot listening at {base}");
    println!("Token (a demo value of this mock): {DEMO_TOKEN}");
    println!();
    println!("Try:");
    println!(
        "  curl -N {base}/agent/generate -H 'Authorization: Bearer {DEMO_TOKEN}' \
         -H 'Content-Type: application/json' -H 'Accept: text/event-stream' \
         -d '{{\"prompt\": \"Build a task management app\"}}'"
    );
    println!("  curl {base}/agent/project/p1 -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Accept: application/json'");
    println!();
    println!("Or: LARACOPILOT_BASE_URL={base} LARACOPILOT_API_TOKEN={DEMO_TOKEN} <your program>");
    println!("Press Ctrl-C to stop.");
    // Serves from its own task; Ctrl-C ends the process.
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
