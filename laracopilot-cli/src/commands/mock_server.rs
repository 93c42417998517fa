//! `laracopilot mock-server`: serves the offline LaraCopilot on 127.0.0.1 until
//! Ctrl-C (or until stdout's reader is gone), to try the API with curl, point
//! another program at it, or try faults and token states without writing Rust.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use laracopilot::cassette::Cassette;
use laracopilot::Token;
use laracopilot_mock::{MockProject, MockServer, OnClientDrop, TokenState};

use super::mock_spec::{self, StreamFaults, FAULTS};
use crate::failure::{self, Failure};
use crate::{offline, out};

/// The token this demo server accepts.
pub const DEMO_TOKEN: &str = "lcp_mock_local_demo_token";

/// How often the server checks that stdout's reader is still there.
const WATCH: Duration = Duration::from_millis(200);

const TRY: &str = "\
Try it:
  laracopilot mock-server --fault drop-after:5 --fault stall --revoked-token lcp_revoked_0001
  export LARACOPILOT_BASE_URL=http://127.0.0.1:PORT/api/v1 LARACOPILOT_API_TOKEN=lcp_mock_local_demo_token
  laracopilot generate                 # the first stream drops after 5 events
  laracopilot generate --idle-timeout 2  # the second stalls after project_created
  LARACOPILOT_API_TOKEN=lcp_revoked_0001 laracopilot doctor   # a revoked token";

/// Serves the offline LaraCopilot on 127.0.0.1 until Ctrl-C.
///
/// For curl, or another program pointed at it with LARACOPILOT_BASE_URL and the demo
/// token it prints (a value of this mock, not a secret). No network, no credits.
/// Faults, token states and projects can be set from the command line.
#[derive(Debug, clap::Args)]
#[command(after_help = failure::after_help(&[FAULTS, TRY, failure::EXIT_STATUS]))]
pub struct Args {
    /// The port on 127.0.0.1 (0: any free port)
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,

    /// Milliseconds between two events of a stream
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 40)]
    pub pacing_ms: u64,

    /// The team's credit balance: each generated file spends one, and a stream that
    /// runs out ends with credits_exhausted [default: plenty]
    #[arg(long, value_name = "CREDITS")]
    pub credits: Option<u64>,

    /// The faults of the next stream (once per stream, in order; the streams after
    /// them are healthy): see "Faults" below
    #[arg(long = "fault", value_name = "SPEC", value_parser = mock_spec::faults, conflicts_with = "replay")]
    pub faults: Vec<StreamFaults>,

    /// A token the server knows as revoked (401 "Unauthorized.")
    #[arg(long = "revoked-token", value_name = "TOKEN")]
    pub revoked: Vec<String>,

    /// A token the server knows as expired (401 "API token has expired.")
    #[arg(long = "expired-token", value_name = "TOKEN")]
    pub expired: Vec<String>,

    /// A project the server knows from the start: ID (ready) or
    /// ID=generating|ready|failed|credits_exhausted
    #[arg(long = "project", value_name = "ID[=STATUS]", value_parser = mock_spec::project, conflicts_with = "replay")]
    pub projects: Vec<MockProject>,

    /// What a generation whose client leaves mid-stream becomes: it finishes as if
    /// the client had stayed (as LaraCopilot does), or fails at once
    #[arg(
        long,
        value_name = "WHAT",
        default_value = "finish",
        conflicts_with = "replay"
    )]
    pub on_client_drop: ClientDrop,

    /// Answer from this cassette (recorded with `--record FILE` or
    /// `ClientBuilder::record_to`) instead of the offline LaraCopilot: each request
    /// is matched by method, path and body, in recorded order; one not on the tape
    /// gets a 501 naming it. Any token is accepted
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,

    /// With --replay: the recorded pacing times this factor (0: as fast as
    /// possible; 1: real time; 2: twice as slow)
    #[arg(
        long,
        value_name = "FACTOR",
        default_value_t = 1.0,
        requires = "replay"
    )]
    pub replay_pacing: f64,
}

/// `--on-client-drop`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ClientDrop {
    /// The generation finishes as if the client had stayed (ready, files recorded)
    Finish,
    /// The project is marked failed at once
    Fail,
}

/// Runs `mock-server` until Ctrl-C, or until stdout's reader is gone (exit 141).
///
/// # Errors
///
/// A tape that cannot be read, a server that cannot start, a closed stdout.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let mut builder = MockServer::builder()
        .port(args.port)
        .pacing(Duration::from_millis(args.pacing_ms))
        .token(DEMO_TOKEN)
        .on_client_drop(match args.on_client_drop {
            ClientDrop::Finish => OnClientDrop::Finish,
            ClientDrop::Fail => OnClientDrop::Fail,
        });
    if let Some(credits) = args.credits {
        builder = builder.credits(credits);
    }
    for project in &args.projects {
        builder = builder.project(project.clone());
    }
    let tape = match &args.replay {
        Some(path) => {
            let tape = Cassette::load(path)
                .map_err(|e| Failure::Local(format!("cannot replay {}: {e}", path.display())))?;
            if let Some(line) = tape.torn_line() {
                let text = format!(
                    "line {line} of {} (the recording was cut off there); it is left out",
                    path.display()
                );
                out::warn("Torn", &text);
            }
            builder = builder
                .replay(tape.clone())
                .replay_pacing(args.replay_pacing);
            Some(tape)
        }
        None => None,
    };
    let server = offline::start(builder)?;
    for token in &args.revoked {
        server.add_token(token, TokenState::Revoked);
    }
    for token in &args.expired {
        server.add_token(token, TokenState::Expired);
    }
    for faults in &args.faults {
        server.faults_next(faults.faults.iter().cloned());
    }
    let base = server.base_url().to_owned();
    out::line(&format!("Offline LaraCopilot listening at {base}"))?;
    out::line(&format!("Token (a demo value of this mock): {DEMO_TOKEN}"))?;
    match (&args.replay, &tape) {
        (Some(path), Some(tape)) => replaying(path, tape, args.replay_pacing, &base)?,
        _ => scripted(args, &base)?,
    }
    out::line("")?;
    out::line(&format!(
        "Or: LARACOPILOT_BASE_URL={base} LARACOPILOT_API_TOKEN={DEMO_TOKEN} laracopilot generate"
    ))?;
    out::line("Press Ctrl-C to stop.")?;
    // Serves from its own thread; Ctrl-C ends the process. A reader that goes away
    // (`mock-server | head -1`) ends it too, so that a pipeline does not wait forever.
    loop {
        tokio::time::sleep(WATCH).await;
        out::ensure_open()?;
    }
}

/// What the offline LaraCopilot was set up with, and curl commands to try it.
fn scripted(args: &Args, base: &str) -> Result<(), Failure> {
    let masked = |tokens: &[String]| -> String {
        tokens
            .iter()
            .map(|t| Token::new(t.as_str()).map_or_else(|_| "****".to_owned(), |t| t.masked()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !args.revoked.is_empty() {
        out::line(&format!("Revoked tokens: {}", masked(&args.revoked)))?;
    }
    if !args.expired.is_empty() {
        out::line(&format!("Expired tokens: {}", masked(&args.expired)))?;
    }
    if !args.projects.is_empty() {
        let projects: Vec<String> = args
            .projects
            .iter()
            .map(|p| format!("{} ({})", p.project_id, p.status.as_str()))
            .collect();
        out::line(&format!("Projects: {}", projects.join(", ")))?;
    }
    for (i, faults) in args.faults.iter().enumerate() {
        out::line(&format!("Faults of stream {}: {}", i + 1, faults.spec))?;
    }
    out::line("")?;
    out::line("Try:")?;
    out::line(&format!(
        "  curl -N {base}/agent/generate -H 'Authorization: Bearer {DEMO_TOKEN}' \
         -H 'Content-Type: application/json' -H 'Accept: text/event-stream' \
         -d '{{\"prompt\": \"Build a task management app\"}}'"
    ))?;
    out::line(&format!(
        "  curl {base}/agent/project/p1 -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Accept: application/json'"
    ))
}

/// What the tape holds, and a curl command for its first request.
fn replaying(
    path: &std::path::Path,
    tape: &Cassette,
    pacing: f64,
    base: &str,
) -> Result<(), Failure> {
    out::line(&format!(
        "Replaying {} ({} exchanges, {} events) at {pacing}x the recorded pacing",
        path.display(),
        tape.len(),
        tape.events(),
    ))?;
    out::line("")?;
    out::line("The tape does not check the token: any value is accepted.")?;
    let Some(request) = tape.exchanges().first().map(|e| &e.request) else {
        return Ok(());
    };
    let accept = request.header("accept").unwrap_or("*/*");
    let mut curl = format!(
        "  curl -N -X {} {base}{} -H 'Authorization: Bearer {DEMO_TOKEN}' -H 'Accept: {accept}'",
        request.method, request.path
    );
    if !request.body.is_empty() {
        let body = String::from_utf8_lossy(&request.body).replace('\'', "'\\''");
        curl.push_str(&format!(" -H 'Content-Type: application/json' -d '{body}'"));
    }
    out::line("Try the first request on the tape:")?;
    out::line(&curl)
}
