//! The SDK's integration tests, in one binary (one link of the crate and its
//! dependencies instead of one per file): one module per public concept, the shared
//! helpers in [`common`]. The crash tests, which kill child processes of their own,
//! are a binary apart (`tests/crash/`); the offline LaraCopilot's own tests live in
//! the `laracopilot-mock` crate.
//!
//! Run one concept with its module path: `cargo test -p laracopilot --test it retry::`.
//!
//! A test that must be alone in its process (it changes the environment, say) runs
//! this binary again as a child, limited to that one test (see
//! [`common::alone`]).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod common;

mod answers;
#[cfg(feature = "blocking")]
mod blocking;
mod bounded_reads;
mod cassette;
mod durations;
mod errors;
mod fault_matrix;
mod generate;
mod ids;
mod journal;
mod leak;
mod load;
mod no_hang;
mod plans;
mod progress;
mod proxy_env;
mod recovery;
mod requests;
mod retry;
mod spend;
#[cfg(feature = "__internal")]
mod sse;
mod stream_items;
mod tokens;
mod tracing;
