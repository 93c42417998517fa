//! What the examples share: connecting (real API or the embedded offline
//! LaraCopilot), `--json` output, and turning errors into exit codes.
#![allow(dead_code, reason = "each example uses a different subset")]

use std::io::Write;
use std::process::ExitCode;

use laracopilot::{Client, Event, Outcome};
use serde_json::{json, Value};

/// Why an example failed: the SDK said no, or the example's own input was wrong.
#[derive(Debug)]
pub enum Error {
    /// An error of the SDK.
    Sdk(laracopilot::Error),
    /// A usage or local configuration problem of the example itself.
    Usage(String),
}

impl From<laracopilot::Error> for Error {
    fn from(error: laracopilot::Error) -> Self {
        Error::Sdk(error)
    }
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage(message.into())
    }
}

/// Command-line arguments: `--json` anywhere, the rest positional.
pub struct Args {
    pub json: bool,
    pub positional: Vec<String>,
}

pub fn args() -> Args {
    let mut json = false;
    let mut positional = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--json" {
            json = true;
        } else {
            positional.push(arg);
        }
    }
    Args { json, positional }
}

/// Keeps the embedded server alive for as long as the client is used.
pub struct Connection {
    pub client: Client,
    #[cfg(feature = "mock")]
    _mock: Option<laracopilot::mock::MockServer>,
}

/// The real API when `LARACOPILOT_API_TOKEN` is set (and `LARACOPILOT_BASE_URL` when
/// given); otherwise the embedded offline LaraCopilot when built with `--features
/// mock`. Says which on stderr.
pub async fn connect() -> Result<Connection, Error> {
    if std::env::var_os(laracopilot::TOKEN_ENV).is_some() {
        let client = Client::from_env()?;
        eprintln!("Using the LaraCopilot API at {}", client.base_url());
        return Ok(Connection {
            client,
            #[cfg(feature = "mock")]
            _mock: None,
        });
    }
    #[cfg(feature = "mock")]
    {
        let mock = laracopilot::mock::MockServer::builder()
            .pacing(std::time::Duration::from_millis(35))
            .start()
            .map_err(|e| Error::usage(format!("cannot start the offline LaraCopilot: {e}")))?;
        let client = mock.client();
        eprintln!(
            "No {} set: using the embedded offline LaraCopilot at {} (no credits spent)",
            laracopilot::TOKEN_ENV,
            mock.base_url()
        );
        Ok(Connection {
            client,
            _mock: Some(mock),
        })
    }
    #[cfg(not(feature = "mock"))]
    Err(Error::usage(format!(
        "{} is not set; set it, or run with `--features mock` to use the embedded offline LaraCopilot",
        laracopilot::TOKEN_ENV
    )))
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

/// `{"event": "<type>", "data": <the event's JSON object as received>}`.
pub fn event_json(event: &Event) -> Value {
    let data: Value = serde_json::from_str(event.raw_json()).unwrap_or(Value::Null);
    json!({ "event": event.type_name(), "data": data })
}

/// `{"outcome": {...}}`.
pub fn outcome_json(outcome: &Outcome) -> Value {
    json!({ "outcome": {
        "project_id": outcome.project_id.as_ref().map(|p| p.as_str()),
        "app_url": outcome.app_url,
        "files": outcome.files,
        "events": outcome.stats.events,
    }})
}

/// `{"error": {...}}`.
pub fn error_json(error: &Error) -> Value {
    let error = match error {
        Error::Sdk(error) => error,
        Error::Usage(message) => {
            return json!({ "error": {
                "kind": "config",
                "message": message,
                "status": null,
                "project_id": null,
                "retry_after_secs": null,
            }})
        }
    };
    json!({ "error": {
        "kind": error.kind(),
        "message": sdk_message(error),
        "status": error.status(),
        "project_id": error.project_id().map(|p| p.as_str()),
        "retry_after_secs": error.retry_after().map(|d| d.as_secs()),
    }})
}

/// The error with its chain of causes, on one line.
pub fn message(error: &Error) -> String {
    match error {
        Error::Sdk(error) => sdk_message(error),
        Error::Usage(message) => message.clone(),
    }
}

fn sdk_message(error: &laracopilot::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let laracopilot::Error::Validation { errors, .. } = error {
        for (field, messages) in errors {
            text.push_str(&format!("; {field}: {}", messages.join(" ")));
        }
    }
    text
}

/// Reports `error` (as JSON on stdout, or readably on stderr) and picks the exit code:
/// 2 for usage and configuration, 3 for authentication, 4 for credits, 1 otherwise.
pub fn fail(error: &Error, json: bool) -> ExitCode {
    if json {
        print_json(&error_json(error));
    } else {
        eprintln!("error: {}", message(error));
        if let Some(id) = match error {
            Error::Sdk(error) => error.project_id(),
            Error::Usage(_) => None,
        } {
            eprintln!(
                "project id: {id} (poll it with: cargo run --example project_status -- {id})"
            );
        }
    }
    use laracopilot::Error as E;
    ExitCode::from(match error {
        Error::Usage(_) | Error::Sdk(E::Config { .. } | E::Validation { .. }) => 2,
        Error::Sdk(E::Unauthorized { .. } | E::TokenExpired { .. }) => 3,
        Error::Sdk(E::CreditsExhausted { .. }) => 4,
        _ => 1,
    })
}

/// Runs a generation to its end: human progress (a bar for the container, a line per
/// file, the app URL) or JSON lines.
pub async fn stream(generation: laracopilot::Generation, json: bool) -> Result<Outcome, Error> {
    let outcome = generation
        .finish_with(|event| {
            if json {
                return print_json(&event_json(event));
            }
            match event {
                Event::ProjectCreated(e) => println!("Project {} created", e.project_id),
                Event::ContainerProgress(e) => {
                    progress_bar(e.percentage.unwrap_or(0.0), &e.message)
                }
                Event::ContainerReady(e) => {
                    progress_bar(100.0, "");
                    println!("\n{}", e.message);
                }
                Event::FileCreated(e) => {
                    println!("  + {}", e.path.as_deref().unwrap_or("(unnamed file)"))
                }
                Event::ToolProgress(e) => {
                    if let Some(message) = &e.message {
                        println!("  · {message}");
                    }
                }
                _ => {}
            }
        })
        .await?;
    if json {
        print_json(&outcome_json(&outcome));
    } else {
        println!(
            "Done: {} events, {} files",
            outcome.stats.events,
            outcome.files.len()
        );
        if let Some(id) = &outcome.project_id {
            println!("Project: {id}");
        }
        println!(
            "App: {}",
            outcome.app_url.as_deref().unwrap_or("(no URL given)")
        );
    }
    Ok(outcome)
}

fn progress_bar(percentage: f64, message: &str) {
    let filled = (percentage.clamp(0.0, 100.0) / 5.0).round() as usize;
    print!(
        "\r[{}{}] {:>3.0}% {:<48}",
        "#".repeat(filled),
        ".".repeat(20 - filled),
        percentage,
        message
    );
    let _ = std::io::stdout().flush();
}
