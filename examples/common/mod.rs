//! What the examples share: the command-line flags, connecting (the real API or the
//! embedded offline LaraCopilot), the progress display, `--json` output, and turning
//! failures into exit codes.
#![allow(dead_code, reason = "each example uses a different subset")]

mod display;

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use laracopilot::journal::FileJournal;
use laracopilot::{Client, ClientBuilder, Error, Event, Generation, Outcome};
use serde_json::{json, Value};

pub use display::{error_label, human_duration, note, Display};

/// The flags shared by the examples that talk to LaraCopilot, flattened into each
/// example's own arguments (`#[command(flatten)]`): a flag added here is a flag of
/// every one of them, spelled the same way.
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// Print JSON on stdout, one object per line; human messages go to stderr
    ///
    /// generate, follow_up: {"event": TYPE, "data": EVENT} for each event, then
    /// {"outcome": {...}} or {"error": {...}}. project_status: the status answer, or
    /// the error. build_script: the outcome (with "cached"), or the error. resume: an
    /// outcome or error line per journal entry. The README's "JSON output" has the
    /// schema.
    #[arg(long)]
    pub json: bool,

    /// Record every exchange with LaraCopilot into this cassette file (JSON lines,
    /// the token masked), to replay it later: `mock_server --replay FILE`, or
    /// `MockServer::replay` in a test. Needs the `record` feature (`mock` has it)
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// `--journal`, flattened only into the examples that start generations or settle
/// them (generate, follow_up, build_script, resume): a status poll has nothing to
/// journal, so project_status does not take it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JournalFlag {
    /// The journal FILE (one JSON object per line): each generation is recorded in
    /// it; resume settles what a crash left unfinished there
    ///
    /// The intent is written before the request is sent, the project id as soon as it
    /// is known, the outcome at the end. With --json the outcome line of generate and
    /// follow_up gains "journal_id", the generation's entry.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

/// The "Environment" section of `--help`, for the examples that talk to LaraCopilot.
pub const ENVIRONMENT: &str = "\
Environment:
  LARACOPILOT_API_TOKEN  Use the real API with this token (spends credits). Unset:
                         the embedded offline LaraCopilot (built with --features mock)
  LARACOPILOT_BASE_URL   The API's base URL [default: https://builder.laracopilot.com/api/v1]";

/// The "Exit status" section of `--help`: the same codes in every example.
pub const EXIT_STATUS: &str = "\
Exit status:
  0  Success
  1  Any other failure (network, timeout, incomplete stream, a local file)
  2  Usage or configuration (bad arguments or settings, a 422 validation error)
  3  Authentication (the token is missing, invalid, revoked or expired)
  4  The team's credits are exhausted";

/// The text after `--help`: the given sections, a blank line apart.
pub fn after_help(sections: &[&str]) -> String {
    sections.join("\n\n")
}

/// Why an example failed. The examples never mint a `laracopilot::Error`: that type
/// is the SDK's account of what happened.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong (exit 2, JSON kind `"usage"`).
    Usage(String),
    /// The run is not set up: no token and no offline server (exit 2, kind `"config"`).
    Config(String),
    /// The SDK reported an error (exit code by its kind, kind [`Error::kind`]).
    Sdk(Error),
    /// Something on this machine failed: a file, the offline LaraCopilot (exit 1,
    /// kind `"local"`).
    Local(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Sdk(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(why) | Failure::Config(why) | Failure::Local(why) => f.write_str(why),
            Failure::Sdk(error) => f.write_str(&message(error)),
        }
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The label of the JSON error object: the SDK's [`Error::kind`], or the
    /// example's own `"usage"`, `"config"`, `"local"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Usage(_) => "usage",
            Failure::Config(_) => "config",
            Failure::Sdk(error) => error.kind(),
            Failure::Local(_) => "local",
        }
    }

    /// 2 usage or configuration, 3 authentication, 4 credits, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            "usage" | "config" | "validation" => 2,
            "unauthorized" | "token_expired" => 3,
            "credits_exhausted" => 4,
            _ => 1,
        }
    }

    fn sdk(&self) -> Option<&Error> {
        match self {
            Failure::Sdk(error) => Some(error),
            _ => None,
        }
    }
}

/// Parses the command line into `T`. `--help` prints and exits 0; a usage error
/// exits 2, reported as a JSON error object on stdout when `--json` is among the
/// arguments (and readably on stderr in any case).
pub fn parse<T: Parser>() -> T {
    let error = match T::try_parse() {
        Ok(cli) => return cli,
        Err(error) => error,
    };
    if !error.use_stderr() {
        // --help, --version: not an error.
        error.exit();
    }
    let json = std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json");
    if json {
        print_json(&failure_json(&Failure::Usage(clap_message(&error))));
        let _ = error.print();
        std::process::exit(2);
    }
    error.exit()
}

/// A clap error on one line: its first paragraph, without the `error: ` label.
fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let paragraph: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = paragraph.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// Keeps the embedded server alive for as long as the client is used.
pub struct Connection {
    pub client: Client,
    #[cfg(feature = "mock")]
    _mock: Option<laracopilot::mock::MockServer>,
}

impl Connection {
    /// Whether the client talks to the embedded offline LaraCopilot.
    #[cfg(feature = "mock")]
    pub fn offline(&self) -> bool {
        self._mock.is_some()
    }

    /// Whether the client talks to the embedded offline LaraCopilot.
    #[cfg(not(feature = "mock"))]
    pub fn offline(&self) -> bool {
        false
    }
}

/// The real API when `LARACOPILOT_API_TOKEN` is set (and `LARACOPILOT_BASE_URL` when
/// given); otherwise the embedded offline LaraCopilot when built with `--features
/// mock`. Says which on stderr. The shared flags and the `journal` file shape the
/// connection (see [`shaped`]).
pub async fn connect(flags: &Flags, journal: &JournalFlag) -> Result<Connection, Failure> {
    if std::env::var_os(laracopilot::TOKEN_ENV).is_some() {
        let client = shaped(Client::builder().from_env(), flags, journal)?.build()?;
        note(
            "Using",
            &format!("the LaraCopilot API at {}", client.base_url()),
        );
        return Ok(Connection {
            client,
            #[cfg(feature = "mock")]
            _mock: None,
        });
    }
    #[cfg(feature = "mock")]
    {
        let builder =
            laracopilot::mock::MockServer::builder().pacing(std::time::Duration::from_millis(60));
        let mock = start_mock(builder)?;
        let why = format!("no {} set, no credits spent", laracopilot::TOKEN_ENV);
        note(
            "Using",
            &format!("the embedded offline LaraCopilot ({why})"),
        );
        Ok(Connection {
            client: shaped(mock.client_builder(), flags, journal)?.build()?,
            _mock: Some(mock),
        })
    }
    #[cfg(not(feature = "mock"))]
    Err(Failure::Config(format!(
        "{} is not set; set it, or run with `--features mock` to use the embedded offline LaraCopilot",
        laracopilot::TOKEN_ENV
    )))
}

/// `builder` as the flags shape it: keeping the `--journal` file, recording into
/// the `--record` cassette. The one place where a flag reaches the client, for the
/// async examples and the blocking one alike.
pub fn shaped(
    builder: ClientBuilder,
    flags: &Flags,
    journal: &JournalFlag,
) -> Result<ClientBuilder, Failure> {
    record(journaled(builder, journal)?, flags)
}

/// `builder` keeping the `--journal` file, when one is given (created if missing; a
/// line torn by a crash in the middle of a write is dropped, and said on stderr).
fn journaled(builder: ClientBuilder, flag: &JournalFlag) -> Result<ClientBuilder, Failure> {
    let Some(path) = &flag.journal else {
        return Ok(builder);
    };
    let journal = FileJournal::open(path)?;
    if journal.torn_lines() > 0 {
        note(
            "Repaired",
            &format!(
                "{}: dropped the last line, cut short by a crash while it was written",
                path.display()
            ),
        );
    }
    note("Journal", &format!("{}", path.display()));
    Ok(builder.journal(journal))
}

/// The builder, recording into the `--record` cassette when one is given (and says
/// so on stderr).
fn record(builder: ClientBuilder, flags: &Flags) -> Result<ClientBuilder, Failure> {
    let Some(path) = &flags.record else {
        return Ok(builder);
    };
    #[cfg(feature = "record")]
    {
        note("Recording", &format!("into {}", path.display()));
        Ok(builder.record_to(path))
    }
    #[cfg(not(feature = "record"))]
    {
        let _ = builder;
        Err(Failure::Usage(format!(
            "--record {} needs the `record` feature: cargo run --features record (or mock) --example ...",
            path.display()
        )))
    }
}

/// Starts the embedded offline LaraCopilot: the one place where the examples start
/// it.
#[cfg(feature = "mock")]
pub fn start_mock(
    builder: laracopilot::mock::MockServerBuilder,
) -> Result<laracopilot::mock::MockServer, Failure> {
    builder
        .start()
        .map_err(|e| Failure::Local(format!("cannot start the offline LaraCopilot: {e}")))
}

/// The process's peak resident memory in KiB (`VmHWM`; Linux only).
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Prints one JSON object on its own line on stdout.
pub fn print_json(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// `{"event": "<type>", "data": <the event's JSON object as received>}`; a malformed
/// event adds `"malformed": "<why>"`, and `"raw": "<text>"` when its text is not JSON.
pub fn event_json(event: &Event) -> Value {
    let parsed: Option<Value> = serde_json::from_str(event.raw_json()).ok();
    let mut line = serde_json::Map::new();
    line.insert("event".into(), Value::from(event.type_name()));
    line.insert("data".into(), parsed.clone().unwrap_or(Value::Null));
    if let Event::Malformed(malformed) = event {
        line.insert("malformed".into(), Value::from(malformed.reason.as_str()));
        if parsed.is_none() {
            line.insert("raw".into(), Value::from(event.raw_json()));
        }
    }
    Value::Object(line)
}

/// `{"outcome": {...}}`; `extra` fields (an example's own) are added to the object.
pub fn outcome_json(outcome: &Outcome, extra: &[(&str, Value)]) -> Value {
    let elapsed = u64::try_from(outcome.progress.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut object = serde_json::Map::new();
    object.insert(
        "project_id".into(),
        Value::from(outcome.project_id.as_ref().map(|p| p.as_str())),
    );
    object.insert("app_url".into(), Value::from(outcome.app_url.clone()));
    object.insert("files".into(), Value::from(outcome.files.clone()));
    object.insert("events".into(), Value::from(outcome.stats.events));
    object.insert("elapsed_ms".into(), Value::from(elapsed));
    for (key, value) in extra {
        object.insert((*key).to_owned(), value.clone());
    }
    json!({ "outcome": object })
}

/// `{"error": {"kind", "message", "status", "project_id", "retry_after_secs"}}`.
pub fn failure_json(failure: &Failure) -> Value {
    let error = failure.sdk();
    json!({ "error": {
        "kind": failure.kind(),
        "message": failure.to_string(),
        "status": error.and_then(Error::status),
        "project_id": error.and_then(Error::project_id).map(|p| p.as_str()),
        "retry_after_secs": error.and_then(Error::retry_after).map(|d| d.as_secs()),
    }})
}

/// The error with its chain of causes, on one line.
pub fn message(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Error::Validation { errors, .. } = error {
        for (field, messages) in errors {
            text.push_str(&format!("; {field}: {}", messages.join(" ")));
        }
    }
    // What the server said about an unexpected answer (a replay's "not on the tape"
    // names the request and what the tape expected).
    if let Error::Api {
        message: Some(said),
        ..
    } = error
    {
        text.push_str(&format!(": {said}"));
    }
    text
}

/// Reports `failure` (as a JSON error object on stdout, or readably on stderr) and
/// returns its exit code.
pub fn fail(failure: &Failure, json: bool) -> ExitCode {
    if json {
        print_json(&failure_json(failure));
    } else {
        eprintln!("{} {failure}", error_label());
        match failure.sdk() {
            Some(error) if error.project_id().is_some() => {
                if let Some(id) = error.project_id() {
                    eprintln!(
                        "project id: {id} (poll it with: cargo run --example project_status -- {id})"
                    );
                }
            }
            _ => {}
        }
        if failure.exit_code() == 3 {
            eprintln!(
                "hint: create a token in the dashboard (Settings -> API Tokens) and set {}",
                laracopilot::TOKEN_ENV
            );
        }
    }
    ExitCode::from(failure.exit_code())
}

/// Runs a generation to its end, with the progress display on stderr, then prints
/// the summary (people) or the JSON lines (`--json`) on stdout.
pub async fn stream(generation: Generation, flags: &Flags) -> Result<Outcome, Failure> {
    let journal_id = generation.journal_id().map(|id| id.to_string());
    if let Some(id) = &journal_id {
        note("Journal", &format!("entry {id}"));
    }
    let mut display = Display::new(flags.json, generation.progress().clone());
    let result = generation
        .finish_with(|event| {
            if flags.json {
                display.above(|| print_json(&event_json(event)));
            }
            display.event(event);
        })
        .await;
    let extra: Vec<(&str, Value)> = journal_id
        .map(|id| ("journal_id", Value::from(id)))
        .into_iter()
        .collect();
    finish(display, result, flags, &extra)
}

/// Ends the display, and prints the outcome (a summary, or its JSON line with
/// `extra` fields) on stdout.
pub fn finish(
    mut display: Display,
    result: laracopilot::Result<Outcome>,
    flags: &Flags,
    extra: &[(&str, Value)],
) -> Result<Outcome, Failure> {
    match result {
        Ok(outcome) => {
            display.finished(&outcome);
            if flags.json {
                print_json(&outcome_json(&outcome, extra));
            } else {
                print_summary(&outcome);
            }
            Ok(outcome)
        }
        Err(error) => {
            display.failed(&error);
            Err(Failure::Sdk(error))
        }
    }
}

/// The human summary of an outcome, on stdout.
pub fn print_summary(outcome: &Outcome) {
    let progress = &outcome.progress;
    let mut out = std::io::stdout().lock();
    let id = outcome.project_id.as_ref().map_or("-", |id| id.as_str());
    let _ = writeln!(out, "Project: {id}");
    let _ = writeln!(
        out,
        "App:     {}",
        outcome.app_url.as_deref().unwrap_or("(no URL given)")
    );
    let _ = writeln!(
        out,
        "Files:   {} created, {} modified",
        progress.files_created(),
        progress.files_modified()
    );
    let _ = writeln!(out, "Time:    {}", human_duration(progress.elapsed()));
    let _ = out.flush();
}
