//! `laracopilot generate`: a new Laravel application from a prompt, its progress
//! shown as it streams; with `--cache`, the build-tool pattern (generate once, reuse
//! the outcome afterwards).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;

use super::{cache, stream};
use crate::connect::{self, GuardFlags, JournalFlag, Talk};
use crate::failure::{self, Failure};
use crate::out;

/// The prompt when none is given.
pub const DEFAULT_PROMPT: &str = "Build a task management app";

/// Generates a Laravel application from a prompt and shows its progress.
///
/// Progress goes to stderr (a bar on a terminal, one plain line per step and per
/// file elsewhere); the summary (project, app URL, files, time) goes to stdout.
/// With --cache, a later run with the same prompt against the same API reuses the
/// outcome instead of generating again (no credits spent).
#[derive(Debug, clap::Args)]
#[command(after_help = failure::after_help(&[failure::ENVIRONMENT, failure::EXIT_STATUS]))]
pub struct Args {
    /// The flags shared by the subcommands that talk to LaraCopilot.
    #[command(flatten)]
    pub talk: Talk,

    /// `--journal`.
    #[command(flatten)]
    pub journal: JournalFlag,

    /// The spend guards: `--scope`, `--max-concurrent`, `--budget`,
    /// `--idempotency-key`.
    #[command(flatten)]
    pub guards: GuardFlags,

    /// Keep the outcome in this JSON file, and reuse it when it holds one for the
    /// same prompt and API (printed "cached", nothing sent). With --json the outcome
    /// line gains "cached": true or false
    #[arg(long, value_name = "PATH")]
    pub cache: Option<PathBuf>,

    /// With --cache: generate again even when the cache holds an outcome for this
    /// prompt
    #[arg(long, requires = "cache")]
    pub fresh: bool,

    /// What to build; several words are joined with spaces
    #[arg(value_name = "PROMPT", default_value = DEFAULT_PROMPT)]
    pub prompt: Vec<String>,
}

/// Runs `generate`.
///
/// # Errors
///
/// Why the generation failed, or why it could not start.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let prompt = match args.prompt.join(" ") {
        blank if blank.trim().is_empty() => DEFAULT_PROMPT.to_owned(),
        prompt => prompt,
    };
    if let Some(path) = &args.cache {
        return cache::run(args, &prompt, path).await;
    }
    // Nobody could read the outcome of credits spent now.
    out::ensure_open()?;
    let journal = connect::open_journal(&args.journal).await?;
    let connection = connect::connect(&args.talk, journal, &args.guards)?;
    let result = async {
        let generation = connect::request(connection.client.generate(prompt), &args.guards).await?;
        let extra: Vec<(&str, Value)> = connect::guard_fields(&generation, &args.guards);
        stream::stream(generation, args.talk.json, extra, true).await
    }
    .await;
    // A call refused after it may have started work released its slot without
    // waiting, as a dropped stream does: written before the process exits.
    connect::flush_journal(&connection.client, &args.journal).await;
    if let Some(offline) = &connection.offline {
        let id = match &result {
            Ok(outcome) => outcome.project_id().cloned(),
            Err(failure) => failure
                .sdk()
                .and_then(laracopilot::Error::project_id)
                .cloned(),
        };
        if let Some(id) = id {
            offline.remember(&id);
        }
    }
    result.map(|_| ExitCode::SUCCESS)
}
