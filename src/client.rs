//! The client: every call of the API, the waits and the recovery that need both the
//! transport and the stream. The builder and the URL rules are its submodules.

use std::fmt;
use std::sync::Arc;

use reqwest::Method;
use tokio::time::Instant;
use url::Url;

use crate::answer::{project_from_response, ErrorAnswer, EVENT_STREAM, JSON};
use crate::error::TimeoutKind;
use crate::generation::{Generation, Start, StreamConfig};
use crate::http::{Call, Transport};
use crate::journal::{Entry, Kind, Record, Settlement};
use crate::project::{Project, ProjectState, WaitOptions};
use crate::spend::Spend;
use crate::tokens::{TokenCheck, PROBE_PROJECT_ID};
use crate::{Error, Event, Outcome, ProjectId, Result, Stats};

mod builder;
mod endpoint;

pub use builder::{
    ClientBuilder, BASE_URL_ENV, DEFAULT_BASE_URL, DEFAULT_CREDITS_COOLDOWN, OFFLINE_ENV, TOKEN_ENV,
};

/// A client of the LaraCopilot Agent API.
///
/// Cheap to clone (an `Arc` inside) and `Send + Sync`: build one and share it between
/// tasks. Every call asks the client's token provider for the current token, so a
/// rotated token is picked up without rebuilding the client.
///
/// ```no_run
/// # async fn run() -> laracopilot::Result<()> {
/// let client = laracopilot::Client::from_env()?;
/// let outcome = client.generate("Build a task management app").await?.finish().await?;
/// println!("{:?}", outcome.app_url);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    stream: StreamConfig,
    spend: Spend,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url())
            .field("request_timeout", &self.inner.transport.request_timeout())
            .field("idle_timeout", &self.inner.stream.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for a client with custom settings.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from the environment: the token from
    /// `LARACOPILOT_API_TOKEN`, and the base URL from `LARACOPILOT_BASE_URL` when it is
    /// set and not empty (otherwise [`DEFAULT_BASE_URL`]); see
    /// [`ClientBuilder::from_env`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the token variable is missing or invalid, or the base URL
    /// is invalid.
    pub fn from_env() -> Result<Self> {
        Self::builder().from_env().build()
    }

    fn new(transport: Transport, stream: StreamConfig, spend: Spend) -> Self {
        Client {
            inner: Arc::new(Inner {
                transport,
                stream,
                spend,
            }),
        }
    }

    /// Starts generating a new project from `prompt` (`POST /agent/generate`).
    ///
    /// The HTTP status is checked before the stream is returned: request-level
    /// failures (401, 422, 429, ...) come from this call, and the returned
    /// [`Generation`] yields only the events of an accepted generation.
    ///
    /// # Errors
    ///
    /// Any request-level [`Error`]: `Unauthorized`, `TokenExpired`, `Validation`,
    /// `RateLimited`, `Api`, `Transport`, `Timeout`; `CreditsExhausted` (`locally`)
    /// while the [credits breaker](ClientBuilder::credits_cooldown) is open; `Journal`
    /// when the [journal](ClientBuilder::journal) cannot record the call (nothing is
    /// sent then).
    pub async fn generate(&self, prompt: impl Into<String>) -> Result<Generation> {
        let url = endpoint::url(self.inner.transport.base(), &["agent", "generate"]);
        self.start_generation(url, prompt.into(), None).await
    }

    /// Continues an existing project with a new prompt
    /// (`POST /agent/generate/{projectId}`). The stream has no container phase.
    ///
    /// # Errors
    ///
    /// As [`Client::generate`], plus [`Error::NotFound`] for an unknown project, and
    /// [`Error::Config`] (nothing sent) for an id that could address another endpoint
    /// (empty, `.` or `..`, control characters, a path separator, over 1 KiB).
    pub async fn follow_up(
        &self,
        project_id: impl Into<ProjectId>,
        prompt: impl Into<String>,
    ) -> Result<Generation> {
        let project_id = project_id.into();
        let url = endpoint::with_id(
            self.inner.transport.base(),
            &["agent", "generate"],
            &project_id,
        )?;
        self.start_generation(url, prompt.into(), Some(project_id))
            .await
    }

    /// The current state of a project (`GET /agent/project/{projectId}`); safe to
    /// poll. The request timeout applies to each attempt, body included.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown project; the request-level errors of
    /// [`Client::generate`]; [`Error::Api`] for an answer that is not
    /// `"status": true` about this project; [`Error::Decode`] for an answer that is not
    /// JSON (or larger than 256 KiB); [`Error::Config`] as for
    /// [`Client::follow_up`].
    pub async fn project(&self, project_id: impl Into<ProjectId>) -> Result<Project> {
        self.project_within(&project_id.into(), None).await
    }

    /// A status call that must end by `deadline` (a wait's).
    async fn project_within(
        &self,
        project_id: &ProjectId,
        deadline: Option<Instant>,
    ) -> Result<Project> {
        let call = self.status_call(project_id, deadline)?;
        let (answer, _span) = self.inner.transport.exchange(call).await?;
        project_from_response(answer, project_id)
            .await
            .map_err(|e| e.with_project_id(Some(project_id)))
    }

    fn status_call(&self, project_id: &ProjectId, deadline: Option<Instant>) -> Result<Call> {
        let transport = &self.inner.transport;
        Ok(Call {
            method: Method::GET,
            url: endpoint::with_id(transport.base(), &["agent", "project"], project_id)?,
            accept: JSON,
            body: None,
            wait: (transport.request_timeout(), TimeoutKind::Request),
            deadline: deadline.map(|at| (at, TimeoutKind::Wait)),
            starts_work: false,
            project_id: Some(project_id.clone()),
        })
    }

    /// Polls the project's status until it succeeds or fails (as `options` reads the
    /// status: [`ProjectState`]), or the options' timeout passes. The timeout is a
    /// total: each poll (retried as the client's retry policy allows) is cut to the
    /// time left. Pauses grow from the first interval to the maximum. A transient
    /// failure of one poll (a 5xx, an HTML page from a proxy, a timeout) does not end
    /// the wait.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::Client::from_env()?;
    /// let project = client.wait_for_project("abc123", laracopilot::WaitOptions::default()).await?;
    /// println!("{:?}", project.project_status);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::GenerationFailed`] (with the project) when the project failed;
    /// [`Error::Timeout`] (kind `Wait`) when it did not end in time; an error of the
    /// status call that is not transient (such as [`Error::NotFound`] or
    /// [`Error::Unauthorized`]) at once; [`Error::Config`] as for
    /// [`Client::follow_up`].
    pub async fn wait_for_project(
        &self,
        project_id: impl Into<ProjectId>,
        options: WaitOptions,
    ) -> Result<Project> {
        let project_id = project_id.into();
        // Refuse a bad id at once, not after the first pause.
        self.status_call(&project_id, None)?;
        let deadline = Instant::now().checked_add(options.timeout);
        let mut interval = options.first_interval;
        let timed_out = |project_id: ProjectId| Error::Timeout {
            kind: TimeoutKind::Wait,
            project_id: Some(project_id),
            attempts: 0,
        };
        loop {
            match self.project_within(&project_id, deadline).await {
                Ok(project) => match (options.classify)(&project) {
                    ProjectState::Succeeded => return Ok(project),
                    ProjectState::Failed => {
                        return Err(Error::GenerationFailed {
                            project: Box::new(project),
                        })
                    }
                    _ => {}
                },
                Err(Error::Timeout {
                    kind: TimeoutKind::Wait,
                    ..
                }) => return Err(timed_out(project_id)),
                Err(error) if error.is_transient() => {}
                Err(error) => return Err(error),
            }
            if let Some(deadline) = deadline {
                // A pause too long for the clock ends after any deadline too.
                let next = Instant::now().checked_add(interval);
                if next.is_none_or(|next| next >= deadline) {
                    return Err(timed_out(project_id));
                }
            }
            tokio::time::sleep(interval).await;
            interval = interval.saturating_mul(2).min(options.max_interval);
        }
    }

    /// Drives `generation` to its end like [`Generation::finish`]; if the stream
    /// breaks after the project id is known (the connection drops, goes silent past
    /// the idle timeout or the deadline, ends without its terminal event, or sends an
    /// event over the size cap), polls the project with [`Client::wait_for_project`]
    /// instead of failing. No second generate request is ever sent.
    ///
    /// Only a project that succeeded is `Ok`: its [`Outcome`] has `recovered` set to
    /// the polled project. A failed one is [`Error::GenerationFailed`].
    /// `credits_exhausted` is never recovered: it is an answer, not a broken stream.
    ///
    /// With a [journal](ClientBuilder::journal), what the poll found (success, or a
    /// failed or unknown project) is recorded after the stream's own record of how it
    /// broke, before this call returns: the last record of the entry is the outcome
    /// the caller got.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::Client::from_env()?;
    /// let generation = client.generate("Build a task management app").await?;
    /// let outcome = client
    ///     .finish_or_recover(generation, laracopilot::WaitOptions::default())
    ///     .await?;
    /// if let Some(project) = &outcome.recovered {
    ///     println!("stream broke; project is {:?}", project.project_status);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`Generation::finish`] that are not a broken stream (or that come
    /// before the project id is known), and for a broken stream those of
    /// [`Client::wait_for_project`].
    pub async fn finish_or_recover(
        &self,
        generation: Generation,
        options: WaitOptions,
    ) -> Result<Outcome> {
        self.finish_or_recover_with(generation, options, |_| {})
            .await
    }

    /// Like [`finish_or_recover`](Client::finish_or_recover), calling `on_event` with
    /// every event on the way, as [`Generation::finish_with`] does.
    ///
    /// # Errors
    ///
    /// As [`finish_or_recover`](Client::finish_or_recover).
    pub async fn finish_or_recover_with(
        &self,
        generation: Generation,
        options: WaitOptions,
        on_event: impl FnMut(&Event),
    ) -> Result<Outcome> {
        let journal_id = generation.journal_id().cloned();
        let (error, mut outcome) = match generation.drive(on_event).await {
            Ok(outcome) => return Ok(outcome),
            Err(failed) => failed,
        };
        let broken = matches!(
            error,
            Error::Incomplete { .. }
                | Error::Transport { .. }
                | Error::Timeout { .. }
                | Error::EventTooLarge { .. }
        );
        let Some(id) = outcome.project_id.clone().filter(|_| broken) else {
            return Err(error);
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(project_id = %id, error = error.kind(), "laracopilot stream broke; polling the project");
        let polled = self.wait_for_project(&id, options).await;
        let app_url = polled
            .as_ref()
            .map(|project| project.app_url.clone().or(outcome.app_url.clone()));
        // The journal's record of the broken stream is not the generation's outcome.
        self.inner
            .spend
            .recovered(journal_id.as_ref(), &id, app_url)
            .await;
        let project = polled?;
        outcome.app_url = project.app_url.clone().or(outcome.app_url);
        outcome.recovered = Some(project);
        Ok(outcome)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.transport.base().as_str()
    }

    /// Closes the [credits breaker](ClientBuilder::credits_cooldown) at once (after
    /// the team's credits were topped up, say).
    pub fn reset_credits_breaker(&self) {
        self.inner.spend.reset_breaker();
    }

    /// The journal's entries without an outcome: generations a previous run of the
    /// program started and did not see end (see [`journal`](crate::journal)). Call it
    /// at start-up, before starting new generations (which would be listed too while
    /// they run).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client has no journal; [`Error::Journal`] when it
    /// cannot be read.
    pub async fn unfinished(&self) -> Result<Vec<Entry>> {
        let journal = self.journal()?;
        journal.unfinished().await.map_err(|source| Error::Journal {
            message: "the journal cannot list its unfinished entries".into(),
            source,
        })
    }

    /// Settles one [unfinished](Client::unfinished) entry, and records how.
    ///
    /// With a project id, it polls the project as [`Client::wait_for_project`] does:
    /// a project that succeeded is `Ok` (an [`Outcome`] whose `recovered` holds it),
    /// a failed one [`Error::GenerationFailed`], both recorded; an unknown one
    /// ([`Error::NotFound`]) is recorded as failed (having possibly started work: the
    /// call was sent and named its project). A wait that times out, or another
    /// error, leaves the entry unfinished, to try again later.
    ///
    /// Without a project id, it sends nothing and returns [`Error::OutcomeUnknown`],
    /// recorded as such: the request may or may not have started work, and only the
    /// caller can decide to send it again.
    ///
    /// # Errors
    ///
    /// As above; [`Error::Config`] when the client has no journal; [`Error::Journal`]
    /// when the outcome cannot be recorded.
    pub async fn resume(&self, entry: &Entry, options: WaitOptions) -> Result<Outcome> {
        let journal = self.journal()?;
        let settle = |project_id: Option<ProjectId>, outcome| Record::Settled {
            local_id: entry.local_id.clone(),
            project_id,
            outcome,
            at: std::time::SystemTime::now(),
        };
        let record = |record: Record| async {
            journal
                .write(record)
                .await
                .map_err(|source| Error::Journal {
                    message: "the journal cannot record a resumed entry".into(),
                    source,
                })
        };
        let Some(id) = entry.project_id.clone() else {
            record(settle(None, Settlement::Unknown)).await?;
            return Err(Error::OutcomeUnknown {
                local_id: entry.local_id.clone(),
            });
        };
        let polled = self.wait_for_project(&id, options).await;
        let app_url = polled.as_ref().map(|project| project.app_url.clone());
        if let Some(outcome) = Settlement::of_poll(app_url) {
            record(settle(Some(id.clone()), outcome)).await?;
        }
        let project = polled?;
        Ok(Outcome {
            project_id: Some(id.clone()),
            app_url: project.app_url.clone(),
            files: Vec::new(),
            stats: Stats::default(),
            progress: crate::Progress::new().with_project_id(Some(id)),
            recovered: Some(project),
        })
    }

    fn journal(&self) -> Result<&Arc<dyn crate::journal::Journal>> {
        self.inner
            .spend
            .journal
            .as_ref()
            .ok_or_else(|| Error::config("the client has no journal: see ClientBuilder::journal"))
    }

    /// Tells whether the server accepts the client's token, without spending credits:
    /// fail early and clearly in tooling, or check a token after a rotation.
    ///
    /// It asks the status endpoint for a project that cannot exist
    /// (`GET /agent/project/laracopilot-sdk-token-probe`) and relies on the API
    /// checking the token before looking the project up (as its documented answers
    /// show). [`TokenCheck::Accepted`] needs evidence that the API itself looked at the
    /// token: its documented 404 (`{"status": false, "message": ..}` as JSON) or a
    /// project. A 401 is `Expired` (`"API token has expired."`) or `Unauthorized`
    /// (`"Unauthorized."`). As with every call, a 401 makes the provider refresh once,
    /// so the answer is about the token the client would use from now on; a token
    /// known locally to be expired is `Expired { locally: true }` without sending
    /// anything.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::Client::from_env()?;
    /// let check = client.verify_token().await?;
    /// if !check.is_accepted() {
    ///     eprintln!("{check}");
    ///     std::process::exit(2);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// When the answer says nothing about the token: [`Error::RateLimited`],
    /// [`Error::Api`] (5xx, 3xx, a 200 or 404 page that is not the API's JSON, ...),
    /// [`Error::Decode`], [`Error::Transport`], [`Error::Timeout`].
    pub async fn verify_token(&self) -> Result<TokenCheck> {
        let probe = ProjectId::from(PROBE_PROJECT_ID);
        let transport = &self.inner.transport;
        let outcome = match transport.send(self.status_call(&probe, None)?).await {
            Ok((answer, _span)) if answer.response.status().is_success() => {
                project_from_response(answer, &probe).await.map(|_| ())
            }
            Ok((answer, _span)) => {
                let error = ErrorAnswer::read(answer, transport.body_deadline(None)).await;
                // Only the API's own 404 shows that the token was looked at; a
                // portal's or another server's 404 page does not.
                if error.status() == 404 && error.is_api_error() {
                    return Ok(TokenCheck::Accepted);
                }
                Err(error.into_error(Some(probe)))
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => Ok(TokenCheck::Accepted),
            Err(Error::TokenExpired { locally, .. }) => Ok(TokenCheck::Expired { locally }),
            Err(Error::Unauthorized { message, .. }) => Ok(TokenCheck::Unauthorized { message }),
            Err(other) => Err(other),
        }
    }

    /// Starts a generate call: admitted by the spend guards, journaled, sent; the
    /// transport checks its answer before the stream is handed back.
    async fn start_generation(
        &self,
        url: Url,
        prompt: String,
        project_id: Option<ProjectId>,
    ) -> Result<Generation> {
        let kind = match project_id {
            Some(_) => Kind::FollowUp,
            None => Kind::Generate,
        };
        #[derive(serde::Serialize)]
        struct Body<'a> {
            prompt: &'a str,
        }
        // Serializing a struct of one string into a Vec cannot fail.
        let body = serde_json::to_vec(&Body { prompt: &prompt })
            .map_err(|e| Error::config(format!("cannot encode the prompt: {e}")))?;
        let config = &self.inner.stream;
        let sent = Instant::now();
        let deadline = config.deadline.and_then(|d| sent.checked_add(d));
        let transport = &self.inner.transport;
        let spend = &self.inner.spend;
        let admitted = spend.admit(project_id.as_ref(), deadline).await?;
        let journaled = match &spend.journal {
            Some(_) => {
                let mask = transport
                    .token_mask(deadline.map(|at| (at, TimeoutKind::Deadline)))
                    .await
                    .map_err(|e| e.with_project_id(project_id.as_ref()))?;
                spend
                    .intend(kind, project_id.as_ref(), &prompt, mask)
                    .await?
            }
            None => None,
        };
        let call = Call {
            method: Method::POST,
            url,
            accept: EVENT_STREAM,
            body: Some(body.into()),
            // Waiting for the answer's headers is bounded by the idle timeout (no byte
            // for that long means the same as a silent stream), or without one by the
            // request timeout.
            wait: match config.idle_timeout {
                Some(idle) => (idle, TimeoutKind::Idle),
                None => (transport.request_timeout(), TimeoutKind::Request),
            },
            deadline: deadline.map(|at| (at, TimeoutKind::Deadline)),
            starts_work: true,
            project_id: project_id.clone(),
        };
        let (mut answer, span) = match transport.exchange(call).await {
            Ok(exchanged) => exchanged,
            Err(error) => {
                if let Some(journaled) = journaled {
                    journaled.settle(error.project_id(), &error).await;
                }
                return Err(error);
            }
        };
        let start = Start {
            sent: answer.sent,
            attempts: answer.attempts,
            slot_wait: admitted.slot_wait,
            journal_id: journaled.as_ref().map(|j| j.local_id().clone()),
            watcher: Some(spend.watch(admitted, journaled)),
            project_id,
            span,
            deadline,
            prefix: std::mem::take(&mut answer.prefix),
        };
        Ok(Generation::new(
            reqwest::Body::from(answer.response),
            config,
            start,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Token;

    fn token() -> Token {
        Token::new("lcp_test_0123456789").unwrap()
    }

    fn client() -> Client {
        // Port 9 (discard) is never contacted by these tests: the checks come first.
        Client::builder()
            .token(token())
            .base_url("http://127.0.0.1:9/api/v1")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_bad_project_id_is_refused_before_sending_by_every_call_that_takes_one() {
        let client = client();
        for id in ["", " ", "..", "%2e", "a\tb", "a/b"] {
            assert!(
                matches!(client.project(id).await, Err(Error::Config { .. })),
                "{id:?}"
            );
            assert!(
                matches!(
                    client.follow_up(id, "Add a dark mode").await,
                    Err(Error::Config { .. })
                ),
                "{id:?}"
            );
            assert!(
                matches!(
                    client.wait_for_project(id, WaitOptions::default()).await,
                    Err(Error::Config { .. })
                ),
                "{id:?}"
            );
        }
    }

    #[test]
    #[cfg(any(feature = "rustls", feature = "native-tls"))]
    fn default_base_url_is_the_documented_one() {
        let client = Client::builder().token(token()).build().unwrap();
        assert_eq!(client.base_url(), "https://builder.laracopilot.com/api/v1");
    }
}
