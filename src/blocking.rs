//! A blocking facade for build scripts, CLIs and CI jobs (feature `blocking`).
//!
//! [`Client`] mirrors the async [`crate::Client`] with plain function calls, and a
//! [`Generation`] is an [`Iterator`] of events. It works from any thread, `main` and
//! `build.rs` included, and never panics or deadlocks inside a tokio runtime (see
//! below for where it refuses to run).
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
//! # How it works, and where it may be called
//!
//! Each [`Client`] owns a small tokio runtime with one worker thread, shared by its
//! clones and its generations; the HTTP connections live there between calls. A call
//! runs on the calling thread (`block_on` on the client's runtime):
//!
//! - **outside any tokio runtime** (a plain thread, `main`, `build.rs`): as is;
//! - **on a multi-thread tokio runtime** (a `#[tokio::main]` function, a task,
//!   `spawn_blocking`): inside `tokio::task::block_in_place`, so that the runtime
//!   hands its other tasks to its other workers while this one waits;
//! - **on a current-thread tokio runtime** (a plain `#[tokio::test]`), whose only
//!   thread the call blocks: when no other task lives on that runtime, the call runs
//!   on a helper thread started for it (servers on their own threads, such as
//!   wiremock's or the offline LaraCopilot of `laracopilot-mock`, answer as usual); when
//!   other tasks live there (a server spawned on that runtime, say), it fails at once
//!   with [`Error::Config`] instead of waiting for them for good. From
//!   `spawn_blocking` it counts the other tasks likewise.
//!
//! Events already received are handed out by the iterator without touching the
//! runtime at all.
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
use std::sync::Arc;

mod runtime;

use runtime::{stopped, Runtime};

use crate::tokens::TokenCheck;
#[cfg(doc)]
use crate::Error;
use crate::{Event, Outcome, Project, ProjectId, Result, Stats, WaitOptions};

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
        crate::Client::builder().from_env().build_blocking()
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
        let prompt: String = prompt.into();
        let generation = self.runtime.run(self.inner.generate(prompt))??;
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
        let (project_id, prompt): (ProjectId, String) = (project_id.into(), prompt.into());
        let generation = self
            .runtime
            .run(self.inner.follow_up(project_id, prompt))??;
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
        let project_id: ProjectId = project_id.into();
        self.runtime.run(self.inner.project(project_id))?
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
        let project_id: ProjectId = project_id.into();
        self.runtime
            .run(self.inner.wait_for_project(project_id, options))?
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
        self.runtime.run(self.inner.verify_token())?
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
        self.runtime
            .run(self.inner.finish_or_recover(inner, options))
            .map_err(|e| e.with_project_id(project_id.as_ref()))?
    }

    /// Like [`finish_or_recover`](Client::finish_or_recover), calling `on_event` with
    /// every event on the way.
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
            .run(self.inner.finish_or_recover_with(inner, options, on_event))
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
    /// way, as [`crate::Generation::finish_with`]. On a current-thread tokio runtime
    /// the call runs on a helper thread, hence `Send`.
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
            .run(inner.finish_with(on_event))
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
        let inner = self.inner.as_mut()?;
        // An event already received needs no I/O, and no runtime.
        if let Some(item) = inner.next_buffered() {
            return item;
        }
        let project_id = inner.project_id().cloned();
        match self.runtime.run(inner.next()) {
            Ok(item) => item,
            Err(e) => {
                // The stream cannot be driven from here: end it with the reason.
                self.inner = None;
                Some(Err(e.with_project_id(project_id.as_ref())))
            }
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

impl crate::ClientBuilder {
    /// Checks the settings and builds a blocking client (feature `blocking`).
    ///
    /// ```no_run
    /// # fn run() -> laracopilot::Result<()> {
    /// use std::time::Duration;
    ///
    /// let client = laracopilot::Client::builder()
    ///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
    ///     .idle_timeout(Some(Duration::from_secs(120)))
    ///     .build_blocking()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`ClientBuilder::build`](crate::ClientBuilder::build);
    /// [`Error::Transport`] when the runtime thread cannot be started.
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
