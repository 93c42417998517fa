//! A service that runs several generations at once on one shared client, with a
//! journal so that a crash loses nothing: at start-up it settles what the last run
//! left unfinished, then it runs new work under a concurrency cap.
//!
//! ```text
//! cargo run --example service --features sqlite
//! ```
//!
//! With `LARACOPILOT_API_TOKEN` set it talks to the real API; without it, to the
//! offline LaraCopilot of `laracopilot-mock`.

use laracopilot::journal::SqliteJournal;
use laracopilot::{Client, WaitOptions};
use laracopilot_mock::MockServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let offline = std::env::var_os(laracopilot::TOKEN_ENV)
        .is_none()
        .then(MockServer::start);
    let builder = match &offline {
        Some(server) => server.client_builder(),
        None => Client::builder().from_env(),
    };
    // One client for the whole service: cheap to clone, safe to share.
    let dir = tempfile::tempdir()?;
    let client = builder
        .journal(SqliteJournal::open(dir.path().join("laracopilot.db"))?)
        .max_concurrent_generations(2)
        .build()?;

    // At start-up: settle what a crash of the last run left unfinished.
    for entry in client.unfinished().await? {
        match client.resume(&entry, WaitOptions::default()).await {
            Ok(outcome) => println!("resumed {}: {:?}", entry.local_id, outcome.app_url),
            Err(error) => println!("resumed {}: {error}", entry.local_id),
        }
    }

    // Each tenant's request runs on its own task; at most two generate at once.
    let prompts = [
        "Build a task management app",
        "Build a blog with posts and comments",
        "Build an invoice tracker for freelancers",
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for prompt in prompts {
        let client = client.clone();
        tasks.spawn(async move {
            let generation = client.generate(prompt).await?;
            let outcome = client
                .finish_or_recover(generation, WaitOptions::default())
                .await?;
            Ok::<_, laracopilot::Error>((prompt, outcome))
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined? {
            Ok((prompt, outcome)) => println!(
                "{prompt:?}: {} files at {}, waited {:?} for a slot",
                outcome.files.len(),
                outcome.app_url.as_deref().unwrap_or("(no URL)"),
                outcome.stats().slot_wait,
            ),
            Err(error) => println!("failed: {error}"),
        }
    }
    Ok(())
}
