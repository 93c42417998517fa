//! Helpers of the replay tests: a fresh directory for a test's tapes, and a plain
//! reqwest client that reads a replay frame by frame.

use laracopilot::reqwest;

/// A plain reqwest client (no SDK in between), for reading a replay frame by frame.
pub fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a reqwest client")
}

/// A fresh temporary directory for one test's cassettes.
pub fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}
