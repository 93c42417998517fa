//! `laracopilot follow-up PROJECT_ID PROMPT...`: continues an existing project.

use std::process::ExitCode;

use laracopilot::ProjectId;

use super::generate::DEFAULT_PROMPT;
use super::stream;
use crate::connect::{self, GuardFlags, JournalFlag, Talk};
use crate::failure::{self, Failure};
use crate::out;

/// Continues an existing project with a new prompt and shows its progress.
///
/// A follow-up has no container phase: it goes straight to generating. Offline (no
/// LARACOPILOT_API_TOKEN), a PROJECT_ID generated offline before is followed up;
/// any other is ignored, and a project is generated first to follow up on.
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

    /// The project to continue, as `project_created` named it
    #[arg(value_name = "PROJECT_ID")]
    pub project_id: String,

    /// What to change; several words are joined with spaces
    #[arg(value_name = "PROMPT", required = true)]
    pub prompt: Vec<String>,
}

/// Runs `follow-up`.
///
/// # Errors
///
/// Why the follow-up failed, or why it could not start.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let prompt = args.prompt.join(" ");
    if prompt.trim().is_empty() {
        return Err(Failure::Usage("the prompt is empty".into()));
    }
    out::ensure_open()?;
    let journal = connect::open_journal(&args.journal).await?;
    let connection = connect::connect(&args.talk, journal, &args.guards)?;
    let id = match &connection.offline {
        Some(offline) if !offline.knows(&args.project_id) => {
            out::note("Preparing", "an offline project to follow up on");
            let outcome = connection
                .client
                .generate(DEFAULT_PROMPT)
                .await?
                .finish()
                .await?;
            let created = outcome
                .project_id()
                .cloned()
                .ok_or_else(|| Failure::Local("the offline generation named no project".into()))?;
            out::note("Project", &format!("{created} is ready: following up"));
            created
        }
        _ => ProjectId::from(args.project_id.as_str()),
    };
    let result = async {
        let generation =
            connect::request(connection.client.follow_up(&id, prompt), &args.guards).await?;
        let extra = connect::guard_fields(&generation, &args.guards);
        stream::stream(generation, args.talk.json, extra, true).await
    }
    .await;
    // Whatever the result: see `generate`.
    connect::flush_journal(&connection.client, &args.journal).await;
    if let Some(offline) = &connection.offline {
        offline.remember(&id);
    }
    result.map(|_| ExitCode::SUCCESS)
}
