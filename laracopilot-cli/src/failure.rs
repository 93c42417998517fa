//! Why a command failed, its exit code, and how it is told: a JSON error line on
//! stdout with `--json`, a readable message on stderr otherwise.

use std::fmt;
use std::process::ExitCode;

use laracopilot::Error;

use crate::{json, out, terminal};

/// The exit status of a command whose stdout was closed by its reader (128 plus
/// SIGPIPE's number, 13: what a shell shows for a program that a closed pipe
/// stopped, as `yes | head -1` does).
pub const CLOSED_EXIT: u8 = 141;

/// The "Exit status" section of `--help`: the same codes in every subcommand.
pub const EXIT_STATUS: &str = "\
Exit status:
    0  Success
    1  Any other failure (network, timeout, incomplete stream, 404, 429, a local file,
       a journal that cannot be opened or written)
    2  Usage or configuration (bad arguments or settings, a 422 validation error)
    3  Authentication (the token is missing, invalid, revoked or expired)
    4  The team's credits are exhausted
    6  A budget of the scope (--budget) refused the call: nothing was sent
  141  Stdout was closed by its reader (e.g. `| head -1`): stopped quietly";

/// The "Environment" section of `--help`, for the subcommands that talk to
/// LaraCopilot.
pub const ENVIRONMENT: &str = "\
Environment:
  LARACOPILOT_API_TOKEN      Use the real API with this token (spends credits). Unset:
                             the embedded offline LaraCopilot (no network, no credits)
  LARACOPILOT_BASE_URL       The API's base URL [default: https://builder.laracopilot.com/api/v1]
  LARACOPILOT_OFFLINE_STORE  Offline only: where the projects generated offline are
                             remembered [default: $XDG_STATE_HOME/laracopilot/offline-projects.json]";

/// The text after `--help`: the given sections, a blank line apart.
pub fn after_help(sections: &[&str]) -> String {
    sections.join("\n\n")
}

/// Why a command failed. The CLI never mints a `laracopilot::Error`: that type is
/// the SDK's account of what happened.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong (exit 2, JSON kind `"usage"`).
    Usage(String),
    /// The run is not set up (exit 2, kind `"config"`).
    Config(String),
    /// The SDK reported an error (exit code by its [`Error::kind`]).
    Sdk(Error),
    /// Something on this machine failed: a file, the offline LaraCopilot (exit 1,
    /// kind `"local"`).
    Local(String),
    /// Stdout's reader is gone: the command stops quietly ([`CLOSED_EXIT`]).
    Closed,
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
            Failure::Closed => f.write_str("stdout was closed by its reader"),
        }
    }
}

impl Failure {
    /// The label of the JSON error object: the SDK's [`Error::kind`], or the CLI's
    /// own `"usage"`, `"config"`, `"local"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Usage(_) => "usage",
            Failure::Config(_) => "config",
            Failure::Sdk(error) => error.kind(),
            Failure::Local(_) => "local",
            Failure::Closed => "closed",
        }
    }

    /// 2 usage or configuration, 3 authentication, 4 credits, 6 a budget, 141 a
    /// closed stdout, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self.kind() {
            "usage" | "config" | "validation" => 2,
            "unauthorized" | "token_expired" => 3,
            "credits_exhausted" => 4,
            "budget_exhausted" => 6,
            "closed" => CLOSED_EXIT,
            _ => 1,
        }
    }

    /// The SDK's error, when it is one.
    pub fn sdk(&self) -> Option<&Error> {
        match self {
            Failure::Sdk(error) => Some(error),
            _ => None,
        }
    }
}

/// The error with its chain of causes, on one line (not cleaned: JSON keeps it
/// exact, and [`report`] cleans it for people).
pub fn message(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    // The SDK's Display already names the server's words (a validation's fields, an
    // unexpected answer's message, a replay's "not on the tape").
    text
}

/// Reports `failure` (as a JSON error line on stdout, or readably on stderr) and
/// returns its exit code. A closed stdout is reported by nothing but its code.
pub fn report(failure: &Failure, json: bool) -> ExitCode {
    let code = ExitCode::from(failure.exit_code());
    if matches!(failure, Failure::Closed) {
        return code;
    }
    if json {
        // A reader gone by now cannot be told anything more.
        let _ = out::json(&json::failure(failure));
        return code;
    }
    let text = terminal::clean(&failure.to_string()).into_owned();
    out::stderr_raw(&format!("{} {text}", terminal::error_label()));
    if let Some(id) = failure.sdk().and_then(Error::project_id) {
        out::stderr_raw(&terminal::clean(&format!(
            "project id: {id} (poll it with: laracopilot status {id})"
        )));
    }
    if failure.exit_code() == 3 {
        out::stderr_raw(&format!(
            "hint: create a token in the dashboard (Settings -> API Tokens) and set {}",
            laracopilot::TOKEN_ENV
        ));
    }
    code
}
