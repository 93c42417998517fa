//! Token lifecycle over HTTP: rotation through each provider, one shared refresh for
//! concurrent rejections, local expiry, the expiry hook, and `verify_token`.

use crate::common;

mod check;
mod expiry;
mod providers;
mod refresh;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use laracopilot::tokens::{
    EnvToken, Expiration, FileToken, FnToken, TokenCheck, TokenFuture, TokenInfo, TokenProvider,
};
use laracopilot::{Error, Token};

const OLD: &str = "lcp_old_token_aaaaaaaaaaaa";
const NEW: &str = "lcp_new_token_bbbbbbbbbbbb";
const PROJECT: &str = "/agent/project/abc123";
const PROBE: &str = "/agent/project/laracopilot-sdk-token-probe";
const DAY: u64 = 86_400;

fn tok(value: &str) -> Token {
    Token::new(value).unwrap()
}

/// A token created `age_days` ago with `expiration`.
fn aged(value: &str, name: &str, age_days: u64, expiration: Expiration) -> Token {
    let created = SystemTime::now() - Duration::from_secs(age_days * DAY);
    tok(value).with_info(TokenInfo::new(name, created, expiration))
}

/// A server where `OLD` is revoked and `NEW` is valid, for the status call.
async fn rotated_server() -> wiremock::MockServer {
    let server = server().await;
    mount_for_token(&server, "GET", PROJECT, OLD, unauthorized()).await;
    mount_for_token(&server, "GET", PROJECT, NEW, project_json("abc123")).await;
    server
}

/// What a closure provider's closure returns.
type Provided = std::future::Ready<Result<Token, laracopilot::BoxError>>;

/// A closure provider handing out `values` in turn (the last one repeats), counting
/// its calls.
fn sequence(
    values: &'static [&'static str],
) -> (
    FnToken<impl Fn() -> Provided + Send + Sync + 'static>,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = FnToken::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Token::new(values[n.min(values.len() - 1)]).map_err(Into::into))
    });
    (provider, calls)
}
