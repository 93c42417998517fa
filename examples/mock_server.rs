//! Serves the embedded offline LaraCopilot on 127.0.0.1 until Ctrl-C, to try the API
//! with curl or point another program at it (`LARACOPILOT_BASE_URL`).
//!
//! ```text
//! cargo run --example mock_server --features mock -- --port 8787 [--pacing-ms 40]
//! ```
//!
//! It prints the base URL, a token the server accepts (a demo value of this mock,
//! not a secret) and a curl command.

use std::process::ExitCode;
use std::time::Duration;

use laracopilot::mock::MockServer;

/// The token this demo server accepts.
const DEMO_TOKEN: &str = "lcp_mock_local_demo_token";

const USAGE: &str = "usage: mock_server [--port PORT] [--pacing-ms MILLISECONDS]";

struct Args {
    port: u16,
    pacing: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        pacing: Duration::from_millis(40),
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| {
            words
                .next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match word.as_str() {
            "--port" => {
                let text = value("--port")?;
                args.port = text
                    .parse()
                    .map_err(|_| format!("invalid port {text:?}\n{USAGE}"))?;
            }
            "--pacing-ms" => {
                let text = value("--pacing-ms")?;
                let millis: u64 = text
                    .parse()
                    .map_err(|_| format!("invalid pacing {text:?}\n{USAGE}"))?;
                args.pacing = Duration::from_millis(millis);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let server = match MockServer::builder()
        .port(args.port)
        .pacing(args.pacing)
        .token(DEMO_TOKEN)
        .start()
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot start the offline LaraCopilot: {e}");
            return ExitCode::FAILURE;
        }
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
    // The server serves from its own thread; Ctrl-C ends the process.
    loop {
        std::thread::park();
    }
}
