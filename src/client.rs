//! The client: every call of the API, the waits and the recovery that need both the
//! transport and the stream. The builder, the request values and the URL rules are
//! its submodules.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::Method;
use tokio::time::Instant;

use crate::answer::{plans_from_response, project_from_response, ErrorAnswer, EVENT_STREAM, JSON};
use crate::error::{ErrorContext, TimeoutKind};
use crate::generation::{Broken, Generation, Start, StreamConfig};
use crate::http::{Call, Transport};
use crate::journal::store::Store;
use crate::journal::{Entry, Kind, Settlement};
use crate::progress::Progress;
use crate::project::{Project, ProjectState, WaitOptions};
use crate::spend::{self, Admitted, Asked, Journaled, Spend};
use crate::tokens::{TokenCheck, PROBE_PROJECT_ID};
use crate::{Error, Event, Outcome, ProjectId, Result, SubscriptionPlan};

mod builder;
mod endpoint;
mod request;

pub use builder::{ClientBuilder, BASE_URL_ENV, DEFAULT_BASE_URL, OFFLINE_ENV, TOKEN_ENV};
pub(crate) use request::CallOptions;
pub use request::GenerateRequest;

/// The longest idempotency key.
const MAX_KEY_LEN: usize = 1024;

/// How often a later call with an idempotency key reads the first call's entry
/// while that call runs and its project is not known yet.
const DUPLICATE_POLL: Duration = Duration::from_millis(250);

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
            .field("scope", &self.inner.spend.scope())
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

    /// Starts generating a new project from `prompt` (`POST /agent/generate`) when
    /// awaited; per-call options go on the [`GenerateRequest`] first.
    ///
    /// The HTTP status is checked before the stream is returned: request-level
    /// failures (401, 422, 429, ...) come from this call, and the returned
    /// [`Generation`] yields only the events of an accepted generation.
    ///
    /// # Errors
    ///
    /// When awaited, any request-level [`Error`]: `Unauthorized`, `TokenExpired`,
    /// `Validation`, `RateLimited`, `Api`, `Transport`, `Timeout`; and, decided
    /// before anything is sent: `CreditsExhausted` (`locally`) while the
    /// [credits breaker](ClientBuilder::credits_cooldown) is open, `BudgetExhausted`
    /// when a [budget](ClientBuilder::budget) is spent, `Journal` when the
    /// [journal](ClientBuilder::journal) cannot record the call, `Config` for an
    /// idempotency key without a journal or over 1 KiB.
    pub fn generate(&self, prompt: impl Into<String>) -> GenerateRequest<'_> {
        GenerateRequest::new(self, None, prompt.into())
    }

    /// Continues an existing project with a new prompt
    /// (`POST /agent/generate/{projectId}`) when awaited. The stream has no
    /// container phase.
    ///
    /// # Errors
    ///
    /// As [`Client::generate`], plus [`Error::NotFound`] for an unknown project, and
    /// [`Error::Config`] (nothing sent) for an id that could address another endpoint
    /// (empty, `.` or `..`, control characters, a path separator, over 1 KiB).
    pub fn follow_up(
        &self,
        project_id: impl Into<ProjectId>,
        prompt: impl Into<String>,
    ) -> GenerateRequest<'_> {
        GenerateRequest::new(self, Some(project_id.into()), prompt.into())
    }

    /// Sends a request to learn the current state of a project
    /// (`GET /agent/project/{projectId}`); safe to poll. The request timeout applies
    /// to each attempt, body included.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown project (the API's own 404); the
    /// request-level errors of [`Client::generate`]; [`Error::Api`] for an answer that
    /// is not `"status": true` about this project (or a 404 page that is not the
    /// API's); [`Error::Decode`] for an answer that is not JSON (or larger than
    /// 256 KiB); [`Error::Config`] as for [`Client::follow_up`].
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

    /// Sends a request for LaraCopilot's subscription plans
    /// (`GET /subscription-plans`), in display order: what each costs, the credits
    /// it grants and what a dollar buys, and its project and seat limits. Spends no
    /// credits; retried as the status call is.
    ///
    /// ```no_run
    /// # async fn run() -> laracopilot::Result<()> {
    /// let client = laracopilot::Client::from_env()?;
    /// for plan in client.subscription_plans().await? {
    ///     println!("{:?}: {:?} credits a month", plan.name, plan.credits_per_month);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The request-level errors of [`Client::project`]; [`Error::Api`] for an
    /// answer that is not `{"data": [plan, ...]}` (a proxy's page, say);
    /// [`Error::Decode`] for one larger than 256 KiB.
    pub async fn subscription_plans(&self) -> Result<Vec<SubscriptionPlan>> {
        let transport = &self.inner.transport;
        let call = Call {
            method: Method::GET,
            url: endpoint::url(transport.base(), &["subscription-plans"]),
            accept: JSON,
            body: None,
            wait: (transport.request_timeout(), TimeoutKind::Request),
            deadline: None,
            starts_work: false,
            project_id: None,
        };
        let (answer, _span) = transport.exchange(call).await?;
        plans_from_response(answer).await
    }

    /// Polls the project's status until it succeeds or fails (as `options` reads the
    /// status: [`ProjectState`]), or the options' timeout passes. The timeout is a
    /// total: each poll (retried as the client's retry policy allows) is cut to the
    /// time left. Pauses grow from the first interval to the maximum. A transient
    /// failure of one poll (a 5xx, an HTML page from a proxy, a timeout) does not end
    /// the wait.
    ///
    /// What a poll can prove: the status endpoint describes the *project*, not one
    /// generation of it. After a follow-up, `ready` means the project is ready, which
    /// it also was before the follow-up started; the SDK therefore polls a
    /// follow-up's project only once the server accepted the follow-up (see
    /// [`Client::resume`]).
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
            context: ErrorContext::of(Some(project_id), 0),
        };
        loop {
            match self.project_within(&project_id, deadline).await {
                Ok(project) => match (options.classify)(&project) {
                    ProjectState::Succeeded => return Ok(project),
                    ProjectState::Failed => {
                        return Err(Error::GenerationFailed {
                            project: Box::new(project),
                            context: ErrorContext::of(Some(project_id), 1),
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
    /// the polled project and its phase is
    /// [`Phase::Recovered`](crate::Phase::Recovered). A failed one is
    /// [`Error::GenerationFailed`]. `credits_exhausted` is never recovered: it is an
    /// answer, not a broken stream.
    ///
    /// With a [journal](ClientBuilder::journal), the poll's finding settles the entry
    /// (success, or a failed or unknown project) before this call returns; a poll
    /// that finds nothing certain (it timed out, say) leaves the entry unfinished,
    /// for [`Client::resume`].
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
        match generation.drive(on_event).await {
            Ok(outcome) => Ok(outcome),
            Err(broken) => self.recover(broken, options).await,
        }
    }

    /// The recovery of a broken stream: polls its project when the stream broke
    /// after naming it, and settles its journal entry with what the poll proves.
    pub(crate) async fn recover(&self, broken: Broken, options: WaitOptions) -> Result<Outcome> {
        let Broken {
            error,
            mut outcome,
            watcher,
        } = broken;
        let journaled = watcher.and_then(spend::journaled_of);
        let broken = matches!(
            error,
            Error::Incomplete { .. }
                | Error::Transport { .. }
                | Error::Timeout { .. }
                | Error::EventTooLarge { .. }
        );
        let Some(id) = outcome.project_id().cloned().filter(|_| broken) else {
            return Err(error);
        };
        tracing::warn!(project_id = %id, error = error.kind(), "laracopilot stream broke; polling the project");
        let polled = self.wait_for_project(&id, options).await;
        let journal_id = outcome.journal_id().cloned();
        if !settle_polled(journaled, &polled).await {
            outcome.progress.journal_failed();
        }
        let project = polled.map_err(|e| e.with_journal_id(journal_id.as_ref()))?;
        outcome.app_url = project.app_url.clone().or(outcome.app_url);
        outcome.recovered = Some(project);
        outcome.progress.recovered();
        Ok(outcome)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.transport.base().as_str()
    }

    /// The scope the client's spend guards count under (see
    /// [`ClientBuilder::scope`]).
    pub fn scope(&self) -> &str {
        self.inner.spend.scope()
    }

    /// Closes the [credits breaker](ClientBuilder::credits_cooldown) at once (after
    /// the team's credits were topped up, say); with a journal, for every client of
    /// the scope, whose cached view of it lasts at most one
    /// [check interval](ClientBuilder::breaker_check_interval).
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the journal cannot be written.
    pub async fn reset_credits_breaker(&self) -> Result<()> {
        self.inner.spend.reset_breaker().await
    }

    fn store(&self) -> Result<&Arc<dyn Store>> {
        self.inner
            .spend
            .store()
            .ok_or_else(|| Error::config("the client has no journal: see ClientBuilder::journal"))
    }
}

/// # Journal
///
/// The calls that read and settle the client's [journal](crate::journal); each
/// fails with [`Error::Config`] when the client has none.
impl Client {
    /// The journal's entries no live stream drives: calls a previous run of the
    /// program (or a crashed host sharing the database) started and did not see end,
    /// calls whose stream was dropped, and entries whose owner's lease expired (see
    /// [`journal`](crate::journal)). Call it at start-up; settle each with
    /// [`Client::resume`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client has no journal; [`Error::Journal`] when it
    /// cannot be read.
    pub async fn unfinished(&self) -> Result<Vec<Entry>> {
        self.store()?.unfinished().await
    }

    /// Settles one [unfinished](Client::unfinished) entry, and records how. It first
    /// claims the entry (atomically: of any number of clients resuming it at once,
    /// on any host, exactly one goes on; the others get [`Error::EntryTaken`]), then
    /// tells only what it can prove:
    ///
    /// - **A new project whose id is known**, or **a follow-up the server
    ///   accepted**: it polls the project as [`Client::wait_for_project`] does. A
    ///   project that succeeded is `Ok` (an [`Outcome`] whose `recovered` holds it),
    ///   a failed one [`Error::GenerationFailed`], one the API says it does not know
    ///   [`Error::NotFound`]; each is recorded.
    /// - **A follow-up the server never accepted** (it may or may not have been
    ///   sent), or **a new project whose id never came**: it sends nothing and
    ///   returns [`Error::OutcomeUnknown`], recorded as such. A poll could only
    ///   describe the project's earlier generation, so it is not asked.
    ///
    /// A poll that proves nothing (it timed out, a proxy's page answered, the
    /// network failed) records nothing and leaves the entry unfinished, to try
    /// again later.
    ///
    /// # Errors
    ///
    /// As above; [`Error::Config`] when the client has no journal; [`Error::Journal`]
    /// when the outcome cannot be recorded.
    pub async fn resume(&self, entry: &Entry, options: WaitOptions) -> Result<Outcome> {
        self.resume_reported(entry, options, |_| true).await
    }

    /// Like [`resume`](Client::resume), but the outcome is recorded only once
    /// `report` has reported it: `report` gets the result before the journal
    /// settles the entry, and answers whether it could report it (printed, sent,
    /// stored); when it answers `false`, nothing is recorded and the entry is left
    /// unfinished, to resume later. So an entry is never settled whose outcome
    /// nobody saw (a command whose output pipe closed, say). A result that
    /// settles nothing (a poll that timed out) is reported too.
    ///
    /// # Errors
    ///
    /// As [`resume`](Client::resume); [`Error::Journal`] when the reported outcome
    /// could not be recorded (the entry stays unfinished).
    pub async fn resume_reported(
        &self,
        entry: &Entry,
        options: WaitOptions,
        report: impl FnOnce(&Result<Outcome>) -> bool,
    ) -> Result<Outcome> {
        let store = self.store()?;
        let taken = || Error::EntryTaken {
            local_id: entry.local_id.clone(),
            context: ErrorContext::of(entry.project_id.clone(), 0),
        };
        let Some((entry, fence)) = store.claim(&entry.local_id).await? else {
            let result = Err(taken());
            report(&result);
            return result;
        };
        let journaled = spend::Journaled::resumed(Arc::clone(store), entry.local_id.clone(), fence);
        let (result, settlement) = self.resume_claimed(&entry, options).await;
        if !report(&result) {
            // Not reported: released, for a later resume.
            return result;
        }
        let Some(settlement) = settlement else {
            return result;
        };
        match journaled.settle_checked(settlement).await {
            Ok(true) => result,
            Ok(false) => Err(taken()),
            Err(error) => Err(error.with_journal_id(Some(&entry.local_id))),
        }
    }

    /// What resuming a claimed `entry` finds, and the settlement that records it
    /// (`None` when it proves nothing).
    async fn resume_claimed(
        &self,
        entry: &Entry,
        options: WaitOptions,
    ) -> (Result<Outcome>, Option<Settlement>) {
        let provable = match entry.kind {
            Kind::FollowUp => entry.accepted,
            _ => true,
        };
        let Some(id) = entry.project_id.clone().filter(|_| provable) else {
            let error = Error::OutcomeUnknown {
                local_id: entry.local_id.clone(),
                accepted: entry.accepted,
                context: ErrorContext::of(entry.project_id.clone(), 0),
            };
            return (Err(error), Some(Settlement::Unknown));
        };
        let polled = self.wait_for_project(&id, options).await;
        let settlement = settlement_of_poll(&polled);
        let result = polled
            .map(|project| {
                let mut progress = Progress::of_call(
                    Instant::now(),
                    Some(id),
                    Some(entry.local_id.clone()),
                    0,
                    Duration::ZERO,
                );
                progress.recovered();
                Outcome::polled(progress, project)
            })
            .map_err(|e| e.with_journal_id(Some(&entry.local_id)));
        (result, settlement)
    }

    /// Deletes the journal's entries settled more than `older_than` ago, and their
    /// idempotency keys (which end there: a later call with one of those keys is a
    /// new call). Answers how many were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client has no journal; [`Error::Journal`] when it
    /// cannot be written.
    pub async fn prune_journal(&self, older_than: Duration) -> Result<u64> {
        let before = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        self.store()?.prune(before).await
    }

    /// Waits until every write this client handed to its journal is durable,
    /// including the ones sent without waiting: a dropped stream's release, and
    /// the release of a call that failed after it may have started work. Those
    /// free the call's concurrency slot and leave its entry for resuming; a
    /// process that exits before they are written keeps the slot held, across
    /// the fleet, until its lease expires. Call it before a short-lived program
    /// (a CLI, a CI job) exits; a service need not.
    ///
    /// Without a journal there is nothing to wait for: `Ok(())`.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the journal's engine has stopped.
    pub async fn flush_journal(&self) -> Result<()> {
        match self.inner.spend.store() {
            Some(store) => store.flush().await,
            None => Ok(()),
        }
    }
}

impl Client {
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

    /// Starts a generate or follow-up call: admitted by the spend guards (and
    /// recorded by the journal), sent; the transport checks its answer before the
    /// stream is handed back. A later call with an idempotency key answers the first
    /// call's result instead.
    pub(crate) async fn start_generation(
        &self,
        project_id: Option<ProjectId>,
        prompt: String,
        options: CallOptions,
    ) -> Result<Generation> {
        let transport = &self.inner.transport;
        let (kind, url) = match &project_id {
            None => (
                Kind::Generate,
                endpoint::url(transport.base(), &["agent", "generate"]),
            ),
            Some(id) => (
                Kind::FollowUp,
                endpoint::with_id(transport.base(), &["agent", "generate"], id)?,
            ),
        };
        if options
            .idempotency_key
            .as_ref()
            .is_some_and(|key| key.is_empty() || key.len() > MAX_KEY_LEN)
        {
            return Err(Error::config(format!(
                "an idempotency key must be 1 to {MAX_KEY_LEN} bytes long"
            )));
        }
        #[derive(serde::Serialize)]
        struct Body<'a> {
            prompt: &'a str,
        }
        // Serializing a struct of one string into a Vec cannot fail.
        let body = serde_json::to_vec(&Body { prompt: &prompt })
            .map_err(|e| Error::config(format!("cannot encode the prompt: {e}")))?;
        let config = &self.inner.stream;
        let sent = Instant::now();
        let deadline = options
            .deadline
            .or(config.deadline)
            .and_then(|d| sent.checked_add(d));
        let limit = deadline.map(|at| (at, TimeoutKind::Deadline));
        let spend = &self.inner.spend;
        let asked = Asked {
            kind,
            project_id: project_id.as_ref(),
            prompt: &prompt,
            labels: &options.labels,
            idempotency_key: options.idempotency_key.as_deref(),
        };
        let admitted = spend
            .admit(asked, deadline, || transport.token_mask(limit))
            .await
            .map_err(|e| e.with_project_id(project_id.as_ref()))?;
        let mut pass = match admitted {
            Admitted::Send(pass) => pass,
            Admitted::Duplicate(entry) => return self.duplicate(*entry, deadline).await,
        };
        let journal_id = pass.journal_id().cloned();
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
            deadline: limit,
            starts_work: true,
            project_id: project_id.clone(),
        };
        let (mut answer, span) = match transport.exchange(call).await {
            Ok(exchanged) => exchanged,
            Err(error) => {
                let error = error.with_journal_id(journal_id.as_ref());
                if let Some(journaled) = pass.take_journaled() {
                    journaled.call_failed(&error).await;
                }
                return Err(error);
            }
        };
        span.labels(&options.labels);
        let start = Start {
            sent: answer.sent,
            attempts: answer.attempts,
            slot_wait: pass.slot_wait,
            watcher: Some(spend.watch(pass)),
            project_id,
            span,
            deadline,
            prefix: std::mem::take(&mut answer.prefix),
            token: answer.token.clone(),
        };
        let mut generation = Generation::new(reqwest::Body::from(answer.response), config, start);
        // The answer arrived: recorded before the caller holds the stream.
        generation.record_accepted().await;
        Ok(generation)
    }

    /// The answer of a call whose idempotency key belongs to `first`: its recorded
    /// outcome, or its project polled to its end, or [`Error::OutcomeUnknown`]; never
    /// a request of its own. Waits for a first call still running to name its
    /// project, until `deadline` (or a wait's default timeout).
    async fn duplicate(&self, first: Entry, deadline: Option<Instant>) -> Result<Generation> {
        let store = self.store()?;
        let id = first.local_id.clone();
        let wait = WaitOptions::default();
        let until = deadline.or_else(|| Instant::now().checked_add(wait.timeout));
        let mut entry = first;
        loop {
            let driven = match store.entry(&id).await? {
                Some((now, driven)) => {
                    entry = now;
                    driven
                }
                None => false,
            };
            if entry.settlement.is_some() || entry.project_id.is_some() || !driven {
                break;
            }
            if until.is_some_and(|until| Instant::now() >= until) {
                return Err(Error::Timeout {
                    kind: TimeoutKind::Wait,
                    context: ErrorContext::of(None, 0),
                }
                .with_journal_id(Some(&id)));
            }
            tokio::time::sleep(DUPLICATE_POLL).await;
        }
        let known = match entry.kind {
            Kind::FollowUp => entry.accepted,
            _ => true,
        };
        match (
            &entry.settlement,
            entry.project_id.clone().filter(|_| known),
        ) {
            (Some(Settlement::Succeeded { app_url }), Some(project_id)) => Ok(
                Generation::recorded(&project_id, app_url.as_deref(), Some(id)),
            ),
            (_, Some(project_id)) => {
                let mut options = WaitOptions::default();
                if let Some(until) = until {
                    options = options.timeout(until.saturating_duration_since(Instant::now()));
                }
                let project = self
                    .wait_for_project(&project_id, options)
                    .await
                    .map_err(|e| e.with_journal_id(Some(&id)))?;
                Ok(Generation::recorded(
                    &project_id,
                    project.app_url.as_deref(),
                    Some(id),
                ))
            }
            (_, None) => Err(Error::OutcomeUnknown {
                local_id: id,
                accepted: entry.accepted,
                context: ErrorContext::of(entry.project_id, 0),
            }),
        }
    }
}

/// What a poll of a journaled call's project settles: success (with the app URL),
/// or a project that failed or that the API itself says it does not know (the call
/// was sent and named its project, so it may have started work). Anything else (a
/// timeout, a proxy's page) proves nothing: `None`.
fn settlement_of_poll(polled: &Result<Project>) -> Option<Settlement> {
    match polled {
        Ok(project) => Some(Settlement::succeeded(project.app_url.clone())),
        Err(error @ (Error::GenerationFailed { .. } | Error::NotFound { .. })) => {
            Some(Settlement::failed(error.kind(), true))
        }
        Err(_) => None,
    }
}

/// Settles a recovered stream's entry with what its poll found; one that proves
/// nothing releases it, for resuming. `false` when a settlement was due and could not
/// be written.
async fn settle_polled(journaled: Option<Journaled>, polled: &Result<Project>) -> bool {
    let Some(journaled) = journaled else {
        return true;
    };
    match settlement_of_poll(polled) {
        Some(settlement) => journaled.settle(settlement).await,
        None => true,
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
