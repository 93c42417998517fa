//! Serves the embedded offline LaraCopilot on 127.0.0.1 until Ctrl-C, to try the API
//! with curl or point another program at it (`LARACOPILOT_BASE_URL`).
//!
//! ```text
//! cargo run --example mock_server --features mock -- --port 8787 [--pacing-ms 40] [--credits 5]
//! cargo run --example mock_server --features mock -- --port 8787 --replay FILE [--replay-pacing 0]
//! ```
//!
//! It prints the base URL, a token the server accepts (a demo value of this mock,
//! not a secret) and a curl command. With `--replay FILE` it answers from a recorded
//! cassette instead (see `generate --record FILE`), with the recorded chunks and
//! pacing; a request that is not on the tape gets a 501 naming it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use laracopilot::mock::{Cassette, MockServer};

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

    /// Answer from this cassette (recorded with `--record FILE` or
    /// `ClientBuilder::record_to`) instead of the offline LaraCopilot: each request
    /// is matched by method, path and body, in recorded order; one not on the tape
    /// gets a 501 naming it. Any token is accepted
    #[arg(long, value_name = "FILE")]
    replay: Option<std::path::PathBuf>,

    /// With --replay: the recorded pacing times this factor (0: as fast as
    /// possible; 1: real time; 2: twice as slow)
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 1.0,
        requires = "replay"
    )]
    replay_pacing: f64,
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
    let mut first_on_tape = None;
    let builder = match &cli.replay {
        Some(path) => match Cassette::load(path) {
            Ok(cassette) => {
                if let Some(line) = cassette.torn_line() {
                    eprintln!("note: line {line} of {} is torn (the recording was cut off there); it is left out", path.display());
                }
                println!(
                    "Replaying {} ({} exchanges, {} events) at {}x the recorded pacing",
                    path.display(),
                    cassette.len(),
                    cassette.events(),
                    cli.replay_pacing
                );
                first_on_tape = cassette.exchanges().first().map(|e| e.request.clone());
                builder.replay(cassette).replay_pacing(cli.replay_pacing)
            }
            Err(e) => {
                let failure =
                    common::Failure::Local(format!("cannot replay {}: {e}", path.display()));
                return common::fail(&failure, false);
            }
        },
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
    if cli.replay.is_some() {
        println!("The tape does not check the token: any value is accepted.");
        if let Some(request) = first_on_tape {
            let accept = request.header("accept").unwrap_or("*/*");
            let mut curl = format!(
                "  curl -N -X {} {base}{} -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Accept: {accept}'",
                request.method, request.path
            );
            if !request.body.is_empty() {
                let body = String::from_utf8_lossy(&request.body).replace('\'', "'\\''");
                curl.push_str(&format!(" -H 'Content-Type: application/json' -d '{body}'"));
            }
            println!("Try the first request on the tape:");
            println!("{curl}");
        }
        println!();
        println!(
            "Or: LARACOPILOT_BASE_URL={base} LARACOPILOT_API_TOKEN={DEMO_TOKEN} <your program>"
        );
        println!("Press Ctrl-C to stop.");
        std::future::pending::<()>().await;
        return ExitCode::SUCCESS;
    }
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
