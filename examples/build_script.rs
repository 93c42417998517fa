//! The build-tool pattern: generate once, cache the outcome, reuse it afterwards.
//!
//! ```text
//! cargo run --example build_script --features blocking,mock -- "Build a task management app"
//! cargo run --example build_script --features blocking,mock -- --cache /tmp/app.json --fresh
//! ```
//!
//! The first run generates the application and writes its project id, app URL and
//! files to a JSON cache (`target/laracopilot-cache.json`; `--cache PATH` or
//! `LARACOPILOT_CACHE` to change it). Later runs with the same prompt and API print
//! `cached` and spend no credits; `--fresh` ignores the cache. Progress goes to
//! stderr, the result to stdout (with `--json`, the outcome object of the other
//! examples plus `"cached"`). Exit codes: 0 success, 2 usage or configuration,
//! 3 authentication, 4 credits exhausted, 1 anything else.
//!
//! With `LARACOPILOT_API_TOKEN` set it uses the real API (and `LARACOPILOT_BASE_URL`
//! when given); otherwise, built with `--features mock`, the embedded offline
//! LaraCopilot. Everything here is plain blocking code: the same works in a
//! `build.rs` (put the cache in `OUT_DIR` and print
//! `cargo::rerun-if-env-changed=LARACOPILOT_API_TOKEN`).

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use common::{Failure, Flags, JournalFlag};
use laracopilot::{blocking, Outcome};
use serde::{Deserialize, Serialize};

const DEFAULT_PROMPT: &str = "Build a task management app with projects, tasks and due dates";
const DEFAULT_CACHE: &str = "target/laracopilot-cache.json";
const CACHE_ENV: &str = "LARACOPILOT_CACHE";

const ENVIRONMENT: &str = "\
Environment:
  LARACOPILOT_CACHE      The cache file, when --cache is not given";

/// Generates an application once, caches the outcome, and reuses it afterwards.
///
/// The build-tool pattern, in plain blocking code: the first run generates and writes
/// the project id, app URL and files to a JSON cache; later runs with the same prompt
/// and API print `cached` and spend no credits. Progress goes to stderr, the result
/// to stdout.
#[derive(Debug, Parser)]
#[command(
    name = "build_script",
    after_help = common::after_help(&[common::ENVIRONMENT, ENVIRONMENT, common::EXIT_STATUS]),
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,

    #[command(flatten)]
    journal: JournalFlag,

    /// The cache file [default: $LARACOPILOT_CACHE, else target/laracopilot-cache.json]
    #[arg(long, value_name = "PATH")]
    cache: Option<PathBuf>,

    /// Generate again even when the cache holds an outcome for this prompt
    #[arg(long)]
    fresh: bool,

    /// What to build; several words are joined with spaces [default: "Build a task
    /// management app with projects, tasks and due dates"]
    #[arg(value_name = "PROMPT")]
    prompt: Vec<String>,
}

/// What the cache file holds: the outcome, and what it was generated from.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// The API's base URL, or "offline mock".
    api: String,
    prompt: String,
    project_id: Option<String>,
    app_url: Option<String>,
    files: Vec<String>,
    /// How many events the generation delivered (absent in older caches).
    #[serde(default)]
    events: u64,
}

fn main() -> ExitCode {
    let cli: Cli = common::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => common::fail(&failure, cli.flags.json),
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let cache = cli
        .cache
        .clone()
        .or_else(|| {
            std::env::var_os(CACHE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| DEFAULT_CACHE.into());
    let prompt = match cli.prompt.join(" ") {
        blank if blank.trim().is_empty() => DEFAULT_PROMPT.to_owned(),
        prompt => prompt,
    };
    // Building a client sends nothing: it only reads the environment.
    let api_client = match std::env::var_os(laracopilot::TOKEN_ENV) {
        Some(_) => Some(
            common::shaped(
                laracopilot::Client::builder().from_env(),
                &cli.flags,
                &cli.journal,
            )?
            .build_blocking()?,
        ),
        None => None,
    };
    let api = api_client
        .as_ref()
        .map_or("offline mock", |client| client.base_url())
        .to_owned();

    if !cli.fresh {
        match read_cache(&cache) {
            Ok(Some(entry)) if entry.api == api && entry.prompt == prompt => {
                report(&cli.flags, true, &entry, &cache);
                return Ok(());
            }
            Ok(_) => {}
            Err(why) => eprintln!("warning: ignoring the cache {}: {why}", cache.display()),
        }
    }

    // `_offline` keeps the embedded server, and the runtime it runs on, alive.
    let (client, _offline) = match api_client {
        Some(client) => {
            common::note(
                "Using",
                &format!("the LaraCopilot API at {}", client.base_url()),
            );
            (client, None)
        }
        None => offline(cli)?,
    };
    let generation = client.generate(prompt.as_str())?;
    let mut display = common::Display::new(cli.flags.json, generation.progress().clone());
    let result = generation.finish_with(|event| {
        if cli.flags.json {
            display.above(|| common::print_json(&common::event_json(event)));
        }
        display.event(event);
    });
    let outcome = match result {
        Ok(outcome) => {
            display.finished(&outcome);
            outcome
        }
        Err(error) => {
            display.failed(&error);
            return Err(error.into());
        }
    };

    let entry = Entry::new(api, prompt, outcome);
    write_cache(&cache, &entry).map_err(|e| {
        Failure::Local(format!(
            "could not write the cache {}: {e}",
            cache.display()
        ))
    })?;
    report(&cli.flags, false, &entry, &cache);
    Ok(())
}

/// The embedded offline LaraCopilot (it serves from its own thread).
#[cfg(feature = "mock")]
fn offline(cli: &Cli) -> Result<(blocking::Client, Option<impl Sized>), Failure> {
    let builder =
        laracopilot::mock::MockServer::builder().pacing(std::time::Duration::from_millis(20));
    let mock = common::start_mock(builder)?;
    let why = format!("no {} set, no credits spent", laracopilot::TOKEN_ENV);
    common::note(
        "Using",
        &format!("the embedded offline LaraCopilot ({why})"),
    );
    let client =
        common::shaped(mock.client_builder(), &cli.flags, &cli.journal)?.build_blocking()?;
    Ok((client, Some(mock)))
}

#[cfg(not(feature = "mock"))]
fn offline(_cli: &Cli) -> Result<(blocking::Client, Option<()>), Failure> {
    Err(Failure::Config(format!(
        "{} is not set; set it, or run with `--features blocking,mock` to use the embedded offline LaraCopilot",
        laracopilot::TOKEN_ENV
    )))
}

/// One line on stdout for tools (with `--json`, the outcome object plus `"cached"`),
/// the cache's path on stderr for people.
fn report(flags: &Flags, cached: bool, entry: &Entry, cache: &Path) {
    if flags.json {
        common::print_json(&serde_json::json!({ "outcome": {
            "project_id": entry.project_id,
            "app_url": entry.app_url,
            "files": entry.files,
            "events": entry.events,
            "cached": cached,
        }}));
    } else {
        println!(
            "{}: project {} ({} files) at {}",
            if cached { "cached" } else { "generated" },
            entry.project_id.as_deref().unwrap_or("(unknown)"),
            entry.files.len(),
            entry.app_url.as_deref().unwrap_or("(no URL given)")
        );
    }
    eprintln!("cache: {}", cache.display());
}

impl Entry {
    fn new(api: String, prompt: String, outcome: Outcome) -> Entry {
        Entry {
            api,
            prompt,
            project_id: outcome.project_id.map(|id| id.to_string()),
            app_url: outcome.app_url,
            files: outcome.files,
            events: outcome.stats.events,
        }
    }
}

/// The cached entry; `None` when there is no cache file yet.
fn read_cache(path: &Path) -> Result<Option<Entry>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the entry to a temporary file, then renames it: never a half-written cache.
fn write_cache(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, json)?;
    std::fs::rename(&temporary, path)
}
