//! The build-tool pattern, in plain blocking code: generate an application once,
//! cache what came out, and reuse the cache on the next run.
//!
//! ```text
//! cargo run --example build_script --features blocking
//! ```
//!
//! The same code works in a `build.rs`: put the cache in `OUT_DIR` and print
//! `cargo::rerun-if-env-changed=LARACOPILOT_API_TOKEN`. With that variable set it
//! talks to the real API; without it, to the offline LaraCopilot of
//! `laracopilot-mock`.

use std::path::Path;

use laracopilot::{blocking, Event};
use laracopilot_mock::MockServer;

const PROMPT: &str = "Build a task management app with projects, tasks and due dates";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Path::new("target/laracopilot-build-cache.txt");
    if let Ok(saved) = std::fs::read_to_string(cache) {
        println!("cached: {}", saved.trim());
        return Ok(());
    }

    // The real API with a token; otherwise an offline LaraCopilot on 127.0.0.1.
    let offline = std::env::var_os(laracopilot::TOKEN_ENV)
        .is_none()
        .then(MockServer::start);
    let client = match &offline {
        Some(server) => server.client_builder().build_blocking()?,
        None => blocking::Client::from_env()?,
    };

    // A blocking generation is an iterator of events.
    let mut generation = client.generate(PROMPT).send()?;
    for event in &mut generation {
        if let Event::FileCreated(file) = event? {
            eprintln!("  + {}", file.path.as_deref().unwrap_or("(a file)"));
        }
    }
    let project = generation
        .project_id()
        .ok_or("the stream named no project")?;
    let status = client.project(project)?;
    let line = format!(
        "project {project} at {}",
        status.app_url.as_deref().unwrap_or("(no URL)")
    );

    std::fs::create_dir_all("target")?;
    std::fs::write(cache, &line)?;
    println!("generated: {line}");
    Ok(())
}
