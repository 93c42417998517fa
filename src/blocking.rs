//! A blocking facade for build scripts, CLIs and CI jobs (feature `blocking`).
//!
//! [`Client`] mirrors the async [`crate::Client`] with plain function calls, and a
//! [`Generation`] is an [`Iterator`] of events. It works from any thread, `main` and
//! `build.rs` included, and never panics when called from inside a tokio runtime.
//!
//! ```no_run
//! use laracopilot::Event;
//!
//! # fn run() -> laracopilot::Result<()> {
//! let client = laracopilot::blocking::Client::from_env()?;
//! let mut generation = client.generate("Build a task management app")?;
//! for event in &mut generation {
//!     match event? {
//!         Event::ContainerProgress(p) => println!("{} ({:?}%)", p.message, p.percentage),
//!         Event::FileCreated(f) => println!("file {:?}", f.path),
//!         Event::StreamEnd(end) => println!("ready at {:?}", end.app_url),
//!         _ => {}
//!     }
//! }
//! if let Some(id) = generation.project_id() {
//!     let outcome = client.follow_up(id, "Add a dark mode")?.finish()?;
//!     println!("{} files changed", outcome.files.len());
//!     println!("status {:?}", client.project(id)?.project_status);
//! }
//! # Ok(()) }
//! ```
//!
//! # How it works, and what it costs
//!
//! Each [`Client`] owns a small tokio runtime with one worker thread, shared by its
//! clones and its generations; the HTTP connections live there between calls.
//!
//! - **Outside any tokio runtime** (a plain thread, `main`, `build.rs`), a call runs
//!   on the calling thread (`Runtime::block_on`): no thread hand-off.
//! - **Inside a tokio runtime** (for example called directly from a `#[tokio::main]`
//!   function), the call runs as a task on the client's own runtime and the calling
//!   thread waits for it. That wait blocks the calling worker thread for the whole
//!   call, and for each `next()` until the next event arrives: no other task can run
//!   on that thread meanwhile (on a `current_thread` runtime, no other task at all, so
//!   a server running on that same runtime would never answer). Each call, and each
//!   `next()` that has to wait for the network, also costs a hand-off to the client's
//!   thread (two task spawns and a wake-up: microseconds). Events already received
//!   are returned without any hand-off. In async code, prefer the async client.
//!
//! Dropping the last clone of a client, and its last generation, stops its runtime:
//! outside a runtime, after waiting for its thread to exit; inside a runtime, in the
//! background, without blocking or panicking.
//!
//! Do not call a blocking client from inside one of its own
//! [`TokenProvider`](crate::tokens::TokenProvider)s: its single thread would wait for
//! itself.

use std::fmt;
use std::iter::FusedIterator;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

mod runtime;

use runtime::{stopped, Runtime};

use crate::tokens::TokenCheck;
#[cfg(doc)]
use crate::Error;
use crate::{ClientBuilder, Event, Outcome, Project, ProjectId, Result, Stats, WaitOptions};

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
/// let outcome = client.generate("Build a task management app")?.finish()?;
/// println!("{:?} at {:?}", outcome.project_id, outcome.app_url);
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
    /// A client configured from the environment, as [`crate::Client::from_env`]:
    /// `LARACOPILOT_API_TOKEN`, and `LARACOPILOT_BASE_URL` when set.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the token variable is missing or invalid, or the base URL
    /// is invalid; [`Error::Transport`] when the runtime thread cannot be started.
    pub fn from_env() -> Result<Self> {
        Self::from_async(crate::Client::from_env()?)
    }

    /// A client with the settings of `builder`.
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// use std::time::Duration;
    ///
    /// let client = laracopilot::blocking::Client::new(
    ///     laracopilot::Client::builder()
    ///         .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
    ///         .idle_timeout(Some(Duration::from_secs(120))),
    /// )?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`ClientBuilder::build`]; [`Error::Transport`] when the runtime
    /// thread cannot be started.
    pub fn new(builder: ClientBuilder) -> Result<Self> {
        Self::from_async(builder.build()?)
    }

    /// A blocking client sending its requests through `client` (same settings, token
    /// provider and connection pool). Connections that `client` opened on another
    /// runtime are not reused once that runtime stops.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when the runtime thread cannot be started.
    pub fn from_async(client: crate::Client) -> Result<Self> {
        Ok(Client {
            inner: client,
            runtime: Arc::new(Runtime::new()?),
        })
    }

    /// Starts generating a new project from `prompt`, as [`crate::Client::generate`].
    ///
    /// # Errors
    ///
    /// Any request-level [`Error`]: `Unauthorized`, `TokenExpired`, `Validation`,
    /// `RateLimited`, `Api`, `Transport`, `Timeout`.
    pub fn generate(&self, prompt: impl Into<String>) -> Result<Generation> {
        let client = self.inner.clone();
        let prompt = prompt.into();
        let generation = self
            .runtime
            .run(async move { client.generate(prompt).await })??;
        Ok(self.wrap(generation))
    }

    /// Continues an existing project with a new prompt, as
    /// [`crate::Client::follow_up`].
    ///
    /// # Errors
    ///
    /// As [`Client::generate`], plus [`Error::NotFound`] for an unknown project.
    pub fn follow_up(
        &self,
        project_id: impl Into<ProjectId>,
        prompt: impl Into<String>,
    ) -> Result<Generation> {
        let client = self.inner.clone();
        let (project_id, prompt) = (project_id.into(), prompt.into());
        let generation = self
            .runtime
            .run(async move { client.follow_up(project_id, prompt).await })??;
        Ok(self.wrap(generation))
    }

    /// The current state of a project, as [`crate::Client::project`]; safe to poll.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown project, the request-level errors of
    /// [`Client::generate`], and [`Error::Decode`] for an answer that is not the
    /// documented JSON.
    pub fn project(&self, project_id: impl Into<ProjectId>) -> Result<Project> {
        let client = self.inner.clone();
        let project_id = project_id.into();
        self.runtime
            .run(async move { client.project(project_id).await })?
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
    /// [`Error::Timeout`] when the project did not settle in time; a non-retryable
    /// error of the status call (such as [`Error::NotFound`] or
    /// [`Error::Unauthorized`]) at once.
    pub fn wait_for_project(
        &self,
        project_id: impl Into<ProjectId>,
        options: WaitOptions,
    ) -> Result<Project> {
        let client = self.inner.clone();
        let project_id = project_id.into();
        self.runtime
            .run(async move { client.wait_for_project(project_id, options).await })?
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
    /// When the server's answer says nothing about the token: [`Error::RateLimited`],
    /// [`Error::Api`], [`Error::Transport`], [`Error::Timeout`].
    pub fn verify_token(&self) -> Result<TokenCheck> {
        let client = self.inner.clone();
        self.runtime
            .run(async move { client.verify_token().await })?
    }

    /// Drives `generation` to its end; if the stream breaks once the project id is
    /// known, polls the project instead of failing, as
    /// [`crate::Client::finish_or_recover`].
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::blocking::Client::from_env()?;
    /// let generation = client.generate("Build a task management app")?;
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
        let (inner, project_id) = generation.into_inner()?;
        let client = self.inner.clone();
        self.runtime
            .run(async move { client.finish_or_recover(inner, options).await })
            .map_err(|e| e.with_project_id(project_id.as_ref()))?
    }

    /// Like [`finish_or_recover`](Client::finish_or_recover), calling `on_event` with
    /// every event on the way (on a helper thread when called inside a tokio runtime,
    /// hence `Send`).
    ///
    /// # Errors
    ///
    /// As [`crate::Client::finish_or_recover`].
    pub fn finish_or_recover_with(
        &self,
        generation: Generation,
        options: WaitOptions,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<Outcome> {
        let (inner, project_id) = generation.into_inner()?;
        self.runtime
            .run_borrowing(self.inner.finish_or_recover_with(inner, options, on_event))
            .map_err(|e| e.with_project_id(project_id.as_ref()))?
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.base_url()
    }

    fn wrap(&self, generation: crate::Generation) -> Generation {
        Generation {
            inner: Some(generation),
            runtime: Arc::clone(&self.runtime),
        }
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
/// let generation = client.generate("Build a task management app")?;
/// let outcome = generation.finish()?;
/// println!("{} files, ready at {:?}", outcome.files.len(), outcome.app_url);
/// # Ok(()) }
/// ```
#[must_use = "a generation does nothing unless iterated; dropping it closes the connection while the server may keep working and spending credits"]
pub struct Generation {
    // `None` only after the runtime failed mid-call (see `Runtime::run`).
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

    /// How many events were delivered so far.
    pub fn events(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.events())
    }

    /// How many bytes of the body were received so far.
    pub fn bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.bytes())
    }

    /// How far the generation is, updated with every item the iterator yields (see
    /// [`crate::Generation::progress`]). Should the runtime fail mid-call, an empty
    /// [`Progress`](crate::Progress) from then on.
    pub fn progress(&self) -> &crate::Progress {
        static CLOSED: crate::Progress = crate::Progress::new();
        self.inner
            .as_ref()
            .map_or(&CLOSED, |inner| inner.progress())
    }

    /// Liveness statistics so far.
    pub fn stats(&self) -> Stats {
        self.inner
            .as_ref()
            .map_or_else(Stats::default, |inner| inner.stats())
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
        let runtime = Arc::clone(&self.runtime);
        let (inner, project_id) = self.into_inner()?;
        runtime
            .run(inner.finish())
            .map_err(|e| e.with_project_id(project_id.as_ref()))?
    }

    /// Like [`finish`](Generation::finish), calling `on_event` with every event on the
    /// way, as [`crate::Generation::finish_with`]. Inside a tokio runtime, `on_event`
    /// runs on a helper thread started for this call (hence `Send`).
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::blocking::Client::from_env()?;
    /// let outcome = client
    ///     .generate("Build a task management app")?
    ///     .finish_with(|event| eprintln!("{}", event.type_name()))?;
    /// println!("{} files", outcome.files.len());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`finish`](Generation::finish).
    pub fn finish_with(self, on_event: impl FnMut(&Event) + Send) -> Result<Outcome> {
        let runtime = Arc::clone(&self.runtime);
        let (inner, project_id) = self.into_inner()?;
        runtime
            .run_borrowing(inner.finish_with(on_event))
            .map_err(|e| e.with_project_id(project_id.as_ref()))?
    }
}

impl Generation {
    /// The async generation and its project id, for a call that drives it whole.
    fn into_inner(mut self) -> Result<(crate::Generation, Option<ProjectId>)> {
        let inner = self.inner.take().ok_or_else(stopped)?;
        let project_id = inner.project_id().cloned();
        Ok((inner, project_id))
    }
}

impl Iterator for Generation {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        let mut inner = self.inner.take()?;
        if let Some(item) = ready_without_io(&mut inner) {
            self.inner = Some(inner);
            return item;
        }
        let project_id = inner.project_id().cloned();
        let waited = self.runtime.run(async move {
            let item = inner.next().await;
            (inner, item)
        });
        match waited {
            Ok((inner, item)) => {
                self.inner = Some(inner);
                item
            }
            Err(e) => Some(Err(e.with_project_id(project_id.as_ref()))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner
            .as_ref()
            .map_or((0, Some(0)), |inner| inner.size_hint())
    }
}

// After its terminal item, the async generation yields `None` forever, and so does
// this one once `inner` is gone.
impl FusedIterator for Generation {}

/// The next item when it needs no I/O: an event already decoded, or the end of a
/// closed stream. Polls once without a runtime; `None` means "wait on the runtime".
fn ready_without_io(inner: &mut crate::Generation) -> Option<Option<Result<Event>>> {
    let (queued, upper) = inner.size_hint();
    if queued == 0 && upper != Some(0) {
        return None;
    }
    // With items queued (or the body gone), `poll_next` answers from its queue
    // without touching the body or the timers; were it ever to answer `Pending`,
    // the caller simply polls again on the runtime with a real waker.
    match Pin::new(inner).poll_next(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(item) => Some(item),
        Poll::Pending => None,
    }
}

#[allow(dead_code, reason = "compile-time assertion only")]
fn assert_thread_safety() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send::<Generation>();
}
