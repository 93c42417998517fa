//! The server: its builder, its handle, the accept loop and one task per
//! connection.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::fault::{Fault, Reply};
use super::routes::{self, PREFIX};
use super::script::MIN_EVENTS;
use super::state::{Config, MockProject, RecordedRequest, Shared, TokenState};
use crate::{Client, ClientBuilder, Token};

/// The credit balance of a new server: enough for any test, including a load test of
/// thousands of generations (see [`MockServerBuilder::credits`]).
pub const DEFAULT_CREDITS: u64 = 1_000_000_000;

/// The minimum prompt length of a new server (the documentation's sample prompt has
/// 10 characters).
pub const DEFAULT_MIN_PROMPT_LEN: usize = 10;

/// An offline LaraCopilot on `127.0.0.1`, serving the documented Agent API from a
/// task of the current Tokio runtime.
///
/// Stopped by [`shutdown`](MockServer::shutdown) or when dropped; either way open
/// connections are closed at once. `Debug` never shows a token.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> laracopilot::Result<()> {
/// use laracopilot::mock::MockServer;
///
/// let server = MockServer::start().await;
/// let outcome = server.client().generate("Build a task management app").await?.finish().await?;
/// assert!(outcome.files.iter().any(|f| f == "app/Models/Task.php"));
/// # Ok(()) }
/// ```
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    token: Token,
    shutdown: watch::Sender<bool>,
    accept: Option<JoinHandle<()>>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("base_url", &self.base_url())
            .field("credits", &self.credits())
            .finish_non_exhaustive()
    }
}

/// Configures a [`MockServer`]; from [`MockServer::builder`]. Setters never fail;
/// [`start`](MockServerBuilder::start) checks everything.
#[must_use]
pub struct MockServerBuilder {
    pacing: Duration,
    min_prompt_len: usize,
    credits: u64,
    events_per_generation: Option<usize>,
    port: u16,
    token: Option<String>,
}

impl fmt::Debug for MockServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServerBuilder")
            .field("pacing", &self.pacing)
            .field("min_prompt_len", &self.min_prompt_len)
            .field("credits", &self.credits)
            .field("events_per_generation", &self.events_per_generation)
            .field("port", &self.port)
            .field("custom_token", &self.token.is_some())
            .finish()
    }
}

impl MockServerBuilder {
    /// The delay before each event after the first (zero, the default, sends events
    /// as fast as the client reads them).
    pub fn pacing(mut self, delay: Duration) -> Self {
        self.pacing = delay;
        self
    }

    /// The shortest prompt accepted, in characters after trimming
    /// ([`DEFAULT_MIN_PROMPT_LEN`] by default); shorter ones get the Laravel 422.
    pub fn min_prompt_len(mut self, chars: usize) -> Self {
        self.min_prompt_len = chars;
        self
    }

    /// The team's credit balance ([`DEFAULT_CREDITS`] by default).
    ///
    /// The spending rule: every `file_created` event the server sends costs one
    /// credit (in default and custom scripts alike). When a `file_created` event is
    /// due and the balance is zero, the server sends
    /// `{"type": "credits_exhausted", "project_id": .., "message": ..}` in its place
    /// and ends the stream; that file is not charged.
    pub fn credits(mut self, credits: u64) -> Self {
        self.credits = credits;
        self
    }

    /// The number of events of every default stream, `stream_end` included (by
    /// default it follows from the prompt: two events per planned file, plus
    /// framing). A new project's stream keeps its 8 framing events
    /// (`project_created`, six `container_progress`, `container_ready`) and fills
    /// the rest with `tool_progress` / `file_created` pairs cycling over the planned
    /// files; a follow-up's stream has the same count without the framing. At least
    /// 9; [`start`](MockServerBuilder::start) refuses less.
    pub fn events_per_generation(mut self, events: usize) -> Self {
        self.events_per_generation = Some(events);
        self
    }

    /// A fixed port on 127.0.0.1 (by default the system picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The value of the token that [`MockServer::token`] and [`MockServer::client`]
    /// use (by default a random `lcp_mock_…` value). Useful to show it for `curl`, or
    /// to [`revoke`](MockServer::revoke) it.
    pub fn token(mut self, value: impl Into<String>) -> Self {
        self.token = Some(value.into());
        self
    }

    /// Binds 127.0.0.1 and starts serving from a task of the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// An [`io::Error`] when there is no current Tokio runtime, the port cannot be
    /// bound, [`events_per_generation`](MockServerBuilder::events_per_generation) is
    /// below 9 or the [`token`](MockServerBuilder::token) value is not a valid token
    /// (kind `InvalidInput` for the last two).
    pub async fn start(self) -> io::Result<MockServer> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
        if self.events_per_generation.is_some_and(|n| n < MIN_EVENTS) {
            return Err(invalid("events_per_generation must be at least 9"));
        }
        let value = self.token.unwrap_or_else(random_token);
        let token = Token::new(value.as_str())
            .map_err(|_| invalid("the mock token must be non-empty without whitespace"))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "the mock server must be started inside a Tokio runtime",
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).await?;
        let addr = listener.local_addr()?;
        let config = Config {
            pacing: self.pacing,
            min_prompt_len: self.min_prompt_len,
            events_per_generation: self.events_per_generation,
        };
        let shared = Arc::new(Shared::new(config, self.credits));
        shared.set_token(&value, TokenState::Valid);
        let (shutdown, signal) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), signal));
        Ok(MockServer {
            shared,
            addr,
            token,
            shutdown,
            accept: Some(accept),
        })
    }
}

impl MockServer {
    /// Starts a server with the defaults: instant pacing, a minimum prompt length of
    /// 10, [`DEFAULT_CREDITS`], an ephemeral port.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime, or when no port of 127.0.0.1 can be bound
    /// (use [`MockServer::builder`] to get an error instead).
    pub async fn start() -> MockServer {
        match MockServer::builder().start().await {
            Ok(server) => server,
            Err(e) => panic!("could not start the mock LaraCopilot on 127.0.0.1: {e}"),
        }
    }

    /// A builder for a server with custom settings.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            pacing: Duration::ZERO,
            min_prompt_len: DEFAULT_MIN_PROMPT_LEN,
            credits: DEFAULT_CREDITS,
            events_per_generation: None,
            port: 0,
            token: None,
        }
    }

    /// The API's base URL on this server: `http://127.0.0.1:PORT/api/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's valid token.
    pub fn token(&self) -> Token {
        self.token.clone()
    }

    /// A client builder pointed at this server with its valid token, to adjust
    /// timeouts or limits before building.
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder()
            .base_url(self.base_url())
            .token(self.token())
    }

    /// A client pointed at this server with its valid token.
    ///
    /// # Panics
    ///
    /// Only if the HTTP client cannot be created at all (its TLS backend fails to
    /// initialize); the base URL and token are always valid.
    pub fn client(&self) -> Client {
        match self.client_builder().build() {
            Ok(client) => client,
            Err(e) => panic!("could not build a client for the mock server: {e}"),
        }
    }

    /// Registers a token (or changes the state of a known one).
    pub fn add_token(&self, value: &str, state: TokenState) {
        self.shared.set_token(value, state);
    }

    /// Revokes a token: the next request with it gets 401 `"Unauthorized."`, as
    /// documented (revocation is immediate). Streams already running go on.
    pub fn revoke(&self, value: &str) {
        self.shared.set_token(value, TokenState::Revoked);
    }

    /// Sets the credit balance (see [`MockServerBuilder::credits`] for the spending
    /// rule).
    pub fn set_credits(&self, credits: u64) {
        self.shared.set_credits(credits);
    }

    /// The credit balance left.
    pub fn credits(&self) -> u64 {
        self.shared.credits()
    }

    /// Queues a custom event sequence for the next stream (generate or follow-up);
    /// each call queues one stream's worth, used in order. The events are sent as
    /// given, each as one `data:` line, except that a `file_created` event spends a
    /// credit (or becomes `credits_exhausted`, see [`MockServerBuilder::credits`]).
    /// If a generate script has a `project_created` event, the stored project takes
    /// its `project_id` (and `app_url`), so that polling and follow-ups work.
    pub fn script_next(&self, events: Vec<serde_json::Value>) {
        self.shared.push_script(events);
    }

    /// Queues a fault for the next stream; each call affects one stream, in order.
    pub fn fault_next(&self, fault: Fault) {
        self.shared.push_faults(vec![fault]);
    }

    /// Queues several faults for the same next stream (e.g. `ChunkSize` with `Crlf`).
    pub fn faults_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.push_faults(faults.into_iter().collect());
    }

    /// Answers the next `count` requests (any endpoint, before the token check) with
    /// `reply`. Calls queue up: later replies follow once earlier ones are used up.
    pub fn reply_next(&self, count: usize, reply: Reply) {
        self.shared.push_reply(count, reply);
    }

    /// The requests received so far, oldest first (at most the last
    /// [`MAX_RECORDED_REQUESTS`](super::MAX_RECORDED_REQUESTS)), with the token
    /// redacted.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// A snapshot of a stored project, for assertions (`project_id` as a `&str` or a
    /// [`ProjectId`](crate::ProjectId)).
    pub fn project(&self, project_id: impl AsRef<str>) -> Option<MockProject> {
        self.shared.project(project_id.as_ref())
    }

    /// Stops the server: no new connections, open ones closed, and waits until every
    /// connection task has ended.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
        self.shutdown.closed().await;
    }
}

impl Drop for MockServer {
    /// Stops accepting and closes open connections (without waiting).
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, Arc::clone(&shared), stop.clone()));
            }
            // Out of file descriptors or a connection reset before it was accepted:
            // back off briefly instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Serves one connection until it closes or the server stops.
async fn serve(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    if *stop.borrow_and_update() {
        return;
    }
    // Events are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| routes::handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = stop.changed() => {}
    }
}

/// `lcp_mock_` and 32 random hex digits (from the standard library's randomly
/// seeded hasher; unpredictability does not matter for a mock).
fn random_token() -> String {
    let mut value = String::from("lcp_mock_");
    for part in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(part);
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(since.as_nanos());
        }
        value.push_str(&format!("{:016x}", hasher.finish()));
    }
    value
}
