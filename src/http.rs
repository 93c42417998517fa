//! The transport: the HTTP client, the base URL rules, the token source, the retry
//! policy and the user agent. It sends one call with the token, retries what is safe
//! to retry, and hands back an answer whose status was checked, or the [`Error`] the
//! answer means. It knows nothing of events, streams or the client.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::answer::{self, error_from_response, is_content_type, Answer, JSON};
use crate::error::TimeoutKind;
use crate::tokens::{Lease, TokenSource};
use crate::trace::CallSpan;
use crate::{Error, ProjectId, Result, RetryPolicy};

/// Everything a [`Transport`] is made of, as the client builder collected it.
pub(crate) struct Settings {
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) connect_timeout: Duration,
    pub(crate) base_url: String,
    pub(crate) allow_http: bool,
    pub(crate) user_agent: Option<String>,
    pub(crate) tokens: TokenSource,
    pub(crate) retry: RetryPolicy,
}

/// Sends calls to the API.
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    tokens: TokenSource,
    retry: RetryPolicy,
    user_agent: HeaderValue,
}

/// One API call.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The `Accept` header, and the content type a success answer must have (any, for
    /// JSON: the status answer is decoded whatever it claims).
    pub(crate) accept: &'static str,
    pub(crate) body: Option<Bytes>,
    /// How long one attempt may wait for the answer's headers, and which timeout that is.
    pub(crate) wait: Option<(Duration, TimeoutKind)>,
    /// Whether the call may be sent again after it may have reached the server: true
    /// for the status call, false for the generate calls (a second POST can create a
    /// second project and spend credits twice).
    pub(crate) idempotent: bool,
    /// The project the call concerns, carried by its errors.
    pub(crate) project_id: Option<ProjectId>,
}

/// A failed attempt, and whether the request certainly never left.
struct Failure {
    error: Error,
    unsent: bool,
}

impl Transport {
    /// Checks the settings and builds the HTTP client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a base URL that breaks the rules of
    /// [`parse_base_url`], a user agent that is not a header value, or an HTTP client
    /// that cannot be created.
    pub(crate) fn new(settings: Settings) -> Result<Self> {
        let base = parse_base_url(&settings.base_url, settings.allow_http)?;
        let user_agent = match settings.user_agent {
            Some(ua) => HeaderValue::try_from(ua)
                .map_err(|_| Error::Config("the user agent is not a valid header value".into()))?,
            None => {
                HeaderValue::from_static(concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION")))
            }
        };
        let http = match settings.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .connect_timeout(settings.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| Error::Config(format!("cannot create the HTTP client: {e}")))?,
        };
        Ok(Transport {
            http,
            base,
            tokens: settings.tokens,
            retry: settings.retry,
            user_agent,
        })
    }

    /// The base URL requests go to.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// Sends `call` (with retries) and checks its answer: a success status, and for an
    /// event stream the `text/event-stream` content type. Any other answer is turned
    /// into its [`Error`]; every error carries the call's project id.
    pub(crate) async fn exchange(&self, call: Call) -> Result<(Answer, CallSpan)> {
        let span = CallSpan::new(call.method.as_str(), call.url.path());
        if let Some(id) = &call.project_id {
            span.project(id);
        }
        let project_id = call.project_id.clone();
        let answer = span
            .run(self.send(&call))
            .await
            .map_err(|e| e.with_project_id(project_id.as_ref()))?;
        let status = answer.response.status();
        span.answered(status.as_u16(), answer.attempts);
        let expected =
            call.accept == JSON || is_content_type(answer.response.headers(), call.accept);
        if status.is_success() && expected {
            return Ok((answer, span));
        }
        Err(error_from_response(answer, project_id).await)
    }

    /// Sends the call, retrying what is safe to retry.
    async fn send(&self, call: &Call) -> Result<Answer> {
        let sent = Instant::now();
        let mut attempt = 1;
        loop {
            let outcome = self.send_authorized(call).await;
            let (retryable, retry_after) = match &outcome {
                Ok((response, _)) => {
                    let status = response.status().as_u16();
                    let retryable =
                        matches!(status, 429 | 503) || (call.idempotent && status >= 500);
                    (
                        retryable,
                        answer::retry_after(response.headers(), SystemTime::now()),
                    )
                }
                Err(failure) => {
                    let transient = matches!(
                        failure.error,
                        Error::Transport { .. } | Error::Timeout { .. }
                    );
                    (failure.unsent || (call.idempotent && transient), None)
                }
            };
            let delay = if retryable {
                self.retry.delay(attempt, retry_after)
            } else {
                None
            };
            let Some(delay) = delay else {
                return match outcome {
                    Ok((response, lease)) => Ok(Answer {
                        response,
                        attempts: attempt,
                        token: lease.token,
                        sent,
                    }),
                    Err(failure) => Err(failure.error.with_attempts(attempt)),
                };
            };
            #[cfg(feature = "tracing")]
            tracing::warn!(
                method = %call.method,
                path = call.url.path(),
                attempt,
                status = outcome.as_ref().ok().map(|(r, _)| r.status().as_u16()),
                error = outcome.as_ref().err().map(|f| f.error.kind()),
                delay_ms = delay.as_millis() as u64,
                "retrying laracopilot request"
            );
            drop(outcome);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt with the provider's token. After a 401 the provider is asked to
    /// refresh once, and the request goes again only if that gave a different token (a
    /// 401 means the server did no work, so this never spends credits twice).
    async fn send_authorized(
        &self,
        call: &Call,
    ) -> std::result::Result<(Response, Lease), Failure> {
        let unsent = |error| Failure {
            error,
            unsent: true,
        };
        let lease = self.tokens.current().await.map_err(unsent)?;
        let response = self.send_once(call, &lease).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok((response, lease));
        }
        match self.tokens.refresh_after_401(&lease).await {
            Ok(fresh) if !fresh.token.same_as(&lease.token) => {
                let response = self.send_once(call, &fresh).await?;
                Ok((response, fresh))
            }
            _ => Ok((response, lease)),
        }
    }

    async fn send_once(
        &self,
        call: &Call,
        lease: &Lease,
    ) -> std::result::Result<Response, Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(AUTHORIZATION, lease.token.authorization())
            .header(ACCEPT, call.accept)
            .header(USER_AGENT, self.user_agent.clone());
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, JSON).body(body.clone());
        }
        let kind = call.wait.map_or(TimeoutKind::Request, |(_, kind)| kind);
        let sent = match call.wait {
            // The status call's limit covers the whole exchange, body included.
            Some((limit, TimeoutKind::Request)) => request.timeout(limit).send().await,
            Some((limit, _)) => match tokio::time::timeout(limit, request.send()).await {
                Ok(sent) => sent,
                Err(_) => {
                    let error = Error::Timeout {
                        kind,
                        project_id: None,
                    };
                    return Err(Failure {
                        error,
                        unsent: false,
                    });
                }
            },
            None => request.send().await,
        };
        sent.map_err(|e| Failure {
            unsent: e.is_connect(),
            error: Error::from_reqwest(e, kind),
        })
    }
}

/// The base URL rules: absolute, with a host, no credentials, no query or fragment,
/// and `https` (plain `http` only for loopback hosts, or with `allow_http`).
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
