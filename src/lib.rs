//! The Rust SDK for the [LaraCopilot](https://laracopilot.com) Agent API: turn a
//! natural-language prompt into a running Laravel application, follow its progress
//! as typed events, follow up on the project and poll its status.
//!
//! # Quick start
//!
//! ```no_run
//! use laracopilot::{Client, Event};
//!
//! # async fn run() -> laracopilot::Result<()> {
//! // LARACOPILOT_API_TOKEN (and optionally LARACOPILOT_BASE_URL)
//! let client = Client::from_env()?;
//!
//! let mut generation = client.generate("Build a task management app").await?;
//! while let Some(event) = generation.next().await {
//!     match event? {
//!         Event::ProjectCreated(e) => println!("project {}", e.project_id),
//!         Event::ContainerProgress(e) => println!("{} ({:?}%)", e.message, e.percentage),
//!         Event::FileCreated(e) => println!("file {:?}", e.path),
//!         Event::StreamEnd(e) => println!("ready at {:?}", e.app_url),
//!         _ => {}
//!     }
//! }
//!
//! // Follow up on the project, and poll its status.
//! if let Some(id) = generation.project_id().cloned() {
//!     let outcome = client.follow_up(&id, "Add a dark mode").await?.finish().await?;
//!     let project = client.project(&id).await?;
//!     println!("{} files changed; status {:?}", outcome.files.len(), project.project_status);
//! }
//! # Ok(()) }
//! ```
//!
//! A call is a request value that runs when awaited, and takes per-call options
//! first: `client.generate(prompt).deadline(d).label("tenant", "a").idempotency_key(k).await?`
//! ([`GenerateRequest`]).
//!
//! # How a generation ends
//!
//! A [`Generation`] is a `Stream<Item = Result<Event>>`. It ends after its terminal
//! item: [`Event::StreamEnd`] on success; `Err(`[`Error::CreditsExhausted`]`)` when
//! the team's credits ran out; `Err(`[`Error::Incomplete`]`)` when the connection
//! ended without either (the project id seen so far travels with every error, see
//! [`Error::project_id`]). An `Err` item is always the last one: a payload the SDK
//! cannot make sense of is [`Event::Malformed`], so `match event? { .. }` and
//! [`Generation::finish`] are always right. Request-level failures (401, 422, 429,
//! ...) come from the call itself, before any stream exists. Dropping a generation
//! closes its stream, while the server goes on generating and spending. Its one
//! record is its [`Progress`] (phase, counts, ids, clock, [`Stats`]); the
//! [`Outcome`] of [`Generation::finish`] carries it, and both serialize with serde.
//!
//! # Errors
//!
//! [`Error`] has one variant per situation a caller handles differently:
//! `Unauthorized` and `TokenExpired` (401), `Validation` (422, with the field map),
//! `NotFound` (the API's own 404), `RateLimited` (429 with `Retry-After`),
//! `CreditsExhausted`, `BudgetExhausted`, `Incomplete`, `GenerationFailed`,
//! `Timeout`, `Api` (any other answer), `Transport`, `Decode`, `EventTooLarge`,
//! `TokenProvider`, `Journal`, `OutcomeUnknown`, `EntryTaken`, `Runtime` and
//! `Config`. Its `Display` names what happened, with the server's words and what to
//! do; causes are its `source()` chain. The facts every error of a call shares are
//! read through methods ([`Error::project_id`], [`Error::attempts`],
//! [`Error::journal_id`]), and two more state facts, not advice:
//! [`Error::is_transient`] (the same call may succeed later) and
//! [`Error::may_have_started_work`] (a resend could create a second project or
//! spend credits twice). No error, log or `Debug` output ever contains the token.
//!
//! # Tasks
//!
//! - **Long-running services**: share one [`Client`]; rotate tokens without a
//!   restart through a provider from [`tokens`]; retries never resend a generation
//!   that may have started ([`RetryPolicy`]); a broken stream turns into polling with
//!   [`Client::finish_or_recover`]; [`Generation::progress`] says how far a generation
//!   is ([`Progress`]: phase, files, stalls, [`Stats`]).
//! - **Spend safety, on one host or a fleet**: [`ClientBuilder::offline`] for test
//!   suites; a [`journal`] on SQLite (feature `sqlite`) or PostgreSQL (feature
//!   `postgres`) that survives a crash ([`Client::unfinished`], [`Client::resume`]),
//!   and holds the spend guards for every host that shares its database and
//!   [scope](ClientBuilder::scope): [`ClientBuilder::max_concurrent_generations`],
//!   the credits breaker ([`ClientBuilder::credits_cooldown`]), budgets
//!   ([`ClientBuilder::budget`]) and idempotent calls
//!   ([`GenerateRequest::idempotency_key`]).
//! - **Build tools and CI**: [`blocking`] (feature `blocking`) offers the same calls
//!   without async, from a plain thread or from inside a tokio runtime; the
//!   `laracopilot` command-line tool (crate `laracopilot-cli`) runs them from a
//!   shell, with JSON output and exit codes.
//! - **Tests that spend no credits**: the
//!   [`laracopilot-mock`](https://docs.rs/laracopilot-mock) crate (a
//!   `[dev-dependencies]` entry) serves an offline LaraCopilot on 127.0.0.1 that
//!   your tests can script, faults included, and replays a real session recorded
//!   once into a [`cassette`] (feature `record`); unit-test an event handler with
//!   [`Event::from_json`].
//!
//! # Cargo features
//!
//! - `rustls` (default): TLS through rustls.
//! - `native-tls`: TLS through the platform's library instead (OpenSSL on Linux).
//!   Without either, an `https` base URL is refused at [`ClientBuilder::build`].
//! - `blocking`: the blocking facade, [`blocking`].
//! - `record`: [`ClientBuilder::record_to`] tapes a client's exchanges into a
//!   [`cassette`], the token masked, to replay them offline. It adds no server
//!   dependency, so a production-like run can record.
//! - `sqlite`: `journal::SqliteJournal`, the journal in one SQLite file (SQLite
//!   is compiled in: a C compiler is all it needs).
//! - `postgres`: `journal::PostgresJournal`, the journal in a PostgreSQL database
//!   shared by a fleet (TLS through rustls with the default `rustls` feature; no
//!   OpenSSL).
//! - `full`: every feature above but `native-tls`.
//!
//! Spans and events go through `tracing` in every build (a span per call: method,
//! path, status, attempts, project id, labels, time to first event, event count; a
//! warning per retry and per failed journal write); never a header value or the
//! token.
//!
//! # Stability
//!
//! The crate follows semantic versioning. What may grow does so without breaking
//! you: `Error` and every one of its variants, `Event` and its payloads,
//! `TimeoutKind`, `ProjectState`, `Phase`, `BudgetWindow` and the journal's entries
//! are `#[non_exhaustive]`, so new variants and new fields are minor changes; match
//! them with `_` and `..`. An [`Error`] cannot be built outside this crate. Structs
//! with public fields (`Outcome`, `Stats`, `Project`, `SubscriptionPlan`) are
//! `#[non_exhaustive]` too: read their fields, do not build them. Requests are
//! values with builder methods ([`GenerateRequest`]), so a call can gain options.
//! The [`journal::Journal`] trait is sealed.
//!
//! [`ClientBuilder::http_client`] takes a [`reqwest::Client`], re-exported as
//! [`laracopilot::reqwest`](crate::reqwest): a major version bump of reqwest is a
//! major version bump of this crate. No other third-party type is part of the API.
//!
//! # Minimum supported Rust version
//!
//! Rust 1.88: the highest `rust-version` in the resolved dependency tree (the `icu_*`
//! crates behind `url`). Raising it is a minor version bump, never a patch release.
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, from the top (see ARCHITECTURE.md): a module uses only those below it.
// Facade.
#[cfg(feature = "blocking")]
pub mod blocking;
mod client;
pub mod journal;
mod spend;
// Stream.
mod generation;
mod progress;
mod reader;
mod sse;
// Transport.
mod answer;
mod budget;
mod http;
pub mod tokens;
// Model and base.
#[cfg(feature = "record")]
pub mod cassette;
mod error;
mod event;
mod id;
mod lenient;
mod plans;
mod project;
mod random;
mod redact;
mod retry;
mod trace;

pub use budget::{Budget, BudgetWindow, ParseBudgetError};
pub use client::{
    Client, ClientBuilder, GenerateRequest, BASE_URL_ENV, DEFAULT_BASE_URL, OFFLINE_ENV, TOKEN_ENV,
};
pub use error::{BoxError, Error, ErrorContext, TimeoutKind};
pub use event::{
    ContainerProgress, ContainerReady, Event, FileCreated, MalformedEvent, ProjectCreated,
    StreamEnd, ToolProgress, UnknownEvent,
};
pub use generation::{Generation, Outcome};
pub use id::{LocalId, ProjectId};
pub use plans::SubscriptionPlan;
pub use progress::{Phase, Progress, Stats};
pub use project::{Project, ProjectState, WaitOptions};
pub use retry::RetryPolicy;
pub use tokens::token::Token;

/// The HTTP client crate this crate uses, for [`ClientBuilder::http_client`]: a
/// major version bump of reqwest here is a major version bump of this crate.
pub use reqwest;

#[cfg(feature = "__internal")]
#[doc(hidden)]
pub mod __private {
    //! Internals exposed for the crate's own benchmarks, fuzz targets and tests.
    //! Not part of the public API: anything here may change in any release.
    pub use crate::reader::EventReader;
    pub use crate::sse::{Decoder, Frame, TooLarge};
}

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// What the API's shape refuses outside this crate, so that it can grow without
/// breaking anyone. Each block must fail to compile, with the error code named;
/// the last one compiles, the same match written the way that keeps working.
///
/// An [`Error`] cannot be built outside the crate:
///
/// ```compile_fail,E0639
/// let _ = laracopilot::Error::Config { message: String::new() };
/// ```
///
/// A variant's fields cannot be matched without `..` (a field may be added):
///
/// ```compile_fail,E0638
/// fn message(error: &laracopilot::Error) -> Option<&str> {
///     match error {
///         laracopilot::Error::Config { message } => Some(message),
///         _ => None,
///     }
/// }
/// ```
///
/// A match on `Error` or `Event` needs a `_` arm (a variant may be added):
///
/// ```compile_fail,E0004
/// fn transient(error: &laracopilot::Error) -> bool {
///     match error {
///         laracopilot::Error::Config { .. } => false,
///         laracopilot::Error::Timeout { .. } => true,
///     }
/// }
/// ```
///
/// ```compile_fail,E0004
/// fn is_end(event: &laracopilot::Event) -> bool {
///     match event {
///         laracopilot::Event::StreamEnd(_) => true,
///         laracopilot::Event::ToolProgress(_) => false,
///     }
/// }
/// ```
///
/// A struct with public fields cannot be built with a literal:
///
/// ```compile_fail,E0639
/// let _ = laracopilot::Stats { events: 0, ..Default::default() };
/// ```
///
/// ```compile_fail,E0639
/// fn forge(progress: laracopilot::Progress) -> laracopilot::Outcome {
///     laracopilot::Outcome { app_url: None, files: Vec::new(), progress, recovered: None }
/// }
/// ```
///
/// A request that is never awaited (or sent) is a warning, an error here:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// fn forget(client: &laracopilot::Client) {
///     client.generate("Build a task management app").label("tenant", "a");
/// }
/// ```
///
/// A `Generation` left unused is a warning (`unused_must_use`), an error here:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// async fn start(client: &laracopilot::Client) -> laracopilot::Result<()> {
///     client.generate("Build a task management app").await?;
///     Ok(())
/// }
/// ```
///
/// The same code written to last compiles (and shows that every name above exists,
/// so each block above fails for the reason it names):
///
/// ```
/// #![deny(unused_must_use)]
/// fn message(error: &laracopilot::Error) -> Option<&str> {
///     match error {
///         laracopilot::Error::Config { message, .. } => Some(message),
///         _ => None,
///     }
/// }
/// fn transient(error: &laracopilot::Error) -> bool {
///     match error {
///         laracopilot::Error::Config { .. } => false,
///         laracopilot::Error::Timeout { .. } => true,
///         _ => error.is_transient(),
///     }
/// }
/// fn is_end(event: &laracopilot::Event) -> bool {
///     match event {
///         laracopilot::Event::StreamEnd(_) => true,
///         laracopilot::Event::ToolProgress(_) => false,
///         _ => false,
///     }
/// }
/// fn stats() -> laracopilot::Stats {
///     laracopilot::Stats::default()
/// }
/// async fn start(client: &laracopilot::Client) -> laracopilot::Result<()> {
///     let outcome = client.generate("Build a task management app").await?.finish().await?;
///     assert!(outcome.stats().events >= stats().events);
///     Ok(())
/// }
/// async fn grown(client: &laracopilot::Client) -> laracopilot::Result<laracopilot::Outcome> {
///     let d = std::time::Duration::from_secs(1800);
///     let generation = client
///         .generate("Build a task management app")
///         .deadline(d)
///         .label("tenant", "a")
///         .await?;
///     let request = client.follow_up("abc123", "Add a dark mode").idempotency_key("job-1");
///     let _later: laracopilot::GenerateRequest<'_> = request;
///     generation.finish().await
/// }
/// #[cfg(feature = "blocking")]
/// fn blocking(client: &laracopilot::blocking::Client) -> laracopilot::Result<laracopilot::Outcome> {
///     client
///         .generate("Build a task management app")
///         .deadline(std::time::Duration::from_secs(1800))
///         .label("tenant", "a")
///         .send()?
///         .finish()
/// }
/// #[cfg(feature = "blocking")]
/// fn blocking_builder() -> laracopilot::Result<laracopilot::blocking::Client> {
///     laracopilot::blocking::Client::builder()
///         .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///         .build()
/// }
/// ```
#[cfg(doctest)]
pub struct ApiShape;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[allow(dead_code, reason = "compile-time assertion only")]
fn assert_thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send_sync::<Error>();
    send_sync::<Token>();
    send::<Generation>();
    send::<GenerateRequest<'static>>();
    #[cfg(feature = "blocking")]
    {
        send_sync::<blocking::Client>();
        send::<blocking::Generation>();
    }
}
