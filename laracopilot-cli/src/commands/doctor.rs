//! `laracopilot doctor`: checks the token and the base URL before anything spends
//! credits. Four findings, each with its exit code; the command exits with the most
//! serious one's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use laracopilot::tokens::{TokenCheck, TokenProvider};
use laracopilot::{Client, Token};
use serde_json::{json, Map, Value};

use crate::connect;
use crate::date::{self, Day};
use crate::failure::{self, Failure};
use crate::json::SCHEMA_VERSION;
use crate::out;
use crate::token_source::Source;

/// The variable giving the token's expiry date, when `--expires` is not given.
pub const EXPIRES_ENV: &str = "LARACOPILOT_TOKEN_EXPIRES";

/// The exit code of a token that expires within `--warn-days`.
pub const EXPIRES_SOON: u8 = 5;

const FINDINGS: &str = "\
Findings (one line each on stdout; with --json one object, see the README):
  token     where the token comes from (--token-file, LARACOPILOT_TOKEN_FILE or
            LARACOPILOT_API_TOKEN) and its mask, as the dashboard shows it
  expiry    the expiry date given with --expires (or LARACOPILOT_TOKEN_EXPIRES):
            the token's format says nothing of it; the dashboard shows it
  base URL  LARACOPILOT_BASE_URL (or the default), as the client would accept it
  status    a status call (GET /agent/project/<probe>), which spends no credits,
            proves that the API accepts the token

doctor never uses the embedded offline LaraCopilot: it checks your setup. To try it
offline, point LARACOPILOT_BASE_URL at `laracopilot mock-server`.";

const DOCTOR_EXIT: &str = "\
Exit status (the most serious finding's, in this order):
    2  Usage or configuration: no token, an unreadable or invalid token, an invalid
       expiry date or base URL
    3  Authentication: the API rejects the token (invalid, revoked, expired), or the
       expiry date has passed
    1  The status call failed otherwise (network, timeout, 5xx, 429)
    5  The token expires within --warn-days
    0  Success: the API accepts the token
  141  Stdout was closed by its reader (e.g. `| head -1`): stopped quietly";

const ENVIRONMENT: &str = "\
Environment:
  LARACOPILOT_API_TOKEN      The token, when no token file is given
  LARACOPILOT_TOKEN_FILE     A file holding the token, when --token-file is not given
  LARACOPILOT_TOKEN_EXPIRES  The token's expiry date, when --expires is not given
  LARACOPILOT_BASE_URL       The API's base URL [default: https://builder.laracopilot.com/api/v1]
  LARACOPILOT_OFFLINE        1: only a loopback base URL is accepted";

/// Checks the token and the base URL, without spending credits.
///
/// Reports four findings: the token (its source and mask), its expiry (when known),
/// the base URL, and a status call that proves the API accepts the token.
#[derive(Debug, clap::Args)]
#[command(after_help = failure::after_help(&[FINDINGS, ENVIRONMENT, DOCTOR_EXIT]))]
pub struct Args {
    /// Print the findings as one JSON object on stdout
    #[arg(long)]
    pub json: bool,

    /// Read the token from this file (a mounted secret) [default: $LARACOPILOT_TOKEN_FILE,
    /// else $LARACOPILOT_API_TOKEN]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// The token's expiry date as the dashboard shows it, YYYY-MM-DD (UTC)
    /// [default: $LARACOPILOT_TOKEN_EXPIRES]
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,

    /// Warn (exit 5) when the token expires within this many days
    #[arg(long, value_name = "N", default_value_t = 7)]
    pub warn_days: u32,
}

/// How a finding came out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Unknown,
    Warning,
    Problem,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Unknown => "unknown",
            Status::Warning => "warning",
            Status::Problem => "problem",
            Status::Skipped => "skipped",
        }
    }
}

/// One finding: its name, how it came out, its exit code, a message for people,
/// and its own fields for `--json`.
struct Finding {
    name: &'static str,
    status: Status,
    code: u8,
    message: String,
    fields: Map<String, Value>,
}

impl Finding {
    fn new(name: &'static str, status: Status, code: u8, message: impl Into<String>) -> Self {
        Finding {
            name,
            status,
            code,
            message: message.into(),
            fields: Map::new(),
        }
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }
}

/// Runs `doctor`.
///
/// # Errors
///
/// A closed stdout.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let source = Source::find(args.token_file.as_ref());
    let (token, provider) = token_finding(source.as_ref()).await;
    let expiry = expiry_finding(args);
    let (base, client) = base_url_finding(provider);
    let status = match (&client, token.status) {
        (Some(client), Status::Ok) => status_finding(client).await,
        (_, Status::Ok) => Finding::new(
            "status",
            Status::Skipped,
            0,
            "not checked: no valid base URL",
        ),
        _ => Finding::new("status", Status::Skipped, 0, "not checked: no valid token"),
    };
    let findings = [token, expiry, base, status];
    let code = [2, 3, 1, EXPIRES_SOON]
        .into_iter()
        .find(|code| findings.iter().any(|f| f.code == *code))
        .unwrap_or(0);
    if args.json {
        let list: Vec<Value> = findings.iter().map(finding_json).collect();
        out::json(&json!({
            "schema_version": SCHEMA_VERSION,
            "doctor": { "exit_code": code, "findings": list },
        }))?;
    } else {
        for finding in &findings {
            let name = match finding.name {
                "base_url" => "base URL",
                name => name,
            };
            let line = format!(
                "{name:<9} {:<8} {}",
                finding.status.as_str(),
                finding.message
            );
            out::line(&line)?;
        }
    }
    Ok(ExitCode::from(code))
}

fn finding_json(finding: &Finding) -> Value {
    let mut object = Map::new();
    object.insert("finding".into(), Value::from(finding.name));
    object.insert("status".into(), Value::from(finding.status.as_str()));
    object.insert("exit_code".into(), Value::from(finding.code));
    object.insert("message".into(), Value::from(finding.message.as_str()));
    object.extend(finding.fields.clone());
    Value::Object(object)
}

/// Where the token comes from, and its mask; the provider when it could be read.
async fn token_finding(source: Option<&Source>) -> (Finding, Option<Arc<dyn TokenProvider>>) {
    let Some(source) = source else {
        let why = format!(
            "not set: set {}, or give --token-file FILE (or {})",
            laracopilot::TOKEN_ENV,
            crate::token_source::TOKEN_FILE_ENV
        );
        let finding = Finding::new("token", Status::Problem, 2, why)
            .with("source", Value::Null)
            .with("mask", Value::Null);
        return (finding, None);
    };
    let file = source.file().map(|p| p.display().to_string());
    let read = match source.provider() {
        Ok(provider) => match provider.token().await {
            Ok(token) => Ok((token.masked(), provider)),
            Err(error) => Err(error.to_string()),
        },
        Err(error) => Err(failure::message(&error)),
    };
    match read {
        Ok((mask, provider)) => {
            let finding = Finding::new("token", Status::Ok, 0, format!("{source}: {mask}"))
                .with("source", source.name())
                .with("file", file)
                .with("mask", mask);
            (finding, Some(provider))
        }
        Err(why) => {
            let finding = Finding::new("token", Status::Problem, 2, why)
                .with("source", source.name())
                .with("file", file)
                .with("mask", Value::Null);
            (finding, None)
        }
    }
}

/// The expiry date given, and how far it is.
fn expiry_finding(args: &Args) -> Finding {
    let given = args.expires.clone().or_else(|| {
        std::env::var(EXPIRES_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
    });
    let Some(text) = given else {
        let why = format!(
            "the token's format says nothing of its expiry: give --expires YYYY-MM-DD (or {EXPIRES_ENV}) as the dashboard shows it"
        );
        return Finding::new("expiry", Status::Unknown, 0, why)
            .with("expires", Value::Null)
            .with("days_left", Value::Null);
    };
    let day: Day = match date::parse(&text) {
        Ok(day) => day,
        Err(why) => {
            return Finding::new("expiry", Status::Problem, 2, why)
                .with("expires", Value::Null)
                .with("days_left", Value::Null)
        }
    };
    let left = day - date::today();
    let on = date::format(day);
    let (status, code, message) = match left {
        ..0 => (
            Status::Problem,
            3,
            format!("expired on {on}, {} ago", days(-left)),
        ),
        0 => (
            Status::Warning,
            EXPIRES_SOON,
            format!("expires today, {on}"),
        ),
        _ if left <= i64::from(args.warn_days) => (
            Status::Warning,
            EXPIRES_SOON,
            format!(
                "expires on {on}, in {} (within --warn-days {})",
                days(left),
                args.warn_days
            ),
        ),
        _ => (Status::Ok, 0, format!("expires on {on}, in {}", days(left))),
    };
    Finding::new("expiry", status, code, message)
        .with("expires", on)
        .with("days_left", left)
}

fn days(n: i64) -> String {
    match n {
        1 => "1 day".to_owned(),
        n => format!("{n} days"),
    }
}

/// The base URL as a client would take it (HTTPS, or plain HTTP on loopback); the
/// client for the status call when the token could be read.
fn base_url_finding(provider: Option<Arc<dyn TokenProvider>>) -> (Finding, Option<Client>) {
    let url = std::env::var(laracopilot::BASE_URL_ENV)
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| laracopilot::DEFAULT_BASE_URL.to_owned());
    let default = url == laracopilot::DEFAULT_BASE_URL;
    // A placeholder token checks the URL when there is no token to check it with; it
    // is never sent.
    let provider = provider.or_else(|| {
        let placeholder = Token::new("lcp_doctor_placeholder_never_sent").ok()?;
        Some(Arc::new(laracopilot::tokens::StaticToken::new(placeholder)) as Arc<dyn TokenProvider>)
    });
    let built = match provider {
        Some(provider) => connect::with_provider(provider)
            .build()
            .map_err(|e| failure::message(&e)),
        None => Err("no client could be built".to_owned()),
    };
    match built {
        Ok(client) => {
            let what = if default {
                "the LaraCopilot API (the default)"
            } else {
                "not the default API: a proxy, a staging server or a mock server"
            };
            let message = format!("{}: {what}", client.base_url());
            let finding = Finding::new("base_url", Status::Ok, 0, message)
                .with("url", client.base_url())
                .with("default", default);
            (finding, Some(client))
        }
        Err(why) => {
            let finding = Finding::new("base_url", Status::Problem, 2, why)
                .with("url", url)
                .with("default", default);
            (finding, None)
        }
    }
}

/// A status call that proves the API accepts the token (it spends no credits).
async fn status_finding(client: &Client) -> Finding {
    match client.verify_token().await {
        Ok(TokenCheck::Accepted) => Finding::new(
            "status",
            Status::Ok,
            0,
            "the API accepts the token (a status call, no credits spent)",
        )
        .with("result", "accepted"),
        Ok(TokenCheck::Expired { .. }) => Finding::new(
            "status",
            Status::Problem,
            3,
            "the API says the token has expired: create a new one in the dashboard",
        )
        .with("result", "expired"),
        Ok(check) => Finding::new(
            "status",
            Status::Problem,
            3,
            format!("the API rejects the token: {check} (Settings -> API Tokens)"),
        )
        .with("result", "unauthorized"),
        Err(error) => {
            let failure = Failure::Sdk(error);
            Finding::new(
                "status",
                Status::Problem,
                failure.exit_code(),
                failure.to_string(),
            )
            .with("result", "error")
            .with(
                "error",
                crate::json::failure(&failure)
                    .get("error")
                    .cloned()
                    .unwrap_or_default(),
            )
        }
    }
}
