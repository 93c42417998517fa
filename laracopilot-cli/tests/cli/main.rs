//! The `laracopilot` binary, run as a user runs it: every subcommand, its `--json`
//! contract and exit codes, what reaches the terminal, a closed stdout, the offline
//! LaraCopilot, and the token never printed. One test binary; one module per concern.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod common;
mod pg;
mod seed;

mod cassettes;
mod doctor;
mod examples;
mod guards;
mod journals;
mod leak;
mod offline;
mod pipes;
mod plans;
mod resume;
mod terminal;
mod tokens;
