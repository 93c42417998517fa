//! `laracopilot watch-token [ITERATIONS] [INTERVAL_MS]`: keeps checking the token
//! while it is rotated in a file, the way a mounted secret is rotated: no restart,
//! no failed call.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use laracopilot::tokens::{FileToken, TokenProvider};
use laracopilot::Client;
use laracopilot_mock::{MockServer, TokenState};

use crate::connect;
use crate::failure::{self, Failure};
use crate::offline;
use crate::out;
use crate::token_source::Source;

const ENVIRONMENT: &str = "\
Environment:
  LARACOPILOT_TOKEN_FILE  A file holding the token, read again when it changes (a mounted
                          secret): write a new token into it while the loop runs
  LARACOPILOT_API_TOKEN   The token, when no file is given (nothing outside the process
                          can change it). Neither set: the offline demo
  LARACOPILOT_BASE_URL    The API's base URL [default: https://builder.laracopilot.com/api/v1]";

/// Keeps checking the API token while it is rotated, without a restart.
///
/// Each iteration checks the token with a status call, which spends no credits, and
/// prints the token's mask. Offline (no token file and no LARACOPILOT_API_TOKEN), it
/// plays the operator on the embedded LaraCopilot: halfway through it writes a new
/// token into a file and revokes the old one. Exits 3 when any check was rejected.
#[derive(Debug, clap::Args)]
#[command(after_help = failure::after_help(&[ENVIRONMENT, failure::EXIT_STATUS]))]
pub struct Args {
    /// Read the token from this file [default: $LARACOPILOT_TOKEN_FILE]
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// How many checks [default: 6 offline, 30 against the API]
    #[arg(value_name = "ITERATIONS")]
    pub iterations: Option<u32>,

    /// Milliseconds between two checks [default: 300 offline, 10000 against the API]
    #[arg(value_name = "INTERVAL_MS")]
    pub interval_ms: Option<u64>,
}

/// How long the loop runs.
struct Settings {
    iterations: u32,
    interval: Duration,
}

impl Args {
    fn settings(&self, iterations: u32, interval_ms: u64) -> Settings {
        Settings {
            iterations: self.iterations.unwrap_or(iterations),
            interval: Duration::from_millis(self.interval_ms.unwrap_or(interval_ms)),
        }
    }
}

/// Runs `watch-token`: 0 when every check was accepted, 3 otherwise.
///
/// # Errors
///
/// A token that cannot be read, a bad base URL, a closed stdout.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let accepted = match Source::find(args.token_file.as_ref()) {
        Some(source) => {
            if source == Source::Env {
                out::note(
                    "Reading",
                    &format!(
                        "the token from {}, which nothing outside this process can change: \
                         give a token file to rotate it",
                        laracopilot::TOKEN_ENV
                    ),
                );
            }
            let provider = source.provider()?;
            let client = connect::with_provider(Arc::clone(&provider)).build()?;
            out::note(
                "Using",
                &format!("the LaraCopilot API at {}", client.base_url()),
            );
            watch(&client, &*provider, &args.settings(30, 10_000), |_| Ok(())).await?
        }
        None => offline(args.settings(6, 300)).await?,
    };
    // Some iteration's token was rejected: an authentication failure.
    Ok(ExitCode::from(if accepted { 0 } else { 3 }))
}

/// The service's loop: one token check per iteration, `before(i)` first. Failures
/// are reported and the loop goes on, as a service would; the answer says whether
/// every check was accepted.
async fn watch(
    client: &Client,
    provider: &dyn TokenProvider,
    settings: &Settings,
    mut before: impl FnMut(u32) -> Result<(), Failure>,
) -> Result<bool, Failure> {
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
                out::line(&format!("{i}/{n}: token {mask}: {check}"))?;
                all_accepted &= check.is_accepted();
            }
            Err(Failure::Closed) => return Err(Failure::Closed),
            Err(failure) => {
                out::line(&format!("{i}/{n}: token {mask}: error: {failure}"))?;
                all_accepted = false;
            }
        }
        if i < n {
            tokio::time::sleep(settings.interval).await;
        }
    }
    Ok(all_accepted)
}

/// The offline demo: the service's loop, and the operator who rotates the token in
/// its file halfway through.
async fn offline(settings: Settings) -> Result<bool, Failure> {
    // Demo values: the embedded server knows only these.
    const FIRST: &str = "lcp_demo_first_token_00000001";
    const SECOND: &str = "lcp_demo_second_token_0000002";

    let io = |what: &str, e: std::io::Error| Failure::Local(format!("{what}: {e}"));
    let mock = offline::start(MockServer::builder().token(FIRST))?;
    let dir = tempfile::tempdir().map_err(|e| io("cannot create a temporary directory", e))?;
    let file = dir.path().join("laracopilot-token");
    write_atomically(&file, FIRST).map_err(|e| io("cannot write the token file", e))?;
    let provider = Arc::new(FileToken::new(&file)?);
    let client = connect::with_provider(Arc::clone(&provider) as Arc<dyn TokenProvider>)
        .base_url(mock.base_url())
        .build()?;
    let why = format!("no {} set, no credits spent", laracopilot::TOKEN_ENV);
    out::note(
        "Using",
        &format!("the embedded offline LaraCopilot ({why}): rotating a demo token in a file"),
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
        out::line(&format!(
            "rotated: a new token is in {}, the old one is revoked",
            file.display()
        ))
    };
    watch(&client, &*provider, &settings, rotate).await
}

/// Replaces the file in one step (write a sibling, then rename), as secret mounts do:
/// a reader never sees half a token.
fn write_atomically(path: &Path, token: &str) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{token}\n"))?;
    std::fs::rename(&partial, path)
}
