//! The transport: the HTTP client, the base URL rules, the token source, the retry
//! policy and the user agent. It sends one call with the token, retries what is safe
//! to retry, and hands back an answer whose status was checked, or the [`Error`] the
//! answer means. It knows nothing of events, streams or the client.
//!
//! Every wait is bounded: the token provider and an error body by the request
//! timeout, the answer's headers by the call's own limit, and everything by the
//! call's overall deadline when it has one (a wait for a project, a stream deadline).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::{Method, Response, StatusCode};
use tokio::time::Instant;
use url::Url;

use crate::answer::{
    self, earliest, error_from_response, is_content_type, Received, EVENT_STREAM, JSON,
};
#[cfg(feature = "record")]
use crate::cassette;
use crate::error::{BoxError, TimeoutKind};
use crate::tokens::{Lease, TokenSource};
use crate::trace::CallSpan;
use crate::{Error, ProjectId, Result, RetryPolicy};

/// A 503 answered within this time after sending is a refusal before any work (a
/// load balancer without a healthy backend, maintenance mode), which a generate call
/// may resend. A later one may come from a gateway that passed the request on and
/// gave up waiting: the application may be generating, so it is not resent.
pub(crate) const QUICK_REFUSAL: Duration = Duration::from_secs(2);

/// How much of a success body is read to tell whether it is an event stream, when
/// its `Content-Type` does not say so.
const SNIFF: usize = 64;

/// Everything a [`Transport`] is made of, as the client builder collected it.
pub(crate) struct Settings {
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) base_url: String,
    pub(crate) allow_http: bool,
    pub(crate) offline: bool,
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
    request_timeout: Duration,
    #[cfg(feature = "record")]
    recorder: Option<cassette::Recorder>,
}

/// One API call.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The `Accept` header, and what a success answer must be: an event stream, or
    /// anything for JSON (the status answer is decoded whatever it claims).
    pub(crate) accept: &'static str,
    pub(crate) body: Option<Bytes>,
    /// How long one attempt may wait for the answer's headers, and which timeout
    /// that is (the status call's limit also covers its body).
    pub(crate) wait: (Duration, TimeoutKind),
    /// The end of the whole call, retries included, and which timeout that is.
    pub(crate) deadline: Option<(Instant, TimeoutKind)>,
    /// A generate call: it creates or continues a project and spends credits, so it
    /// is resent only when it certainly started no work.
    pub(crate) starts_work: bool,
    /// The project the call concerns, carried by its errors.
    pub(crate) project_id: Option<ProjectId>,
}

/// A failed attempt: the error, the requests it sent, and whether a retry is safe.
struct Failure {
    error: Error,
    sent: u32,
    /// The request certainly never reached the server (the connection failed).
    unsent: bool,
    /// A failure of the transport, worth retrying when safe (not the token source's).
    transient: bool,
}

/// One attempt that got an answer.
struct Attempt {
    response: Response,
    lease: Lease,
    /// Requests sent (2 after a 401 and a resend with a fresh token).
    sent: u32,
    /// From sending the last request to its headers.
    took: Duration,
    refresh_error: Option<BoxError>,
    /// The start of the body, already read (a 401's, before the refresh).
    prefix: Bytes,
    /// The deadline that reading the body already started under (a 401's).
    body_deadline: Option<Instant>,
}

impl Transport {
    /// Checks the settings and builds the HTTP client.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a base URL that breaks the rules of [`parse_base_url`], a
    /// user agent that is not a header value, or an HTTP client that cannot be created.
    pub(crate) fn new(settings: Settings) -> Result<Self> {
        let base = parse_base_url(&settings.base_url, settings.allow_http)?;
        if settings.offline && !is_loopback(&base) {
            return Err(Error::config(format!(
                "the client is offline (LARACOPILOT_OFFLINE or .offline(true)): it may only talk to loopback, not to {}",
                base.host_str().unwrap_or_default()
            )));
        }
        let tls = cfg!(any(feature = "rustls", feature = "native-tls"));
        if settings.http.is_none() && !tls && base.scheme() == "https" {
            return Err(Error::config(
                "this build has no TLS: enable the `rustls` or `native-tls` feature of laracopilot for an https base URL",
            ));
        }
        let user_agent = match settings.user_agent {
            Some(ua) => HeaderValue::try_from(ua)
                .map_err(|_| Error::config("the user agent is not a valid header value"))?,
            None => {
                HeaderValue::from_static(concat!("laracopilot-rust/", env!("CARGO_PKG_VERSION")))
            }
        };
        let http = match settings.http {
            Some(http) => http,
            None => {
                let mut builder = reqwest::Client::builder()
                    .connect_timeout(settings.connect_timeout)
                    .redirect(reqwest::redirect::Policy::none());
                if is_loopback(&base) {
                    // A proxy from the environment (HTTP_PROXY, ALL_PROXY) would see a
                    // plain-http request to loopback, bearer token and all.
                    builder = builder.no_proxy();
                }
                builder
                    .build()
                    .map_err(|e| Error::config(format!("cannot create the HTTP client: {e}")))?
            }
        };
        Ok(Transport {
            http,
            base,
            tokens: settings.tokens,
            retry: settings.retry,
            user_agent,
            request_timeout: settings.request_timeout,
            #[cfg(feature = "record")]
            recorder: None,
        })
    }

    /// The same transport, recording every exchange with `recorder`.
    #[cfg(feature = "record")]
    pub(crate) fn recording(mut self, recorder: cassette::Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The base URL requests go to.
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// The request timeout: the status call per attempt, the token provider, error
    /// bodies.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Sends `call` (with retries) and checks its answer: a success status, and for an
    /// event stream its content (the `text/event-stream` type, or a body that starts
    /// like one when a proxy dropped the type). Any other answer is read (bounded) and
    /// turned into its [`Error`]; every error carries the call's project id.
    pub(crate) async fn exchange(&self, call: Call) -> Result<(Received, CallSpan)> {
        let deadline = call.deadline;
        let project_id = call.project_id.clone();
        let wait = call.wait.0;
        let accept = call.accept;
        let (mut answer, span) = self.send(call).await?;
        let status = answer.response.status();
        let body_deadline = self.body_deadline(deadline.map(|(at, _)| at));
        if !status.is_success() {
            return Err(error_from_response(answer, project_id, body_deadline).await);
        }
        if accept == JSON {
            return Ok((answer, span));
        }
        let headers = answer.response.headers();
        if answer::unasked_coding(headers).is_none() {
            if is_content_type(headers, EVENT_STREAM) {
                return Ok((answer, span));
            }
            // A proxy may drop or rewrite the type of a stream that has begun: the
            // server is generating. Look at the body before calling it an error.
            let sniff_deadline =
                earliest(Instant::now().checked_add(wait), deadline.map(|(at, _)| at));
            if sniff(&mut answer, sniff_deadline).await {
                return Ok((answer, span));
            }
        }
        Err(error_from_response(answer, project_id, body_deadline).await)
    }

    /// Sends `call` (with retries) in its span, and hands back the answer whatever its
    /// status; errors carry the call's project id.
    pub(crate) async fn send(&self, call: Call) -> Result<(Received, CallSpan)> {
        let span = CallSpan::new(call.method.as_str(), call.url.path());
        if let Some(id) = &call.project_id {
            span.project(id);
        }
        let answer = span
            .run(self.send_with_retries(&call))
            .await
            .map_err(|e| e.with_project_id(call.project_id.as_ref()))?;
        span.answered(answer.response.status().as_u16(), answer.attempts);
        Ok((answer, span))
    }

    /// When an error body must have been read: within the request timeout from now,
    /// and by the call's deadline.
    pub(crate) fn body_deadline(&self, call_deadline: Option<Instant>) -> Option<Instant> {
        earliest(
            Instant::now().checked_add(self.request_timeout),
            call_deadline,
        )
    }

    /// Sends the call, retrying what is safe to retry; counts every request sent.
    async fn send_with_retries(&self, call: &Call) -> Result<Received> {
        let first_sent = Instant::now();
        let mut attempt = 1;
        let mut sent = 0u32;
        loop {
            let outcome = self.send_authorized(call).await;
            let (retryable, retry_after) = match &outcome {
                Ok(attempt) => {
                    sent = sent.saturating_add(attempt.sent);
                    let status = attempt.response.status().as_u16();
                    let retryable = if call.starts_work {
                        refused_before_work(status, attempt.took)
                    } else {
                        matches!(status, 408 | 429) || status >= 500
                    };
                    let asked = answer::retry_after(attempt.response.headers(), SystemTime::now());
                    (retryable, asked)
                }
                Err(failure) => {
                    sent = sent.saturating_add(failure.sent);
                    let safe = failure.unsent || !call.starts_work;
                    (failure.transient && safe, None)
                }
            };
            let mut delay = if retryable {
                self.retry.delay(attempt, retry_after)
            } else {
                None
            };
            // No retry that would end after the call's deadline.
            if let (Some(pause), Some((deadline, _))) = (delay, call.deadline) {
                if Instant::now()
                    .checked_add(pause)
                    .is_none_or(|at| at >= deadline)
                {
                    delay = None;
                }
            }
            let Some(delay) = delay else {
                return match outcome {
                    Ok(attempt) => {
                        let status = attempt.response.status().as_u16();
                        Ok(Received {
                            may_have_started_work: call.starts_work
                                && !refused_before_work(status, attempt.took),
                            response: attempt.response,
                            attempts: sent,
                            token: attempt.lease.token,
                            sent: first_sent,
                            refresh_error: attempt.refresh_error,
                            prefix: attempt.prefix,
                            body_deadline: attempt.body_deadline,
                        })
                    }
                    Err(failure) => Err(failure.error.with_attempts(sent)),
                };
            };
            tracing::warn!(
                method = %call.method,
                path = call.url.path(),
                attempt,
                status = outcome.as_ref().ok().map(|a| a.response.status().as_u16()),
                error = outcome.as_ref().err().map(|f| f.error.kind()),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
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
    async fn send_authorized(&self, call: &Call) -> std::result::Result<Attempt, Failure> {
        let lease = self.lease(call.deadline).await?;
        let (mut response, took) = self.send_once(call, &lease).await.map_err(|f| f.sent(1))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(Attempt {
                response,
                lease,
                sent: 1,
                took,
                refresh_error: None,
                prefix: Bytes::new(),
                body_deadline: None,
            });
        }
        // The 401's body says whether the token expired. Read it before the refresh:
        // the status call's time limit covers its body, which a slow refresh would
        // leave unreadable (an expired token would then read as a revoked one).
        let mut body = Vec::new();
        let body_deadline = self.body_deadline(call.deadline.map(|(at, _)| at));
        let _cut_short = answer::read_capped(
            &mut response,
            answer::MAX_ERROR_BODY,
            body_deadline,
            &mut body,
        )
        .await;
        let prefix = Bytes::from(body);
        let refreshed =
            tokio::time::timeout(self.request_timeout, self.tokens.refresh_after_401(&lease)).await;
        let refresh_error: Option<BoxError> = match refreshed {
            Ok(Ok(fresh)) if !fresh.token.same_as(&lease.token) => {
                let (response, took) = self.send_once(call, &fresh).await.map_err(|f| f.sent(2))?;
                return Ok(Attempt {
                    response,
                    lease: fresh,
                    sent: 2,
                    took,
                    refresh_error: None,
                    prefix: Bytes::new(),
                    body_deadline: None,
                });
            }
            // No newer token: the 401 stands.
            Ok(Ok(_)) => None,
            Ok(Err(error)) => Some(Box::new(error)),
            Err(_) => Some(Box::new(Error::timeout(TimeoutKind::TokenProvider))),
        };
        Ok(Attempt {
            response,
            lease,
            sent: 1,
            took,
            refresh_error,
            prefix,
            // Whatever of the body is read later shares the same deadline.
            body_deadline,
        })
    }

    /// The mask of the token the next request would carry, for the record.
    pub(crate) async fn token_mask(
        &self,
        deadline: Option<(Instant, TimeoutKind)>,
    ) -> Result<String> {
        self.lease(deadline)
            .await
            .map(|lease| lease.token.masked())
            .map_err(|failure| failure.error)
    }

    /// The token for one request, from the provider within the request timeout (and
    /// the call's deadline).
    async fn lease(
        &self,
        deadline: Option<(Instant, TimeoutKind)>,
    ) -> std::result::Result<Lease, Failure> {
        let (limit, kind) = bounded((self.request_timeout, TimeoutKind::TokenProvider), deadline);
        let failure = |error| Failure {
            error,
            sent: 0,
            unsent: true,
            transient: false,
        };
        match tokio::time::timeout(limit, self.tokens.current()).await {
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(error)) => Err(failure(error)),
            Err(_) => Err(failure(Error::timeout(kind).with_attempts(0))),
        }
    }

    async fn send_once(
        &self,
        call: &Call,
        lease: &Lease,
    ) -> std::result::Result<(Response, Duration), Failure> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(AUTHORIZATION, lease.token.authorization())
            .header(ACCEPT, call.accept)
            .header(USER_AGENT, self.user_agent.clone());
        if let Some(body) = &call.body {
            request = request.header(CONTENT_TYPE, JSON).body(body.clone());
        }
        #[cfg(feature = "record")]
        let recording = self.recorder.as_ref().map(|recorder| {
            let outgoing = cassette::Outgoing {
                method: call.method.as_str(),
                path: cassette::relative_path(&self.base, &call.url),
                accept: call.accept,
                content_type: call.body.as_ref().map(|_| JSON),
                user_agent: &self.user_agent,
                body: call.body.as_deref(),
            };
            recorder.start(outgoing, &lease.token)
        });
        let (limit, kind) = bounded(call.wait, call.deadline);
        let started = Instant::now();
        let timed_out = |error: Error| Failure {
            error,
            sent: 1,
            unsent: false,
            transient: true,
        };
        let sent = if call.accept == JSON {
            // The status call's limit covers the whole exchange, body included.
            request.timeout(limit).send().await
        } else {
            match tokio::time::timeout(limit, request.send()).await {
                Ok(sent) => sent,
                Err(_) => return Err(timed_out(Error::timeout(kind))),
            }
        };
        match sent {
            Ok(response) => {
                let took = started.elapsed();
                #[cfg(feature = "record")]
                let response = match recording {
                    Some(recording) => recording.tee(response),
                    None => response,
                };
                Ok((response, took))
            }
            Err(e) => {
                #[cfg(feature = "record")]
                if let Some(recording) = recording {
                    recording.failed(&e);
                }
                let unsent = e.is_connect();
                let error = Error::from_reqwest(e, kind).started_work(call.starts_work && !unsent);
                Err(Failure {
                    error,
                    sent: 1,
                    unsent,
                    transient: true,
                })
            }
        }
    }
}

impl Failure {
    /// The same failure, having sent `count` requests.
    fn sent(mut self, count: u32) -> Self {
        self.sent = count;
        self
    }
}

/// A generate answer that certainly started no work: a rate limit, or a 503 that came
/// back before the server could have accepted the work (see [`QUICK_REFUSAL`]).
fn refused_before_work(status: u16, took: Duration) -> bool {
    status == 429 || (status == 503 && took <= QUICK_REFUSAL)
}

/// Reads the start of a success body whose type does not say what it is; whether it
/// starts like an event stream (the bytes read stay in the answer's prefix).
async fn sniff(answer: &mut Received, deadline: Option<Instant>) -> bool {
    let mut start = Vec::new();
    let verdict = loop {
        if let Some(verdict) = answer::looks_like_event_stream(&start) {
            break verdict;
        }
        if start.len() >= SNIFF {
            break false;
        }
        match answer::next_chunk(&mut answer.response, deadline).await {
            Some(Ok(Some(chunk))) => start.extend_from_slice(&chunk),
            // The body ended, broke or stalled before it looked like a stream.
            Some(Ok(None) | Err(_)) | None => break false,
        }
    };
    answer.prefix = Bytes::from(start);
    verdict
}

/// `limit` cut to what is left before `deadline`, with the kind of timeout that then
/// applies.
fn bounded(
    limit: (Duration, TimeoutKind),
    deadline: Option<(Instant, TimeoutKind)>,
) -> (Duration, TimeoutKind) {
    match deadline {
        Some((at, kind)) => {
            let left = at.saturating_duration_since(Instant::now());
            if left < limit.0 {
                (left, kind)
            } else {
                limit
            }
        }
        None => limit,
    }
}

/// The base URL rules: absolute, with a host, no credentials, no query or fragment,
/// and `https` (plain `http` only for loopback hosts, or with `allow_http`).
fn parse_base_url(text: &str, allow_http: bool) -> Result<Url> {
    let url = Url::parse(text).map_err(|e| Error::config(format!("invalid base URL: {e}")))?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::config(
            "the base URL must be an absolute http(s) URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config("the base URL must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(
            "the base URL must not have a query or fragment",
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(Error::config(
                "the base URL must use https (plain http is allowed for loopback hosts, or with allow_http)",
            ))
        }
        other => return Err(Error::config(format!("unsupported URL scheme {other:?}"))),
    }
    Ok(url)
}

/// Whether `url` names this machine: `localhost`, 127.0.0.0/8 or `::1`. (An
/// http(s) URL's IP address is always parsed into its own host kind, never left as
/// a domain name.)
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_quick_503_or_a_429_is_a_refusal_before_work() {
        assert!(refused_before_work(429, Duration::from_secs(60)));
        assert!(refused_before_work(503, Duration::from_millis(10)));
        assert!(refused_before_work(503, QUICK_REFUSAL));
        assert!(!refused_before_work(
            503,
            QUICK_REFUSAL + Duration::from_millis(1)
        ));
        for status in [500, 502, 504, 200, 401] {
            assert!(!refused_before_work(status, Duration::ZERO), "{status}");
        }
    }

    #[test]
    fn loopback_hosts_in_every_spelling_the_url_parser_accepts() {
        let loopback = |text: &str| is_loopback(&Url::parse(text).unwrap());
        for url in [
            "http://127.0.0.1/",
            "http://127.9.8.7:1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://localhost/",
            "http://LocalHost:8/",
        ] {
            assert!(loopback(url), "{url}");
        }
        for url in [
            "http://128.0.0.1/",
            "http://[::2]/",
            "http://localhost.example/",
            "http://example.com/",
        ] {
            assert!(!loopback(url), "{url}");
        }
    }

    #[test]
    fn a_limit_is_cut_to_the_deadline_and_takes_its_kind() {
        let soon = Instant::now() + Duration::from_millis(50);
        let (limit, kind) = bounded(
            (Duration::from_secs(30), TimeoutKind::Request),
            Some((soon, TimeoutKind::Wait)),
        );
        assert!(limit <= Duration::from_millis(50));
        assert_eq!(kind, TimeoutKind::Wait);
        let late = Instant::now() + Duration::from_secs(3600);
        assert_eq!(
            bounded(
                (Duration::from_secs(30), TimeoutKind::Idle),
                Some((late, TimeoutKind::Deadline))
            ),
            (Duration::from_secs(30), TimeoutKind::Idle)
        );
        assert_eq!(earliest(None, Some(soon)), Some(soon));
        assert_eq!(earliest(Some(late), Some(soon)), Some(soon));
    }
}
