//! How to test your own code that consumes a generation, offline and without
//! spending credits: point it at the offline LaraCopilot of `laracopilot-mock` (a
//! `[dev-dependencies]` entry) and script what the server does, faults included.
//!
//! ```text
//! cargo test --example test_your_handler
//! cargo run --example test_your_handler
//! ```
//!
//! `summarize` stands for your handler; the tests at the bottom are what you would
//! put in your own `tests/`.

use laracopilot::{Client, Event};

/// Your code: runs a generation and sums it up for your users.
async fn summarize(client: &Client, prompt: &str) -> Result<String, laracopilot::Error> {
    let mut generation = client.generate(prompt).await?;
    let mut files = 0;
    while let Some(event) = generation.next().await {
        if let Event::FileCreated(_) = event? {
            files += 1;
        }
    }
    let project = generation.project_id().map_or("-", |id| id.as_str());
    Ok(format!("project {project}: {files} files"))
}

#[tokio::main]
async fn main() -> laracopilot::Result<()> {
    let server = laracopilot_mock::MockServer::start();
    println!(
        "{}",
        summarize(&server.client(), "Build a task management app").await?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use laracopilot::Error;
    use laracopilot_mock::{Fault, MockServer};
    use serde_json::json;

    use super::summarize;

    #[tokio::test]
    async fn counts_the_files_of_a_scripted_stream() {
        let server = MockServer::start();
        server
            .script_next([
                json!({"type": "project_created", "project_id": "abc123"}),
                json!({"type": "file_created", "path": "app/Models/Task.php"}),
                json!({"type": "file_created", "path": "routes/web.php"}),
                json!({"type": "stream_end", "project_id": "abc123"}),
            ])
            .unwrap();
        let summary = summarize(&server.client(), "Build a task management app").await;
        assert_eq!(summary.unwrap(), "project abc123: 2 files");
    }

    #[tokio::test]
    async fn a_dropped_connection_is_an_error_that_keeps_the_project_id() {
        let server = MockServer::start();
        server.fault_next(Fault::DropAfter(3));
        let error = summarize(&server.client(), "Build a task management app")
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Incomplete { .. }), "{error:?}");
        assert!(error.project_id().is_some());
    }

    #[tokio::test]
    async fn running_out_of_credits_is_an_error_not_a_summary() {
        let server = MockServer::builder().credits(1).start().unwrap();
        let error = summarize(&server.client(), "Build a task management app")
            .await
            .unwrap_err();
        assert!(matches!(error, Error::CreditsExhausted { .. }), "{error:?}");
    }
}
