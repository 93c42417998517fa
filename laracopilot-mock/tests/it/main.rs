//! The offline LaraCopilot's own tests, in one binary: the server driven through the
//! SDK and through raw sockets, one module per concern: routes and validation,
//! tokens, scripts and credits, faults, canned replies, recorded requests and caps,
//! read timeouts, the server's lifecycle on every kind of test and runtime, replaying
//! a cassette (`replay`), the fault variants of a tape (`tapes`), and what the server
//! counts on the wire (`traffic`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod common;

mod client_drop;
mod faults;
mod lifecycle;
mod recording;
mod replay;
mod replies;
mod routes;
mod scripts;
mod tapes;
mod timeouts;
mod tokens;
mod traffic;

#[allow(dead_code, reason = "compile-time assertion only")]
fn mock_types_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<laracopilot_mock::MockServer>();
    send_sync::<laracopilot_mock::MockServerBuilder>();
    send_sync::<laracopilot_mock::RecordedRequest>();
    send_sync::<laracopilot_mock::MockProject>();
    send_sync::<laracopilot_mock::MockError>();
}
