//! The subcommands, one module each.

mod cache;
pub mod doctor;
pub mod follow_up;
pub mod generate;
pub mod mock_server;
mod mock_spec;
pub mod plans;
pub mod resume;
pub mod status;
mod stream;
pub mod watch_token;
