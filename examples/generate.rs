//! Generates a Laravel application from a prompt and shows its progress.
//!
//! ```text
//! cargo run --example generate --features mock -- "Build a task management app"
//! cargo run --example generate --features mock -- --json "Build a task management app"
//! ```
//!
//! With `LARACOPILOT_API_TOKEN` set it uses the real API (and `LARACOPILOT_BASE_URL`
//! when given); otherwise, built with `--features mock`, the embedded offline
//! LaraCopilot. Progress goes to stderr (a bar on a terminal, plain lines elsewhere),
//! the summary to stdout. `--json` prints one JSON object per line on stdout: every
//! event, then the outcome or the error.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{Failure, Flags, JournalFlag};

const DEFAULT_PROMPT: &str = "Build a task management app";

/// Generates a Laravel application from a prompt and shows its progress.
///
/// Progress goes to stderr (a bar on a terminal, one plain line per step and per
/// file elsewhere); the summary (project, app URL, files, time) goes to stdout.
#[derive(Debug, Parser)]
#[command(
    name = "generate",
    after_help = common::after_help(&[common::ENVIRONMENT, common::EXIT_STATUS]),
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,

    #[command(flatten)]
    journal: JournalFlag,

    /// What to build; several words are joined with spaces
    #[arg(value_name = "PROMPT", default_value = DEFAULT_PROMPT)]
    prompt: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = common::parse();
    match run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => common::fail(&failure, cli.flags.json),
    }
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let prompt = match cli.prompt.join(" ") {
        blank if blank.trim().is_empty() => DEFAULT_PROMPT.to_owned(),
        prompt => prompt,
    };
    let connection = common::connect(&cli.flags, &cli.journal).await?;
    let generation = connection.client.generate(prompt).await?;
    common::stream(generation, &cli.flags).await?;
    Ok(())
}
