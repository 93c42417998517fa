//! Generates a Laravel application from a prompt and streams its progress.
//!
//! ```text
//! cargo run --example generate --features mock -- "Build a task management app"
//! cargo run --example generate --features mock -- --json "Build a task management app"
//! ```
//!
//! With `LARACOPILOT_API_TOKEN` set it uses the real API (and `LARACOPILOT_BASE_URL`
//! when given); otherwise, built with `--features mock`, the embedded offline
//! LaraCopilot. `--json` prints one JSON object per line on stdout: every event, then
//! the outcome or the error.

mod common;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = common::args();
    let prompt = args.positional.join(" ");
    let prompt = if prompt.trim().is_empty() {
        "Build a task management app".to_owned()
    } else {
        prompt
    };
    let result = async {
        let connection = common::connect().await?;
        let generation = connection.client.generate(prompt).await?;
        common::stream(generation, args.json).await
    }
    .await;
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => common::fail(&error, args.json),
    }
}
