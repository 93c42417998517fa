//! Prints the status of a project.
//!
//! ```text
//! cargo run --example project_status --features mock -- [--json] PROJECT_ID
//! ```
//!
//! Uses `LARACOPILOT_API_TOKEN` (and `LARACOPILOT_BASE_URL`). Without a token, built
//! with `--features mock`, it asks the embedded offline LaraCopilot, which knows only
//! the projects generated on it (so an unknown id shows the 404 path).

mod common;

use std::process::ExitCode;

use clap::Parser;
use common::{Failure, Flags};

/// Prints the status of a project (safe to poll; spends no credits).
///
/// With --json, the status answer as the API gave it, on one line. Offline (no
/// LARACOPILOT_API_TOKEN), the embedded LaraCopilot knows only the projects generated
/// on it, so any id answers 404.
#[derive(Debug, Parser)]
#[command(
    name = "project_status",
    after_help = common::after_help(&[common::ENVIRONMENT, common::EXIT_STATUS]),
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,

    /// The project to look up, as `project_created` named it
    #[arg(value_name = "PROJECT_ID")]
    project_id: String,
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
    let connection = common::connect(&cli.flags, &common::JournalFlag::default()).await?;
    let project = connection.client.project(cli.project_id.as_str()).await?;
    if cli.flags.json {
        let raw: serde_json::Value = serde_json::from_str(project.raw_json()).unwrap_or_default();
        common::print_json(&raw);
        return Ok(());
    }
    println!("Project: {}", project.project_id);
    println!("Name:    {}", project.name.as_deref().unwrap_or("-"));
    println!(
        "Status:  {}",
        project.project_status.as_deref().unwrap_or("-")
    );
    println!("App:     {}", project.app_url.as_deref().unwrap_or("-"));
    Ok(())
}
