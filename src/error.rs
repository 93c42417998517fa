//! The one error type of the crate.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::ProjectId;

/// The error type of every fallible call in this crate.
///
/// One variant per situation a caller handles differently. Variants carry the
/// project id whenever it was known when the error happened, so that a failed or
/// interrupted generation can still be followed up or polled
/// (see [`Error::project_id`]).
///
/// No variant ever holds the API token, and no message echoes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered 401 because the token is missing, invalid or revoked
    /// (`{"message": "Unauthorized."}`). Revocation takes effect immediately.
    #[error("unauthorized: the API token is missing, invalid or revoked")]
    Unauthorized {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
    },

    /// The token is past its expiry date: either the server answered 401
    /// `"API token has expired."`, or the token was known locally to be expired and
    /// the request was not sent (`locally` is then `true`).
    #[error("the API token has expired")]
    TokenExpired {
        /// `true` when the SDK refused to send a token it knew to be expired.
        locally: bool,
    },

    /// The server rejected the request body (422, Laravel validation).
    #[error("validation failed: {message}")]
    Validation {
        /// The summary message of the error body.
        message: String,
        /// Each invalid field with its messages, e.g. `"prompt" -> ["The prompt field must be at least 10 characters."]`.
        errors: BTreeMap<String, Vec<String>>,
    },

    /// The server answered 404: the project is unknown (or not visible to this team).
    #[error("not found")]
    NotFound {
        /// The message of the error body, when the server gave one.
        message: Option<String>,
        /// The project that was asked for, when the call named one.
        project_id: Option<ProjectId>,
    },

    /// The server answered 429.
    #[error("rate limited")]
    RateLimited {
        /// The delay the server asked for in `Retry-After` (seconds or HTTP date).
        retry_after: Option<Duration>,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, the first included.
        attempts: u32,
    },

    /// The stream reported `credits_exhausted`: the team's credits ran out and the
    /// generation stopped. The documentation states that unfinished work is not
    /// charged. This ends the stream.
    #[error("the team's credits are exhausted")]
    CreditsExhausted {
        /// The project being generated, when known.
        project_id: Option<ProjectId>,
        /// The raw JSON text of the `credits_exhausted` event.
        raw: String,
    },

    /// The event stream ended without `stream_end` or `credits_exhausted`: the
    /// generation may or may not have finished on the server. Poll the project with
    /// [`Client::project`](crate::Client::project) to find out.
    #[error("the event stream ended before its terminal event")]
    Incomplete {
        /// The project id seen so far, if any.
        project_id: Option<ProjectId>,
        /// How many events were delivered before the stream ended.
        events: u64,
    },

    /// A timeout fired; `kind` says which one.
    #[error("{kind} timed out")]
    Timeout {
        /// Which timeout fired.
        kind: TimeoutKind,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
    },

    /// Any other non-success answer, including redirects (never followed) and
    /// success answers that are not an event stream.
    #[error("unexpected answer from the API (HTTP {status})")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The `message` of a JSON error body, when there was one.
        message: Option<String>,
        /// The start of the body (capped, lossily decoded), for logs.
        body: String,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, the first included.
        attempts: u32,
    },

    /// The connection failed or broke (DNS, connect, TLS, reset, ...).
    #[error("transport error")]
    Transport {
        /// The underlying error.
        #[source]
        source: BoxError,
        /// The project of the call, when known.
        project_id: Option<ProjectId>,
        /// Requests sent before giving up, the first included (0 when the failure
        /// came before any request, such as a runtime that could not start).
        attempts: u32,
    },

    /// An answer or event could not be decoded.
    #[error("could not decode {what}")]
    Decode {
        /// What could not be decoded (for example "event", "project status").
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
    EventTooLarge {
        /// The configured cap in bytes.
        limit: usize,
        /// The project being generated, when known.
        project_id: Option<ProjectId>,
    },

    /// Invalid configuration or argument, found before anything was sent.
    /// The message never contains the token.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Runs `$then` on the `project_id` field of the variants that carry one (the list
/// lives here only), `$otherwise` for the others.
macro_rules! project_id_field {
    ($error:expr, |$id:ident| $then:expr, $otherwise:expr) => {
        match $error {
            Error::NotFound {
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

/// A boxed error source, kept opaque so that third-party error types stay out of the
/// public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which timeout fired, in [`Error::Timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Establishing the connection took too long.
    Connect,
    /// A JSON call (the project status) took longer than its total timeout.
    Request,
    /// A stream delivered no bytes at all for longer than the idle timeout.
    Idle,
    /// A stream ran longer than its optional total deadline.
    Deadline,
    /// [`Client::wait_for_project`](crate::Client::wait_for_project) gave up before the
    /// project settled.
    Wait,
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::Request => "request",
            TimeoutKind::Idle => "stream idle time",
            TimeoutKind::Deadline => "stream deadline",
            TimeoutKind::Wait => "waiting for the project",
        })
    }
}

impl Error {
    /// The HTTP status behind this error, when the server answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::TokenExpired { locally: false } => Some(401),
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
        project_id_field!(self, |project_id| project_id.as_ref(), None)
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
            Error::Timeout { .. } => "timeout",
            Error::Api { .. } => "api",
            Error::Transport { .. } => "transport",
            Error::Decode { .. } => "decode",
            Error::EventTooLarge { .. } => "event_too_large",
            Error::Config(_) => "config",
        }
    }

    /// The delay the server asked for before a retry (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the same call may succeed if made again later, unchanged.
    ///
    /// `true` for rate limits, timeouts, transport failures and 5xx answers. This says
    /// nothing about whether a retry is *safe*: a generation interrupted mid-stream
    /// has already started work on the server (see [`Error::project_id`]), so resend
    /// a generate call only when you accept a second project.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::RateLimited { .. } | Error::Timeout { .. } | Error::Transport { .. } => true,
            Error::Api { status, .. } => *status >= 500,
            Error::Incomplete { .. } => true,
            _ => false,
        }
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

    /// Maps a reqwest error; `timeout` names the timeout that applies when it says it
    /// timed out without being a connect timeout.
    pub(crate) fn from_reqwest(error: reqwest::Error, timeout: TimeoutKind) -> Self {
        if error.is_timeout() {
            let kind = if error.is_connect() {
                TimeoutKind::Connect
            } else {
                timeout
            };
            return Error::Timeout {
                kind,
                project_id: None,
            };
        }
        Error::transport(error)
    }

    pub(crate) fn transport(source: impl Into<BoxError>) -> Self {
        Error::Transport {
            source: source.into(),
            project_id: None,
            attempts: 1,
        }
    }

    /// How many requests were sent before this error: more than 1 when the client's
    /// [`RetryPolicy`](crate::RetryPolicy) retried. 1 for errors that carry no count.
    pub fn attempts(&self) -> u32 {
        match self {
            Error::RateLimited { attempts, .. }
            | Error::Api { attempts, .. }
            | Error::Transport { attempts, .. } => *attempts,
            _ => 1,
        }
    }

    /// Records the attempts made, on the errors that carry the count.
    pub(crate) fn with_attempts(mut self, count: u32) -> Self {
        if let Error::RateLimited { attempts, .. }
        | Error::Api { attempts, .. }
        | Error::Transport { attempts, .. } = &mut self
        {
            *attempts = count;
        }
        self
    }

    pub(crate) fn decode(what: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Decode {
            what,
            source: source.into(),
            project_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<Error>() <= 72,
            "{}",
            std::mem::size_of::<Error>()
        );
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let errors = [
            Error::Unauthorized { message: None },
            Error::TokenExpired { locally: true },
            Error::Timeout {
                kind: TimeoutKind::Idle,
                project_id: None,
            },
            Error::Config("base URL must use https".into()),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.ends_with('.'), "{text}");
            assert!(
                text.chars().next().is_some_and(|c| c.is_lowercase()),
                "{text}"
            );
        }
    }
}
