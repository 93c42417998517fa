//! What the mock server remembers: tokens, credits, projects, scripted queues and
//! recorded requests, each bounded. One mutex for everything but the counters; it
//! is never held across an `.await`. The count of requests received is watched, so
//! that a test can wait for request `n` instead of sleeping.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::fault::{Fault, Reply};
use super::script::ScriptEvent;
use super::traffic::Traffic;
use laracopilot::ProjectId;

/// At most this many requests are kept by
/// [`MockServer::requests`](super::MockServer::requests); the oldest are dropped
/// first.
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// At most this many body bytes, added over the kept requests, are kept by
/// [`MockServer::requests`](super::MockServer::requests); the oldest requests are
/// dropped first until the rest fit. One body is at most 1 MiB (a larger one is
/// refused with 413 and recorded empty).
pub const MAX_RECORDED_BODY_BYTES: usize = 16 * 1024 * 1024;

/// At most this many prompts are kept per project in [`MockProject::prompts`]: the
/// latest ones, the oldest dropped first.
pub const MAX_PROMPTS_PER_PROJECT: usize = 100;

/// At most this many distinct paths are kept per project in [`MockProject::files`]:
/// the first ones; later new paths are not recorded (their credits are still spent).
pub const MAX_FILES_PER_PROJECT: usize = 10_000;

/// The state of a token registered with
/// [`MockServer::add_token`](super::MockServer::add_token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenState {
    /// Accepted.
    Valid,
    /// Past its expiry date: 401 `{"status": false, "message": "API token has expired."}`.
    Expired,
    /// Revoked: 401 `{"status": false, "message": "Unauthorized."}`, like an unknown
    /// token.
    Revoked,
}

/// The status of a stored project, as the status endpoint reports it in
/// `project_status` (see [`ProjectStatus::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProjectStatus {
    /// `"generating"`: a generation or follow-up stream is running (or stalled).
    Generating,
    /// `"ready"`: the last stream sent its `stream_end` event.
    Ready,
    /// `"failed"`: the last stream ended without a terminal event (a fault, a script
    /// without `stream_end`, a stall its client gave up on, or, with
    /// [`OnClientDrop::Fail`], the client went away).
    Failed,
    /// `"credits_exhausted"`: the last stream stopped with `credits_exhausted`.
    CreditsExhausted,
}

impl ProjectStatus {
    /// The `project_status` string of the status endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Generating => "generating",
            ProjectStatus::Ready => "ready",
            ProjectStatus::Failed => "failed",
            ProjectStatus::CreditsExhausted => "credits_exhausted",
        }
    }
}

impl std::str::FromStr for ProjectStatus {
    type Err = UnknownStatus;

    /// The status named by its [`as_str`](ProjectStatus::as_str) string
    /// (`"generating"`, `"ready"`, `"failed"`, `"credits_exhausted"`).
    fn from_str(text: &str) -> Result<Self, UnknownStatus> {
        [
            ProjectStatus::Generating,
            ProjectStatus::Ready,
            ProjectStatus::Failed,
            ProjectStatus::CreditsExhausted,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
        .ok_or(UnknownStatus)
    }
}

/// A string that names no [`ProjectStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a project status (generating, ready, failed, credits_exhausted)")]
#[non_exhaustive]
pub struct UnknownStatus;

/// What the server does with a generation whose client goes away (closes the
/// connection, or drops its [`Generation`](laracopilot::Generation)) before the
/// stream's terminal event was written; set with
/// [`MockServerBuilder::on_client_drop`](super::MockServerBuilder::on_client_drop).
///
/// The SDK documents that LaraCopilot goes on generating (and spending) when a client
/// drops its stream: [`Finish`](OnClientDrop::Finish), the default, does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OnClientDrop {
    /// The generation finishes as if the client had stayed, at once (the pacing of
    /// the events nobody reads is skipped): the rest of the script runs, its files are
    /// recorded and their credits spent, and the project ends `ready` (or
    /// `credits_exhausted` when the balance runs out). A fault queued for that stream
    /// still happens where it would have: a drop or a stall ahead leaves the project
    /// `failed` (a stalled generation never finishes).
    #[default]
    Finish,
    /// The project is marked `failed` at once: a server that stops a generation
    /// nobody is reading any more.
    Fail,
}

/// A snapshot of a stored project, from [`MockServer::project`](super::MockServer::project).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockProject {
    /// The project's id, e.g. `p1`.
    pub project_id: ProjectId,
    /// The name derived from the first prompt, e.g. `"Task Management App"`.
    pub name: String,
    /// `https://{project_id}.laracopilot.com`, or the `app_url` of a scripted
    /// `project_created` event.
    pub app_url: String,
    /// The current status.
    pub status: ProjectStatus,
    /// The accepted prompts, oldest first: the generation's, then each follow-up's
    /// (the latest [`MAX_PROMPTS_PER_PROJECT`]).
    pub prompts: Vec<String>,
    /// The distinct `path` values of the `file_created` events sent so far, in order
    /// of first appearance (the first [`MAX_FILES_PER_PROJECT`]).
    pub files: Vec<String>,
}

impl MockProject {
    /// A project to start a server with
    /// ([`MockServerBuilder::project`](super::MockServerBuilder::project)): named
    /// `"Project {id}"`, served at `https://{id}.laracopilot.com`, with no prompts and
    /// no files yet (the fields are public: set them before starting the server).
    ///
    /// ```
    /// use laracopilot_mock::{MockProject, MockServer, ProjectStatus};
    ///
    /// let mut seeded = MockProject::new("p7", ProjectStatus::Ready);
    /// seeded.files.push("app/Models/Task.php".into());
    /// let server = MockServer::builder().project(seeded).start()?;
    /// assert_eq!(server.project("p7").unwrap().files, ["app/Models/Task.php"]);
    /// # Ok::<(), laracopilot_mock::MockError>(())
    /// ```
    pub fn new(project_id: impl Into<ProjectId>, status: ProjectStatus) -> MockProject {
        let project_id = project_id.into();
        MockProject {
            name: format!("Project {project_id}"),
            app_url: format!("https://{project_id}.laracopilot.com"),
            project_id,
            status,
            prompts: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// One request as the server received it, from
/// [`MockServer::requests`](super::MockServer::requests).
///
/// The credentials of the `Authorization` header are masked as
/// [`Token::masked`](laracopilot::Token::masked) does (`Bearer ****` and the token's last
/// four characters, or only `Bearer ****` for a short or invalid value), so the
/// list can be printed safely.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The method, e.g. `"POST"`.
    pub method: String,
    /// The path without the query, e.g. `"/api/v1/agent/generate"`.
    pub path: String,
    /// Every header as `(lowercase name, value)`, in the order received; values that
    /// are not UTF-8 are decoded lossily.
    pub headers: Vec<(String, String)>,
    /// The body, decoded lossily as UTF-8; empty when it was too large or did not
    /// arrive in time.
    pub body: String,
}

impl RecordedRequest {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Settings fixed when the server starts.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) pacing: Duration,
    pub(crate) min_prompt_len: usize,
    pub(crate) events_per_generation: Option<usize>,
    pub(crate) read_timeout: Duration,
    pub(crate) on_client_drop: OnClientDrop,
    /// The answer of `GET /subscription-plans`: `{"data": <these>}`.
    pub(crate) plans: Vec<serde_json::Value>,
}

/// Everything shared between the server's handle and its connections.
pub(crate) struct Shared {
    pub(crate) config: Config,
    credits: AtomicU64,
    next_project: AtomicU64,
    state: Mutex<State>,
    /// How many requests were recorded since the server started (the record is
    /// capped, this count is not); bumped after the request is in the record.
    received: watch::Sender<usize>,
    /// The POSTs and streams seen on the wire.
    pub(crate) traffic: Arc<Traffic>,
    /// Bumped by every [`Shared::release_held`], to wake the streams that hold.
    releases: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Token value -> state. The values are the mock's own tokens.
    tokens: HashMap<String, TokenState>,
    projects: HashMap<String, Project>,
    scripts: VecDeque<Vec<ScriptEvent>>,
    faults: VecDeque<Vec<Fault>>,
    /// Prompt -> the faults of its next streams, each used once, before `faults`.
    prompt_faults: HashMap<String, VecDeque<Vec<Fault>>>,
    /// Projects whose holding stream (a `HoldBefore` fault) may go on.
    released: HashSet<String>,
    replies: VecDeque<(usize, Reply)>,
    requests: VecDeque<RecordedRequest>,
    /// The body bytes of `requests`.
    request_bytes: usize,
}

struct Project {
    snapshot: MockProject,
    seen_files: HashSet<String>,
}

impl Shared {
    pub(crate) fn new(config: Config, credits: u64) -> Self {
        Shared {
            config,
            credits: AtomicU64::new(credits),
            next_project: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            received: watch::Sender::new(0),
            traffic: Arc::default(),
            releases: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a
        // single insertion, removal or assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_token(&self, value: &str, state: TokenState) {
        self.state().tokens.insert(value.to_owned(), state);
    }

    /// The state of a presented token; `None` when it is unknown.
    pub(crate) fn token_state(&self, value: &str) -> Option<TokenState> {
        self.state().tokens.get(value).copied()
    }

    pub(crate) fn credits(&self) -> u64 {
        self.credits.load(Ordering::SeqCst)
    }

    pub(crate) fn set_credits(&self, credits: u64) {
        self.credits.store(credits, Ordering::SeqCst);
    }

    /// Spends one credit; `false` when there is none left.
    pub(crate) fn spend_credit(&self) -> bool {
        self.credits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn push_script(&self, events: Vec<ScriptEvent>) {
        self.state().scripts.push_back(events);
    }

    pub(crate) fn push_faults(&self, faults: Vec<Fault>) {
        self.state().faults.push_back(faults);
    }

    pub(crate) fn push_reply(&self, count: usize, reply: Reply) {
        if count > 0 {
            self.state().replies.push_back((count, reply));
        }
    }

    /// The canned reply for this request, if one is queued.
    pub(crate) fn take_reply(&self) -> Option<Reply> {
        let mut state = self.state();
        let (count, reply) = state.replies.front_mut()?;
        *count -= 1;
        let reply = reply.clone();
        if *count == 0 {
            state.replies.pop_front();
        }
        Some(reply)
    }

    /// Queues faults for the next stream whose prompt is `prompt`.
    pub(crate) fn push_prompt_faults(&self, prompt: String, faults: Vec<Fault>) {
        self.state()
            .prompt_faults
            .entry(prompt)
            .or_default()
            .push_back(faults);
    }

    /// The script and faults queued for the next stream, whose prompt is `prompt`:
    /// the faults queued for that prompt when there are, else the next ones queued
    /// for any stream.
    pub(crate) fn take_stream_setup(&self, prompt: &str) -> (Option<Vec<ScriptEvent>>, Vec<Fault>) {
        let mut state = self.state();
        let keyed = match state.prompt_faults.get_mut(prompt) {
            Some(queue) => {
                let faults = queue.pop_front();
                if queue.is_empty() {
                    state.prompt_faults.remove(prompt);
                }
                faults
            }
            None => None,
        };
        let faults = match keyed {
            Some(faults) => faults,
            None => state.faults.pop_front().unwrap_or_default(),
        };
        (state.scripts.pop_front(), faults)
    }

    /// Lets the stream of `project_id` that holds at a `HoldBefore` fault, now or
    /// next, go on.
    pub(crate) fn release_held(&self, project_id: &str) {
        self.state().released.insert(project_id.to_owned());
        self.releases.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Completes once the stream of `project_id` may go on past its hold (and uses
    /// that release up). Needs no runtime.
    pub(crate) fn held(
        self: &Arc<Self>,
        project_id: &str,
    ) -> impl Future<Output = ()> + Send + 'static {
        let shared = Arc::clone(self);
        let project_id = project_id.to_owned();
        // Subscribed before the first look, so that a release in between wakes it.
        let mut releases = self.releases.subscribe();
        async move {
            loop {
                if shared.state().released.remove(&project_id) {
                    return;
                }
                if releases.changed().await.is_err() {
                    // The server is gone: nothing releases it any more.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Keeps `request`, dropping the oldest ones beyond the caps, then counts it (so
    /// that whoever waits for it finds it in the record).
    pub(crate) fn record(&self, request: RecordedRequest) {
        {
            let mut state = self.state();
            state.request_bytes += request.body.len();
            state.requests.push_back(request);
            while state.requests.len() > MAX_RECORDED_REQUESTS
                || state.request_bytes > MAX_RECORDED_BODY_BYTES
            {
                let Some(oldest) = state.requests.pop_front() else {
                    break;
                };
                state.request_bytes -= oldest.body.len();
            }
        }
        self.received
            .send_modify(|count| *count = count.saturating_add(1));
    }

    /// Completes once `n` requests were recorded since the server started. Needs no
    /// runtime (it only registers a waker).
    pub(crate) fn received(&self, n: usize) -> impl Future<Output = ()> + Send + 'static {
        let mut count = self.received.subscribe();
        async move {
            // The sender goes only with the server's last handle, after which no
            // request arrives any more: then the count is never reached.
            if count.wait_for(|count| *count >= n).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Blocks this thread until `n` requests were recorded since the server started,
    /// at most `timeout`; whether they were.
    pub(crate) fn wait_received(&self, n: usize, timeout: Duration) -> bool {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut received = std::pin::pin!(self.received(n));
        let started = Instant::now();
        loop {
            if received.as_mut().poll(&mut cx).is_ready() {
                return true;
            }
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return false;
            }
            // Woken by the next request; a spurious wake-up polls again.
            std::thread::park_timeout(left);
        }
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.iter().cloned().collect()
    }

    /// A fresh project id: `p1`, `p2`, ..., skipping the ids of stored projects
    /// (seeded ones, or those a custom script named).
    pub(crate) fn new_project_id(&self) -> String {
        let state = self.state();
        // Each stored project can take at most one number: the loop ends.
        loop {
            let id = format!("p{}", self.next_project.fetch_add(1, Ordering::Relaxed));
            if !state.projects.contains_key(&id) {
                return id;
            }
        }
    }

    /// Stores `snapshot` as it is (replacing a project with the same id), keeping
    /// the caps on its prompts and files.
    pub(crate) fn seed_project(&self, mut snapshot: MockProject) {
        let skip = snapshot
            .prompts
            .len()
            .saturating_sub(MAX_PROMPTS_PER_PROJECT);
        snapshot.prompts.drain(..skip);
        let mut seen_files = HashSet::new();
        snapshot.files.retain(|path| {
            seen_files.len() < MAX_FILES_PER_PROJECT && seen_files.insert(path.clone())
        });
        let id = snapshot.project_id.as_str().to_owned();
        let project = Project {
            snapshot,
            seen_files,
        };
        self.state().projects.insert(id, project);
    }

    /// Stores a new project (replacing one with the same id) with status
    /// `generating`.
    pub(crate) fn create_project(&self, id: &str, name: String, app_url: String, prompt: String) {
        let snapshot = MockProject {
            project_id: ProjectId::from(id),
            name,
            app_url,
            status: ProjectStatus::Generating,
            prompts: vec![prompt],
            files: Vec::new(),
        };
        let project = Project {
            snapshot,
            seen_files: HashSet::new(),
        };
        self.state().projects.insert(id.to_owned(), project);
    }

    /// Starts a follow-up on a stored project; its app URL, or `None` when the project
    /// is unknown.
    pub(crate) fn start_follow_up(&self, id: &str, prompt: String) -> Option<String> {
        let mut state = self.state();
        let project = &mut state.projects.get_mut(id)?.snapshot;
        project.status = ProjectStatus::Generating;
        project.prompts.push(prompt);
        if project.prompts.len() > MAX_PROMPTS_PER_PROJECT {
            project.prompts.remove(0);
        }
        Some(project.app_url.clone())
    }

    pub(crate) fn project(&self, id: &str) -> Option<MockProject> {
        self.state().projects.get(id).map(|p| p.snapshot.clone())
    }

    pub(crate) fn set_status(&self, id: &str, status: ProjectStatus) {
        if let Some(project) = self.state().projects.get_mut(id) {
            project.snapshot.status = status;
        }
    }

    pub(crate) fn add_file(&self, id: &str, path: &str) {
        if let Some(project) = self.state().projects.get_mut(id) {
            if project.seen_files.len() < MAX_FILES_PER_PROJECT
                && project.seen_files.insert(path.to_owned())
            {
                project.snapshot.files.push(path.to_owned());
            }
        }
    }
}

/// Wakes a thread parked in [`Shared::wait_received`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
