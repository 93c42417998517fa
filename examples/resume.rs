//! A service's start-up: settles the generations that a previous run of the program
//! left unfinished in its journal (it was killed mid-stream, say).
//!
//! ```text
//! cargo run --example generate --features mock -- --journal app.journal "Build a task management app"
//! cargo run --example resume --features mock -- --journal app.journal [--json] [--timeout SECS]
//! ```
//!
//! It lists the journal's unfinished entries (`Client::unfinished`) and settles each
//! (`Client::resume`): an entry whose project is known is polled until the project
//! succeeds or fails; one without (the process stopped before `project_created`) is
//! reported as `outcome_unknown`, since its request may have started work, and
//! nothing is sent again. How each settled is recorded in the journal.
//!
//! Entries only make sense on the server they ran on: point `LARACOPILOT_BASE_URL`
//! and `LARACOPILOT_API_TOKEN` where the generations ran. Without a token it starts
//! the embedded offline LaraCopilot like the other examples, which knows none of
//! the journal's projects: it then reports each entry and leaves it unfinished.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use common::{Failure, Flags, JournalFlag};
use laracopilot::journal::Entry;
use laracopilot::WaitOptions;
use serde_json::Value;

const WHERE: &str = "\
Where to resume:
  Resume against the server the generations ran on: set LARACOPILOT_BASE_URL and
  LARACOPILOT_API_TOKEN as for the run that wrote the journal (a rotated token of the
  same team is fine). Without LARACOPILOT_API_TOKEN the embedded offline LaraCopilot,
  just started, knows none of the journal's projects: each entry is then reported
  (kind \"config\") and left unfinished, so that a later run can settle it.";

const OUTPUT: &str = "\
Output:
  One line per unfinished entry, oldest first, on stdout. With --json, the lines of
  the other examples: {\"outcome\": {...}} (with \"project_status\") or
  {\"error\": {...}} (kind \"outcome_unknown\": the request may have started work and
  was not sent again; \"generation_failed\", \"not_found\": recorded as failed;
  \"timeout\" and others: left unfinished for a later run), each with the entry's
  \"local_id\", \"kind\" (generate, follow_up) and \"prompt\"; nothing else. The exit status is the highest of the entries that
  did not succeed (0 when all did, or none was unfinished).";

/// Settles the generations a previous run left unfinished in its journal.
///
/// Lists the unfinished entries of the journal FILE (generations started with
/// --journal whose end that run never saw) and settles each: by polling its project
/// when the journal knows it, or, without one, by reporting its outcome unknown
/// (the request may have started work; nothing is ever sent again). How each entry
/// settled is recorded in the journal; an entry whose poll timed out stays
/// unfinished.
#[derive(Debug, Parser)]
#[command(
    name = "resume",
    mut_arg("journal", |arg| arg.required(true)),
    after_help = common::after_help(&[WHERE, OUTPUT, common::ENVIRONMENT, common::EXIT_STATUS]),
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,

    #[command(flatten)]
    journal: JournalFlag,

    /// How long to wait for each project to settle, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = common::parse();
    match run(&cli).await {
        Ok(code) => ExitCode::from(code),
        Err(failure) => common::fail(&failure, cli.flags.json),
    }
}

/// Resumes every entry; the exit code.
async fn run(cli: &Cli) -> Result<u8, Failure> {
    let connection = common::connect(&cli.flags, &cli.journal).await?;
    let client = &connection.client;
    let entries = client.unfinished().await?;
    let path = cli
        .journal
        .journal
        .as_deref()
        .map_or_else(String::new, |p| p.display().to_string());
    if entries.is_empty() {
        common::note("Nothing", &format!("left unfinished in {path}"));
        return Ok(0);
    }
    let count = match entries.len() {
        1 => "1 unfinished entry".to_owned(),
        n => format!("{n} unfinished entries"),
    };
    common::note("Resuming", &format!("{count} of {path}"));
    let options = WaitOptions::default().timeout(Duration::from_secs(cli.timeout));
    let mut code = 0;
    let mut succeeded = 0;
    for entry in &entries {
        let result = if connection.offline() {
            Err(Failure::Config(format!(
                "the embedded offline LaraCopilot knows no project of this journal: left \
                 unfinished; set {} and {} to the server it ran on",
                laracopilot::TOKEN_ENV,
                laracopilot::BASE_URL_ENV
            )))
        } else {
            client
                .resume(entry, options.clone())
                .await
                .map_err(Failure::Sdk)
        };
        match result {
            Ok(outcome) => {
                succeeded += 1;
                let status = outcome
                    .recovered
                    .as_ref()
                    .and_then(|p| p.project_status.clone());
                if cli.flags.json {
                    let extra = [("project_status", Value::from(status))];
                    common::print_json(&with_entry(common::outcome_json(&outcome, &extra), entry));
                } else {
                    let id = outcome.project_id.as_ref().map_or("-", |p| p.as_str());
                    let url = outcome.app_url.as_deref().unwrap_or("(no URL given)");
                    println!("{}: succeeded: project {id}, {url}", describe(entry));
                }
            }
            Err(failure) => {
                code = code.max(failure.exit_code());
                if cli.flags.json {
                    common::print_json(&with_entry(common::failure_json(&failure), entry));
                } else {
                    println!(
                        "{}: {}: {}",
                        describe(entry),
                        failure.kind(),
                        explain(&failure)
                    );
                }
            }
        }
    }
    common::note(
        "Settled",
        &format!("{succeeded} of {} succeeded", entries.len()),
    );
    Ok(code)
}

/// The JSON line `line` with the entry's `local_id`, `kind` and `prompt`.
fn with_entry(line: Value, entry: &Entry) -> Value {
    let Value::Object(mut object) = line else {
        return line;
    };
    object.insert("local_id".into(), Value::from(entry.local_id.as_str()));
    object.insert(
        "kind".into(),
        serde_json::to_value(entry.kind).unwrap_or(Value::Null),
    );
    object.insert("prompt".into(), Value::from(entry.prompt.as_str()));
    Value::Object(object)
}

/// `lcj-… (generate "Build a…")`.
fn describe(entry: &Entry) -> String {
    let kind = serde_json::to_value(entry.kind)
        .ok()
        .and_then(|k| k.as_str().map(str::to_owned))
        .unwrap_or_default();
    let prompt: String = entry.prompt.chars().take(60).collect();
    let more = if entry.prompt.chars().count() > 60 {
        "…"
    } else {
        ""
    };
    format!("{} ({kind} {prompt:?}{more})", entry.local_id)
}

/// What a failure means for the entry, for people.
fn explain(failure: &Failure) -> String {
    match failure {
        Failure::Sdk(laracopilot::Error::OutcomeUnknown { .. }) => {
            "the process stopped before the project was known: the request may have \
             started work; it was not sent again (send it yourself if it never ran)"
                .to_owned()
        }
        Failure::Sdk(laracopilot::Error::Timeout { .. }) => {
            format!("{failure}; left unfinished, to resume later")
        }
        other => other.to_string(),
    }
}
