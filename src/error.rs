//! The one error type of the crate.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::id::LocalId;
use crate::{Project, ProjectId};

/// The error type of every fallible call in this crate.
///
/// One variant per situation a caller handles differently. Variants carry the
/// project id whenever it was known when the error happened, so that a failed or
/// interrupted generation can still be followed up or polled
/// (see [`Error::project_id`]).
///
/// No variant ever holds the API token, and no message echoes it.
///
/// Every variant is `#[non_exhaustive]`: match with `..`
/// (`Error::RateLimited { retry_after, .. }`), and expect new variants and new fields
/// in minor releases. Errors are made by this crate only.
///
/// Two questions are answered for every variant by [`Error::is_transient`] (may the
/// same call succeed later, unchanged?) and [`Error::may_have_started_work`] (could a
/// resend create a second project or spend credits twice?):
///
/// | variant | `is_transient` | `may_have_started_work` |
/// |---|---|---|
/// | `Unauthorized`, `TokenExpired`, `Validation`, `NotFound` | no | no |
/// | `RateLimited` | yes | no |
/// | `CreditsExhausted` | no | yes, unless `locally` |
/// | `Incomplete` | yes | yes |
/// | `GenerationFailed` | no | yes |
/// | `Timeout` | yes | for `Idle` and `Deadline` once a generate call was sent (`attempts > 0`); not for `Connect`, `Request`, `Wait`, `TokenProvider` |
/// | `Api` | for 5xx, 408 and 425 | its `may_have_started_work` field: a generate call that reached the server |
/// | `Transport` | yes | its `may_have_started_work` field: a generate call that was sent |
/// | `Decode` | yes (a garbled status answer) | no |
/// | `EventTooLarge` | no | yes |
/// | `TokenProvider` | yes (a secrets store may answer later) | no |
/// | `Journal` | no | no (nothing was sent) |
/// | `OutcomeUnknown` | no | yes |
/// | `Config` | no | no |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered 401 because the token is missing, invalid or revoked
    /// (`{"message": "Unauthorized."}`). Revocation takes effect immediately.
    #[error("unauthorized: the API token is missing, invalid or revoked")]
    #[non_exhaustive]
    Unauthorized {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// The project of the call, when it named one.
        project_id: Option<ProjectId>,
        /// Requests sent, the resend after a token refresh included.
        attempts: u32,
        /// Why the token provider could not give a newer token, when it failed.
        #[source]
        source: Option<BoxError>,
    },

    /// The token is past its expiry date: either the server answered 401
    /// `"API token has expired."`, or the token was known locally to be expired and
    /// the request was not sent (`locally` is then `true`).
    #[error("the API token has expired")]
    #[non_exhaustive]
    TokenExpired {
        /// `true` when the SDK refused to send a token it knew to be expired.
        locally: bool,
        /// The project of the call, when it named one.
        project_id: Option<ProjectId>,
        /// Requests sent (0 when `locally`).
        attempts: u32,
        /// Why the token provider could not give a newer token, when it failed.
        #[source]
        source: Option<BoxError>,
    },

    /// The server rejected the request body (422, Laravel validation).
    #[error("validation failed: {message}")]
    #[non_exhaustive]
    Validation {
        /// The summary message of the error body.
        message: String,
        /// Each invalid field with its messages, e.g. `"prompt" -> ["The prompt field must be at least 10 characters."]`.
        errors: BTreeMap<String, Vec<String>>,
        /// The project of the call, when it named one.
        project_id: Option<ProjectId>,
        /// Requests sent, the first included.
        attempts: u32,
    },

    /// The server answered 404: the project is unknown (or not visible to this team).
    #[error("not found")]
    #[non_exhaustive]
    NotFound {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// The project that was asked for, when the call named one.
        project_id: Option<ProjectId>,
        /// Requests sent, the first included.
        attempts: u32,
    },

    /// The server answered 429.
    #[error("rate limited")]
    #[non_exhaustive]
    RateLimited {
        /// The delay the server asked for in `Retry-After` (seconds or HTTP date).
        retry_after: Option<Duration>,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, the first included.
        attempts: u32,
    },

    /// The team's credits ran out: the stream reported `credits_exhausted` and the
    /// generation stopped (the documentation states that unfinished work is not
    /// charged), or (`locally`) the client's credits breaker refused the call without
    /// sending it, because an earlier stream reported it.
    #[error("the team's credits are exhausted")]
    #[non_exhaustive]
    CreditsExhausted {
        /// The project being generated, when known.
        project_id: Option<ProjectId>,
        /// The raw JSON text of the `credits_exhausted` event (empty when `locally`).
        raw: String,
        /// `true` when the client decided it without a request.
        locally: bool,
    },

    /// The event stream ended without `stream_end` or `credits_exhausted`: the
    /// generation may or may not have finished on the server. Poll the project with
    /// [`Client::project`](crate::Client::project) to find out, or let
    /// [`Client::finish_or_recover`](crate::Client::finish_or_recover) do it.
    #[error("the event stream ended before its terminal event")]
    #[non_exhaustive]
    Incomplete {
        /// The project id seen so far, if any.
        project_id: Option<ProjectId>,
        /// How many events were delivered before the stream ended.
        events: u64,
    },

    /// Polling the project after a broken stream found it failed (its
    /// `project_status` is `failed`, `error`, `cancelled`, `credits_exhausted`, ...;
    /// see [`ProjectState`](crate::ProjectState)).
    #[error("the generation failed on the server")]
    #[non_exhaustive]
    GenerationFailed {
        /// The project as the status endpoint last described it.
        project: Box<Project>,
    },

    /// A timeout fired; `kind` says which one.
    #[error("{kind}")]
    #[non_exhaustive]
    Timeout {
        /// Which timeout fired.
        kind: TimeoutKind,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, timed-out ones included (0 when none was).
        attempts: u32,
    },

    /// Any other answer the API is not documented to give: another status (5xx, a
    /// redirect, which is never followed), a success answer that is not an event
    /// stream (or not a project), a body compressed although no compression was asked
    /// for.
    #[error("unexpected answer from the API (HTTP {status})")]
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
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, the first included.
        attempts: u32,
        /// Whether the request was a generate call that may have started work on the
        /// server (see [`Error::may_have_started_work`]).
        may_have_started_work: bool,
    },

    /// The connection failed or broke (DNS, connect, TLS, reset, ...).
    #[error("transport error")]
    #[non_exhaustive]
    Transport {
        /// The underlying error.
        #[source]
        source: BoxError,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, the first included (0 when the failure
        /// came before any request, such as a runtime that could not start).
        attempts: u32,
        /// Whether the request was a generate call that may have reached the server
        /// (`false` when the connection was never established).
        may_have_started_work: bool,
    },

    /// An answer could not be decoded (the status answer).
    #[error("could not decode {what}")]
    #[non_exhaustive]
    Decode {
        /// What could not be decoded (for example "project status").
        what: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
    },

    /// One event of the stream was larger than the configured cap
    /// ([`ClientBuilder::max_event_size`](crate::ClientBuilder::max_event_size)).
    /// This ends the stream.
    #[error("an event exceeded the size limit of {limit} bytes")]
    #[non_exhaustive]
    EventTooLarge {
        /// The configured cap in bytes.
        limit: usize,
        /// The project being generated, when known.
        project_id: Option<ProjectId>,
    },

    /// The client's journal could not record a call about to be sent; nothing was
    /// sent (see [`journal`](crate::journal)). Also from opening a
    /// [`FileJournal`](crate::journal::FileJournal).
    #[error("{message}")]
    #[non_exhaustive]
    Journal {
        /// What failed, naming the journal.
        message: String,
        /// Why.
        #[source]
        source: BoxError,
    },

    /// [`Client::resume`](crate::Client::resume) met an entry without a project id:
    /// the request may or may not have reached the server and started work, and
    /// nothing tells which. The SDK sends nothing; the caller decides.
    #[error("the outcome of journal entry {local_id} is unknown: it may have started work")]
    #[non_exhaustive]
    OutcomeUnknown {
        /// The journal entry.
        local_id: LocalId,
    },

    /// The token provider could not give a token (the vault is sealed, a token file
    /// is unreadable, ...); the request was not sent.
    #[error("the token provider failed")]
    #[non_exhaustive]
    TokenProvider {
        /// What the provider said.
        #[source]
        source: BoxError,
    },

    /// Invalid configuration or argument, found before anything was sent.
    /// The message never contains the token.
    #[error("invalid configuration: {message}")]
    #[non_exhaustive]
    Config {
        /// What is wrong, in a few words.
        message: String,
    },
}

/// Runs `$then` on the `project_id` field of the variants that carry one (the list
/// lives here only), `$otherwise` for the others.
macro_rules! project_id_field {
    ($error:expr, |$id:ident| $then:expr, $otherwise:expr) => {
        match $error {
            Error::Unauthorized {
                project_id: $id, ..
            }
            | Error::TokenExpired {
                project_id: $id, ..
            }
            | Error::Validation {
                project_id: $id, ..
            }
            | Error::NotFound {
                project_id: $id, ..
            }
            | Error::RateLimited {
                project_id: $id, ..
            }
            | Error::CreditsExhausted {
                project_id: $id, ..
            }
            | Error::Incomplete {
                project_id: $id, ..
            }
            | Error::Timeout {
                project_id: $id, ..
            }
            | Error::Api {
                project_id: $id, ..
            }
            | Error::Transport {
                project_id: $id, ..
            }
            | Error::Decode {
                project_id: $id, ..
            }
            | Error::EventTooLarge {
                project_id: $id, ..
            } => $then,
            _ => $otherwise,
        }
    };
}

/// Runs `$then` on the `attempts` field of the variants that carry one.
macro_rules! attempts_field {
    ($error:expr, |$n:ident| $then:expr, $otherwise:expr) => {
        match $error {
            Error::Unauthorized { attempts: $n, .. }
            | Error::TokenExpired { attempts: $n, .. }
            | Error::Validation { attempts: $n, .. }
            | Error::NotFound { attempts: $n, .. }
            | Error::RateLimited { attempts: $n, .. }
            | Error::Timeout { attempts: $n, .. }
            | Error::Api { attempts: $n, .. }
            | Error::Transport { attempts: $n, .. } => $then,
            _ => $otherwise,
        }
    };
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
    /// A stream ran longer than its optional total deadline.
    Deadline,
    /// [`Client::wait_for_project`](crate::Client::wait_for_project) gave up before the
    /// project settled.
    Wait,
    /// The token provider did not hand out a token within the request timeout.
    TokenProvider,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connecting to the API timed out",
            TimeoutKind::Request => "the request timed out",
            TimeoutKind::Idle => "the stream went idle for longer than the idle timeout",
            TimeoutKind::Deadline => "the stream ran past its deadline",
            TimeoutKind::Wait => "the project did not settle before the wait timed out",
            TimeoutKind::TokenProvider => "the token provider did not answer in time",
        })
    }
}

impl Error {
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
            Error::GenerationFailed { project } => Some(&project.project_id),
            other => project_id_field!(other, |project_id| project_id.as_ref(), None),
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
            Error::Incomplete { .. } => "incomplete",
            Error::GenerationFailed { .. } => "generation_failed",
            Error::Timeout { .. } => "timeout",
            Error::Api { .. } => "api",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::EventTooLarge { .. } => "event_too_large",
            Error::TokenProvider { .. } => "token_provider",
            Error::Journal { .. } => "journal",
            Error::OutcomeUnknown { .. } => "outcome_unknown",
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
            Error::Timeout { kind, attempts, .. } => {
                *attempts > 0 && matches!(kind, TimeoutKind::Idle | TimeoutKind::Deadline)
            }
            Error::Api {
                may_have_started_work,
                ..
            }
            | Error::Transport {
                may_have_started_work,
                ..
            } => *may_have_started_work,
            _ => false,
        }
    }

    /// How many requests were sent before this error: more than 1 when the client's
    /// [`RetryPolicy`](crate::RetryPolicy) retried or a token refresh led to a resend,
    /// timed-out requests included. 1 for errors that carry no count (those of a
    /// stream: see [`Stats::attempts`](crate::Stats::attempts)).
    pub fn attempts(&self) -> u32 {
        attempts_field!(self, |attempts| *attempts, 1)
    }

    /// Records the requests sent, on the errors that carry the count.
    pub(crate) fn with_attempts(mut self, count: u32) -> Self {
        attempts_field!(&mut self, |attempts| *attempts = count, ());
        self
    }

    /// Attaches the project id to an error that can carry one, when it has none yet.
    pub(crate) fn with_project_id(mut self, id: Option<&ProjectId>) -> Self {
        let Some(id) = id else { return self };
        project_id_field!(
            &mut self,
            |project_id| {
                project_id.get_or_insert_with(|| id.clone());
            },
            ()
        );
        self
    }

    /// Marks a transport failure or an unexpected answer as one that may have started
    /// work.
    pub(crate) fn started_work(mut self, started: bool) -> Self {
        if let Error::Api {
            may_have_started_work,
            ..
        }
        | Error::Transport {
            may_have_started_work,
            ..
        } = &mut self
        {
            *may_have_started_work = started;
        }
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
            project_id: None,
            attempts: 1,
            may_have_started_work: false,
        }
    }

    /// A token provider's failure: this crate's own error as it is, anything else as
    /// [`Error::TokenProvider`].
    pub(crate) fn from_provider(error: BoxError) -> Self {
        match error.downcast::<Error>() {
            Ok(error) => *error,
            Err(source) => Error::TokenProvider { source },
        }
    }

    pub(crate) fn timeout(kind: TimeoutKind) -> Self {
        Error::Timeout {
            kind,
            project_id: None,
            attempts: 1,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    pub(crate) fn decode(what: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Decode {
            what,
            source: source.into(),
            project_id: None,
        }
    }

    /// A token known locally to be expired, not sent; `source` says why the provider
    /// could not give a newer one, when it failed.
    pub(crate) fn token_expired_locally(source: Option<BoxError>) -> Self {
        Error::TokenExpired {
            locally: true,
            project_id: None,
            attempts: 0,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every variant, for the tests that go over all of them.
    fn every_variant() -> Vec<Error> {
        let project: Project = crate::project::test_project("p1", "failed");
        vec![
            Error::Unauthorized {
                message: None,
                project_id: None,
                attempts: 1,
                source: None,
            },
            Error::token_expired_locally(None),
            Error::Validation {
                message: "the prompt field is required".into(),
                errors: BTreeMap::new(),
                project_id: None,
                attempts: 1,
            },
            Error::NotFound {
                message: None,
                project_id: None,
                attempts: 1,
            },
            Error::RateLimited {
                retry_after: None,
                project_id: None,
                attempts: 1,
            },
            Error::CreditsExhausted {
                project_id: None,
                raw: String::new(),
                locally: false,
            },
            Error::Incomplete {
                project_id: None,
                events: 0,
            },
            Error::GenerationFailed {
                project: Box::new(project),
            },
            Error::timeout(TimeoutKind::Idle),
            Error::timeout(TimeoutKind::Connect),
            Error::timeout(TimeoutKind::Request),
            Error::timeout(TimeoutKind::Deadline),
            Error::timeout(TimeoutKind::Wait),
            Error::timeout(TimeoutKind::TokenProvider),
            Error::Api {
                status: 502,
                message: None,
                body: String::new(),
                retry_after: None,
                project_id: None,
                attempts: 1,
                may_have_started_work: true,
            },
            Error::transport("reset"),
            Error::decode("project status", "not JSON"),
            Error::EventTooLarge {
                limit: 1,
                project_id: None,
            },
            Error::from_provider("the vault is sealed".into()),
            Error::Journal {
                message: "the journal /x cannot write".into(),
                source: "disk full".into(),
            },
            Error::OutcomeUnknown {
                local_id: LocalId::from("lcj-1"),
            },
            Error::config("base URL must use https"),
        ]
    }

    #[test]
    fn error_stays_small() {
        // The largest variant (`Api`) decides; a `Result<Event>` should not pay for
        // more than a few words.
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
                ("config", false, false),
            ]
        );
    }
}
