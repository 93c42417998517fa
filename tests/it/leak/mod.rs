//! Proof that the API token never leaks: every public path is driven with a
//! distinctive token, and everything it prints (`Debug`, `Display`, error chains,
//! `tracing` output, the examples' stdout and stderr) is searched for it.
//!
//! The search looks for the whole token and for any piece of it of
//! [`PIECE`] characters, so a truncated or sliced leak is caught too; the dashboard's
//! mask (`****` and the last four characters) is allowed. The search itself is tested
//! on inputs that do leak. One file per kind of path; the search and the log
//! capture live here. `redaction` checks the masking itself: a server that echoes
//! the token in any spelling, and invisible characters refused in a token.

use crate::common;

mod errors;
mod lifecycle;
mod redaction;
mod spellings;
mod streams;
mod tokens;
mod travel;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use laracopilot::tokens::{
    EnvToken, Expiration, FileToken, FnToken, StaticToken, TokenCheck, TokenInfo, TokenProvider,
    TokenStatus,
};
use laracopilot::{Client, Error, RetryPolicy, Token};
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

/// A second distinctive token, for rotations.
const SECOND: &str = "lcp_live_R0TAT3D-s3cond-never-print-7a6b";
/// The shortest piece of a secret that counts as a leak (the mask shows four).
const PIECE: usize = 10;

// ---- the search ----

/// Where a secret, or a piece of one, shows up in `text`: the byte offset and the
/// length of the piece, never the text itself.
fn find_leak(text: &str) -> Option<(usize, usize)> {
    for secret in [TOKEN, SECOND] {
        for start in 0..=secret.len() - PIECE {
            if let Some(at) = text.find(&secret[start..start + PIECE]) {
                return Some((at, PIECE));
            }
        }
    }
    None
}

/// Everything a scenario printed, with a label saying where it came from.
#[derive(Default)]
struct Printed {
    texts: Vec<(String, String)>,
}

impl Printed {
    fn text(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.texts.push((label.into(), text.into()));
    }

    /// `{:?}` and `{:#?}`.
    fn debug(&mut self, label: &str, value: &impl Debug) {
        self.text(format!("{label} (Debug)"), format!("{value:?}"));
        self.text(format!("{label} (pretty Debug)"), format!("{value:#?}"));
    }

    /// `Display`, `Debug`, and the whole `source()` chain of an error.
    fn error(&mut self, label: &str, error: &(dyn std::error::Error + 'static)) {
        self.text(format!("{label} (Display)"), error.to_string());
        self.text(format!("{label} (Debug)"), format!("{error:?} {error:#?}"));
        let mut source = error.source();
        let mut depth = 1;
        while let Some(cause) = source {
            self.text(
                format!("{label} (source {depth})"),
                format!("{cause} {cause:?}"),
            );
            source = cause.source();
            depth += 1;
        }
    }

    /// A result: the value's `Debug`, or the error.
    fn result<T: Debug>(&mut self, label: &str, result: &laracopilot::Result<T>) {
        match result {
            Ok(value) => self.debug(label, value),
            Err(error) => self.error(label, error),
        }
    }

    /// A token provider's answer: the token, or its boxed error.
    fn provided(&mut self, label: &str, result: &Result<Token, laracopilot::BoxError>) {
        match result {
            Ok(token) => self.debug(label, token),
            Err(error) => self.error(label, &**error),
        }
    }

    /// The labels of the texts that leak; empty when none does.
    fn leaks(&self) -> Vec<String> {
        self.texts
            .iter()
            .filter_map(|(label, text)| {
                find_leak(text)
                    .map(|(at, len)| format!("{label}: {len} secret characters at byte {at}"))
            })
            .collect()
    }

    /// Fails naming every leaking output (without printing the secret).
    fn assert_clean(&self) {
        assert!(!self.texts.is_empty(), "nothing was checked");
        let leaks = self.leaks();
        assert!(
            leaks.is_empty(),
            "the token leaked in:\n{}",
            leaks.join("\n")
        );
    }
}

/// A type that leaks on purpose: the search must catch it.
struct LeakyDebug(&'static str);

impl Debug for LeakyDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeakyDebug {{ token: {} }}", self.0)
    }
}

#[test]
fn the_leak_check_catches_a_leaking_debug_and_partial_leaks_but_allows_the_mask() {
    let mut leaky = Printed::default();
    leaky.debug("LeakyDebug", &LeakyDebug(TOKEN));
    assert_eq!(leaky.leaks().len(), 2, "both Debug forms leak");
    let caught = std::panic::catch_unwind(|| leaky.assert_clean()).unwrap_err();
    let message = caught.downcast_ref::<String>().unwrap();
    assert!(message.contains("LeakyDebug (Debug)"), "{message}");
    assert!(
        find_leak(message).is_none(),
        "the failure itself must not leak"
    );

    // A slice from the middle, the second secret, and a secret cut in two.
    assert!(find_leak(&format!("x{}y", &TOKEN[7..7 + PIECE])).is_some());
    assert!(find_leak(&format!("Bearer {SECOND}")).is_some());
    assert!(find_leak(&format!("Config {{ message: {:?} }}", &TOKEN[..20])).is_some());

    // What may be shown: the mask, and unrelated text.
    let mut clean = Printed::default();
    clean.debug("token", &token());
    clean.text("mask", format!("{} {}", token().masked(), "lcp_live_"));
    clean.assert_clean();
}

// ---- tracing output captured into a buffer ----

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Captures every `tracing` event of this thread, at every level, until the guard
/// drops. The tests run on a `current_thread` runtime, so the client's tasks log on
/// this thread too.
fn capture_logs() -> (LogBuffer, impl Drop) {
    use tracing_subscriber::util::SubscriberInitExt;
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let guard = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();
    (buffer, guard)
}

/// A client for `server` that makes one attempt per call, so every status is seen
/// as it came (its idle timeout is never meant to fire: far above what a loaded
/// machine takes to answer).
fn one_attempt(server: &wiremock::MockServer) -> Client {
    builder(server)
        .retry_policy(RetryPolicy::none())
        .idle_timeout(Some(Duration::from_secs(5)))
        .build()
        .unwrap()
}
