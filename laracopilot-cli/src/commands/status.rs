//! `laracopilot status PROJECT_ID`: the status of a project (safe to poll; spends no
//! credits).

use std::process::ExitCode;

use crate::connect::{self, Talk};
use crate::failure::{self, Failure};
use crate::out;

/// Prints the status of a project (safe to poll; spends no credits).
///
/// With --json, the status answer as the API gave it, on one line. Offline (no
/// LARACOPILOT_API_TOKEN), the embedded LaraCopilot knows the projects generated
/// offline before (remembered in LARACOPILOT_OFFLINE_STORE): any other id answers
/// 404.
#[derive(Debug, clap::Args)]
#[command(after_help = failure::after_help(&[failure::ENVIRONMENT, failure::EXIT_STATUS]))]
pub struct Args {
    /// The flags shared by the subcommands that talk to LaraCopilot.
    #[command(flatten)]
    pub talk: Talk,

    /// The project to look up, as `project_created` named it
    #[arg(value_name = "PROJECT_ID")]
    pub project_id: String,
}

/// Runs `status`.
///
/// # Errors
///
/// Why the status call failed (404 for an unknown project), or a closed stdout.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let connection = connect::connect(&args.talk, None, &connect::GuardFlags::default())?;
    let project = connection.client.project(args.project_id.as_str()).await?;
    if args.talk.json {
        let raw: serde_json::Value = serde_json::from_str(project.raw_json()).unwrap_or_default();
        out::json(&raw)?;
        return Ok(ExitCode::SUCCESS);
    }
    let or_dash = |value: Option<&str>| value.unwrap_or("-").to_owned();
    out::line(&format!("Project: {}", project.project_id))?;
    out::line(&format!("Name:    {}", or_dash(project.name.as_deref())))?;
    out::line(&format!(
        "Status:  {}",
        or_dash(project.project_status.as_deref())
    ))?;
    out::line(&format!("App:     {}", or_dash(project.app_url.as_deref())))?;
    if connection.offline.is_some() {
        out::line("Offline: a project of the embedded offline LaraCopilot (no app is deployed)")?;
    }
    Ok(ExitCode::SUCCESS)
}
