//! A blocking facade for build scripts, CLIs and CI jobs (feature `blocking`).
//!
//! [`Client`] mirrors the async [`crate::Client`] with plain function calls, and a
//! [`Generation`] is an [`Iterator`] of events. It works from any thread, `main` and
//! `build.rs` included, and inside any tokio runtime.
//!
//! ```no_run
//! use laracopilot::Event;
//!
//! # fn run() -> laracopilot::Result<()> {
//! let client = laracopilot::blocking::Client::from_env()?;
//! let mut generation = client.generate("Build a task management app").send()?;
//! for event in &mut generation {
//!     match event? {
//!         Event::ContainerProgress(p) => println!("{} ({:?}%)", p.message, p.percentage),
//!         Event::FileCreated(f) => println!("file {:?}", f.path),
//!         Event::StreamEnd(end) => println!("ready at {:?}", end.app_url),
//!         _ => {}
//!     }
//! }
//! if let Some(id) = generation.project_id() {
//!     let outcome = client.follow_up(id, "Add a dark mode").send()?.finish()?;
//!     println!("{} files changed", outcome.files.len());
//!     println!("status {:?}", client.project(id)?.project_status);
//! }
//! # Ok(()) }
//! ```
//!
//! # How it works, and the one rule
//!
//! Each [`Client`] owns one thread running a small tokio runtime, shared by its
//! clones and its generations; the HTTP connections live there between calls (the
//! model of `reqwest::blocking`). Every call is sent to that thread as a task, and
//! the caller waits for its answer:
//!
//! - **outside any tokio runtime** (a plain thread, `main`, `build.rs`): it waits;
//! - **on a multi-thread tokio runtime** (a `#[tokio::main]` function, a task,
//!   `spawn_blocking`): it waits inside `tokio::task::block_in_place`, so the
//!   runtime hands its other tasks to its other workers meanwhile;
//! - **on a current-thread tokio runtime** (a plain `#[tokio::test]`): it waits,
//!   blocking that runtime's only thread; the call itself runs on the client's
//!   thread, so it completes, whatever else lives on the caller's runtime.
//!
//! The one case no design can serve: a server the call talks to that runs as a
//! task of the caller's own current-thread runtime (a test server spawned with
//! `tokio::spawn` in a plain `#[tokio::test]`): the caller's thread waits for the
//! call, and the server cannot answer until that thread is free. Run such a server
//! on its own thread (as `laracopilot-mock` and `wiremock` do), use a multi-thread
//! runtime, or use the async client there. Calling a blocking client from inside
//! one of its own [`TokenProvider`](crate::tokens::TokenProvider)s waits for itself
//! likewise.
//!
//! Events already received are handed out by the iterator without a round trip to
//! the runtime thread; `on_event` callbacks run on the caller's thread.
//!
//! Dropping the last clone of a client, and its last generation, stops its thread:
//! outside a runtime, after waiting for it to exit; inside one, in the background.

use std::fmt;
use std::iter::FusedIterator;
use std::sync::Arc;
use std::time::Duration;

mod runtime;

use runtime::Runtime;

use crate::client::CallOptions;
use crate::generation::{Broken, Tally};
use crate::journal::Entry;
use crate::tokens::TokenCheck;
#[cfg(doc)]
use crate::Error;
use crate::{
    ClientBuilder, Event, Outcome, Progress, Project, ProjectId, Result, Stats, SubscriptionPlan,
    WaitOptions,
};

/// A blocking client of the LaraCopilot Agent API.
///
/// Cheap to clone (clones share one runtime thread and one connection pool) and
/// `Send + Sync`. Its `Debug` output is the async client's: never the token.
///
/// ```no_run
/// # fn run() -> laracopilot::Result<()> {
/// use laracopilot::blocking::Client;
///
/// let client = Client::from_env()?;
/// let outcome = client.generate("Build a task management app").send()?.finish()?;
/// println!("{:?} at {:?}", outcome.project_id(), outcome.app_url);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    // Declared before `runtime`: dropped first, while the runtime still runs.
    inner: crate::Client,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl Client {
    /// A builder for a blocking client: the settings of [`crate::ClientBuilder`],
    /// whose [`build`](crate::ClientBuilder::build) here makes a blocking client.
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// use std::time::Duration;
    ///
    /// let client = laracopilot::blocking::Client::builder()
    ///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
    ///     .idle_timeout(Duration::from_secs(120))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> ClientBuilder<Client> {
        ClientBuilder::default()
    }

    /// A client configured from the environment, as [`crate::Client::from_env`]:
    /// `LARACOPILOT_API_TOKEN`, and `LARACOPILOT_BASE_URL` when set.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the token variable is missing or invalid, or the base URL
    /// is invalid; [`Error::Runtime`] when the runtime thread cannot start.
    pub fn from_env() -> Result<Self> {
        Client::builder().from_env().build()
    }

    /// A blocking client sending its requests through `client` (same settings, token
    /// provider, spend guards and connection pool). Connections that `client` opened
    /// on another runtime are not reused once that runtime stops.
    ///
    /// # Errors
    ///
    /// [`Error::Runtime`] when the runtime thread cannot start.
    pub fn from_async(client: crate::Client) -> Result<Self> {
        Ok(Client {
            inner: client,
            runtime: Arc::new(Runtime::new()?),
        })
    }

    /// A generate call, as [`crate::Client::generate`]: set its options, then
    /// [`send`](GenerateRequest::send) it.
    pub fn generate(&self, prompt: impl Into<String>) -> GenerateRequest<'_> {
        GenerateRequest {
            inner: self.inner.generate(prompt),
            client: self,
        }
    }

    /// A follow-up on an existing project, as [`crate::Client::follow_up`]: set its
    /// options, then [`send`](GenerateRequest::send) it.
    pub fn follow_up(
        &self,
        project_id: impl Into<ProjectId>,
        prompt: impl Into<String>,
    ) -> GenerateRequest<'_> {
        GenerateRequest {
            inner: self.inner.follow_up(project_id, prompt),
            client: self,
        }
    }

    /// Runs `call` with a clone of the async client on the runtime thread.
    fn call<T, F>(&self, call: impl FnOnce(crate::Client) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.runtime.run(call(self.inner.clone()))?
    }

    /// Sends a request to learn the current state of a project, as
    /// [`crate::Client::project`]; safe to poll.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::project`].
    pub fn project(&self, project_id: impl Into<ProjectId>) -> Result<Project> {
        let project_id: ProjectId = project_id.into();
        self.call(|client| async move { client.project(project_id).await })
    }

    /// LaraCopilot's subscription plans, as [`crate::Client::subscription_plans`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::subscription_plans`].
    pub fn subscription_plans(&self) -> Result<Vec<SubscriptionPlan>> {
        self.call(|client| async move { client.subscription_plans().await })
    }

    /// Polls the project's status until it settles or the options' timeout passes,
    /// as [`crate::Client::wait_for_project`].
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::blocking::Client::from_env()?;
    /// let project = client.wait_for_project("abc123", laracopilot::WaitOptions::default())?;
    /// println!("{:?}", project.project_status);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`crate::Client::wait_for_project`].
    pub fn wait_for_project(
        &self,
        project_id: impl Into<ProjectId>,
        options: WaitOptions,
    ) -> Result<Project> {
        let project_id: ProjectId = project_id.into();
        self.call(|client| async move { client.wait_for_project(project_id, options).await })
    }

    /// Tells whether the server accepts the client's token, without spending
    /// credits, as [`crate::Client::verify_token`]: fail early and clearly in a build
    /// or CI job.
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::blocking::Client::from_env()?;
    /// let check = client.verify_token()?;
    /// if !check.is_accepted() {
    ///     eprintln!("{check}");
    ///     std::process::exit(2);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`crate::Client::verify_token`].
    pub fn verify_token(&self) -> Result<TokenCheck> {
        self.call(|client| async move { client.verify_token().await })
    }

    /// Drives `generation` to its end; if the stream breaks once the project id is
    /// known, polls the project instead of failing, as
    /// [`crate::Client::finish_or_recover`].
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::blocking::Client::from_env()?;
    /// let generation = client.generate("Build a task management app").send()?;
    /// let outcome = client.finish_or_recover(generation, laracopilot::WaitOptions::default())?;
    /// println!("{:?}", outcome.app_url);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`crate::Client::finish_or_recover`].
    pub fn finish_or_recover(
        &self,
        generation: Generation,
        options: WaitOptions,
    ) -> Result<Outcome> {
        self.finish_or_recover_with(generation, options, |_| {})
    }

    /// Like [`finish_or_recover`](Client::finish_or_recover), calling `on_event` with
    /// every event on the way (on the caller's thread).
    ///
    /// # Errors
    ///
    /// As [`crate::Client::finish_or_recover`].
    pub fn finish_or_recover_with(
        &self,
        generation: Generation,
        options: WaitOptions,
        on_event: impl FnMut(&Event),
    ) -> Result<Outcome> {
        match generation.drive(on_event)? {
            Ok(outcome) => Ok(outcome),
            Err(broken) => self.call(|client| async move { client.recover(broken, options).await }),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.base_url()
    }

    /// Closes the credits breaker at once, as
    /// [`crate::Client::reset_credits_breaker`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::reset_credits_breaker`].
    pub fn reset_credits_breaker(&self) -> Result<()> {
        self.call(|client| async move { client.reset_credits_breaker().await })
    }

    /// The journal's unfinished entries, as [`crate::Client::unfinished`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::unfinished`].
    pub fn unfinished(&self) -> Result<Vec<Entry>> {
        self.call(|client| async move { client.unfinished().await })
    }

    /// Settles one unfinished entry, as [`crate::Client::resume`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::resume`].
    pub fn resume(&self, entry: &Entry, options: WaitOptions) -> Result<Outcome> {
        let entry = entry.clone();
        self.call(|client| async move { client.resume(&entry, options).await })
    }

    /// Settles one unfinished entry once `report` reported its outcome, as
    /// [`crate::Client::resume_reported`] (`report` runs on the client's runtime
    /// thread).
    ///
    /// # Errors
    ///
    /// As [`crate::Client::resume_reported`].
    pub fn resume_reported(
        &self,
        entry: &Entry,
        options: WaitOptions,
        report: impl FnOnce(&Result<Outcome>) -> bool + Send + 'static,
    ) -> Result<Outcome> {
        let entry = entry.clone();
        self.call(|client| async move { client.resume_reported(&entry, options, report).await })
    }

    /// Deletes the journal's entries settled more than `older_than` ago, as
    /// [`crate::Client::prune_journal`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::prune_journal`].
    pub fn prune_journal(&self, older_than: Duration) -> Result<u64> {
        self.call(|client| async move { client.prune_journal(older_than).await })
    }

    /// Waits until every write this client handed to its journal is durable, as
    /// [`crate::Client::flush_journal`]: call it before the program exits.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::flush_journal`].
    pub fn flush_journal(&self) -> Result<()> {
        self.call(|client| async move { client.flush_journal().await })
    }

    fn wrap(&self, generation: crate::Generation) -> Generation {
        Generation {
            inner: Some(generation),
            runtime: Arc::clone(&self.runtime),
        }
    }
}

/// A generate or follow-up call of a blocking [`Client`], with its per-call options
/// (as [`crate::GenerateRequest`]); [`send`](GenerateRequest::send) sends it.
///
/// ```no_run
/// # fn run() -> laracopilot::Result<()> {
/// let client = laracopilot::blocking::Client::from_env()?;
/// let outcome = client
///     .generate("Build a task management app")
///     .label("job", "nightly-build")
///     .idempotency_key("nightly-build-2026-12-06")
///     .send()?
///     .finish()?;
/// # drop(outcome);
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until it is sent"]
pub struct GenerateRequest<'a> {
    inner: crate::GenerateRequest<'a>,
    client: &'a Client,
}

impl fmt::Debug for GenerateRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl GenerateRequest<'_> {
    /// A total deadline for this call's stream, as
    /// [`crate::GenerateRequest::deadline`].
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.inner = self.inner.deadline(deadline);
        self
    }

    /// A label of this call, as [`crate::GenerateRequest::label`].
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner = self.inner.label(key, value);
        self
    }

    /// Makes the call happen at most once per key and scope, as
    /// [`crate::GenerateRequest::idempotency_key`].
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.inner = self.inner.idempotency_key(key);
        self
    }

    /// Sends the call, and hands back its stream once the server accepted it.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::generate`] and [`crate::Client::follow_up`];
    /// [`Error::Runtime`] when the client's runtime thread is gone.
    pub fn send(self) -> Result<Generation> {
        let (inner, project_id, prompt, options): (_, _, _, CallOptions) = self.inner.into_parts();
        let client = inner.clone();
        let generation = self
            .client
            .runtime
            .run(async move { client.start_generation(project_id, prompt, options).await })??;
        Ok(self.client.wrap(generation))
    }
}

/// The events of one generation, as a blocking [`Iterator`] of `Result<Event>`.
///
/// It ends (yields `None`) after its terminal item, exactly as the async
/// [`crate::Generation`]: [`Event::StreamEnd`] on success, or an error
/// ([`Error::CreditsExhausted`], [`Error::Incomplete`], a timeout, ...). Dropping it
/// closes the connection.
///
/// ```no_run
/// # fn run() -> laracopilot::Result<()> {
/// let client = laracopilot::blocking::Client::from_env()?;
/// let generation = client.generate("Build a task management app").send()?;
/// let outcome = generation.finish()?;
/// println!("{} files, ready at {:?}", outcome.files.len(), outcome.app_url);
/// # Ok(()) }
/// ```
#[must_use = "a generation does nothing unless iterated; dropping it closes the connection while the server may keep working and spending credits"]
pub struct Generation {
    // `None` only after the runtime thread failed mid-call.
    // Declared before `runtime`: dropped first, while the runtime still runs.
    inner: Option<crate::Generation>,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Some(inner) => fmt::Debug::fmt(inner, f),
            None => f.write_str("Generation { closed }"),
        }
    }
}

impl Generation {
    /// The project's id, once known: from the call for a follow-up, from
    /// `project_created` (or `stream_end`) for a new project.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.inner.as_ref().and_then(|inner| inner.project_id())
    }

    /// The stream's record, updated with every item the iterator yields (see
    /// [`crate::Generation::progress`]). Should the runtime thread fail mid-call, an
    /// empty [`Progress`] from then on.
    pub fn progress(&self) -> &Progress {
        static CLOSED: Progress = Progress::new();
        self.inner
            .as_ref()
            .map_or(&CLOSED, |inner| inner.progress())
    }

    /// Liveness statistics so far.
    pub fn stats(&self) -> Stats {
        self.progress().stats()
    }

    /// Whether this is the recorded outcome of an earlier call with the same
    /// idempotency key (see [`crate::Generation::is_replay`]).
    pub fn is_replay(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(crate::Generation::is_replay)
    }

    /// Drives the generation to its end and sums it up, as
    /// [`crate::Generation::finish`].
    ///
    /// # Errors
    ///
    /// The error that ends the stream: [`Error::CreditsExhausted`],
    /// [`Error::Incomplete`], [`Error::Timeout`], [`Error::Transport`] or
    /// [`Error::EventTooLarge`], each with the project id when it was known.
    pub fn finish(self) -> Result<Outcome> {
        self.finish_with(|_| {})
    }

    /// Like [`finish`](Generation::finish), calling `on_event` with every event on the
    /// way (on the caller's thread), as [`crate::Generation::finish_with`].
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::blocking::Client::from_env()?;
    /// let mut count = 0;
    /// let outcome = client
    ///     .generate("Build a task management app")
    ///     .send()?
    ///     .finish_with(|_event| count += 1)?;
    /// println!("{count} events, {} files", outcome.files.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`finish`](Generation::finish).
    pub fn finish_with(self, on_event: impl FnMut(&Event)) -> Result<Outcome> {
        match self.drive(on_event)? {
            Ok(outcome) => Ok(outcome),
            Err(broken) => Err(broken.error),
        }
    }

    /// Drives the stream to its end on the caller's thread, a round trip to the
    /// runtime thread only when it needs I/O; `Err` when the runtime thread is gone.
    fn drive(
        mut self,
        mut on_event: impl FnMut(&Event),
    ) -> Result<std::result::Result<Outcome, Broken>> {
        let mut tally = Tally::default();
        loop {
            match self.next() {
                Some(Ok(event)) => {
                    on_event(&event);
                    if tally.event(event) {
                        let inner = self.take_inner()?;
                        return Ok(Ok(tally.outcome(inner.progress().clone())));
                    }
                }
                Some(Err(error)) => {
                    return match self.inner.take() {
                        Some(inner) => Ok(Err(inner.broken(error, tally))),
                        // The runtime thread failed: that is the error.
                        None => Err(error),
                    };
                }
                None => return Ok(Err(self.take_inner()?.ended_early(tally))),
            }
        }
    }

    fn take_inner(&mut self) -> Result<crate::Generation> {
        self.inner.take().ok_or_else(|| {
            crate::Error::runtime("the blocking client's runtime thread stopped", None)
        })
    }
}

impl Iterator for Generation {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        let inner = self.inner.as_mut()?;
        // An event already received needs no I/O, and no round trip.
        if let Some(item) = inner.next_buffered() {
            return item;
        }
        let mut inner = self.inner.take()?;
        let project_id = inner.project_id().cloned();
        match self.runtime.run(async move {
            let item = inner.next().await;
            (inner, item)
        }) {
            Ok((inner, item)) => {
                self.inner = Some(inner);
                item
            }
            // The stream cannot be driven from here: end it with the reason.
            Err(e) => Some(Err(e.with_project_id(project_id.as_ref()))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        use futures_core::Stream;
        self.inner
            .as_ref()
            .map_or((0, Some(0)), |inner| inner.size_hint())
    }
}

// After its terminal item, the async generation yields `None` forever, and so does
// this one once `inner` is gone.
impl FusedIterator for Generation {}

impl ClientBuilder<Client> {
    /// Checks the settings and builds a blocking client (feature `blocking`).
    ///
    /// # Errors
    ///
    /// The errors of [`ClientBuilder::build`](crate::ClientBuilder::build);
    /// [`Error::Runtime`] when the runtime thread cannot start.
    pub fn build(self) -> Result<Client> {
        Client::from_async(self.into_async().build()?)
    }
}

impl crate::ClientBuilder {
    /// Checks the settings and builds a blocking client (feature `blocking`): the
    /// same as [`blocking::Client::builder`](Client::builder)`()...build()`.
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// use std::time::Duration;
    ///
    /// let client = laracopilot::Client::builder()
    ///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
    ///     .idle_timeout(Duration::from_secs(120))
    ///     .build_blocking()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`ClientBuilder::build`](crate::ClientBuilder::build);
    /// [`Error::Runtime`] when the runtime thread cannot start.
    pub fn build_blocking(self) -> Result<Client> {
        Client::from_async(self.build()?)
    }
}

#[allow(dead_code, reason = "compile-time assertion only")]
fn assert_thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send::<Generation>();
}
