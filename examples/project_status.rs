//! Prints the status of a project.
//!
//! ```text
//! cargo run --example project_status -- [--json] PROJECT_ID
//! ```
//!
//! Uses `LARACOPILOT_API_TOKEN` (and `LARACOPILOT_BASE_URL`). Without a token, built
//! with `--features mock`, it asks the embedded offline LaraCopilot, which knows only
//! the projects generated on it (so an unknown id shows the 404 path).

mod common;

use std::process::ExitCode;

use common::Error;

#[tokio::main]
async fn main() -> ExitCode {
    let args = common::args();
    let result = async {
        let [id] = args.positional.as_slice() else {
            return Err(Error::usage("usage: project_status [--json] PROJECT_ID"));
        };
        let connection = common::connect().await?;
        Ok(connection.client.project(id.as_str()).await?)
    }
    .await;
    match result {
        Ok(project) if args.json => {
            let raw: serde_json::Value =
                serde_json::from_str(project.raw_json()).unwrap_or_default();
            common::print_json(&raw);
            ExitCode::SUCCESS
        }
        Ok(project) => {
            println!("Project: {}", project.project_id);
            println!("Name:    {}", project.name.as_deref().unwrap_or("-"));
            println!(
                "Status:  {}",
                project.project_status.as_deref().unwrap_or("-")
            );
            println!("App:     {}", project.app_url.as_deref().unwrap_or("-"));
            ExitCode::SUCCESS
        }
        Err(error) => common::fail(&error, args.json),
    }
}
