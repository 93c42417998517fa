//! Continues an existing project with a new prompt.
//!
//! ```text
//! cargo run --example follow_up -- [--json] PROJECT_ID "Add a dark mode"
//! ```
//!
//! Uses `LARACOPILOT_API_TOKEN` (and `LARACOPILOT_BASE_URL`). Without a token, built
//! with `--features mock`, it first creates a project on the embedded offline
//! LaraCopilot (any PROJECT_ID given is then ignored) so that there is one to follow up.

mod common;

use std::process::ExitCode;

use common::Error;

#[tokio::main]
async fn main() -> ExitCode {
    let args = common::args();
    let result = async {
        let (id, prompt) = match args.positional.split_first() {
            Some((id, rest)) if !rest.is_empty() => (id.clone(), rest.join(" ")),
            _ => return Err(Error::usage("usage: follow_up [--json] PROJECT_ID PROMPT")),
        };
        let connection = common::connect().await?;
        let id = if std::env::var_os(laracopilot::TOKEN_ENV).is_some() {
            laracopilot::ProjectId::from(id)
        } else {
            let outcome = connection
                .client
                .generate("Build a task management app")
                .await?
                .finish()
                .await?;
            let created = outcome
                .project_id
                .ok_or_else(|| Error::usage("the offline generation named no project"))?;
            eprintln!("Created offline project {created} to follow up on");
            created
        };
        let generation = connection.client.follow_up(&id, prompt).await?;
        common::stream(generation, args.json).await
    }
    .await;
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => common::fail(&error, args.json),
    }
}
