//! `generate --cache PATH [--fresh]`: the build-tool pattern. The first run
//! generates and writes the project id, app URL and files to a JSON file; later runs
//! with the same prompt against the same API print `cached` and spend no credits.

use std::path::Path;
use std::process::ExitCode;

use laracopilot::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::generate::Args;
use super::stream;
use crate::connect::{self, Connection};
use crate::failure::Failure;
use crate::json::SCHEMA_VERSION;
use crate::out;

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

/// The cache file's API for the offline LaraCopilot.
const OFFLINE: &str = "offline mock";

/// Runs `generate --cache PATH`.
///
/// # Errors
///
/// Why the generation failed, or why the cache cannot be written.
pub async fn run(args: &Args, prompt: &str, path: &Path) -> Result<ExitCode, Failure> {
    // Which API the cache entry must come from (building a client sends nothing).
    let api = connect::api_identity(OFFLINE)?;
    if !args.fresh {
        match read(path) {
            Ok(Some(entry)) if entry.api == api && entry.prompt == prompt => {
                return report(args.talk.json, true, &entry, None, path);
            }
            Ok(_) => {}
            Err(why) => out::warn(
                "Warning",
                &format!("ignoring the cache {}: {why}", path.display()),
            ),
        }
    }
    out::ensure_open()?;
    let journal = connect::open_journal(&args.journal).await?;
    let Connection { client, offline } = connect::connect(&args.talk, journal, &args.guards)?;
    let outcome = async {
        let generation = connect::request(client.generate(prompt), &args.guards).await?;
        let mut extra = vec![("cached", Value::Bool(false))];
        extra.extend(connect::guard_fields(&generation, &args.guards));
        stream::stream(generation, args.talk.json, extra, false).await
    }
    .await;
    // Whatever the result: see `generate`.
    connect::flush_journal(&client, &args.journal).await;
    if let (Some(offline), Some(id)) = (&offline, outcome_id(&outcome)) {
        offline.remember(&id);
    }
    let outcome = outcome?;
    let entry = Entry::new(api, prompt.to_owned(), &outcome);
    write(path, &entry).map_err(|e| {
        Failure::Local(format!("could not write the cache {}: {e}", path.display()))
    })?;
    report(args.talk.json, false, &entry, Some(&outcome), path)
}

fn outcome_id(result: &Result<Outcome, Failure>) -> Option<laracopilot::ProjectId> {
    match result {
        Ok(outcome) => outcome.project_id().cloned(),
        Err(failure) => failure.sdk()?.project_id().cloned(),
    }
}

/// One line on stdout for tools (with `--json`, the outcome object with
/// `"cached": true` for a cache hit; a fresh generation's outcome line, with
/// `"cached": false`, was printed by the stream), the cache's path on stderr.
fn report(
    json: bool,
    cached: bool,
    entry: &Entry,
    generated: Option<&Outcome>,
    path: &Path,
) -> Result<ExitCode, Failure> {
    match (json, generated) {
        (true, Some(_)) => {}
        (true, None) => out::json(&json!({
            "schema_version": SCHEMA_VERSION,
            "outcome": {
                "project_id": entry.project_id,
                "app_url": entry.app_url,
                "files": entry.files,
                "events": entry.events,
                "cached": cached,
            }
        }))?,
        (false, _) => out::line(&format!(
            "{}: project {} ({} files) at {}",
            if cached { "cached" } else { "generated" },
            entry.project_id.as_deref().unwrap_or("(unknown)"),
            entry.files.len(),
            entry.app_url.as_deref().unwrap_or("(no URL given)")
        ))?,
    }
    out::note("Cache", &path.display().to_string());
    Ok(ExitCode::SUCCESS)
}

impl Entry {
    fn new(api: String, prompt: String, outcome: &Outcome) -> Entry {
        Entry {
            api,
            prompt,
            project_id: outcome.project_id().map(ToString::to_string),
            app_url: outcome.app_url.clone(),
            files: outcome.files.clone(),
            events: outcome.stats().events,
        }
    }
}

/// The cached entry; `None` when there is no cache file yet.
fn read(path: &Path) -> Result<Option<Entry>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the entry to a temporary file, then renames it: never a half-written cache.
fn write(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, json)?;
    std::fs::rename(&temporary, path)
}
