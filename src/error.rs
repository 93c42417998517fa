//! The one error type of the crate, and the facts every error of a call shares.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::{Budget, LocalId, Project, ProjectId};

/// The error type of every fallible call in this crate.
///
/// One variant per situation a caller handles differently; each is
/// `#[non_exhaustive]` (match with `..`: `Error::RateLimited { retry_after, .. }`),
/// and new variants and fields come in minor releases. Errors are made by this crate
/// only.
///
/// Facts every error of a call may have are kept once, in its [`ErrorContext`], and
/// answered by methods: [`project_id`](Error::project_id) (so that a failed or
/// interrupted generation can still be followed up or polled),
/// [`attempts`](Error::attempts), [`journal_id`](Error::journal_id). Two more answer
/// questions for every variant: [`is_transient`](Error::is_transient) (may the same
/// call succeed later, unchanged?) and
/// [`may_have_started_work`](Error::may_have_started_work) (could a resend create a
/// second project or spend credits twice?):
///
/// | variant | `is_transient` | `may_have_started_work` |
/// |---|---|---|
/// | `Unauthorized`, `TokenExpired`, `Validation`, `NotFound` | no | no |
/// | `RateLimited` | yes | no |
/// | `CreditsExhausted` | no | yes, unless `locally` |
/// | `BudgetExhausted` | no | no (nothing was sent) |
/// | `Incomplete` | yes | yes |
/// | `GenerationFailed` | no | yes |
/// | `Timeout` | yes | for `Idle` and `Deadline` once a generate call was sent (`attempts() > 0`); not for `Connect`, `Request`, `Wait`, `TokenProvider` |
/// | `Api` | for 5xx, 408 and 425 | a generate call that reached the server |
/// | `Transport` | yes | a generate call that was sent |
/// | `Decode` | yes (a garbled status answer) | no |
/// | `EventTooLarge` | no | yes |
/// | `TokenProvider` | yes (a secrets store may answer later) | no |
/// | `Journal` | no | no (nothing was sent) |
/// | `OutcomeUnknown` | no | yes |
/// | `EntryTaken` | no | no (nothing was done) |
/// | `Runtime` | no | no |
/// | `Config` | no | no |
///
/// # What it prints
///
/// `Display` names what happened, with its own facts: the HTTP status, the server's
/// message, the project, the delay asked for, what to do; the cause of a failure
/// (the connection's error, the provider's, the journal engine's) is its
/// [`source`](std::error::Error::source), so `{:#}` of `anyhow` (or any chain walk)
/// prints the whole story, each link once. No output of an error, `Display` or
/// `Debug`, ever contains the token: every text that came from the server is masked
/// before it is kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered 401 because the token is missing, invalid or revoked
    /// (`{"message": "Unauthorized."}`). Revocation takes effect immediately.
    #[non_exhaustive]
    Unauthorized {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// Why the token provider could not give a newer token, when it failed.
        #[source]
        source: Option<BoxError>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The token is past its expiry date: either the server answered 401
    /// `"API token has expired."`, or the token was known locally to be expired and
    /// the request was not sent (`locally` is then `true`).
    #[non_exhaustive]
    TokenExpired {
        /// `true` when the SDK refused to send a token it knew to be expired.
        locally: bool,
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// Why the token provider could not give a newer token, when it failed.
        #[source]
        source: Option<BoxError>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The server rejected the request body (422, Laravel validation).
    #[non_exhaustive]
    Validation {
        /// The summary message of the error body.
        message: String,
        /// Each invalid field with its messages, e.g. `"prompt" -> ["The prompt field must be at least 10 characters."]`.
        errors: BTreeMap<String, Vec<String>>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The API answered 404 with its own error body (`{"status": false, ...}`): the
    /// project is unknown, or not visible to this team. A 404 that is not the API's
    /// (a proxy's or a portal's page) is [`Error::Api`].
    #[non_exhaustive]
    NotFound {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// The call's shared facts (its project is the one asked for).
        context: ErrorContext,
    },

    /// The server answered 429.
    #[non_exhaustive]
    RateLimited {
        /// The delay the server asked for in `Retry-After` (seconds or HTTP date).
        retry_after: Option<Duration>,
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The team's credits ran out: the stream reported `credits_exhausted` and the
    /// generation stopped (the documentation states that unfinished work is not
    /// charged), or (`locally`) the credits breaker refused the call without sending
    /// it, because a stream of this client (or, with a journal, of any client of the
    /// scope) reported it.
    #[non_exhaustive]
    CreditsExhausted {
        /// The raw JSON text of the `credits_exhausted` event (empty when `locally`).
        raw: String,
        /// `true` when the client decided it without a request.
        locally: bool,
        /// Until when the breaker stays open, when `locally`.
        until: Option<SystemTime>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// A [budget](crate::ClientBuilder::budget) of the client's scope is spent for
    /// its current window: nothing was sent.
    #[non_exhaustive]
    BudgetExhausted {
        /// The budget that refused the call.
        budget: Budget,
        /// The scope it counts for.
        scope: String,
        /// When its current window ends and calls are admitted again.
        reset_time: SystemTime,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The event stream ended without `stream_end` or `credits_exhausted`: the
    /// generation may or may not have finished on the server. Poll the project with
    /// [`Client::project`](crate::Client::project) to find out, or let
    /// [`Client::finish_or_recover`](crate::Client::finish_or_recover) do it.
    #[non_exhaustive]
    Incomplete {
        /// How many events were delivered before the stream ended.
        events: u64,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// Polling the project found it failed (its `project_status` is `failed`,
    /// `error`, `cancelled`, `credits_exhausted`, ...; see
    /// [`ProjectState`](crate::ProjectState)).
    #[non_exhaustive]
    GenerationFailed {
        /// The project as the status endpoint last described it.
        project: Box<Project>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// A timeout fired; `kind` says which one.
    #[non_exhaustive]
    Timeout {
        /// Which timeout fired.
        kind: TimeoutKind,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// Any other answer the API is not documented to give: another status (5xx, a
    /// redirect, which is never followed, a 404 page that is not the API's), a
    /// success answer that is not an event stream (or not a project), a body
    /// compressed although no compression was asked for.
    #[non_exhaustive]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The `message` of a JSON error body, or what was wrong with the answer.
        message: Option<String>,
        /// The start of the body (capped, lossily decoded, the token masked), for logs.
        body: String,
        /// The delay the server asked for in `Retry-After` (a 503 may say), if any.
        retry_after: Option<Duration>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The connection failed or broke (DNS, connect, TLS, reset, ...).
    #[non_exhaustive]
    Transport {
        /// The underlying error.
        #[source]
        source: BoxError,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// An answer could not be decoded (the status answer).
    #[non_exhaustive]
    Decode {
        /// What could not be decoded (for example "project status").
        what: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// One event of the stream was larger than the configured cap
    /// ([`ClientBuilder::max_event_size`](crate::ClientBuilder::max_event_size)).
    /// This ends the stream.
    #[non_exhaustive]
    EventTooLarge {
        /// The configured cap in bytes.
        limit: usize,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The client's [journal](crate::journal) could not record a call about to be
    /// sent (nothing was sent), could not be opened (a file that is not a journal,
    /// a newer schema, a path that is not a regular file), or could not be read.
    #[non_exhaustive]
    Journal {
        /// What failed, naming the journal.
        message: String,
        /// Why.
        #[source]
        source: BoxError,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The outcome of a journaled call is unknown: it may or may not have reached
    /// the server and started work, and nothing tells which (see
    /// [`Client::resume`](crate::Client::resume)). The SDK sends nothing; the caller
    /// decides.
    #[non_exhaustive]
    OutcomeUnknown {
        /// The journal entry.
        local_id: LocalId,
        /// Whether the server is known to have accepted the call (its 2xx answer
        /// arrived): work certainly started, but the project is unknown.
        accepted: bool,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// [`Client::resume`](crate::Client::resume) found the entry settled, or driven
    /// by another instance (a live stream, or another host resuming it): nothing was
    /// done.
    #[non_exhaustive]
    EntryTaken {
        /// The journal entry.
        local_id: LocalId,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// The token provider could not give a token (the vault is sealed, a token file
    /// is unreadable, ...); the request was not sent.
    #[non_exhaustive]
    TokenProvider {
        /// What the provider said.
        #[source]
        source: BoxError,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// A local resource the client needs could not be had: the blocking client's
    /// runtime thread could not start, or stopped.
    #[non_exhaustive]
    Runtime {
        /// What failed.
        message: String,
        /// Why, when the system said.
        #[source]
        source: Option<BoxError>,
        /// The call's shared facts.
        context: ErrorContext,
    },

    /// Invalid configuration or argument, found before anything was sent.
    /// The message never contains the token.
    #[non_exhaustive]
    Config {
        /// What is wrong, in a few words.
        message: String,
        /// The call's shared facts.
        context: ErrorContext,
    },
}

/// The facts an error of a call shares with every other kind of error: stored once
/// (one small allocation, when the error is made), read through [`Error`]'s methods
/// or these.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ErrorContext(Box<Facts>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    project_id: Option<ProjectId>,
    attempts: u32,
    reached_server: bool,
    journal_id: Option<LocalId>,
}

impl ErrorContext {
    /// The project the call concerned, when known.
    pub fn project_id(&self) -> Option<&ProjectId> {
        self.0.project_id.as_ref()
    }

    /// Requests sent (see [`Error::attempts`]).
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// The call's entry in the client's journal, when it has one.
    pub fn journal_id(&self) -> Option<&LocalId> {
        self.0.journal_id.as_ref()
    }
}

impl fmt::Debug for ErrorContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorContext")
            .field("project_id", &self.0.project_id)
            .field("attempts", &self.0.attempts)
            .field("reached_server", &self.0.reached_server)
            .field("journal_id", &self.0.journal_id)
            .finish()
    }
}

/// A boxed error source, kept opaque so that third-party error types stay out of the
/// public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which timeout fired, in [`Error::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Establishing the connection took too long.
    Connect,
    /// A JSON call (the project status), or reading an error body, took longer than
    /// the request timeout.
    Request,
    /// A stream delivered no bytes at all for longer than the idle timeout (or its
    /// answer's headers did not come within it).
    Idle,
    /// A stream ran longer than its total deadline (or no concurrency slot freed up
    /// before it).
    Deadline,
    /// [`Client::wait_for_project`](crate::Client::wait_for_project) gave up before the
    /// project settled.
    Wait,
    /// The token provider did not hand out a token within the request timeout.
    TokenProvider,
}

impl TimeoutKind {
    /// What timed out, in a few words.
    fn what(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "connecting to the API timed out",
            TimeoutKind::Request => "the request timed out",
            TimeoutKind::Idle => "the stream went idle for longer than the idle timeout",
            TimeoutKind::Deadline => "the call ran past its deadline",
            TimeoutKind::Wait => "the project did not settle before the wait timed out",
            TimeoutKind::TokenProvider => "the token provider did not answer in time",
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let project = OfProject(self.project_id());
        match self {
            Error::Unauthorized { message, .. } => {
                write!(f, "the API refused the token (HTTP 401{})", Said(message))?;
                f.write_str(": it is missing, invalid or revoked; create one in the dashboard (Settings, API Tokens)")
            }
            Error::TokenExpired {
                locally: true, ..
            } => f.write_str("the API token has expired (known locally, nothing was sent): give the client a new token"),
            Error::TokenExpired { message, .. } => write!(
                f,
                "the API token has expired (HTTP 401{}): create a new token in the dashboard",
                Said(message)
            ),
            Error::Validation {
                message, errors, ..
            } => {
                write!(f, "the API rejected the request (HTTP 422{}", Said(&Some(message.clone())))?;
                f.write_str(")")?;
                for (field, messages) in errors {
                    write!(f, "; {field}: {:?}", messages.join(" "))?;
                }
                Ok(())
            }
            Error::NotFound { message, .. } => {
                write!(f, "{} was not found (HTTP 404{})", Subject(self.project_id()), Said(message))
            }
            Error::RateLimited {
                retry_after,
                message,
                ..
            } => {
                write!(f, "the API rate limited the call (HTTP 429{})", Said(message))?;
                match retry_after {
                    Some(delay) => write!(f, "; it asked to wait {}", Secs(*delay)),
                    None => Ok(()),
                }
            }
            Error::CreditsExhausted {
                locally: true,
                until,
                ..
            } => {
                f.write_str("not sent: the team's credits ran out (the credits breaker is open")?;
                if let Some(until) = until {
                    if let Ok(left) = until.duration_since(SystemTime::now()) {
                        write!(f, " for {} more", Secs(left))?;
                    }
                }
                f.write_str("); top up the credits, then reset the breaker")
            }
            Error::CreditsExhausted { .. } => write!(
                f,
                "the team's credits ran out during the generation{project}; top up the credits, then follow up on the project"
            ),
            Error::BudgetExhausted {
                budget,
                scope,
                reset_time,
                ..
            } => {
                write!(f, "not sent: the budget of {budget} of scope {scope:?} is spent")?;
                match reset_time.duration_since(SystemTime::now()) {
                    Ok(left) => write!(f, "; it resets in {}", Secs(left)),
                    Err(_) => f.write_str("; it resets now"),
                }
            }
            Error::Incomplete { events, .. } => write!(
                f,
                "the event stream{project} ended after {events} events without its terminal event; poll the project to learn how the generation ended"
            ),
            Error::GenerationFailed { project: failed, .. } => {
                write!(f, "project {} failed on the server", failed.project_id)?;
                match &failed.project_status {
                    Some(status) => write!(f, " (project_status {status:?})"),
                    None => Ok(()),
                }
            }
            Error::Timeout { kind, .. } => {
                write!(f, "{kind}{project}")?;
                match self.attempts() {
                    0 | 1 => Ok(()),
                    n => write!(f, " after {n} attempts"),
                }
            }
            Error::Api {
                status,
                message,
                body,
                retry_after,
                ..
            } => {
                write!(f, "unexpected answer from the API (HTTP {status}){project}")?;
                match (message, body.trim()) {
                    (Some(message), _) => write!(f, ": {message}")?,
                    (None, "") => {}
                    (None, body) => write!(f, ": {body}")?,
                }
                match retry_after {
                    Some(delay) => write!(f, "; it asked to wait {}", Secs(*delay)),
                    None => Ok(()),
                }
            }
            Error::Transport { .. } => {
                if self.may_have_started_work() {
                    write!(f, "the connection to the API broke{project}; the server may have started the work")
                } else {
                    write!(f, "could not reach the API{project}")
                }
            }
            Error::Decode { what, .. } => write!(f, "could not decode the {what} answer{project}"),
            Error::EventTooLarge { limit, .. } => write!(
                f,
                "an event{project} was larger than the size limit of {limit} bytes"
            ),
            Error::Journal { message, .. } => f.write_str(message),
            Error::OutcomeUnknown {
                local_id, accepted, ..
            } => {
                write!(f, "the outcome of journal entry {local_id}{project} is unknown: ")?;
                if *accepted {
                    f.write_str("the server accepted it, and nothing tells how it ended")
                } else {
                    f.write_str("it may or may not have reached the server; nothing was sent again")
                }
            }
            Error::EntryTaken { local_id, .. } => write!(
                f,
                "journal entry {local_id} is settled or driven by another instance; nothing was done"
            ),
            Error::TokenProvider { .. } => f.write_str("the token provider could not give a token; nothing was sent"),
            Error::Runtime { message, .. } => f.write_str(message),
            Error::Config { message, .. } => write!(f, "invalid configuration: {message}"),
        }
    }
}

/// ` of project p1`, or nothing.
struct OfProject<'a>(Option<&'a ProjectId>);

impl fmt::Display for OfProject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " of project {id}"),
            None => Ok(()),
        }
    }
}

/// `project p1`, or `the project`.
struct Subject<'a>(Option<&'a ProjectId>);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "project {id}"),
            None => f.write_str("the resource"),
        }
    }
}

/// `, "the server's words"`, or nothing.
struct Said<'a>(&'a Option<String>);

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_deref().map(str::trim) {
            Some(message) if !message.is_empty() => write!(f, ", {message:?}"),
            _ => Ok(()),
        }
    }
}

/// A delay in whole seconds (rounded up), or "a long time" beyond a year.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        if secs > 366 * 86_400 {
            f.write_str("a long time")
        } else {
            write!(f, "{secs} s")
        }
    }
}

/// The [`ErrorContext`] of any variant of `$error` (a `&Error` or a
/// `&mut Error`): every variant has one, listed once here.
macro_rules! context_of {
    ($error:expr) => {
        match $error {
            Error::Unauthorized { context, .. }
            | Error::TokenExpired { context, .. }
            | Error::Validation { context, .. }
            | Error::NotFound { context, .. }
            | Error::RateLimited { context, .. }
            | Error::CreditsExhausted { context, .. }
            | Error::BudgetExhausted { context, .. }
            | Error::Incomplete { context, .. }
            | Error::GenerationFailed { context, .. }
            | Error::Timeout { context, .. }
            | Error::Api { context, .. }
            | Error::Transport { context, .. }
            | Error::Decode { context, .. }
            | Error::EventTooLarge { context, .. }
            | Error::Journal { context, .. }
            | Error::OutcomeUnknown { context, .. }
            | Error::EntryTaken { context, .. }
            | Error::TokenProvider { context, .. }
            | Error::Runtime { context, .. }
            | Error::Config { context, .. } => context,
        }
    };
}

impl Error {
    /// The call's shared facts.
    pub fn context(&self) -> &ErrorContext {
        context_of!(self)
    }

    fn facts_mut(&mut self) -> &mut Facts {
        &mut context_of!(self).0
    }

    /// The HTTP status behind this error, when the server answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::TokenExpired { locally: false, .. } => Some(401),
            Error::Validation { .. } => Some(422),
            Error::NotFound { .. } => Some(404),
            Error::RateLimited { .. } => Some(429),
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The project this error concerns, when it was known: use it to poll the
    /// project or follow up after a failure.
    pub fn project_id(&self) -> Option<&ProjectId> {
        match self {
            Error::GenerationFailed { project, .. } => Some(&project.project_id),
            other => other.context().project_id(),
        }
    }

    /// The call's entry in the client's [journal](crate::journal), when it keeps
    /// one (resume or inspect it there).
    pub fn journal_id(&self) -> Option<&LocalId> {
        match self {
            Error::OutcomeUnknown { local_id, .. } | Error::EntryTaken { local_id, .. } => {
                Some(local_id)
            }
            other => other.context().journal_id(),
        }
    }

    /// The variant's name in snake_case (`"rate_limited"`, `"incomplete"`, ...): a
    /// stable label for logs, metrics and machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unauthorized { .. } => "unauthorized",
            Error::TokenExpired { .. } => "token_expired",
            Error::Validation { .. } => "validation",
            Error::NotFound { .. } => "not_found",
            Error::RateLimited { .. } => "rate_limited",
            Error::CreditsExhausted { .. } => "credits_exhausted",
            Error::BudgetExhausted { .. } => "budget_exhausted",
            Error::Incomplete { .. } => "incomplete",
            Error::GenerationFailed { .. } => "generation_failed",
            Error::Timeout { .. } => "timeout",
            Error::Api { .. } => "api",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::EventTooLarge { .. } => "event_too_large",
            Error::Journal { .. } => "journal",
            Error::OutcomeUnknown { .. } => "outcome_unknown",
            Error::EntryTaken { .. } => "entry_taken",
            Error::TokenProvider { .. } => "token_provider",
            Error::Runtime { .. } => "runtime",
            Error::Config { .. } => "config",
        }
    }

    /// The delay the server asked for before a retry (`Retry-After` of a 429 or a
    /// 503), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the same call, made again later unchanged, may succeed: a rate limit, a
    /// timeout, a broken connection or stream, a 5xx. A fact about the failure, not
    /// advice: before resending a generate call, ask
    /// [`may_have_started_work`](Error::may_have_started_work) (see the table on
    /// [`Error`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::RateLimited { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Incomplete { .. }
            | Error::Decode { .. }
            | Error::TokenProvider { .. } => true,
            Error::Api { status, .. } => *status >= 500 || matches!(status, 408 | 425),
            _ => false,
        }
    }

    /// Whether the request reached the server in a way that may have started work:
    /// resending it could create a second project or spend credits twice. `true` for
    /// any error after a generate answer began (a broken or oversized stream, a
    /// timeout while waiting for it, a 5xx from a gateway); `false` for a refused
    /// connection, a 401, 404, 422 or 429, a status call, and everything decided
    /// before sending (see the table on [`Error`]).
    pub fn may_have_started_work(&self) -> bool {
        match self {
            Error::Incomplete { .. }
            | Error::GenerationFailed { .. }
            | Error::EventTooLarge { .. }
            | Error::OutcomeUnknown { .. } => true,
            Error::CreditsExhausted { locally, .. } => !locally,
            // A deadline that passed before anything was sent (waiting for a
            // generation slot, or for the token) started nothing.
            Error::Timeout { kind, .. } => {
                self.attempts() > 0 && matches!(kind, TimeoutKind::Idle | TimeoutKind::Deadline)
            }
            Error::Api { .. } | Error::Transport { .. } => self.context().0.reached_server,
            _ => false,
        }
    }

    /// How many requests were sent before this error: more than 1 when the client's
    /// [`RetryPolicy`](crate::RetryPolicy) retried or a token refresh led to a resend,
    /// timed-out requests included; for an error of a stream, the requests that
    /// opened it; 0 when nothing was sent.
    pub fn attempts(&self) -> u32 {
        self.context().attempts()
    }

    /// Records the requests sent.
    pub(crate) fn with_attempts(mut self, count: u32) -> Self {
        self.facts_mut().attempts = count;
        self
    }

    /// Attaches the project id, when the error has none yet.
    pub(crate) fn with_project_id(mut self, id: Option<&ProjectId>) -> Self {
        if let Some(id) = id {
            self.facts_mut()
                .project_id
                .get_or_insert_with(|| id.clone());
        }
        self
    }

    /// Attaches the call's journal entry.
    pub(crate) fn with_journal_id(mut self, id: Option<&LocalId>) -> Self {
        if let Some(id) = id {
            self.facts_mut()
                .journal_id
                .get_or_insert_with(|| id.clone());
        }
        self
    }

    /// Marks a transport failure or an unexpected answer as one that may have started
    /// work (a generate call that reached the server).
    pub(crate) fn started_work(mut self, started: bool) -> Self {
        self.facts_mut().reached_server = started;
        self
    }

    /// Maps a reqwest error; `timeout` names the timeout that applies when it says it
    /// timed out without being a connect timeout.
    pub(crate) fn from_reqwest(error: reqwest::Error, timeout: TimeoutKind) -> Self {
        if error.is_timeout() {
            let kind = if error.is_connect() {
                TimeoutKind::Connect
            } else {
                timeout
            };
            return Error::timeout(kind);
        }
        Error::transport(error)
    }

    pub(crate) fn transport(source: impl Into<BoxError>) -> Self {
        Error::Transport {
            source: source.into(),
            context: ErrorContext::sent(),
        }
    }

    /// A token provider's failure: this crate's own error as it is, anything else as
    /// [`Error::TokenProvider`].
    pub(crate) fn from_provider(error: BoxError) -> Self {
        match error.downcast::<Error>() {
            Ok(error) => *error,
            Err(source) => Error::TokenProvider {
                source,
                context: ErrorContext::default(),
            },
        }
    }

    pub(crate) fn timeout(kind: TimeoutKind) -> Self {
        Error::Timeout {
            kind,
            context: ErrorContext::sent(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            context: ErrorContext::default(),
        }
    }

    pub(crate) fn decode(what: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Decode {
            what,
            source: source.into(),
            context: ErrorContext::sent(),
        }
    }

    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(
            dead_code,
            reason = "only the file and database engines fail with a journal error of their own"
        )
    )]
    pub(crate) fn journal(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Journal {
            message: message.into(),
            source: source.into(),
            context: ErrorContext::default(),
        }
    }

    #[cfg_attr(
        not(feature = "blocking"),
        allow(
            dead_code,
            reason = "only the blocking facade has a runtime of its own"
        )
    )]
    pub(crate) fn runtime(message: impl Into<String>, source: Option<BoxError>) -> Self {
        Error::Runtime {
            message: message.into(),
            source,
            context: ErrorContext::default(),
        }
    }

    /// A token known locally to be expired, not sent; `source` says why the provider
    /// could not give a newer one, when it failed.
    pub(crate) fn token_expired_locally(source: Option<BoxError>) -> Self {
        Error::TokenExpired {
            locally: true,
            message: None,
            source,
            context: ErrorContext::default(),
        }
    }
}

impl ErrorContext {
    /// The context of a call that sent one request.
    pub(crate) fn sent() -> Self {
        ErrorContext(Box::new(Facts {
            attempts: 1,
            ..Facts::default()
        }))
    }

    /// The context of a call about `project_id`, `attempts` requests sent.
    pub(crate) fn of(project_id: Option<ProjectId>, attempts: u32) -> Self {
        ErrorContext(Box::new(Facts {
            project_id,
            attempts,
            ..Facts::default()
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One of every variant, for the tests that go over all of them.
    pub(crate) fn every_variant() -> Vec<Error> {
        let project: Project = crate::project::test_project("p1", "failed");
        let with = |error: Error| error.with_project_id(Some(&ProjectId::from("p1")));
        vec![
            Error::Unauthorized {
                message: Some("Unauthorized.".into()),
                source: None,
                context: ErrorContext::sent(),
            },
            Error::token_expired_locally(None),
            Error::Validation {
                message: "The prompt field is required.".into(),
                errors: BTreeMap::from([(
                    "prompt".to_owned(),
                    vec!["The prompt field is required.".to_owned()],
                )]),
                context: ErrorContext::sent(),
            },
            with(Error::NotFound {
                message: Some("Project not found.".into()),
                context: ErrorContext::sent(),
            }),
            Error::RateLimited {
                retry_after: Some(Duration::from_secs(120)),
                message: Some("Too Many Attempts.".into()),
                context: ErrorContext::sent(),
            },
            with(Error::CreditsExhausted {
                raw: r#"{"type":"credits_exhausted"}"#.into(),
                locally: false,
                until: None,
                context: ErrorContext::sent(),
            }),
            Error::BudgetExhausted {
                budget: Budget::per_hour(10),
                scope: "tenant-a".into(),
                reset_time: SystemTime::now() + Duration::from_secs(600),
                context: ErrorContext::default(),
            },
            with(Error::Incomplete {
                events: 12,
                context: ErrorContext::sent(),
            }),
            Error::GenerationFailed {
                project: Box::new(project),
                context: ErrorContext::sent(),
            },
            with(Error::timeout(TimeoutKind::Idle)),
            Error::timeout(TimeoutKind::Connect),
            Error::timeout(TimeoutKind::Request).with_attempts(3),
            Error::timeout(TimeoutKind::Deadline),
            Error::timeout(TimeoutKind::Wait),
            Error::timeout(TimeoutKind::TokenProvider),
            Error::Api {
                status: 502,
                message: None,
                body: "<html>Bad Gateway</html>".into(),
                retry_after: None,
                context: ErrorContext::sent(),
            }
            .started_work(true),
            Error::transport("connection refused"),
            Error::decode("project status", "expected value at line 1 column 1"),
            with(Error::EventTooLarge {
                limit: 1024,
                context: ErrorContext::sent(),
            }),
            Error::from_provider("the vault is sealed".into()),
            Error::journal(
                "the journal /var/lib/app.db cannot record a call",
                "disk full",
            ),
            Error::OutcomeUnknown {
                local_id: LocalId::from("lcj-1"),
                accepted: false,
                context: ErrorContext::default(),
            },
            Error::EntryTaken {
                local_id: LocalId::from("lcj-2"),
                context: ErrorContext::default(),
            },
            Error::runtime("the blocking client's runtime thread could not start", None),
            Error::config("base URL must use https"),
        ]
    }

    #[test]
    fn error_stays_small() {
        // A `Result<Event>` should not pay for more than a few words.
        assert!(
            std::mem::size_of::<Error>() <= 96,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        for e in every_variant() {
            let text = e.to_string();
            assert!(!text.ends_with('.'), "{text}");
            assert!(
                text.chars().next().is_some_and(|c| c.is_lowercase()),
                "{text}"
            );
        }
    }

    #[test]
    fn every_variant_has_a_distinct_kind() {
        let kinds: std::collections::BTreeSet<_> =
            every_variant().iter().map(Error::kind).collect();
        // Six timeouts share one kind.
        assert_eq!(kinds.len(), every_variant().len() - 5);
    }

    #[test]
    fn a_deadline_that_passed_before_sending_started_nothing() {
        let waited = Error::timeout(TimeoutKind::Deadline).with_attempts(0);
        assert!(!waited.may_have_started_work());
        assert!(Error::timeout(TimeoutKind::Deadline).may_have_started_work());
        assert!(Error::timeout(TimeoutKind::Idle).may_have_started_work());
    }

    #[test]
    fn the_facts_follow_the_table() {
        let facts: Vec<(&str, bool, bool)> = every_variant()
            .iter()
            .map(|e| (e.kind(), e.is_transient(), e.may_have_started_work()))
            .collect();
        assert_eq!(
            facts,
            [
                ("unauthorized", false, false),
                ("token_expired", false, false),
                ("validation", false, false),
                ("not_found", false, false),
                ("rate_limited", true, false),
                ("credits_exhausted", false, true),
                ("budget_exhausted", false, false),
                ("incomplete", true, true),
                ("generation_failed", false, true),
                ("timeout", true, true),
                ("timeout", true, false),
                ("timeout", true, false),
                ("timeout", true, true),
                ("timeout", true, false),
                ("timeout", true, false),
                ("api", true, true),
                ("transport", true, false),
                ("decode", true, false),
                ("event_too_large", false, true),
                ("token_provider", true, false),
                ("journal", false, false),
                ("outcome_unknown", false, true),
                ("entry_taken", false, false),
                ("runtime", false, false),
                ("config", false, false),
            ]
        );
    }

    /// What each variant's text must name: its own facts.
    fn facts_of(error: &Error) -> Vec<&'static str> {
        match error {
            Error::Unauthorized { .. } => vec!["401", "\"Unauthorized.\"", "revoked", "dashboard"],
            Error::TokenExpired { locally: true, .. } => {
                vec!["expired", "nothing was sent", "new token"]
            }
            Error::TokenExpired { .. } => vec!["401", "expired", "new token"],
            Error::Validation { .. } => vec!["422", "The prompt field is required.", "prompt:"],
            Error::NotFound { .. } => vec!["project p1", "404", "Project not found."],
            Error::RateLimited { .. } => vec!["429", "Too Many Attempts.", "120 s"],
            Error::CreditsExhausted { .. } => vec!["credits", "project p1", "top up"],
            Error::BudgetExhausted { .. } => {
                vec!["10/hour", "\"tenant-a\"", "resets in", "not sent"]
            }
            Error::Incomplete { .. } => vec!["project p1", "12 events", "poll"],
            Error::GenerationFailed { .. } => vec!["project p1", "failed", "\"failed\""],
            Error::Timeout {
                kind: TimeoutKind::Idle,
                ..
            } => vec!["idle", "project p1"],
            Error::Timeout {
                kind: TimeoutKind::Request,
                ..
            } => vec!["timed out", "3 attempts"],
            Error::Timeout {
                kind: TimeoutKind::Connect,
                ..
            } => vec!["connecting"],
            Error::Timeout {
                kind: TimeoutKind::Deadline,
                ..
            } => vec!["deadline"],
            Error::Timeout {
                kind: TimeoutKind::Wait,
                ..
            } => vec!["wait timed out"],
            Error::Timeout { .. } => vec!["token provider"],
            Error::Api { .. } => vec!["HTTP 502", "Bad Gateway"],
            Error::Transport { .. } => vec!["could not reach the API"],
            Error::Decode { .. } => vec!["project status"],
            Error::EventTooLarge { .. } => vec!["1024 bytes", "project p1"],
            Error::Journal { .. } => vec!["/var/lib/app.db"],
            Error::OutcomeUnknown { .. } => vec!["lcj-1", "unknown", "nothing was sent again"],
            Error::EntryTaken { .. } => vec!["lcj-2", "another instance"],
            Error::TokenProvider { .. } => vec!["token provider", "nothing was sent"],
            Error::Runtime { .. } => vec!["runtime thread"],
            Error::Config { .. } => vec!["invalid configuration", "https"],
        }
    }

    #[test]
    fn every_variant_names_its_facts_and_its_causes_follow_once_in_the_chain() {
        for error in every_variant() {
            let kind = error.kind();
            let plain = error.to_string();
            for fact in facts_of(&error) {
                assert!(plain.contains(fact), "{kind}: {plain:?} lacks {fact:?}");
            }
            // `{:#}` of anyhow: this error's text, then each cause once.
            let chain = format!("{:#}", anyhow::Error::new(error));
            assert!(chain.starts_with(&plain), "{chain}");
            let mut causes = Vec::new();
            for cause in chain
                .strip_prefix(&plain)
                .unwrap_or_default()
                .split(": ")
                .skip(1)
            {
                assert!(
                    !plain.contains(cause),
                    "{kind}: the cause {cause:?} is repeated in {plain:?}"
                );
                causes.push(cause.to_owned());
            }
            match kind {
                "transport" => assert_eq!(causes, ["connection refused"], "{chain}"),
                "decode" => assert_eq!(causes, ["expected value at line 1 column 1"]),
                "token_provider" => assert_eq!(causes, ["the vault is sealed"]),
                "journal" => assert_eq!(causes, ["disk full"]),
                _ => {}
            }
        }
    }
}
