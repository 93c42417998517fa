//! The README's quick start: generate an application, print its events as they
//! come, follow up on the project, and poll its status.
//!
//! ```text
//! cargo run --example quick_start
//! ```
//!
//! With `LARACOPILOT_API_TOKEN` set it talks to the real API (and spends credits);
//! without it, to the offline LaraCopilot of the `laracopilot-mock` crate.

use laracopilot::{Client, Event};
use laracopilot_mock::MockServer;

#[tokio::main]
async fn main() -> laracopilot::Result<()> {
    // The real API with a token; otherwise an offline LaraCopilot on 127.0.0.1.
    let offline = std::env::var_os(laracopilot::TOKEN_ENV)
        .is_none()
        .then(MockServer::start);
    let client = match &offline {
        Some(server) => server.client(),
        None => Client::from_env()?,
    };
    println!("talking to {}", client.base_url());

    let mut generation = client.generate("Build a task management app").await?;
    while let Some(event) = generation.next().await {
        match event? {
            Event::ProjectCreated(e) => println!("project {} created", e.project_id),
            Event::ContainerProgress(e) => match e.percentage {
                Some(percent) => println!("{percent:>3}% {}", e.message),
                None => println!("     {}", e.message),
            },
            Event::ContainerReady(e) => println!("ready: {}", e.message),
            Event::FileCreated(e) => println!("  + {}", e.path.as_deref().unwrap_or("(a file)")),
            Event::StreamEnd(e) => println!("done: {}", e.app_url.as_deref().unwrap_or("(no URL)")),
            _ => {}
        }
    }

    // The stream named its project: follow up on it, then ask for its status.
    let Some(id) = generation.project_id().cloned() else {
        return Ok(());
    };
    let outcome = client
        .follow_up(&id, "Add a dark mode")
        .await?
        .finish()
        .await?;
    println!("the follow-up changed {} files", outcome.files.len());

    let project = client.project(&id).await?;
    println!(
        "project {id} is {}",
        project.project_status.as_deref().unwrap_or("(unknown)")
    );
    Ok(())
}
