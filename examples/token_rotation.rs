//! A long-running service whose API token is rotated in a file, the way a mounted
//! secret is rotated: the client picks up the new token on its next call, without a
//! restart, and no call fails.
//!
//! ```text
//! cargo run --example token_rotation
//! ```
//!
//! It plays both sides on the offline LaraCopilot of `laracopilot-mock`: the
//! service, which checks its token every few hundred milliseconds
//! (`Client::verify_token` spends no credits), and the operator, who halfway through
//! creates a new token, writes it into the file, and revokes the old one. Against the
//! real API, build the client the same way with `FileToken::new(path)`.

use std::sync::Arc;
use std::time::Duration;

use laracopilot::tokens::{FileToken, TokenProvider};
use laracopilot::Client;
use laracopilot_mock::{MockServer, TokenState};

const FIRST: &str = "lcp_demo_first_token_00000001";
const SECOND: &str = "lcp_demo_second_token_0000002";

#[tokio::main]
async fn main() -> Result<(), laracopilot::BoxError> {
    let server = MockServer::builder().token(FIRST).start()?;
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("laracopilot-token");
    replace(&secret, FIRST)?;

    // The service: a provider that reads the file again whenever it changes.
    let provider = Arc::new(FileToken::new(&secret)?);
    let client = Client::builder()
        .token_provider(Arc::clone(&provider))
        .base_url(server.base_url())
        .build()?;

    for i in 1..=6 {
        if i == 4 {
            // The operator: a new token in the dashboard, the secret updated, the old
            // token revoked (revocation is immediate).
            server.add_token(SECOND, TokenState::Valid);
            replace(&secret, SECOND)?;
            server.revoke(FIRST);
            println!("rotated: the file holds a new token; the old one is revoked");
        }
        let check = client.verify_token().await?;
        let mask = provider.token().await?.masked();
        println!("check {i}: token {mask}: {check}");
        assert!(check.is_accepted(), "a rotation never fails a call");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// Replaces the file in one step (write a sibling, then rename), as secret mounts
/// do: a reader never sees half a token.
fn replace(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{token}\n"))?;
    std::fs::rename(&partial, path)
}
