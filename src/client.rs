//! The client, its builder and its configuration.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use crate::generation::{Generation, StreamConfig};
use crate::tokens::{StaticToken, TokenProvider, TokenSource};
use crate::{http, Error, Project, ProjectId, Result, RetryPolicy, Token};

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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) tokens: TokenSource,
    pub(crate) user_agent: HeaderValue,
    pub(crate) request_timeout: Duration,
    pub(crate) stream: StreamConfig,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
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
        http::start_generation(self, url, prompt.into(), None).await
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
        http::start_generation(self, url, prompt.into(), Some(project_id)).await
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
        http::get_project(self, url, project_id).await
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
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
    pub async fn verify_token(&self) -> Result<crate::tokens::TokenCheck> {
        crate::tokens::verify(self).await
    }

    /// `base` + path segments, each segment percent-encoded (a project id is opaque and
    /// can never change the path).
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
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
    token_expiry: crate::tokens::ExpiryOptions,
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
            token_expiry: crate::tokens::ExpiryOptions::default(),
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
        hook: impl Fn(&crate::tokens::TokenInfo) + Send + Sync + 'static,
    ) -> Self {
        self.token_expiry = crate::tokens::ExpiryOptions {
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
        let base = parse_base_url(
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
            self.allow_http,
        )?;
        let user_agent = match self.user_agent {
            Some(ua) => HeaderValue::try_from(ua)
                .map_err(|_| Error::Config("the user agent is not a valid header value".into()))?,
            None => {
                HeaderValue::from_static(concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION")))
            }
        };
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
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Config(format!("cannot create the HTTP client: {e}")))?,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                tokens: TokenSource::new(tokens, self.token_expiry),
                user_agent,
                request_timeout: self.request_timeout,
                stream: self.stream,
                retry: self.retry,
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

fn parse_base_url(text: &str, allow_http: bool) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| Error::Config(format!("invalid base URL: {e}")))?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::Config(
            "the base URL must be an absolute http(s) URL with a host".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(
            "the base URL must not contain credentials".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(
            "the base URL must not have a query or fragment".into(),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(Error::Config(
                "the base URL must use https (plain http is allowed for loopback hosts, or with allow_http)".into(),
            ))
        }
        other => return Err(Error::Config(format!("unsupported URL scheme {other:?}"))),
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
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
