//! `laracopilot resume --journal FILE`: a service's start-up, from a shell. Settles
//! the generations that a previous run left unfinished in its journal.
//!
//! Nothing is settled that is not reported: each entry is resumed with
//! `Client::resume_reported`, whose report (asked after the poll, before the
//! settlement is written) answers whether stdout can still be written; when the
//! reader is gone the entry stays unfinished and the run stops (exit 141). The one
//! window left is between that check and the write of the entry's line, which holds
//! no network call and no wait: only the journal's own write. A reader that closes
//! exactly there loses the line of one settled entry (the journal, not stdout, is
//! the record).

use std::process::ExitCode;
use std::time::Duration;

use laracopilot::journal::Entry;
use laracopilot::{Error, Outcome, WaitOptions};
use serde_json::{Map, Value};

use crate::connect::{self, Connection, JournalFlag, Talk};
use crate::failure::{self, Failure};
use crate::{json, out};

const WHERE: &str = "\
Where to resume:
  Resume against the server the generations ran on: set LARACOPILOT_BASE_URL and
  LARACOPILOT_API_TOKEN as for the run that wrote the journal (a rotated token of the
  same team is fine). Without LARACOPILOT_API_TOKEN the embedded offline LaraCopilot
  cannot settle a journal's entries: each entry is then reported (kind \"config\")
  and left unfinished, so that a later run can settle it.";

const OUTPUT: &str = "\
Output:
  One line per unfinished entry, oldest first, on stdout. With --json:
  {\"schema_version\": 1, \"outcome\": {...}} (with \"project_status\") or
  {\"schema_version\": 1, \"error\": {...}} (kind \"outcome_unknown\": the request may
  have started work and was not sent again; \"generation_failed\", \"not_found\":
  recorded as failed; \"timeout\" and others: left unfinished for a later run), each
  with the entry's \"local_id\", \"kind\" (generate, follow_up), \"prompt\" and
  \"project_id\" (null when never named); nothing else. An entry is settled in the
  journal only while stdout can still be written: a closed stdout leaves the rest
  unfinished (exit 141). The exit status is the highest of the entries that did not
  succeed (0 when all did, or none was unfinished).";

/// Settles the generations a previous run left unfinished in its journal.
///
/// Lists the unfinished entries of the journal (generations started with --journal
/// whose end that run never saw) and settles each: by polling its project when the
/// journal knows it, or, without one, by reporting its outcome unknown (the request
/// may have started work; nothing is ever sent again). How each entry settled is
/// recorded in the journal; an entry whose poll timed out stays unfinished.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("journal", |arg| arg.required(true)),
    after_help = failure::after_help(&[WHERE, OUTPUT, failure::ENVIRONMENT, failure::EXIT_STATUS]),
)]
pub struct Args {
    /// The flags shared by the subcommands that talk to LaraCopilot.
    #[command(flatten)]
    pub talk: Talk,

    /// `--journal`.
    #[command(flatten)]
    pub journal: JournalFlag,

    /// How long to wait for each project to settle, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub timeout: u64,
}

/// Runs `resume`; the exit code is the highest of the entries that did not succeed.
///
/// # Errors
///
/// A journal that cannot be opened or read, a bad configuration, a closed stdout.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let spec = connect::shown(args.journal.journal.as_deref().unwrap_or_default());
    let journal = connect::open_journal(&args.journal).await?;
    let connection = connect::connect(&args.talk, journal, &connect::GuardFlags::default())?;
    let result = settle(args, &connection, &spec).await;
    // An entry claimed and not reported was released: written before the exit.
    connect::flush_journal(&connection.client, &args.journal).await;
    result
}

/// Settles each unfinished entry of the journal of `connection` (named `spec`).
async fn settle(args: &Args, connection: &Connection, spec: &str) -> Result<ExitCode, Failure> {
    let client = &connection.client;
    let entries = client.unfinished().await?;
    if entries.is_empty() {
        out::note("Nothing", &format!("left unfinished in {spec}"));
        return Ok(ExitCode::SUCCESS);
    }
    let count = match entries.len() {
        1 => "1 unfinished entry".to_owned(),
        n => format!("{n} unfinished entries"),
    };
    out::note("Resuming", &format!("{count} of {spec}"));
    let options = WaitOptions::default().timeout(Duration::from_secs(args.timeout));
    let (mut code, mut succeeded) = (0, 0);
    for entry in &entries {
        // Nobody would read how this entry settles: leave it, and the rest, unfinished.
        out::ensure_open()?;
        let result = match connection.offline {
            Some(_) => Err(Failure::Config(format!(
                "the embedded offline LaraCopilot knows no project of this journal: left \
                 unfinished; set {} and {} to the server it ran on",
                laracopilot::TOKEN_ENV,
                laracopilot::BASE_URL_ENV
            ))),
            None => {
                let mut reported = true;
                let result = client
                    .resume_reported(entry, options.clone(), |_| {
                        reported = !out::stdout_closed();
                        reported
                    })
                    .await;
                match reported {
                    true => result.map_err(Failure::Sdk),
                    false => Err(Failure::Closed),
                }
            }
        };
        if matches!(result, Err(Failure::Closed)) {
            return Err(Failure::Closed);
        }
        if result.is_ok() {
            succeeded += 1;
        }
        if let Err(failure) = &result {
            code = code.max(failure.exit_code());
        }
        report(entry, &result, args.talk.json)?;
    }
    let text = format!("{succeeded} of {} succeeded", entries.len());
    out::note("Settled", &text);
    Ok(ExitCode::from(code))
}

/// Prints how `entry` settled: a JSON line with the entry's fields, or a line for
/// people.
fn report(entry: &Entry, result: &Result<Outcome, Failure>, json: bool) -> Result<(), Failure> {
    if json {
        let line = match result {
            Ok(outcome) => {
                let status = outcome
                    .recovered
                    .as_ref()
                    .and_then(|p| p.project_status.clone());
                let extra = vec![("project_status", Value::from(status))];
                json::outcome(json::outcome_object(outcome, extra))
            }
            Err(failure) => json::failure(failure),
        };
        return out::json(&with_entry(line, entry));
    }
    match result {
        Ok(outcome) => {
            let id = outcome.project_id().map_or("-", |p| p.as_str());
            let url = outcome.app_url.as_deref().unwrap_or("(no URL given)");
            out::line(&format!(
                "{}: succeeded: project {id}, {url}",
                describe(entry)
            ))
        }
        Err(failure) => out::line(&format!(
            "{}: {}: {}",
            describe(entry),
            failure.kind(),
            explain(failure)
        )),
    }
}

/// The JSON line `line` with the entry's `local_id`, `kind`, `prompt` and
/// `project_id` (as the journal knows it; `null` when never named).
fn with_entry(line: Value, entry: &Entry) -> Value {
    let Value::Object(mut object) = line else {
        return line;
    };
    let fields: Map<String, Value> = [
        ("local_id", Value::from(entry.local_id.as_str())),
        (
            "kind",
            serde_json::to_value(entry.kind).unwrap_or(Value::Null),
        ),
        ("prompt", Value::from(entry.prompt.as_str())),
        (
            "project_id",
            Value::from(entry.project_id.as_ref().map(|id| id.as_str())),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    object.extend(fields);
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
    match failure.sdk().map(Error::kind) {
        Some("outcome_unknown") => "the process stopped before the project was known: the \
             request may have started work; it was not sent again (send it yourself if it \
             never ran)"
            .to_owned(),
        Some("timeout") => format!("{failure}; left unfinished, to resume later"),
        _ => failure.to_string(),
    }
}
