//! Continues an existing project with a new prompt.
//!
//! ```text
//! cargo run --example follow_up --features mock -- [--json] PROJECT_ID "Add a dark mode"
//! ```
//!
//! Uses `LARACOPILOT_API_TOKEN` (and `LARACOPILOT_BASE_URL`). Without a token, built
//! with `--features mock`, it first creates a project on the embedded offline
//! LaraCopilot (any PROJECT_ID given is then ignored) so that there is one to follow up.

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{Failure, Flags, JournalFlag};

/// Continues an existing project with a new prompt and shows its progress.
///
/// A follow-up has no container phase: it goes straight to generating. Offline
/// (no LARACOPILOT_API_TOKEN), a project is generated first and PROJECT_ID is
/// ignored.
#[derive(Debug, Parser)]
#[command(
    name = "follow_up",
    after_help = common::after_help(&[common::ENVIRONMENT, common::EXIT_STATUS]),
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,

    #[command(flatten)]
    journal: JournalFlag,

    /// The project to continue, as `project_created` named it
    #[arg(value_name = "PROJECT_ID")]
    project_id: String,

    /// What to change; several words are joined with spaces
    #[arg(value_name = "PROMPT", required = true)]
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
    let prompt = cli.prompt.join(" ");
    if prompt.trim().is_empty() {
        return Err(Failure::Usage("the prompt is empty".into()));
    }
    let connection = common::connect(&cli.flags, &cli.journal).await?;
    let id = if connection.offline() {
        common::note("Preparing", "an offline project to follow up on");
        let outcome = connection
            .client
            .generate("Build a task management app")
            .await?
            .finish()
            .await?;
        let created = outcome
            .project_id
            .ok_or_else(|| Failure::Local("the offline generation named no project".into()))?;
        common::note("Project", &format!("{created} is ready: following up"));
        created
    } else {
        laracopilot::ProjectId::from(cli.project_id.as_str())
    };
    let generation = connection.client.follow_up(&id, prompt).await?;
    common::stream(generation, &cli.flags).await?;
    Ok(())
}
