//! The client's builder: setters that never fail, and one check of everything in
//! [`ClientBuilder::build`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::Client;
use crate::generation::StreamConfig;
use crate::http::{self, Transport};
use crate::journal::store::Store;
use crate::journal::Journal;
use crate::spend::{Guards, Spend};
use crate::tokens::{ExpiryOptions, StaticToken, TokenInfo, TokenProvider, TokenSource};
use crate::{Budget, Error, Result, RetryPolicy, Token};

/// The documented base URL of the Agent API.
pub const DEFAULT_BASE_URL: &str = "https://builder.laracopilot.com/api/v1";

/// Environment variable holding the API token, read by [`Client::from_env`].
pub const TOKEN_ENV: &str = "LARACOPILOT_API_TOKEN";

/// Environment variable overriding the base URL, read by [`Client::from_env`].
pub const BASE_URL_ENV: &str = "LARACOPILOT_BASE_URL";

/// Environment variable that makes [`ClientBuilder::from_env`] build an offline
/// client (`1`, `true`, `yes` or `on`; `0`, `false`, `no`, `off` or empty for not):
/// set it in CI so that no test can ever reach the real API and spend credits.
pub const OFFLINE_ENV: &str = "LARACOPILOT_OFFLINE";

/// The credits breaker's cool-down unless set otherwise.
const DEFAULT_CREDITS_COOLDOWN: Duration = Duration::from_secs(60);
/// How long a client trusts its cached view of an open breaker of its scope.
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The scope of a client that names none.
const DEFAULT_SCOPE: &str = "default";
/// The longest scope name.
const MAX_SCOPE_LEN: usize = 256;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// Builds a [`Client`]. Setters never fail; everything is checked in
/// [`build`](ClientBuilder::build).
///
/// Every duration accepts `Duration::MAX` as "no limit in practice": nothing panics
/// or overflows, a deadline too far for the clock is no deadline.
///
/// ```
/// use std::time::Duration;
/// let client = laracopilot::Client::builder()
///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///     .base_url("https://builder.laracopilot.com/api/v1")
///     .idle_timeout(Some(Duration::from_secs(120)))
///     .build()?;
/// # Ok::<(), laracopilot::Error>(())
/// ```
///
/// The same builder makes a [blocking client](crate::blocking::Client)
/// (`ClientBuilder<blocking::Client>`, from `blocking::Client::builder()`, feature
/// `blocking`): its `build` then makes that.
#[must_use]
pub struct ClientBuilder<T = Client> {
    tokens: Option<Arc<dyn TokenProvider>>,
    base_url: Option<String>,
    user_agent: Option<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    stream: StreamConfig,
    http: Option<reqwest::Client>,
    allow_http: bool,
    token_expiry: ExpiryOptions,
    retry: RetryPolicy,
    offline: bool,
    journal: Option<Arc<dyn Store>>,
    scope: String,
    max_concurrent: Option<usize>,
    budgets: Vec<Budget>,
    credits_cooldown: Option<Duration>,
    check_interval: Duration,
    #[cfg(feature = "record")]
    record_to: Option<std::path::PathBuf>,
    /// What a setter found wrong, reported by `build`.
    error: Option<Error>,
    /// What `build` makes.
    target: PhantomData<fn() -> T>,
}

impl<T> Default for ClientBuilder<T> {
    fn default() -> Self {
        ClientBuilder {
            tokens: None,
            base_url: None,
            user_agent: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            stream: StreamConfig {
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
                deadline: None,
                max_event_size: DEFAULT_MAX_EVENT_SIZE,
            },
            http: None,
            allow_http: false,
            token_expiry: ExpiryOptions::default(),
            retry: RetryPolicy::default(),
            offline: false,
            journal: None,
            scope: DEFAULT_SCOPE.to_owned(),
            max_concurrent: None,
            budgets: Vec::new(),
            credits_cooldown: Some(DEFAULT_CREDITS_COOLDOWN),
            check_interval: DEFAULT_CHECK_INTERVAL,
            #[cfg(feature = "record")]
            record_to: None,
            error: None,
            target: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ClientBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("has_token", &self.tokens.is_some())
            .field("base_url", &self.base_url)
            .field("offline", &self.offline)
            .field("journal", &self.journal.is_some())
            .field("scope", &self.scope)
            .field("max_concurrent_generations", &self.max_concurrent)
            .field("budgets", &self.budgets)
            .finish_non_exhaustive()
    }
}

impl<T> ClientBuilder<T> {
    /// Uses a fixed token.
    pub fn token(self, token: Token) -> Self {
        self.token_provider(StaticToken::new(token))
    }

    /// Uses a [`TokenProvider`], asked for the token before every request and asked to
    /// refresh it after a 401 (see [`tokens`](crate::tokens)). Each ask is bounded by
    /// the [request timeout](ClientBuilder::request_timeout): a provider that never
    /// answers fails the call with [`Error::Timeout`] (kind `TokenProvider`).
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.tokens = Some(Arc::new(provider));
        self
    }

    /// Calls `hook` when the token expires within `within`, as far as its
    /// [`TokenInfo`] tells (see [`Token::with_info`]; a token without one never
    /// triggers it). It fires once per token, when a request takes it, on the
    /// caller's task: keep it short. See [`tokens`](crate::tokens#expiry).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use laracopilot::tokens::{Expiration, TokenInfo};
    ///
    /// let info = TokenInfo::new("Production", SystemTime::now(), Expiration::Days90);
    /// let client = laracopilot::Client::builder()
    ///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?.with_info(info))
    ///     .on_token_expiring(Duration::from_secs(14 * 86_400), |info| {
    ///         eprintln!("rotate the LaraCopilot token {:?}", info.name());
    ///     })
    ///     .build()?;
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn on_token_expiring(
        mut self,
        within: Duration,
        hook: impl Fn(&TokenInfo) + Send + Sync + 'static,
    ) -> Self {
        self.token_expiry = ExpiryOptions {
            within,
            hook: Some(Arc::new(hook)),
        };
        self
    }

    /// The base URL, [`DEFAULT_BASE_URL`] by default. Its path is kept as a prefix:
    /// with `http://127.0.0.1:8080/api/v1`, generation posts to
    /// `/api/v1/agent/generate`. It must be `https`, except for loopback hosts, unless
    /// [`allow_http`](ClientBuilder::allow_http) is set. A loopback base URL is never
    /// reached through a proxy from the environment (`HTTP_PROXY`, `ALL_PROXY`, ...).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Permits plain `http://` base URLs for hosts other than loopback. Off by default:
    /// over plain HTTP, the token travels in clear text.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// The `User-Agent` header; `laracopilot-rust/<version>` by default.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// How long establishing a connection may take (10 s by default). Applies only to
    /// the client this builder creates, not to one given with
    /// [`http_client`](ClientBuilder::http_client).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one attempt of the project status call may take, body included (30 s
    /// by default; with retries, a call can take several); also bounds the token
    /// provider, reading an error body, and waiting for the headers of a generate call
    /// when the idle timeout is off.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a generation may go without receiving any byte (keep-alive comments
    /// count) before it fails with [`Error::Timeout`]; also bounds the wait for the
    /// answer's headers. 5 minutes by default; `None` turns it off (the headers are
    /// then bounded by the request timeout).
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.stream.idle_timeout = timeout.into();
        self
    }

    /// An optional total deadline for each generation, from sending the request to the
    /// stream's end, the wait for a concurrency slot, retries and the wait for the
    /// headers included; a call can set its own
    /// ([`GenerateRequest::deadline`](crate::GenerateRequest::deadline)). Off by
    /// default: a generation can take many minutes.
    pub fn stream_deadline(mut self, deadline: impl Into<Option<Duration>>) -> Self {
        self.stream.deadline = deadline.into();
        self
    }

    /// The largest event accepted, in bytes (16 MiB by default). A larger one ends the
    /// stream with [`Error::EventTooLarge`] instead of growing memory without bound.
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.stream.max_event_size = bytes;
        self
    }

    /// How failed requests are retried ([`RetryPolicy::default`] unless set): never in a
    /// way that could start a second generation.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sends requests through the caller's own [`reqwest::Client`] (proxies, custom
    /// roots, ...); [`crate::reqwest`] is the version this crate uses.
    ///
    /// Two traps: give it no total timeout (`reqwest::ClientBuilder::timeout`), which
    /// would cut every minutes-long stream (reqwest does not let this crate see it; the
    /// SDK's own timeouts cover every wait); and no redirects
    /// (`redirect(reqwest::redirect::Policy::none())`): this SDK treats a 3xx as an
    /// error, and reqwest drops the `Authorization` header on cross-origin redirects.
    /// [`connect_timeout`](ClientBuilder::connect_timeout) and the loopback proxy rule
    /// are then that client's.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows only loopback base URLs (`localhost`, 127.0.0.0/8, `::1`): any other is
    /// refused by [`build`](ClientBuilder::build), before anything is sent. For test
    /// suites, so that no test can reach the real API and spend credits; see
    /// [`OFFLINE_ENV`] to turn it on from CI. (A client given with
    /// [`http_client`](ClientBuilder::http_client) may still route loopback traffic
    /// through its own proxies.)
    ///
    /// ```
    /// let refused = laracopilot::Client::builder()
    ///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
    ///     .offline(true)
    ///     .build();
    /// assert!(matches!(refused, Err(laracopilot::Error::Config { .. })));
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// At most `n` generate and follow-up calls at once: over all clones of the
    /// client, and with a [journal](ClientBuilder::journal) over every client on
    /// every host that shares its database and [scope](ClientBuilder::scope). A call
    /// waits for a free slot before sending (the wait ends when the caller drops the
    /// future, counts against the [stream deadline](ClientBuilder::stream_deadline),
    /// and is in [`Stats::slot_wait`](crate::Stats::slot_wait)); nothing is recorded
    /// of a call until it is admitted (the SDK is not a job queue). A slot is freed
    /// when its stream ends or is dropped, or, with a journal, when its owner's lease
    /// expires (a crashed host's slots come back within its
    /// [lease](crate::journal::JournalOptions::lease), 30 s by default). Unlimited by
    /// default; 0 is refused by `build`; `usize::MAX` is unlimited in practice.
    pub fn max_concurrent_generations(mut self, n: usize) -> Self {
        self.max_concurrent = Some(n);
        self
    }

    /// The credits breaker: after a stream reported `credits_exhausted`, generate and
    /// follow-up calls fail at once with [`Error::CreditsExhausted`]
    /// (`locally: true`), without a request, for `cooldown` (a minute unless set;
    /// `None` turns the breaker off), or until [`Client::reset_credits_breaker`].
    /// Without a journal, the breaker is this client's (and its clones'); with one,
    /// it is the [scope](ClientBuilder::scope)'s: a `credits_exhausted` seen by any
    /// host opens it for every host, each of which refuses from its next admission
    /// on. Status calls are not affected.
    pub fn credits_cooldown(mut self, cooldown: impl Into<Option<Duration>>) -> Self {
        self.credits_cooldown = cooldown.into();
        self
    }

    /// How long a client refuses from its cached view of its scope's open breaker
    /// before asking the journal again (1 s by default): refusing costs no round
    /// trip, and a breaker [reset](Client::reset_credits_breaker) by another host is
    /// seen within this time. Every admission reads the breaker in its transaction
    /// anyway, so a breaker opened elsewhere is seen at once. Values under 1 ms count
    /// as 1 ms.
    pub fn breaker_check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Keeps a [journal](crate::journal) of every generate and follow-up call, on a
    /// real storage engine: intent before sending, acceptance, project id once
    /// known, outcome at the end; see [`Client::unfinished`] and [`Client::resume`].
    /// It also holds the spend guards ([`max_concurrent_generations`],
    /// [`credits_cooldown`], [`budget`], idempotency keys) for every client that
    /// shares its database and scope. Off by default (and then free).
    ///
    /// [`max_concurrent_generations`]: ClientBuilder::max_concurrent_generations
    /// [`credits_cooldown`]: ClientBuilder::credits_cooldown
    /// [`budget`]: ClientBuilder::budget
    pub fn journal(mut self, journal: impl Journal) -> Self {
        self.journal = Some(crate::journal::store_of(&journal));
        self
    }

    /// The scope every spend guard counts under: a team, a tenant, an environment
    /// (`"default"` unless set). Clients on any host with the same journal database
    /// and scope share one concurrency cap, one credits breaker, one count per
    /// budget, and one set of idempotency keys. 1 to 256 bytes without control
    /// characters, else `build` refuses it.
    pub fn scope(mut self, name: impl Into<String>) -> Self {
        self.scope = name.into();
        self
    }

    /// At most `budget.limit()` generate and follow-up calls started per window of
    /// the [scope](ClientBuilder::scope) (see [`Budget`]); several budgets may be set
    /// (10 an hour and 200 a day, say). Counted in the
    /// [journal](ClientBuilder::journal)'s database, reserved in the same
    /// transaction as the call's record, before anything is sent: a call over a
    /// budget fails with [`Error::BudgetExhausted`], which says which budget and
    /// when it resets. Needs a journal (`build` refuses a budget without one).
    ///
    /// ```
    /// use laracopilot::{journal::MemoryJournal, Budget};
    /// let client = laracopilot::Client::builder()
    ///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
    ///     .journal(MemoryJournal::new())
    ///     .scope("tenant-acme")
    ///     .budget(Budget::per_hour(10))
    ///     .budget(Budget::per_day(200))
    ///     .build()?;
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Records every exchange of the client (and its clones) into the
    /// [cassette](crate::cassette) at `path`, to replay it later with
    /// `MockServer::replay` of the `laracopilot-mock` crate (feature `record`).
    ///
    /// Each request goes on the tape with its method, path, body and the headers that
    /// matter (`Authorization` as the token's mask, `Bearer ****abcd`); each answer
    /// with its status, headers and body chunk by chunk as it arrives, with its time.
    /// Streams are unchanged for the caller: each chunk's line is written as the
    /// chunk passes, nothing is buffered. The token never reaches the file, however
    /// the server echoes it (see [Secrets](crate::cassette#secrets)).
    ///
    /// [`build`](ClientBuilder::build) creates the file (or empties it); clients of
    /// the same process recording to the same path at the same time share it, their
    /// exchanges kept apart. A write that fails stops the recording (with a warning
    /// under the `tracing` feature), never the stream.
    ///
    /// ```no_run
    /// let client = laracopilot::Client::builder()
    ///     .from_env()
    ///     .record_to("tests/cassettes/task-app.cassette")
    ///     .build()?;
    /// # Ok::<(), laracopilot::Error>(())
    /// ```
    #[cfg(feature = "record")]
    pub fn record_to(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.record_to = Some(path.into());
        self
    }

    /// Reads `LARACOPILOT_API_TOKEN`, `LARACOPILOT_BASE_URL` (when set and not
    /// empty) and `LARACOPILOT_OFFLINE` ([`OFFLINE_ENV`]). A missing or invalid token
    /// is reported by [`build`](ClientBuilder::build), like every other setting.
    pub fn from_env(mut self) -> Self {
        match std::env::var(TOKEN_ENV) {
            Ok(value) => match Token::new(value) {
                Ok(token) => self = self.token(token),
                Err(Error::Config { message, .. }) => {
                    self.error = Some(Error::config(format!("{TOKEN_ENV}: {message}")));
                }
                Err(other) => self.error = Some(other),
            },
            Err(_) => {
                self.error = Some(Error::config(format!(
                    "{TOKEN_ENV} is not set (or not valid unicode)"
                )));
            }
        }
        if let Ok(url) = std::env::var(BASE_URL_ENV) {
            if !url.trim().is_empty() {
                self = self.base_url(url.trim());
            }
        }
        match std::env::var(OFFLINE_ENV).map(|v| v.trim().to_ascii_lowercase()) {
            Ok(value) => match value.as_str() {
                "1" | "true" | "yes" | "on" => self.offline = true,
                "" | "0" | "false" | "no" | "off" => {}
                _ => {
                    self.error.get_or_insert(Error::config(format!(
                        "{OFFLINE_ENV} must be 1 or 0 (or true, false, yes, no, on, off)"
                    )));
                }
            },
            Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                self.error
                    .get_or_insert(Error::config(format!("{OFFLINE_ENV} is not valid unicode")));
            }
        }
        self
    }

    /// The same settings, for a builder of the other kind of client.
    #[cfg_attr(
        not(feature = "blocking"),
        allow(dead_code, reason = "used by the blocking facade")
    )]
    pub(crate) fn into_async(self) -> ClientBuilder<Client> {
        ClientBuilder {
            tokens: self.tokens,
            base_url: self.base_url,
            user_agent: self.user_agent,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            stream: self.stream,
            http: self.http,
            allow_http: self.allow_http,
            token_expiry: self.token_expiry,
            retry: self.retry,
            offline: self.offline,
            journal: self.journal,
            scope: self.scope,
            max_concurrent: self.max_concurrent,
            budgets: self.budgets,
            credits_cooldown: self.credits_cooldown,
            check_interval: self.check_interval,
            #[cfg(feature = "record")]
            record_to: self.record_to,
            error: self.error,
            target: PhantomData,
        }
    }
}

impl ClientBuilder {
    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no token was given (or [`from_env`](Self::from_env) found
    /// none), the base URL is not a valid `https` URL (or `http` on loopback, or with
    /// [`allow_http`](ClientBuilder::allow_http)), or not loopback for an
    /// [offline](ClientBuilder::offline) client, it is `https` in a build without a
    /// TLS feature, the user agent is not a valid header value, a timeout or
    /// `max_concurrent_generations` is zero, a [scope](ClientBuilder::scope) is
    /// empty, too long or holds control characters, a [budget](ClientBuilder::budget)
    /// has no journal, the HTTP client cannot be created, or the
    /// [cassette](ClientBuilder::record_to) cannot be created.
    pub fn build(self) -> Result<Client> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let tokens = self
            .tokens
            .ok_or_else(|| Error::config("no API token: use .token(..) or .token_provider(..)"))?;
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        if self.connect_timeout.is_zero()
            || self.request_timeout.is_zero()
            || zero(self.stream.idle_timeout)
            || zero(self.stream.deadline)
        {
            return Err(Error::config(
                "timeouts must be longer than zero (use None to turn off a stream timeout)",
            ));
        }
        if self.stream.max_event_size == 0 {
            return Err(Error::config("max_event_size must be at least 1 byte"));
        }
        if self.max_concurrent == Some(0) {
            return Err(Error::config(
                "max_concurrent_generations must be at least 1",
            ));
        }
        let base_url = self.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        let transport = Transport::new(http::Settings {
            http: self.http,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            base_url,
            allow_http: self.allow_http,
            offline: self.offline,
            user_agent: self.user_agent,
            tokens: TokenSource::new(tokens, self.token_expiry),
            retry: self.retry,
        })?;
        #[cfg(feature = "record")]
        let transport = match &self.record_to {
            Some(path) => {
                transport.recording(crate::cassette::Recorder::open(path).map_err(|e| {
                    Error::config(format!("cannot record to {}: {e}", path.display()))
                })?)
            }
            None => transport,
        };
        let scope_ok = !self.scope.is_empty()
            && self.scope.len() <= MAX_SCOPE_LEN
            && !self.scope.chars().any(char::is_control);
        if !scope_ok {
            return Err(Error::config(format!(
                "a scope is 1 to {MAX_SCOPE_LEN} bytes without control characters"
            )));
        }
        if !self.budgets.is_empty() && self.journal.is_none() {
            return Err(Error::config(
                "a budget needs a journal, whose database counts it (ClientBuilder::journal; MemoryJournal for one process)",
            ));
        }
        let spend = Spend::new(Guards {
            store: self.journal,
            scope: self.scope,
            max_concurrent: self
                .max_concurrent
                .map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
            budgets: self.budgets,
            credits_cooldown: self.credits_cooldown,
            check_interval: self.check_interval,
        });
        Ok(Client::new(transport, self.stream, spend))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::new("lcp_test_0123456789").unwrap()
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback_or_with_the_opt_in() {
        let build = |url: &str, allow: bool| {
            Client::builder()
                .token(token())
                .base_url(url)
                .allow_http(allow)
                .build()
        };
        assert!(matches!(
            build("http://example.com/api/v1", false),
            Err(Error::Config { .. })
        ));
        assert!(build("http://example.com/api/v1", true).is_ok());
        for url in [
            "http://127.0.0.1:1/",
            "http://[::1]:1/",
            "http://localhost:1/",
        ] {
            assert!(build(url, false).is_ok(), "{url}");
        }
        for url in [
            "ftp://example.com/",
            "not a url",
            "https://u:p@example.com/",
            "https://x.com/?a=1",
        ] {
            assert!(
                matches!(build(url, true), Err(Error::Config { .. })),
                "{url}"
            );
        }
        let https = build("https://example.com/", false);
        if cfg!(any(feature = "rustls", feature = "native-tls")) {
            assert!(https.is_ok());
        } else {
            let Err(Error::Config { message, .. }) = https else {
                panic!("{https:?}");
            };
            assert!(message.contains("no TLS"), "{message}");
        }
    }

    #[test]
    fn build_without_token_or_with_zero_timeouts_fails() {
        assert!(matches!(
            Client::builder().build(),
            Err(Error::Config { .. })
        ));
        let zero = Client::builder()
            .token(token())
            .request_timeout(Duration::ZERO)
            .build();
        assert!(matches!(zero, Err(Error::Config { .. })));
        let zero = Client::builder()
            .token(token())
            .idle_timeout(Some(Duration::ZERO))
            .build();
        assert!(matches!(zero, Err(Error::Config { .. })));
        assert!(Client::builder()
            .token(token())
            .base_url("http://127.0.0.1:9/")
            .idle_timeout(None)
            .build()
            .is_ok());
    }

    #[test]
    fn an_offline_client_may_only_talk_to_loopback() {
        let build = |url: &str| {
            Client::builder()
                .token(token())
                .base_url(url)
                .allow_http(true)
                .offline(true)
                .build()
        };
        for url in [
            "http://127.0.0.1:1/",
            "http://[::1]:1/",
            "http://localhost:1/",
            "http://127.9.9.9/",
        ] {
            assert!(build(url).is_ok(), "{url}");
        }
        for url in [
            "https://builder.laracopilot.com/api/v1",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
        ] {
            let Err(Error::Config { message, .. }) = build(url) else {
                panic!("{url} allowed");
            };
            assert!(message.contains("offline"), "{message}");
        }
        assert!(matches!(
            Client::builder().token(token()).offline(true).build(),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn zero_concurrent_generations_is_refused() {
        let built = Client::builder()
            .token(token())
            .max_concurrent_generations(0)
            .build();
        assert!(matches!(built, Err(Error::Config { .. })));
    }

    #[test]
    fn every_duration_accepts_the_largest_one() {
        let client = Client::builder()
            .token(token())
            .base_url("http://127.0.0.1:9/")
            .connect_timeout(Duration::MAX)
            .request_timeout(Duration::MAX)
            .idle_timeout(Some(Duration::MAX))
            .stream_deadline(Some(Duration::MAX))
            .on_token_expiring(Duration::MAX, |_| {})
            .credits_cooldown(Some(Duration::MAX))
            .retry_policy(
                RetryPolicy::default()
                    .base_delay(Duration::MAX)
                    .max_delay(Duration::MAX)
                    .max_retry_after(Duration::MAX),
            )
            .build();
        assert!(client.is_ok(), "{client:?}");
    }

    mod every_setting {
        //! Every setter, with every value of its type, either builds or is a
        //! `Config` error: never a panic, neither in `build` nor in the first calls
        //! of the client it builds.

        use std::time::Duration;

        use proptest::prelude::*;

        use super::*;
        use crate::journal::MemoryJournal;
        use crate::{BudgetWindow, WaitOptions};

        fn duration() -> impl Strategy<Value = Duration> {
            prop_oneof![
                Just(Duration::ZERO),
                Just(Duration::MAX),
                Just(Duration::from_nanos(1)),
                any::<u64>().prop_map(Duration::from_nanos),
                any::<u64>().prop_map(Duration::from_millis),
                (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
            ]
        }

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                "\\PC{0,40}",
                any::<String>(),
                prop::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect()),
            ]
        }

        /// Mostly a URL that builds, so that the other settings are reached.
        fn base_url() -> impl Strategy<Value = Option<String>> {
            prop_oneof![
                6 => Just(Some("http://127.0.0.1:1/api/v1".to_owned())),
                1 => Just(None),
                1 => text().prop_map(Some),
            ]
        }

        fn window() -> impl Strategy<Value = BudgetWindow> {
            prop_oneof![
                Just(BudgetWindow::Minute),
                Just(BudgetWindow::Hour),
                Just(BudgetWindow::Day)
            ]
        }

        #[derive(Debug, Clone)]
        struct Settings {
            base_url: Option<String>,
            allow_http: bool,
            user_agent: Option<String>,
            connect_timeout: Duration,
            request_timeout: Duration,
            idle_timeout: Option<Duration>,
            stream_deadline: Option<Duration>,
            max_event_size: usize,
            retry: (u32, Duration, Duration, Duration),
            offline: bool,
            max_concurrent: Option<usize>,
            credits_cooldown: Option<Duration>,
            check_interval: Duration,
            journal: bool,
            scope: Option<String>,
            budgets: Vec<(u64, BudgetWindow)>,
            expiring: Option<Duration>,
            #[cfg(feature = "record")]
            record_to: Option<u8>,
        }

        fn settings() -> impl Strategy<Value = Settings> {
            (
                (
                    base_url(),
                    any::<bool>(),
                    prop::option::of(text()),
                    duration(),
                    duration(),
                    prop::option::of(duration()),
                    prop::option::of(duration()),
                    prop_oneof![Just(0usize), Just(1), Just(usize::MAX), any::<usize>()],
                ),
                (
                    (any::<u32>(), duration(), duration(), duration()),
                    prop::bool::weighted(0.2),
                    prop::option::of(prop_oneof![
                        Just(0usize),
                        Just(1),
                        Just(usize::MAX),
                        any::<usize>()
                    ]),
                    prop::option::of(duration()),
                    duration(),
                    any::<bool>(),
                    prop::option::of(text()),
                    prop::collection::vec((any::<u64>(), window()), 0..3),
                    prop::option::of(duration()),
                    any::<u8>(),
                ),
            )
                .prop_map(
                    |(
                        (
                            base_url,
                            allow_http,
                            user_agent,
                            connect_timeout,
                            request_timeout,
                            idle_timeout,
                            stream_deadline,
                            max_event_size,
                        ),
                        (
                            retry,
                            offline,
                            max_concurrent,
                            credits_cooldown,
                            check_interval,
                            journal,
                            scope,
                            budgets,
                            expiring,
                            _record,
                        ),
                    )| Settings {
                        base_url,
                        allow_http,
                        user_agent,
                        connect_timeout,
                        request_timeout,
                        idle_timeout,
                        stream_deadline,
                        max_event_size,
                        retry,
                        offline,
                        max_concurrent,
                        credits_cooldown,
                        check_interval,
                        journal,
                        scope,
                        budgets,
                        expiring,
                        #[cfg(feature = "record")]
                        record_to: (_record % 4 != 0).then_some(_record % 4),
                    },
                )
        }

        fn builder(settings: &Settings, dir: &std::path::Path) -> ClientBuilder {
            let s = settings.clone();
            let mut builder = Client::builder()
                .token(token())
                .allow_http(s.allow_http)
                .connect_timeout(s.connect_timeout)
                .request_timeout(s.request_timeout)
                .idle_timeout(s.idle_timeout)
                .stream_deadline(s.stream_deadline)
                .max_event_size(s.max_event_size)
                .retry_policy(
                    RetryPolicy::default()
                        .max_attempts(s.retry.0)
                        .base_delay(s.retry.1)
                        .max_delay(s.retry.2)
                        .max_retry_after(s.retry.3),
                )
                .offline(s.offline)
                .credits_cooldown(s.credits_cooldown)
                .breaker_check_interval(s.check_interval);
            if let Some(url) = s.base_url {
                builder = builder.base_url(url);
            }
            if let Some(agent) = s.user_agent {
                builder = builder.user_agent(agent);
            }
            if let Some(n) = s.max_concurrent {
                builder = builder.max_concurrent_generations(n);
            }
            if s.journal {
                builder = builder.journal(MemoryJournal::new());
            }
            if let Some(scope) = s.scope {
                builder = builder.scope(scope);
            }
            for (limit, window) in s.budgets {
                builder = builder.budget(Budget::new(limit, window));
            }
            if let Some(within) = s.expiring {
                builder = builder.on_token_expiring(within, |_| {});
            }
            #[cfg(feature = "record")]
            if let Some(which) = s.record_to {
                builder = builder.record_to(match which {
                    1 => dir.join("tape.cassette"),
                    2 => dir.join("no-such-directory").join("tape.cassette"),
                    _ => dir.to_path_buf(),
                });
            }
            let _ = dir;
            builder
        }

        /// Each setter alone, on a builder that otherwise builds, with the extreme
        /// values of its type.
        #[test]
        fn each_setter_with_the_extremes_of_its_type_builds_or_is_a_config_error() {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let base = || {
                Client::builder()
                    .token(token())
                    .base_url("http://127.0.0.1:1/api/v1")
            };
            let durations = [Duration::ZERO, Duration::from_nanos(1), Duration::MAX];
            let counts = [0, 1, usize::MAX / 2, usize::MAX];
            let texts = [
                String::new(),
                "\u{0}\n\r\u{1b}[2J".to_owned(),
                "x".repeat(1 << 16),
                "\u{202e}tenant\u{2066}".to_owned(),
            ];
            let mut builders: Vec<(String, ClientBuilder)> = Vec::new();
            for d in durations {
                builders.push((format!("connect_timeout {d:?}"), base().connect_timeout(d)));
                builders.push((format!("request_timeout {d:?}"), base().request_timeout(d)));
                builders.push((format!("idle_timeout {d:?}"), base().idle_timeout(d)));
                builders.push((format!("stream_deadline {d:?}"), base().stream_deadline(d)));
                builders.push((
                    format!("credits_cooldown {d:?}"),
                    base().credits_cooldown(d),
                ));
                builders.push((
                    format!("breaker_check_interval {d:?}"),
                    base().breaker_check_interval(d),
                ));
                builders.push((
                    format!("on_token_expiring {d:?}"),
                    base().on_token_expiring(d, |_| {}),
                ));
                builders.push((
                    format!("retry delays {d:?}"),
                    base().retry_policy(
                        RetryPolicy::default()
                            .base_delay(d)
                            .max_delay(d)
                            .max_retry_after(d),
                    ),
                ));
            }
            for n in counts {
                builders.push((format!("max_event_size {n}"), base().max_event_size(n)));
                builders.push((
                    format!("max_concurrent_generations {n}"),
                    base().max_concurrent_generations(n),
                ));
                builders.push((
                    format!("max_concurrent_generations {n} with a journal"),
                    base()
                        .journal(MemoryJournal::new())
                        .max_concurrent_generations(n),
                ));
            }
            for attempts in [0, 1, u32::MAX] {
                builders.push((
                    format!("max_attempts {attempts}"),
                    base().retry_policy(RetryPolicy::default().max_attempts(attempts)),
                ));
            }
            for limit in [0, 1, u64::MAX] {
                builders.push((
                    format!("budget {limit} with a journal"),
                    base()
                        .journal(MemoryJournal::new())
                        .budget(Budget::per_minute(limit)),
                ));
                builders.push((
                    format!("budget {limit} without a journal"),
                    base().budget(Budget::per_day(limit)),
                ));
            }
            for text in &texts {
                builders.push((
                    format!("base_url {:.20?}", text),
                    base().base_url(text.clone()),
                ));
                builders.push((
                    format!("user_agent {:.20?}", text),
                    base().user_agent(text.clone()),
                ));
                builders.push((format!("scope {:.20?}", text), base().scope(text.clone())));
            }
            for flag in [false, true] {
                builders.push((format!("offline {flag}"), base().offline(flag)));
                builders.push((format!("allow_http {flag}"), base().allow_http(flag)));
            }
            for (name, builder) in builders {
                let built = runtime.block_on(async { builder.build() });
                match built {
                    Ok(client) => runtime.block_on(async {
                        let cut = Duration::from_millis(40);
                        let _ = tokio::time::timeout(
                            cut,
                            client.generate("Build a task management app"),
                        )
                        .await;
                    }),
                    Err(Error::Config { .. }) => {}
                    Err(other) => panic!("{name}: not a Config error: {other:?}"),
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn every_setting_builds_or_is_a_config_error(settings in settings()) {
                let dir = tempfile::tempdir().unwrap();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let built = runtime.block_on(async { builder(&settings, dir.path()).build() });
                match built {
                    Ok(client) => {
                        // The first calls of the client: no panic, whatever comes back
                        // (nothing listens on the port; each call is cut short).
                        runtime.block_on(async {
                            let cut = Duration::from_millis(40);
                            let _ = tokio::time::timeout(cut, client.project("p1")).await;
                            let _ = tokio::time::timeout(
                                cut,
                                client.generate("Build a task management app").label("k", "v"),
                            )
                            .await;
                            let _ = tokio::time::timeout(
                                cut,
                                client.wait_for_project("p1", WaitOptions::default().timeout(settings.request_timeout)),
                            )
                            .await;
                        });
                    }
                    Err(Error::Config { .. }) => {}
                    Err(other) => prop_assert!(false, "not a Config error: {other:?}"),
                }
                #[cfg(feature = "blocking")]
                match builder(&settings, dir.path()).build_blocking() {
                    Ok(_) | Err(Error::Config { .. }) => {}
                    Err(other) => prop_assert!(false, "not a Config error: {other:?}"),
                }
            }
        }
    }
}
