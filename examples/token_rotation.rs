//! A long-running loop that keeps working while its API token is rotated in a file,
//! the way a mounted secret is rotated: no restart, no failed call.
//!
//! ```text
//! cargo run --example token_rotation --features mock
//! LARACOPILOT_TOKEN_FILE=/run/secrets/laracopilot-token cargo run --example token_rotation -- 30 10000
//! ```
//!
//! Arguments: `[ITERATIONS] [INTERVAL_MS]` (6 and 300 offline; 30 and 10000 against
//! the API; `--help` says more). Each iteration checks the token with `Client::verify_token`, which spends
//! no credits, and prints the token's mask.
//!
//! Against the API (and `LARACOPILOT_BASE_URL` when given) it reads the token from
//! `LARACOPILOT_TOKEN_FILE`: write a new token into that file while the loop runs
//! (then revoke the old one in the dashboard) and the next iteration uses it. Without
//! that variable it falls back to `LARACOPILOT_API_TOKEN`, which nothing outside the
//! process can change. Without either, built with `--features mock`, it plays the
//! operator itself on the embedded offline LaraCopilot: halfway through, it creates a
//! new token, writes it into the file, and revokes the old one.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::Failure;
use laracopilot::tokens::{EnvToken, FileToken, TokenProvider};
use laracopilot::{Client, BASE_URL_ENV, TOKEN_ENV};

/// The file holding the token, for the real API.
const TOKEN_FILE_ENV: &str = "LARACOPILOT_TOKEN_FILE";

const ENVIRONMENT: &str = "\
Environment:
  LARACOPILOT_TOKEN_FILE  A file holding the token, read again when it changes (a mounted
                          secret): write a new token into it while the loop runs
  LARACOPILOT_API_TOKEN   The token, when no file is given (nothing outside the process
                          can change it). Neither set: the offline demo (--features mock)
  LARACOPILOT_BASE_URL    The API's base URL [default: https://builder.laracopilot.com/api/v1]";

/// Keeps checking the API token while it is rotated, without a restart.
///
/// Each iteration checks the token with `Client::verify_token`, which spends no
/// credits, and prints the token's mask. Offline (neither LARACOPILOT_TOKEN_FILE nor
/// LARACOPILOT_API_TOKEN set), it plays the operator on the embedded LaraCopilot:
/// halfway through it writes a new token into the file and revokes the old one.
/// Exits 3 when any check was rejected.
#[derive(Debug, Parser)]
#[command(
    name = "token_rotation",
    after_help = common::after_help(&[ENVIRONMENT, common::EXIT_STATUS]),
)]
struct Cli {
    /// How many checks [default: 6 offline, 30 against the API]
    #[arg(value_name = "ITERATIONS")]
    iterations: Option<u32>,

    /// Milliseconds between two checks [default: 300 offline, 10000 against the API]
    #[arg(value_name = "INTERVAL_MS")]
    interval_ms: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = common::parse();
    match run(&cli).await {
        Ok(true) => ExitCode::SUCCESS,
        // Some iteration's token was rejected: an authentication failure.
        Ok(false) => ExitCode::from(3),
        Err(failure) => common::fail(&failure, false),
    }
}

/// How long the loop runs.
struct Settings {
    iterations: u32,
    interval: Duration,
}

impl Cli {
    fn settings(&self, iterations: u32, interval_ms: u64) -> Settings {
        Settings {
            iterations: self.iterations.unwrap_or(iterations),
            interval: Duration::from_millis(self.interval_ms.unwrap_or(interval_ms)),
        }
    }
}

async fn run(cli: &Cli) -> Result<bool, Failure> {
    if let Some(path) = std::env::var_os(TOKEN_FILE_ENV) {
        let provider: Arc<dyn TokenProvider> = Arc::new(FileToken::new(path)?);
        return against_api(provider, cli.settings(30, 10_000)).await;
    }
    if std::env::var_os(TOKEN_ENV).is_some() {
        eprintln!(
            "Reading the token from {TOKEN_ENV}, which nothing outside this process can change: set {TOKEN_FILE_ENV} to rotate it"
        );
        let provider: Arc<dyn TokenProvider> = Arc::new(EnvToken::new(TOKEN_ENV)?);
        return against_api(provider, cli.settings(30, 10_000)).await;
    }
    without_token(cli).await
}

#[cfg(feature = "mock")]
async fn without_token(cli: &Cli) -> Result<bool, Failure> {
    offline(cli.settings(6, 300)).await
}

#[cfg(not(feature = "mock"))]
async fn without_token(_cli: &Cli) -> Result<bool, Failure> {
    Err(Failure::Config(format!(
        "set {TOKEN_FILE_ENV} (or {TOKEN_ENV}), or run with `--features mock` to use the embedded offline LaraCopilot"
    )))
}

async fn against_api(
    provider: Arc<dyn TokenProvider>,
    settings: Settings,
) -> Result<bool, Failure> {
    let mut builder = Client::builder().token_provider(Arc::clone(&provider));
    if let Ok(url) = std::env::var(BASE_URL_ENV) {
        if !url.trim().is_empty() {
            builder = builder.base_url(url.trim());
        }
    }
    let client = builder.build()?;
    eprintln!("Using the LaraCopilot API at {}", client.base_url());
    Ok(watch(&client, &*provider, &settings, |_| Ok(())).await)
}

/// The service's loop: one token check per iteration, `before(i)` first. Failures
/// are reported and the loop goes on, as a service would; the answer says whether
/// every check was accepted.
async fn watch(
    client: &Client,
    provider: &dyn TokenProvider,
    settings: &Settings,
    mut before: impl FnMut(u32) -> Result<(), Failure>,
) -> bool {
    let n = settings.iterations;
    let mut all_accepted = true;
    for i in 1..=n {
        let checked = match before(i) {
            Ok(()) => client.verify_token().await.map_err(Failure::from),
            Err(failure) => Err(failure),
        };
        let mask = match provider.token().await {
            Ok(token) => token.masked(),
            Err(_) => "(none)".to_owned(),
        };
        match checked {
            Ok(check) => {
                println!("{i}/{n}: token {mask}: {check}");
                all_accepted &= check.is_accepted();
            }
            Err(failure) => {
                println!("{i}/{n}: token {mask}: error: {failure}");
                all_accepted = false;
            }
        }
        if i < n {
            tokio::time::sleep(settings.interval).await;
        }
    }
    all_accepted
}

#[cfg(feature = "mock")]
async fn offline(settings: Settings) -> Result<bool, Failure> {
    use laracopilot::mock::{MockServer, TokenState};

    // Demo values: the embedded server knows only these.
    const FIRST: &str = "lcp_demo_first_token_00000001";
    const SECOND: &str = "lcp_demo_second_token_0000002";

    let io = |what: &str, e: std::io::Error| Failure::Local(format!("{what}: {e}"));
    let mock = common::start_mock(MockServer::builder().token(FIRST))?;
    let dir = tempfile::tempdir().map_err(|e| io("cannot create a temporary directory", e))?;
    let file = dir.path().join("laracopilot-token");
    write_atomically(&file, FIRST).map_err(|e| io("cannot write the token file", e))?;
    let provider = Arc::new(FileToken::new(&file)?);
    let client = Client::builder()
        .token_provider(Arc::clone(&provider))
        .base_url(mock.base_url())
        .build()?;
    eprintln!(
        "No {TOKEN_ENV} set: rotating a token on the embedded offline LaraCopilot at {} (no credits spent)",
        mock.base_url()
    );
    let rotate_at = settings.iterations / 2 + 1;
    let rotate = |i: u32| {
        if i != rotate_at {
            return Ok(());
        }
        // The operator's steps: a new token in the dashboard, the secret updated,
        // then the old token revoked.
        mock.add_token(SECOND, TokenState::Valid);
        write_atomically(&file, SECOND).map_err(|e| io("cannot write the token file", e))?;
        mock.revoke(FIRST);
        println!(
            "rotated: a new token is in {}, the old one is revoked",
            file.display()
        );
        Ok(())
    };
    Ok(watch(&client, &*provider, &settings, rotate).await)
}

/// Replaces the file in one step (write a sibling, then rename), as secret mounts do:
/// a reader never sees half a token.
#[cfg(feature = "mock")]
fn write_atomically(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{token}\n"))?;
    std::fs::rename(&partial, path)
}
