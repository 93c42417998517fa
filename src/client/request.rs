//! The request of a generate or follow-up call: a value that can grow (per-call
//! options as builder methods) and that runs when awaited.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use super::Client;
use crate::{Generation, ProjectId, Result};

/// A generate call ([`Client::generate`]) or a follow-up ([`Client::follow_up`]),
/// with its per-call options; it is sent when awaited (it implements
/// [`IntoFuture`]), so `client.generate(prompt).await?` is the whole call.
///
/// ```no_run
/// use std::time::Duration;
///
/// # async fn run() -> laracopilot::Result<()> {
/// let client = laracopilot::Client::from_env()?;
/// let generation = client
///     .generate("Build a task management app")
///     .deadline(Duration::from_secs(30 * 60))
///     .label("tenant", "acme")
///     .idempotency_key("acme-onboarding-42")
///     .await?;
/// # drop(generation);
/// # Ok(()) }
/// ```
#[must_use = "a request does nothing until it is awaited"]
pub struct GenerateRequest<'a> {
    pub(super) client: &'a Client,
    pub(super) project_id: Option<ProjectId>,
    pub(super) prompt: String,
    pub(super) options: CallOptions,
}

/// The per-call options of a [`GenerateRequest`].
#[derive(Debug, Clone, Default)]
pub(crate) struct CallOptions {
    /// The stream deadline of this call, when it overrides the client's.
    pub(crate) deadline: Option<Duration>,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) idempotency_key: Option<String>,
}

impl<'a> GenerateRequest<'a> {
    pub(super) fn new(client: &'a Client, project_id: Option<ProjectId>, prompt: String) -> Self {
        GenerateRequest {
            client,
            project_id,
            prompt,
            options: CallOptions::default(),
        }
    }

    /// A total deadline for this call's stream, from sending the request to the
    /// stream's end (waiting for a concurrency slot, retries and the headers
    /// included), instead of the client's
    /// [`stream_deadline`](crate::ClientBuilder::stream_deadline). `Duration::MAX`
    /// is no deadline in practice.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.options.deadline = Some(deadline);
        self
    }

    /// A label of this call, for the caller's own bookkeeping (a tenant, a job):
    /// recorded in its [journal](crate::journal) entry and in its `tracing` span.
    /// Labels keep their order; a key given twice is kept twice.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.labels.push((key.into(), value.into()));
        self
    }

    /// Makes the call happen at most once per key and
    /// [scope](crate::ClientBuilder::scope), whichever host or restart repeats it
    /// (it needs a [journal](crate::ClientBuilder::journal), whose database holds
    /// the keys).
    ///
    /// The first call with a key sends the request. Every later call with it, from
    /// any client sharing the journal's database and the scope, for as long as the
    /// journal holds the key, sends nothing and answers the first call's result: a
    /// [`Generation`] that [replays](Generation::is_replay) its outcome (one
    /// `stream_end` event, with the project id and the app URL), after polling the
    /// project to its end if the first call is still running; or the error that
    /// tells it failed ([`Error::GenerationFailed`](crate::Error::GenerationFailed));
    /// or [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown) when the first call
    /// may have started work and nothing proves which. A first call that failed
    /// before reaching the server (refused, 401, 422, 429, over budget) gives its key
    /// up: the next call with it sends.
    ///
    /// **Lifetime**: a key lives as long as its journal entry, that is until the
    /// entry is pruned ([`Client::prune_journal`]). **Choosing keys**: derive the key
    /// from the work, not from the attempt (`"invoice-app:customer-42"`, a job id, a
    /// hash of the tenant and the request), so that a retry on another worker finds
    /// the same key; never a random value per attempt. A key is at most 1 KiB.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.options.idempotency_key = Some(key.into());
        self
    }

    /// Sends the call: the same as `.await`, for a future to hold or spawn.
    ///
    /// # Errors
    ///
    /// Those of [`Client::generate`] and [`Client::follow_up`].
    pub async fn send(self) -> Result<Generation> {
        let (client, project_id, prompt, options) = self.into_parts();
        client.start_generation(project_id, prompt, options).await
    }

    /// The request's parts: its client, project (for a follow-up), prompt and
    /// options.
    pub(crate) fn into_parts(self) -> (&'a Client, Option<ProjectId>, String, CallOptions) {
        (self.client, self.project_id, self.prompt, self.options)
    }
}

impl fmt::Debug for GenerateRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateRequest")
            .field("project_id", &self.project_id)
            .field("prompt_len", &self.prompt.len())
            .field("deadline", &self.options.deadline)
            .field("labels", &self.options.labels)
            .field("idempotency_key", &self.options.idempotency_key)
            .finish()
    }
}

impl<'a> IntoFuture for GenerateRequest<'a> {
    type Output = Result<Generation>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Generation>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
