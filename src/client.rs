//! The client, its builder and its configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use url::Url;

use crate::answer::{project_from_response, EVENT_STREAM, JSON};
use crate::error::TimeoutKind;
use crate::generation::{Generation, Start, StreamConfig};
use crate::http::{self, Call, Transport};
use crate::project::{Project, WaitOptions};
use crate::tokens::{
    ExpiryOptions, StaticToken, TokenCheck, TokenInfo, TokenProvider, TokenSource, PROBE_PROJECT_ID,
};
use crate::{Error, Event, Outcome, ProjectId, Result, RetryPolicy, Token};

/// The documented base URL of the Agent API.
pub const DEFAULT_BASE_URL: &str = "https://builder.laracopilot.com/api/v1";

/// Environment variable holding the API token, read by [`Client::from_env`].
pub const TOKEN_ENV: &str = "LARACOPILOT_API_TOKEN";

/// Environment variable overriding the base URL, read by [`Client::from_env`].
pub const BASE_URL_ENV: &str = "LARACOPILOT_BASE_URL";

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

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
    request_timeout: Duration,
    stream: StreamConfig,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url())
            .field("request_timeout", &self.inner.request_timeout)
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
    /// set and not empty (otherwise [`DEFAULT_BASE_URL`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the token variable is missing or invalid, or the base URL
    /// is invalid.
    pub fn from_env() -> Result<Self> {
        Self::builder().from_env()?.build()
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
    /// `RateLimited`, `Api`, `Transport`, `Timeout`.
    pub async fn generate(&self, prompt: impl Into<String>) -> Result<Generation> {
        let url = self.endpoint(&["agent", "generate"]);
        self.start_generation(url, prompt.into(), None).await
    }

    /// Continues an existing project with a new prompt
    /// (`POST /agent/generate/{projectId}`). The stream has no container phase.
    ///
    /// # Errors
    ///
    /// As [`Client::generate`], plus [`Error::NotFound`] for an unknown project and
    /// [`Error::Config`] for an empty project id.
    pub async fn follow_up(
        &self,
        project_id: impl Into<ProjectId>,
        prompt: impl Into<String>,
    ) -> Result<Generation> {
        let project_id = non_empty(project_id.into())?;
        let url = self.endpoint(&["agent", "generate", project_id.as_str()]);
        self.start_generation(url, prompt.into(), Some(project_id))
            .await
    }

    /// The current state of a project (`GET /agent/project/{projectId}`); safe to
    /// poll.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown project, the request-level errors of
    /// [`Client::generate`], and [`Error::Decode`] for an answer that is not the
    /// documented JSON; [`Error::Config`] for an empty project id.
    pub async fn project(&self, project_id: impl Into<ProjectId>) -> Result<Project> {
        let project_id = non_empty(project_id.into())?;
        let url = self.endpoint(&["agent", "project", project_id.as_str()]);
        let call = Call {
            method: Method::GET,
            url,
            accept: JSON,
            body: None,
            wait: Some((self.inner.request_timeout, TimeoutKind::Request)),
            idempotent: true,
            project_id: Some(project_id.clone()),
        };
        let (answer, _span) = self.inner.transport.exchange(call).await?;
        project_from_response(answer, &project_id)
            .await
            .map_err(|e| e.with_project_id(Some(&project_id)))
    }

    /// Polls the project's status until it settles (see [`WaitOptions`]) or the
    /// options' timeout passes. Each poll is a status call (retried as the client's
    /// retry policy allows); pauses grow from the first interval to the maximum.
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
    /// [`Error::Timeout`] (kind `Wait`) when the project did not settle in time; a
    /// non-retryable error of the status call (such as [`Error::NotFound`] or
    /// [`Error::Unauthorized`]) at once.
    pub async fn wait_for_project(
        &self,
        project_id: impl Into<ProjectId>,
        options: WaitOptions,
    ) -> Result<Project> {
        let project_id = project_id.into();
        let deadline = tokio::time::Instant::now() + options.timeout;
        let mut interval = options.first_interval;
        loop {
            match self.project(&project_id).await {
                Ok(project) if (options.settled)(&project) => return Ok(project),
                Ok(_) => {}
                Err(error) if error.is_retryable() => {}
                Err(error) => return Err(error),
            }
            let now = tokio::time::Instant::now();
            if now + interval > deadline {
                return Err(Error::Timeout {
                    kind: TimeoutKind::Wait,
                    project_id: Some(project_id),
                });
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(options.max_interval);
        }
    }

    /// Drives `generation` to its end like [`Generation::finish`]; if the stream
    /// breaks after the project id is known (the connection drops, goes silent past
    /// the idle timeout or the deadline, or ends without its terminal event), polls
    /// the project with [`Client::wait_for_project`] instead of failing, and returns
    /// an [`Outcome`] whose `recovered` holds the polled project. No second generate
    /// request is ever sent. `credits_exhausted` is never recovered: it is an answer,
    /// not a broken stream.
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
    /// The errors of [`Generation::finish`] that are not a broken stream, and for a
    /// broken stream the errors of [`Client::wait_for_project`].
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
        let (error, mut outcome) = match generation.drive(on_event).await {
            Ok(outcome) => return Ok(outcome),
            Err(failed) => failed,
        };
        let broken = matches!(
            error,
            Error::Incomplete { .. } | Error::Transport { .. } | Error::Timeout { .. }
        );
        let Some(id) = outcome.project_id.clone().filter(|_| broken) else {
            return Err(error);
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(project_id = %id, error = error.kind(), "laracopilot stream broke; polling the project");
        let project = self.wait_for_project(&id, options).await?;
        outcome.app_url = project.app_url.clone().or(outcome.app_url);
        outcome.recovered = Some(project);
        Ok(outcome)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.transport.base().as_str()
    }

    /// Tells whether the server accepts the client's token, without spending credits:
    /// fail early and clearly in tooling, or check a token after a rotation.
    ///
    /// It asks the status endpoint for a project that cannot exist
    /// (`GET /agent/project/laracopilot-sdk-token-probe`) and relies on the API
    /// checking the token before looking the project up (as its documented answers
    /// show): 401 means rejected, told apart as expired (`"API token has expired."`)
    /// or invalid/revoked (`"Unauthorized."`); 404 (or 200) means accepted. A base URL
    /// that answers 404 to everything would therefore look accepted. As with every
    /// call, a 401 makes the provider refresh once, so the answer is about the token
    /// the client would use from now on; a token known locally to be expired is
    /// reported as [`TokenCheck::Expired`](crate::tokens::TokenCheck::Expired)
    /// `{ locally: true }` without sending anything.
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
    /// When the server's answer says nothing about the token: [`Error::RateLimited`],
    /// [`Error::Api`] (5xx, 3xx, ...), [`Error::Transport`], [`Error::Timeout`].
    pub async fn verify_token(&self) -> Result<TokenCheck> {
        // The API checks the token before it looks the project up: a 401 means
        // rejected, a 404 (or a 200) means accepted.
        match self.project(PROBE_PROJECT_ID).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(TokenCheck::Accepted),
            // A 200 answer that is not a project still got past authentication.
            Err(Error::Api { status: 200, .. } | Error::Decode { .. }) => Ok(TokenCheck::Accepted),
            Err(Error::TokenExpired { locally }) => Ok(TokenCheck::Expired { locally }),
            Err(Error::Unauthorized { message }) => Ok(TokenCheck::Unauthorized { message }),
            Err(other) => Err(other),
        }
    }

    /// Starts a generate call; the transport checks its status before the stream is
    /// handed back.
    async fn start_generation(
        &self,
        url: Url,
        prompt: String,
        project_id: Option<ProjectId>,
    ) -> Result<Generation> {
        let body = serde_json::to_vec(&serde_json::json!({ "prompt": prompt }))
            .map_err(|e| Error::decode("prompt", e))?;
        let config = &self.inner.stream;
        let call = Call {
            method: Method::POST,
            url,
            accept: EVENT_STREAM,
            body: Some(body.into()),
            // Waiting for the answer's headers is bounded by the idle timeout: no byte
            // for that long means the same as a silent stream.
            wait: config.idle_timeout.map(|limit| (limit, TimeoutKind::Idle)),
            idempotent: false,
            project_id: project_id.clone(),
        };
        let (answer, span) = self.inner.transport.exchange(call).await?;
        let start = Start {
            sent: answer.sent,
            attempts: answer.attempts,
            project_id,
            span,
        };
        Ok(Generation::new(
            reqwest::Body::from(answer.response),
            config,
            start,
        ))
    }

    /// `base` + path segments, each segment percent-encoded (a project id is opaque and
    /// can never change the path).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.transport.base().clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// Builds a [`Client`]. Setters never fail; everything is checked in
/// [`build`](ClientBuilder::build).
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
#[must_use]
pub struct ClientBuilder {
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
}

impl Default for ClientBuilder {
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
        }
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("has_token", &self.tokens.is_some())
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Uses a fixed token.
    pub fn token(self, token: Token) -> Self {
        self.token_provider(StaticToken::new(token))
    }

    /// Uses a [`TokenProvider`], asked for the token before every request and asked to
    /// refresh it after a 401 (see [`tokens`](crate::tokens)).
    pub fn token_provider(mut self, provider: impl TokenProvider) -> Self {
        self.tokens = Some(Arc::new(provider));
        self
    }

    /// Calls `hook` when the token expires within `within`, as far as its
    /// [`TokenInfo`](crate::tokens::TokenInfo) tells (see
    /// [`Token::with_info`](crate::Token::with_info); a token without one never
    /// triggers it).
    ///
    /// The check runs when a request takes its token, before anything is sent, and
    /// the hook runs right there, on the caller's task: keep it short (log, send a
    /// message), it must not block or panic. It fires once per token: again only
    /// after the provider hands out a different token that also expires soon. An
    /// already expired token triggers it too (once), before the request fails with
    /// [`Error::TokenExpired`]. With the `tracing` feature, the same moment also
    /// emits a `tracing` warning naming the token by its name and mask (with a window
    /// of 7 days when no hook is set).
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
    /// [`allow_http`](ClientBuilder::allow_http) is set.
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

    /// Total time allowed for the project status call (30 s by default).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a generation may go without receiving any byte (keep-alive comments
    /// count) before it fails with [`Error::Timeout`]; also bounds the wait for the
    /// answer's headers. 5 minutes by default; `None` turns it off.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stream.idle_timeout = timeout;
        self
    }

    /// An optional total deadline for each generation stream. Off by default: a
    /// generation can take many minutes.
    pub fn stream_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.stream.deadline = deadline;
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

    /// Sends requests through the caller's own `reqwest::Client` (proxies, custom
    /// roots, ...). Configure it not to follow redirects
    /// (`redirect(reqwest::redirect::Policy::none())`): this SDK treats a 3xx as an
    /// error, and reqwest drops the `Authorization` header on cross-origin redirects.
    /// [`connect_timeout`](ClientBuilder::connect_timeout) is then that client's.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Reads `LARACOPILOT_API_TOKEN` and, when set and not empty,
    /// `LARACOPILOT_BASE_URL`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the token variable is missing or holds an invalid token.
    pub fn from_env(mut self) -> Result<Self> {
        let value = std::env::var(TOKEN_ENV)
            .map_err(|_| Error::Config(format!("{TOKEN_ENV} is not set (or not valid unicode)")))?;
        let token = Token::new(value).map_err(|e| match e {
            Error::Config(why) => Error::Config(format!("{TOKEN_ENV}: {why}")),
            other => other,
        })?;
        self = self.token(token);
        if let Ok(url) = std::env::var(BASE_URL_ENV) {
            if !url.trim().is_empty() {
                self = self.base_url(url.trim());
            }
        }
        Ok(self)
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no token was given, the base URL is not a valid `https`
    /// URL (or `http` on loopback, or with [`allow_http`](ClientBuilder::allow_http)),
    /// the user agent is not a valid header value, a timeout is zero, or the HTTP
    /// client cannot be created.
    pub fn build(self) -> Result<Client> {
        let tokens = self.tokens.ok_or_else(|| {
            Error::Config("no API token: use .token(..) or .token_provider(..)".into())
        })?;
        let zero = |d: Option<Duration>| d.is_some_and(|d| d.is_zero());
        if self.connect_timeout.is_zero()
            || self.request_timeout.is_zero()
            || zero(self.stream.idle_timeout)
            || zero(self.stream.deadline)
        {
            return Err(Error::Config(
                "timeouts must be longer than zero (use None to turn off a stream timeout)".into(),
            ));
        }
        if self.stream.max_event_size == 0 {
            return Err(Error::Config(
                "max_event_size must be at least 1 byte".into(),
            ));
        }
        let transport = Transport::new(http::Settings {
            http: self.http,
            connect_timeout: self.connect_timeout,
            base_url: self.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
            allow_http: self.allow_http,
            user_agent: self.user_agent,
            tokens: TokenSource::new(tokens, self.token_expiry),
            retry: self.retry,
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                request_timeout: self.request_timeout,
                stream: self.stream,
            }),
        })
    }
}

/// An empty id would address another endpoint (`/agent/generate/` or
/// `/agent/project/`): refuse it before sending.
fn non_empty(project_id: ProjectId) -> Result<ProjectId> {
    if project_id.as_str().trim().is_empty() {
        return Err(Error::Config("the project id is empty".into()));
    }
    Ok(project_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::new("lcp_test_0123456789").unwrap()
    }

    #[test]
    fn endpoint_keeps_the_base_path_and_escapes_ids() {
        for base in ["http://127.0.0.1:9/api/v1", "http://127.0.0.1:9/api/v1/"] {
            let client = Client::builder()
                .token(token())
                .base_url(base)
                .build()
                .unwrap();
            assert_eq!(
                client.endpoint(&["agent", "generate"]).as_str(),
                "http://127.0.0.1:9/api/v1/agent/generate"
            );
            assert_eq!(
                client.endpoint(&["agent", "project", "../x?y#z"]).as_str(),
                "http://127.0.0.1:9/api/v1/agent/project/..%2Fx%3Fy%23z"
            );
        }
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
            Err(Error::Config(_))
        ));
        assert!(build("http://example.com/api/v1", true).is_ok());
        for url in [
            "http://127.0.0.1:1/",
            "http://[::1]:1/",
            "http://localhost:1/",
            "https://example.com/",
        ] {
            assert!(build(url, false).is_ok(), "{url}");
        }
        for url in [
            "ftp://example.com/",
            "not a url",
            "https://u:p@example.com/",
            "https://x.com/?a=1",
        ] {
            assert!(matches!(build(url, true), Err(Error::Config(_))), "{url}");
        }
    }

    #[test]
    fn build_without_token_or_with_zero_timeouts_fails() {
        assert!(matches!(Client::builder().build(), Err(Error::Config(_))));
        let zero = Client::builder()
            .token(token())
            .request_timeout(Duration::ZERO)
            .build();
        assert!(matches!(zero, Err(Error::Config(_))));
        let zero = Client::builder()
            .token(token())
            .idle_timeout(Some(Duration::ZERO))
            .build();
        assert!(matches!(zero, Err(Error::Config(_))));
        assert!(Client::builder()
            .token(token())
            .idle_timeout(None)
            .build()
            .is_ok());
    }

    #[tokio::test]
    async fn an_empty_project_id_is_refused_before_sending() {
        // Port 9 (discard) is never contacted: the check comes first.
        let client = Client::builder()
            .token(token())
            .base_url("http://127.0.0.1:9/api/v1")
            .build()
            .unwrap();
        assert!(matches!(client.project("").await, Err(Error::Config(_))));
        assert!(matches!(
            client.follow_up(" ", "Add a dark mode").await,
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn default_base_url_is_the_documented_one() {
        let client = Client::builder().token(token()).build().unwrap();
        assert_eq!(client.base_url(), "https://builder.laracopilot.com/api/v1");
    }
}
