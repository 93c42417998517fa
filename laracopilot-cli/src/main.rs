//! `laracopilot`: the LaraCopilot Agent API from a shell, a script or a CI job.
//!
//! LaraCopilot turns a prompt into a running Laravel application and streams its
//! progress as Server-Sent Events. This binary, built on the [`laracopilot`] SDK,
//! runs those generations and shows them: progress for people on stderr (a bar on a
//! terminal, plain lines in logs), results on stdout (a summary, or with `--json` one
//! JSON object per line for scripts).
//!
//! ```text
//! laracopilot generate "Build a task management app"        # a new application
//! laracopilot follow-up p1 "Add a dark mode"                 # change it
//! laracopilot status p1                                      # poll it (no credits)
//! laracopilot plans                                          # the subscription plans
//! laracopilot generate --journal app.db "..."                # keep a record of spend
//! laracopilot generate --journal postgres://... --scope acme \
//!     --max-concurrent 4 --budget 200/day --idempotency-key job-42 "..."  # a fleet
//! laracopilot resume --journal app.db                        # settle it after a crash
//! laracopilot doctor --expires 2026-03-01                    # check the token first
//! laracopilot watch-token --token-file /run/secrets/token    # check it across a rotation
//! laracopilot mock-server --fault drop-after:5               # an offline LaraCopilot
//! ```
//!
//! With `LARACOPILOT_API_TOKEN` set, the commands talk to the real API
//! (`LARACOPILOT_BASE_URL` when set) and spend credits; without it, `generate`,
//! `follow-up`, `status` and `resume` run against an embedded offline LaraCopilot
//! (the `laracopilot-mock` crate) and say so on stderr. The projects generated
//! offline are remembered in a small file, so that `laracopilot status p1` finds
//! them offline afterwards.
//!
//! # Output and exit codes
//!
//! `--json` prints one JSON object per line on stdout: each event as
//! `{"event": TYPE, "data": EVENT}`, then a result line,
//! `{"schema_version": 1, "outcome": {...}}` or `{"schema_version": 1, "error": {...}}`
//! (see [`json`] and the README). The exit code says how a command ended: 0 success,
//! 1 any other failure, 2 usage or configuration (and a 422), 3 authentication,
//! 4 credits exhausted, 6 a budget refused the call, 141 stdout closed by its reader;
//! `doctor` adds 5 (the token expires soon).
//!
//! Every line for people is the program's own: text from the server (paths,
//! messages, ids, URLs) is printed with its control, format and separator characters
//! escaped ([`terminal::clean`]), so that a server can neither forge a line nor
//! rewrite the screen. A closed stdout (`laracopilot status p1 | head -1`) ends a
//! command quietly with exit 141, never with a panic.
//!
//! # Modules
//!
//! [`connect`] builds every client and opens every journal; [`offline`] runs the
//! embedded LaraCopilot; [`out`] and [`terminal`] own what reaches stdout and stderr;
//! [`display`] draws progress; [`commands`] holds one module per subcommand.

pub mod commands;
pub mod connect;
pub mod date;
pub mod display;
pub mod failure;
pub mod json;
pub mod offline;
pub mod out;
pub mod terminal;
pub mod token_source;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{doctor, follow_up, generate, mock_server, plans, resume, status, watch_token};
use failure::{Failure, CLOSED_EXIT, EXIT_STATUS};

/// The LaraCopilot Agent API from the command line: generate Laravel applications,
/// follow up, poll, resume after a crash, check a token, serve an offline
/// LaraCopilot.
#[derive(Debug, Parser)]
#[command(
    name = "laracopilot",
    version,
    arg_required_else_help = true,
    after_help = EXIT_STATUS,
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a Laravel application from a prompt, showing its progress
    Generate(generate::Args),
    /// Continue an existing project with a new prompt
    FollowUp(follow_up::Args),
    /// Print a project's status (spends no credits)
    Status(status::Args),
    /// Print LaraCopilot's subscription plans (spends no credits)
    Plans(plans::Args),
    /// Settle the generations a crash left unfinished in a journal
    Resume(resume::Args),
    /// Check the token and the base URL (spends no credits)
    Doctor(doctor::Args),
    /// Keep checking the token while it is rotated in a file
    WatchToken(watch_token::Args),
    /// Serve the offline LaraCopilot on 127.0.0.1, with faults if asked
    MockServer(mock_server::Args),
}

impl Command {
    /// Whether the command prints JSON on stdout (and so reports failures as JSON).
    pub fn json(&self) -> bool {
        match self {
            Command::Generate(args) => args.talk.json,
            Command::FollowUp(args) => args.talk.json,
            Command::Status(args) => args.talk.json,
            Command::Plans(args) => args.talk.json,
            Command::Resume(args) => args.talk.json,
            Command::Doctor(args) => args.json,
            Command::WatchToken(_) | Command::MockServer(_) => false,
        }
    }

    /// Runs the command; its exit code.
    ///
    /// # Errors
    ///
    /// Why it failed.
    pub async fn run(&self) -> Result<ExitCode, Failure> {
        match self {
            Command::Generate(args) => generate::run(args).await,
            Command::FollowUp(args) => follow_up::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Plans(args) => plans::run(args).await,
            Command::Resume(args) => resume::run(args).await,
            Command::Doctor(args) => doctor::run(args).await,
            Command::WatchToken(args) => watch_token::run(args).await,
            Command::MockServer(args) => mock_server::run(args).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.command.json();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let failure = Failure::Local(format!("cannot start the async runtime: {e}"));
            return failure::report(&failure, json);
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(code) => code,
        Err(failure) => failure::report(&failure, json),
    }
}

/// Parses the command line. `--help` prints on stdout and exits 0; a usage error
/// exits 2, reported as a JSON error line on stdout when `--json` is among the
/// arguments (and readably on stderr in any case).
fn parse() -> Result<Cli, ExitCode> {
    let error = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(error) => error,
    };
    let code = u8::try_from(error.exit_code()).unwrap_or(2);
    if !error.use_stderr() {
        // --help, --version: not an error.
        return Err(match error.print() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(CLOSED_EXIT),
            _ => ExitCode::from(code),
        });
    }
    let json = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    if json {
        let failure = Failure::Usage(clap_message(&error));
        let code = failure::report(&failure, true);
        let _ = error.print();
        return Err(code);
    }
    let _ = error.print();
    Err(ExitCode::from(code))
}

/// A clap error on one line: its first paragraph, without the `error: ` label.
fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let paragraph: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = paragraph.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}
