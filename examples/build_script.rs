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
//! stderr, the result to stdout. Exit codes: 0 success, 2 usage or configuration,
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

use laracopilot::{blocking, Error, Event, Outcome};
use serde::{Deserialize, Serialize};

const DEFAULT_PROMPT: &str = "Build a task management app with projects, tasks and due dates";
const DEFAULT_CACHE: &str = "target/laracopilot-cache.json";
const CACHE_ENV: &str = "LARACOPILOT_CACHE";
const USAGE: &str = "usage: build_script [--cache PATH] [--fresh] [PROMPT...]";

/// What the cache file holds: the outcome, and what it was generated from.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// The API's base URL, or "offline mock".
    api: String,
    prompt: String,
    project_id: Option<String>,
    app_url: Option<String>,
    files: Vec<String>,
}

struct Options {
    cache: PathBuf,
    fresh: bool,
    prompt: String,
}

/// Why a run failed: the API said no, or the cache could not be written.
enum Failure {
    Api(Error),
    Local(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Api(error)
    }
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("error: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Api(error)) => common::fail(&error.into(), false),
        Err(Failure::Local(why)) => {
            eprintln!("error: {why}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), Failure> {
    // Building a client sends nothing: it only reads the environment.
    let api_client = match std::env::var_os(laracopilot::TOKEN_ENV) {
        Some(_) => Some(blocking::Client::from_env()?),
        None => None,
    };
    let api = api_client
        .as_ref()
        .map_or("offline mock", |client| client.base_url())
        .to_owned();

    if !options.fresh {
        match read_cache(&options.cache) {
            Ok(Some(entry)) if entry.api == api && entry.prompt == options.prompt => {
                report("cached", &entry, &options.cache);
                return Ok(());
            }
            Ok(_) => {}
            Err(why) => eprintln!(
                "warning: ignoring the cache {}: {why}",
                options.cache.display()
            ),
        }
    }

    // `_offline` keeps the embedded server, and the runtime it runs on, alive.
    let (client, _offline) = match api_client {
        Some(client) => {
            eprintln!("Using the LaraCopilot API at {}", client.base_url());
            (client, None)
        }
        None => offline()?,
    };
    let outcome = client
        .generate(options.prompt.as_str())?
        .finish_with(progress)?;

    let entry = Entry::new(api, options.prompt.clone(), outcome);
    write_cache(&options.cache, &entry).map_err(|e| {
        Failure::Local(format!(
            "could not write the cache {}: {e}",
            options.cache.display()
        ))
    })?;
    report("generated", &entry, &options.cache);
    Ok(())
}

/// The embedded offline LaraCopilot, served from a runtime owned here. The runtime
/// is multi-threaded so that the server keeps running while this thread blocks.
#[cfg(feature = "mock")]
fn offline() -> Result<(blocking::Client, Option<impl Sized>), Failure> {
    let local = |what: &str, e: std::io::Error| Failure::Local(format!("{what}: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| local("could not start a runtime", e))?;
    let mock = laracopilot::mock::MockServer::builder()
        .pacing(std::time::Duration::from_millis(20))
        .start()
        .map_err(|e| Failure::Local(format!("could not start the offline LaraCopilot: {e}")))?;
    eprintln!(
        "No {} set: using the embedded offline LaraCopilot at {} (no credits spent)",
        laracopilot::TOKEN_ENV,
        mock.base_url()
    );
    let client = mock.client_builder().build_blocking()?;
    // Dropped in this order: the server, then its runtime.
    Ok((client, Some((mock, runtime))))
}

#[cfg(not(feature = "mock"))]
fn offline() -> Result<(blocking::Client, Option<()>), Failure> {
    Err(Failure::Local(format!(
        "{} is not set; set it, or run with `--features blocking,mock` to use the embedded offline LaraCopilot",
        laracopilot::TOKEN_ENV
    )))
}

fn progress(event: &Event) {
    match event {
        Event::ProjectCreated(e) => eprintln!("project {} created", e.project_id),
        Event::ContainerProgress(e) => match e.percentage {
            Some(percentage) => eprintln!("  {percentage:>3.0}% {}", e.message),
            None => eprintln!("       {}", e.message),
        },
        Event::ContainerReady(e) => eprintln!("  {}", e.message),
        Event::FileCreated(e) => eprintln!("  + {}", e.path.as_deref().unwrap_or("(unnamed)")),
        _ => {}
    }
}

/// One line on stdout for tools, the details on stderr for people.
fn report(how: &str, entry: &Entry, cache: &Path) {
    println!(
        "{how}: project {} ({} files) at {}",
        entry.project_id.as_deref().unwrap_or("(unknown)"),
        entry.files.len(),
        entry.app_url.as_deref().unwrap_or("(no URL given)")
    );
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

fn parse_args() -> Result<Options, String> {
    let mut cache = std::env::var_os(CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut fresh = false;
    let mut words = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cache" => cache = Some(args.next().ok_or("--cache needs a path")?.into()),
            "--fresh" => fresh = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => words.push(arg),
        }
    }
    let prompt = words.join(" ");
    Ok(Options {
        cache: cache.unwrap_or_else(|| DEFAULT_CACHE.into()),
        fresh,
        prompt: if prompt.trim().is_empty() {
            DEFAULT_PROMPT.to_owned()
        } else {
            prompt
        },
    })
}
