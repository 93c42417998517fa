//! The server: its builder, its handle, its error type, and its own thread running
//! the accept loop and one task per connection.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::fault::{Fault, Reply};
use super::replay::{self, Replay, Unmatched};
use super::routes::{self, PREFIX};
use super::script::{ScriptEvent, MIN_EVENTS};
use super::state::{Config, MockProject, OnClientDrop, RecordedRequest, Shared, TokenState};
use super::traffic::{PostRecord, StreamRecord};
use laracopilot::cassette::Cassette;
use laracopilot::{Client, ClientBuilder, Token};

/// The credit balance of a new server: enough for any test, including a load test of
/// thousands of generations (see [`MockServerBuilder::credits`]).
pub const DEFAULT_CREDITS: u64 = 1_000_000_000;

/// The minimum prompt length of a new server (the documentation's sample prompt has
/// 10 characters).
pub const DEFAULT_MIN_PROMPT_LEN: usize = 10;

/// How long a client may take to send a request's head, and then its body, by
/// default (see [`MockServerBuilder::read_timeout`]).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest read timeout (longer ones are clamped to it).
const MAX_READ_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a [`MockServer`] could not start, or a script could not be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// 127.0.0.1 and the requested port could not be bound (the port is taken, say).
    #[error("cannot listen on 127.0.0.1:{port}")]
    #[non_exhaustive]
    Bind {
        /// The requested port (0 for an ephemeral one).
        port: u16,
        /// The error of the operating system.
        #[source]
        source: io::Error,
    },
    /// The server's thread or its Tokio runtime could not be started.
    #[error("cannot start the mock server's thread")]
    #[non_exhaustive]
    Thread {
        /// The error of the operating system.
        #[source]
        source: io::Error,
    },
    /// A builder setting is out of range (the message names it).
    #[error("invalid mock server setting: {message}")]
    #[non_exhaustive]
    Config {
        /// Which setting, and what it must be.
        message: &'static str,
    },
    /// An event given to [`MockServer::script_next`] cannot be serialized as JSON (a
    /// map with non-string keys, or a `Serialize` implementation that fails).
    #[error("event {index} of the script cannot be serialized as JSON")]
    #[non_exhaustive]
    Script {
        /// The event's position in the script, from 0.
        index: usize,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

/// An offline LaraCopilot on `127.0.0.1`, serving the documented Agent API from its
/// own thread and Tokio runtime.
///
/// It needs no runtime from its caller: start it from a plain `#[test]`, a
/// `#[tokio::test]` of either flavour, or `main`, and use it with the async client or
/// [`blocking::Client`](laracopilot::blocking::Client) alike (the blocking client may even
/// be called on the thread of a `current_thread` runtime). Stopped by
/// [`shutdown`](MockServer::shutdown) or when dropped; either way open connections
/// are closed at once. `Debug` never shows a token.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> laracopilot::Result<()> {
/// use laracopilot_mock::MockServer;
///
/// let server = MockServer::start();
/// let outcome = server.client().generate("Build a task management app").await?.finish().await?;
/// assert!(outcome.files.iter().any(|f| f == "app/Models/Task.php"));
/// server.shutdown();
/// # Ok(()) }
/// ```
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    base_url: String,
    token: Token,
    replay: Option<Arc<Replay>>,
    running: Option<Running>,
}

/// The server's thread, and how to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("base_url", &self.base_url)
            .field("credits", &self.credits())
            .field("replay", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures a [`MockServer`]; from [`MockServer::builder`]. Setters never fail;
/// [`start`](MockServerBuilder::start) checks everything.
#[must_use]
pub struct MockServerBuilder {
    config: Config,
    credits: u64,
    port: u16,
    token: Option<String>,
    replay: Option<Cassette>,
    replay_pacing: f64,
    projects: Vec<MockProject>,
}

impl fmt::Debug for MockServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServerBuilder")
            .field("config", &self.config)
            .field("credits", &self.credits)
            .field("port", &self.port)
            .field("custom_token", &self.token.is_some())
            .field("replay", &self.replay.as_ref().map(Cassette::len))
            .field("replay_pacing", &self.replay_pacing)
            .field("projects", &self.projects.len())
            .finish()
    }
}

impl MockServerBuilder {
    /// The delay before each event after the first (zero, the default, sends events
    /// as fast as the client reads them).
    pub fn pacing(mut self, delay: Duration) -> Self {
        self.config.pacing = delay;
        self
    }

    /// The shortest prompt accepted, in characters after trimming
    /// ([`DEFAULT_MIN_PROMPT_LEN`] by default); shorter ones get the Laravel 422.
    pub fn min_prompt_len(mut self, chars: usize) -> Self {
        self.config.min_prompt_len = chars;
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
    /// default two per file of the demo plan, plus framing). A new project's stream
    /// keeps its 8 framing events (`project_created`, six `container_progress`,
    /// `container_ready`) and fills the rest with `tool_progress` / `file_created`
    /// pairs cycling over the files; a follow-up's stream has the same count without
    /// the framing. At least 9; [`start`](MockServerBuilder::start) refuses less.
    pub fn events_per_generation(mut self, events: usize) -> Self {
        self.config.events_per_generation = Some(events);
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

    /// How long a client may take to send a request's head (from the moment the
    /// connection is idle), and then how long its body may take
    /// ([`DEFAULT_READ_TIMEOUT`] by default; at most a day). A head that is late
    /// closes the connection without an answer; a late body gets 408
    /// `{"message": ..}` and the connection closed. Must not be zero.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout.min(MAX_READ_TIMEOUT);
        self
    }

    /// What happens to a generation whose client goes away before its terminal event
    /// ([`OnClientDrop::Finish`] by default: it finishes as if the client had stayed,
    /// which is what the SDK documents of LaraCopilot; [`OnClientDrop::Fail`] marks
    /// the project failed at once).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use laracopilot_mock::{MockServer, OnClientDrop, ProjectStatus};
    ///
    /// let server = MockServer::builder()
    ///     .pacing(std::time::Duration::from_millis(50)) // the client leaves long before the end
    ///     .on_client_drop(OnClientDrop::Fail)
    ///     .start()?;
    /// let mut generation = server.client().generate("Build a task management app").await?;
    /// generation.next().await.transpose()?; // project_created, then the client leaves
    /// let id = generation.project_id().cloned().expect("known after project_created");
    /// drop(generation);
    /// # for _ in 0..500 {
    /// #     if server.project(&id).unwrap().status != ProjectStatus::Generating { break }
    /// #     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    /// # }
    /// assert_eq!(server.project(&id).unwrap().status, ProjectStatus::Failed);
    /// # Ok(()) }
    /// ```
    pub fn on_client_drop(mut self, behaviour: OnClientDrop) -> Self {
        self.config.on_client_drop = behaviour;
        self
    }

    /// The plans `GET /subscription-plans` answers (as `{"data": plans}`, in this
    /// order); by default three plans shaped as the API reference documents them,
    /// without the Stripe ids. Any JSON values, to test odd answers too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = laracopilot_mock::MockServer::builder()
    ///     .subscription_plans(vec![serde_json::json!({"id": 9, "name": "Custom", "is_custom": true})])
    ///     .start()?;
    /// let plans = server.client().subscription_plans().await?;
    /// assert_eq!(plans[0].name.as_deref(), Some("Custom"));
    /// # Ok(()) }
    /// ```
    pub fn subscription_plans(mut self, plans: Vec<serde_json::Value>) -> Self {
        self.config.plans = plans;
        self
    }

    /// A project the server knows from the start (replacing an earlier one with the
    /// same id): its status endpoint answers for it, follow-ups on it are accepted,
    /// and new projects get other ids. See [`MockProject::new`].
    pub fn project(mut self, project: MockProject) -> Self {
        self.projects.push(project);
        self
    }

    /// Serves `cassette` instead of the offline LaraCopilot's own behaviour: every
    /// request is answered from the tape (see [`MockServer::replay`]).
    pub fn replay(mut self, cassette: Cassette) -> Self {
        self.replay = Some(cassette);
        self
    }

    /// How a [replay](MockServerBuilder::replay) is paced: the recorded times
    /// multiplied by `factor`. 0 (the default) sends everything as fast as the client
    /// reads it, chunk boundaries kept; 1 is real time, as recorded; 2 twice as slow.
    /// Must be finite and not negative.
    pub fn replay_pacing(mut self, factor: f64) -> Self {
        self.replay_pacing = factor;
        self
    }

    /// Binds 127.0.0.1 and starts serving from the server's own thread. Needs no
    /// Tokio runtime, and works inside one too.
    ///
    /// # Errors
    ///
    /// [`MockError::Config`] when
    /// [`events_per_generation`](MockServerBuilder::events_per_generation) is below 9,
    /// the [`token`](MockServerBuilder::token) value is not a valid token, the
    /// [`read_timeout`](MockServerBuilder::read_timeout) is zero or the
    /// [`replay_pacing`](MockServerBuilder::replay_pacing) is negative or not finite;
    /// [`MockError::Bind`] when the port cannot be bound; [`MockError::Thread`] when
    /// the thread or its runtime cannot be started.
    pub fn start(self) -> Result<MockServer, MockError> {
        let invalid = |message| Err(MockError::Config { message });
        if self
            .config
            .events_per_generation
            .is_some_and(|n| n < MIN_EVENTS)
        {
            return invalid("events_per_generation must be at least 9");
        }
        if self.config.read_timeout.is_zero() {
            return invalid("read_timeout must not be zero");
        }
        if !self.replay_pacing.is_finite() || self.replay_pacing < 0.0 {
            return invalid("replay_pacing must be a finite number, 0 or more");
        }
        let pacing = self.replay_pacing;
        let replay = self
            .replay
            .map(|cassette| Arc::new(Replay::new(cassette, pacing)));
        let value = self.token.unwrap_or_else(random_token);
        let Ok(token) = Token::new(value.as_str()) else {
            return invalid("the token must be non-empty, without whitespace");
        };
        let port = self.port;
        let bind = |source| MockError::Bind { port, source };
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let shared = Arc::new(Shared::new(self.config, self.credits));
        shared.set_token(&value, TokenState::Valid);
        for project in self.projects {
            shared.seed_project(project);
        }
        let running = Running::spawn(listener, Arc::clone(&shared), replay.clone(), addr.port())
            .map_err(|source| MockError::Thread { source })?;
        Ok(MockServer {
            shared,
            addr,
            base_url: format!("http://{addr}{PREFIX}"),
            token,
            replay,
            running: Some(running),
        })
    }
}

/// The server, or the documented panic of the convenience constructors (the
/// builder gives the error instead), naming the cause.
#[allow(
    clippy::panic,
    reason = "the documented convenience of a test helper; the builder gives the error"
)]
fn started(result: Result<MockServer, MockError>) -> MockServer {
    match result {
        Ok(server) => server,
        Err(e) => match std::error::Error::source(&e) {
            Some(cause) => panic!("could not start the mock LaraCopilot: {e}: {cause}"),
            None => panic!("could not start the mock LaraCopilot: {e}"),
        },
    }
}

impl MockServer {
    /// Starts a server with the defaults: instant pacing, a minimum prompt length of
    /// 10, [`DEFAULT_CREDITS`], an ephemeral port. Needs no Tokio runtime.
    ///
    /// # Panics
    ///
    /// When no port of 127.0.0.1 can be bound or no thread started (use
    /// [`MockServer::builder`] to get an error instead).
    pub fn start() -> MockServer {
        started(MockServer::builder().start())
    }

    /// Starts a server that replays `cassette` (a [recorded](laracopilot::ClientBuilder::record_to)
    /// session, or one of its [fault variants](crate::CassetteExt::cut_after)) from its own
    /// thread, as fast as the client reads (see [`MockServerBuilder::replay_pacing`]
    /// for real time). Needs no Tokio runtime.
    ///
    /// Each request is answered by the first exchange of the tape not yet replayed
    /// with the same method, path (under `/api/v1`) and body (the same bytes, or the
    /// same JSON); the token is not checked. The answer has the recorded status and
    /// headers, and its body goes out in the recorded chunks, each its own HTTP/1.1
    /// chunk, then ends as recorded (complete, reset, or, for a stall, never). A
    /// request that matches nothing gets 501 with a JSON body naming what was asked
    /// and what the tape expected next, and is kept in [`unmatched`](MockServer::unmatched).
    /// The offline LaraCopilot's own routes, scripts and faults are not served.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use laracopilot::cassette::Cassette;
    /// use laracopilot_mock::MockServer;
    ///
    /// let tape = Cassette::parse(
    ///     br#"{"cassette":1}
    /// {"x":1,"request":{"method":"GET","path":"/agent/project/p1"}}
    /// {"x":1,"t":3,"status":200,"headers":[["content-type","application/json"]]}
    /// {"x":1,"t":4,"data":"{\"status\":true,\"project_id\":\"p1\",\"project_status\":\"ready\"}"}
    /// {"x":1,"t":4,"end":"complete"}
    /// "#,
    /// )?;
    /// let server = MockServer::replay(tape);
    /// let client = server.client_builder().retry_policy(laracopilot::RetryPolicy::none()).build()?;
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// # runtime.block_on(async {
    /// assert_eq!(client.project("p1").await?.project_status.as_deref(), Some("ready"));
    /// let error = client.project("p2").await.unwrap_err();
    /// assert_eq!(error.status(), Some(501));
    /// # Ok::<(), laracopilot::Error>(()) })?;
    /// assert_eq!(server.unmatched()[0].request.path, "/api/v1/agent/project/p2");
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    ///
    /// When no port of 127.0.0.1 can be bound or no thread started (use
    /// [`MockServerBuilder::replay`] to get an error instead).
    pub fn replay(cassette: Cassette) -> MockServer {
        started(MockServer::builder().replay(cassette).start())
    }

    /// The requests a [replay](MockServer::replay) found on no exchange of its tape,
    /// oldest first (at most the last 1,000), each with what the tape expected next.
    /// Always empty for a server that does not replay.
    pub fn unmatched(&self) -> Vec<Unmatched> {
        self.replay
            .as_ref()
            .map(|replay| replay.unmatched())
            .unwrap_or_default()
    }

    /// How many exchanges of a [replay](MockServer::replay)'s tape were not asked
    /// for yet: 0 once the code under test made every recorded request. Always 0 for
    /// a server that does not replay.
    pub fn unplayed(&self) -> usize {
        self.replay.as_ref().map_or(0, |replay| replay.unplayed())
    }

    /// A builder for a server with custom settings.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder {
            config: Config {
                pacing: Duration::ZERO,
                min_prompt_len: DEFAULT_MIN_PROMPT_LEN,
                events_per_generation: None,
                read_timeout: DEFAULT_READ_TIMEOUT,
                on_client_drop: OnClientDrop::default(),
                plans: crate::demo::plans(),
            },
            credits: DEFAULT_CREDITS,
            port: 0,
            token: None,
            replay: None,
            replay_pacing: 0.0,
            projects: Vec::new(),
        }
    }

    /// The API's base URL on this server: `http://127.0.0.1:PORT/api/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's valid token.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// A client builder pointed at this server with its valid token, to adjust
    /// timeouts or limits before building.
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder()
            .base_url(self.base_url.as_str())
            .token(self.token.clone())
    }

    /// A client pointed at this server with its valid token.
    ///
    /// # Panics
    ///
    /// Only if the HTTP client cannot be created at all (its TLS backend fails to
    /// initialize); the base URL and token are always valid.
    #[allow(
        clippy::panic,
        reason = "the documented convenience of a test helper; client_builder gives the error"
    )]
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
    /// each call queues one stream's worth, used in order.
    ///
    /// Each event is serialized to JSON now and sent as one `data:` line, as it
    /// serialized (a struct keeps its field order, a `serde_json::json!` object has
    /// its keys sorted), except that a `file_created` event spends a credit (or
    /// becomes `credits_exhausted`, see [`MockServerBuilder::credits`]). If a
    /// generate script has a `project_created` event, the stored project takes its
    /// `project_id` (and `app_url`), so that polling and follow-ups work.
    ///
    /// # Errors
    ///
    /// [`MockError::Script`] when an event cannot be serialized; nothing is queued
    /// then.
    pub fn script_next<I>(&self, events: I) -> Result<(), MockError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let events = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| match serde_json::to_vec(&event) {
                Ok(json) => Ok(ScriptEvent::new(json)),
                Err(source) => Err(MockError::Script { index, source }),
            })
            .collect::<Result<_, _>>()?;
        self.shared.push_script(events);
        Ok(())
    }

    /// Queues a fault for the next stream; each call affects one stream, in order.
    pub fn fault_next(&self, fault: Fault) {
        self.shared.push_faults(vec![fault]);
    }

    /// Queues several faults for the same next stream (e.g. `ChunkSize` with `Crlf`).
    pub fn faults_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.push_faults(faults.into_iter().collect());
    }

    /// Queues faults for the next stream whose prompt (trimmed, as the server
    /// validates it) is `prompt`, whenever it comes: that stream takes these instead
    /// of those of [`fault_next`](MockServer::fault_next), which stay for the next
    /// other stream. Each call affects one stream with that prompt, in order. With
    /// a unique prompt per call, each of many concurrent calls (from many
    /// processes) gets its own faults.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> laracopilot::Result<()> {
    /// use laracopilot_mock::{Fault, MockServer};
    ///
    /// let server = MockServer::start();
    /// let client = server.client();
    /// server.faults_for_prompt("Build a broken blog", [Fault::DropAfter(3)]);
    /// let fine = client.generate("Build a task management app").await?;
    /// let broken = client.generate("Build a broken blog").await?;
    /// assert!(fine.finish().await.is_ok());
    /// assert!(broken.finish().await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn faults_for_prompt(
        &self,
        prompt: impl Into<String>,
        faults: impl IntoIterator<Item = Fault>,
    ) {
        self.shared
            .push_prompt_faults(prompt.into(), faults.into_iter().collect());
    }

    /// Lets the stream of `project_id` that holds at a
    /// [`Fault::HoldBefore`] go on (or, when none holds yet, the next one that
    /// does). Each call releases one hold.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> laracopilot::Result<()> {
    /// use laracopilot::Event;
    /// use laracopilot_mock::{Fault, MockServer};
    ///
    /// let server = MockServer::start();
    /// server.fault_next(Fault::HoldBefore(1));
    /// let mut generation = server.client().generate("Build a task management app").await?;
    /// let Some(Ok(Event::ProjectCreated(created))) = generation.next().await else { panic!() };
    /// // Nothing more comes until the test says so.
    /// server.release_held(&created.project_id);
    /// assert!(generation.finish().await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn release_held(&self, project_id: impl AsRef<str>) {
        self.shared.release_held(project_id.as_ref());
    }

    /// Every `POST /agent/generate` and `POST /agent/generate/{projectId}` the
    /// server read, oldest first, whatever it answered: when, and with which prompt
    /// (the last [`MAX_RECORDED_STREAMS`](super::MAX_RECORDED_STREAMS)). What was
    /// sent, counted by the server rather than by the client; a
    /// [replay](MockServer::replay) records none.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> laracopilot::Result<()> {
    /// let server = laracopilot_mock::MockServer::start();
    /// let client = server.client();
    /// client.generate("Build a task management app").await?.finish().await?;
    /// client.generate("Build a blog").await?.finish().await?;
    /// assert_eq!(server.posts().len(), 2);
    /// assert!(server.posts()[0].at <= server.posts()[1].at);
    /// assert_eq!(server.posts_with_prompt("Build a blog"), 1);
    /// # Ok(()) }
    /// ```
    pub fn posts(&self) -> Vec<PostRecord> {
        self.shared.traffic.posts()
    }

    /// How many of the [`posts`](MockServer::posts) had exactly this prompt (as
    /// sent, not trimmed): with a unique prompt per call, whether a call was sent,
    /// and never twice.
    pub fn posts_with_prompt(&self, prompt: &str) -> usize {
        self.shared.traffic.posts_with_prompt(prompt)
    }

    /// Every event stream the server opened, in the order they opened, with when
    /// each opened and closed (the last
    /// [`MAX_RECORDED_STREAMS`](super::MAX_RECORDED_STREAMS)): what ran at once,
    /// at any instant, as the server saw it. See [`StreamRecord`] for when a stream
    /// counts as open.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> laracopilot::Result<()> {
    /// let server = laracopilot_mock::MockServer::start();
    /// server.client().generate("Build a task management app").await?.finish().await?;
    /// let streams = server.streams();
    /// assert_eq!(streams[0].prompt, "Build a task management app");
    /// assert!(streams[0].complete && streams[0].closed_at >= Some(streams[0].opened_at));
    /// assert_eq!((server.open_streams(), server.max_open_streams()), (0, 1));
    /// # Ok(()) }
    /// ```
    pub fn streams(&self) -> Vec<StreamRecord> {
        self.shared.traffic.streams()
    }

    /// How many event streams are open now (see [`StreamRecord`]).
    pub fn open_streams(&self) -> usize {
        self.shared.traffic.open_streams()
    }

    /// The most event streams that were open at once since the server started,
    /// counted as they opened and closed (see [`StreamRecord`]): a concurrency cap
    /// held at every instant keeps it at or under the cap.
    pub fn max_open_streams(&self) -> usize {
        self.shared.traffic.max_open_streams()
    }

    /// Answers the next `count` requests (any endpoint, before the token check) with
    /// `reply`. Calls queue up: later replies follow once earlier ones are used up.
    pub fn reply_next(&self, count: usize, reply: Reply) {
        self.shared.push_reply(count, reply);
    }

    /// The requests received so far, oldest first, with the token masked; at most
    /// the last [`MAX_RECORDED_REQUESTS`](super::MAX_RECORDED_REQUESTS), and at most
    /// [`MAX_RECORDED_BODY_BYTES`](super::MAX_RECORDED_BODY_BYTES) of bodies.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// Blocks this thread until the server has received `n` requests since it
    /// started, at most `timeout`; whether it has. A request counts once it was
    /// read whole and recorded (it is in [`requests`](MockServer::requests) by then),
    /// before anything is answered, whatever the answer. Needs no runtime.
    ///
    /// A handshake instead of a sleep: a test knows that request `n` arrived (a
    /// call is waiting for its answer, a client went on to its next request)
    /// however slow the machine is. In async code use
    /// [`requests_received`](MockServer::requests_received), which leaves the
    /// runtime free to send those requests.
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use std::io::Write;
    /// use std::time::Duration;
    /// use laracopilot_mock::MockServer;
    ///
    /// let server = MockServer::start();
    /// let mut connection = std::net::TcpStream::connect(server.addr())?;
    /// connection.write_all(b"GET /api/v1/agent/project/p1 HTTP/1.1\r\nHost: mock\r\n\r\n")?;
    /// assert!(server.wait_for_requests(1, Duration::from_secs(20)));
    /// assert_eq!(server.requests()[0].path, "/api/v1/agent/project/p1");
    /// # Ok(()) }
    /// ```
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.shared.wait_received(n, timeout)
    }

    /// Completes once the server has received `n` requests since it started (see
    /// [`wait_for_requests`](MockServer::wait_for_requests) for when a request
    /// counts). It needs no runtime and no reference to the server once created;
    /// it never ends if the requests never come (a server shut down receives none),
    /// so bound it (`tokio::time::timeout`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> laracopilot::Result<()> {
    /// use std::time::Duration;
    /// use laracopilot_mock::MockServer;
    ///
    /// let server = MockServer::start();
    /// let client = server.client();
    /// let second = server.requests_received(2);
    /// client.project("p1").await.unwrap_err(); // 404: a request all the same
    /// let polled = tokio::spawn(async move { client.project("p2").await });
    /// tokio::time::timeout(Duration::from_secs(20), second).await.expect("two requests");
    /// assert_eq!(server.requests().len(), 2);
    /// # polled.await.unwrap().unwrap_err();
    /// # Ok(()) }
    /// ```
    pub fn requests_received(&self, n: usize) -> impl Future<Output = ()> + Send + 'static {
        self.shared.received(n)
    }

    /// A snapshot of a stored project, for assertions (`project_id` as a `&str` or a
    /// [`ProjectId`](laracopilot::ProjectId)).
    pub fn project(&self, project_id: impl AsRef<str>) -> Option<MockProject> {
        self.shared.project(project_id.as_ref())
    }

    /// Stops the server: no new connections, open ones closed (a stalled stream or a
    /// [`Reply::hang`] included), and waits until its thread has ended (about a
    /// millisecond: it only aborts its connection tasks). Dropping the server does
    /// the same. Callable from anywhere, an async context included (it then blocks
    /// that thread for that short wait, and never panics).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for MockServer {
    /// Stops the server as [`shutdown`](MockServer::shutdown) does.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }
}

impl Running {
    /// Serves `listener` from a new thread running a `current_thread` runtime, built
    /// here so that its errors reach the caller.
    fn spawn(
        listener: std::net::TcpListener,
        shared: Arc<Shared>,
        replay: Option<Arc<Replay>>,
        port: u16,
    ) -> io::Result<Self> {
        let runtime = Background(Some(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        ));
        let listener = match &runtime.0 {
            Some(handle) => {
                let _entered = handle.enter();
                TcpListener::from_std(listener)?
            }
            None => return Err(io::Error::other("the runtime is gone")),
        };
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("laracopilot-mock-{port}"))
            .spawn(move || {
                if let Some(handle) = &runtime.0 {
                    handle.block_on(accept_loop(listener, shared, replay, stopped));
                }
            })?;
        Ok(Running { stop, thread })
    }
}

/// The server's runtime, shut down without blocking when dropped, wherever that
/// happens (a failed spawn drops it on the caller's thread, and dropping a
/// `Runtime` in an async context would panic).
struct Background(Option<tokio::runtime::Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Accepts connections until `stop` fires (or its sender is dropped), then closes
/// every open one.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    replay: Option<Arc<Replay>>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            // Reaps finished connections, so that the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&shared), replay.clone()));
                }
                // Out of file descriptors or a connection reset before it was
                // accepted: back off briefly instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves one connection until it closes: the offline LaraCopilot's routes, or the
/// tape of a replay.
async fn serve(stream: TcpStream, shared: Arc<Shared>, replay: Option<Arc<Replay>>) {
    // Events are small and latency matters more than packet count.
    let _ = stream.set_nodelay(true);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(shared.config.read_timeout);
    let io = TokioIo::new(stream);
    match replay {
        Some(replay) => {
            let service = service_fn(move |request| {
                replay::handle(Arc::clone(&shared), Arc::clone(&replay), request)
            });
            let _ = http.serve_connection(io, service).await;
        }
        None => {
            let service = service_fn(move |request| routes::handle(Arc::clone(&shared), request));
            let _ = http.serve_connection(io, service).await;
        }
    }
}

/// `lcp_mock_` and 32 hex digits from the standard library's randomly seeded hasher
/// (unpredictability does not matter for a mock).
fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    // Each `RandomState` has its own keys; two hashes of distinct values differ.
    let random = |n: u8| RandomState::new().hash_one(n);
    format!("lcp_mock_{:016x}{:016x}", random(0), random(1))
}
