//! An offline LaraCopilot on loopback, for the tests and demos of programs that use
//! the [`laracopilot`] SDK: add it under `[dev-dependencies]`.
//!
//! [`MockServer`] serves the documented Agent API on `127.0.0.1` (an ephemeral port
//! by default) from its own thread and Tokio runtime: no token, no credits, no
//! network, and no runtime needed from the caller. Start it from a plain `#[test]`,
//! any `#[tokio::test]`, or `main`; call it with the async client or the blocking
//! one. It is scriptable: custom event sequences, faults inside streams, canned
//! answers, token states, a credit balance; and it records every request, and
//! what ran on the wire when ([`MockServer::posts`], [`MockServer::streams`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use laracopilot_mock::{Fault, MockServer, ProjectStatus, TokenState};
//! use laracopilot::{Error, Event};
//!
//! let server = MockServer::start();
//! let client = server.client();
//!
//! // The default script: project, container set-up, files for the prompt.
//! let mut generation = client.generate("Build a task management app").await?;
//! while let Some(event) = generation.next().await {
//!     if let Event::FileCreated(file) = event? {
//!         println!("{:?}", file.path); // "database/migrations/…_create_tasks_table.php", ...
//!     }
//! }
//! let id = generation.project_id().cloned().expect("a new project has an id");
//! assert_eq!(server.project(&id).unwrap().status, ProjectStatus::Ready);
//!
//! // A broken connection still hands over the project id.
//! server.fault_next(Fault::DropAfter(5));
//! let error = client.generate("Build a task management app").await?.finish().await.unwrap_err();
//! assert!(matches!(error, Error::Incomplete { .. }) && error.project_id().is_some());
//!
//! // A custom script: any `Serialize` events, sent as given.
//! server.script_next([
//!     serde_json::json!({"type": "project_created", "project_id": "abc123"}),
//!     serde_json::json!({"type": "stream_end"}),
//! ])?;
//! assert_eq!(client.generate("Build a task management app").await?.finish().await?.stats().events, 2);
//!
//! // Token states, with the typed errors they produce.
//! server.add_token("lcp_mock_expired_token", TokenState::Expired);
//! let expired = server
//!     .client_builder()
//!     .token(laracopilot::Token::new("lcp_mock_expired_token")?)
//!     .build()?;
//! assert!(matches!(expired.project(&id).await, Err(Error::TokenExpired { .. })));
//!
//! // Every request is recorded, the token masked.
//! assert!(server.requests().iter().all(|r| {
//!     r.header("authorization").is_some_and(|v| v.starts_with("Bearer ****"))
//! }));
//! server.shutdown();
//! # Ok(()) }
//! ```
//!
//! # What it serves
//!
//! Under `/api/v1`: `POST /agent/generate`, `POST /agent/generate/{projectId}` and
//! `GET /agent/project/{projectId}`, in the order Laravel checks things:
//!
//! 1. the request is read: a head that does not arrive within the
//!    [read timeout](MockServerBuilder::read_timeout) closes the connection; a body
//!    that does not gets 408, one over 1 MiB gets 413 (both `{"message": …}`, and the
//!    connection closed);
//! 2. a canned [`Reply`], if one is queued ([`MockServer::reply_next`]);
//! 3. an unknown route: 404 `{"message": "The route … could not be found."}`; a known
//!    route with another method: 405;
//! 4. the bearer token: missing, unknown or revoked gives 401
//!    `{"status": false, "message": "Unauthorized."}`, expired gives 401
//!    `{"status": false, "message": "API token has expired."}`;
//! 5. an unknown project: 404 `{"status": false, "message": "Project not found."}`;
//! 6. the prompt (trimmed; `required|string|min:N`): 422
//!    `{"message": "…", "errors": {"prompt": ["…"]}}`;
//! 7. the event stream (`text/event-stream`, each event a `data: <json>` line and a
//!    blank line) or the status JSON
//!    `{"status": true, "project_id", "app_url", "project_status", "name"}`.
//!
//! A new project gets the id `p1`, `p2`, ... (skipping the ids of projects it already
//! knows, such as those given to [`MockServerBuilder::project`]) and the app URL
//! `https://{id}.laracopilot.com`. Its `project_status` is `generating` while a
//! stream runs, then `ready` (after `stream_end`), `failed` (the stream ended or
//! broke without a terminal event) or `credits_exhausted` (see [`ProjectStatus`]).
//!
//! A client that goes away in the middle of a stream does not stop the generation,
//! as the SDK documents of LaraCopilot: the project finishes as if the client had
//! stayed (`ready`, its files recorded). [`MockServerBuilder::on_client_drop`] with
//! [`OnClientDrop::Fail`] marks it `failed` instead.
//!
//! # The default scripts
//!
//! A new project: `project_created`; `container_progress` from 10 to 100 percent
//! ("Provisioning container...", ..., "Installing Laravel...", ...);
//! `container_ready`; for each file a `tool_progress` (`"tool": "write_file"`) and a
//! `file_created` (`"path"`, `"action": "created"`); a final `tool_progress`
//! (`php artisan migrate`); `stream_end` with `project_id` and `app_url`. A
//! follow-up has no container events, and ends with `npm run build`.
//!
//! The file names are demo content, from a small table of model words in the
//! prompt: "a task management app" yields a migration
//! `database/migrations/…_create_tasks_table.php`, `app/Models/Task.php`, a factory,
//! `app/Http/Controllers/TaskController.php`, a form request, the views
//! `resources/views/tasks/{index,create,show,edit}.blade.php`, a feature test, the
//! layout and `routes/web.php`; a prompt naming no known model gets an `Item`. A
//! follow-up gets the files of the models it names, or the layout and the CSS.
//!
//! [`MockServerBuilder::events_per_generation`] fixes the number of events of every
//! default stream (for load tests); [`MockServer::script_next`] replaces the next
//! stream's events altogether.
//!
//! # Credits
//!
//! Every `file_created` event costs one credit. When one is due and the balance is
//! zero, `credits_exhausted` is sent in its place and the stream ends; the SDK
//! reports [`Error::CreditsExhausted`](laracopilot::Error::CreditsExhausted) with the
//! project id.
//!
//! # What ran on the wire
//!
//! Besides every request ([`MockServer::requests`]), the server logs every generate
//! and follow-up POST it read ([`MockServer::posts`]: when, with which prompt; with
//! [`MockServer::posts_with_prompt`] to count them) and every event stream it opened
//! and closed ([`MockServer::streams`]: when, for which prompt and project), and
//! counts the streams open at once ([`MockServer::open_streams`],
//! [`MockServer::max_open_streams`]). Spend guards that span processes (a
//! concurrency cap, a credits breaker, a budget, a call made at most once) are best
//! checked there, by the server, rather than by what the clients report.
//! [`MockServer::faults_for_prompt`] gives each of many concurrent calls its own
//! faults, and [`Fault::HoldBefore`] with [`MockServer::release_held`] pauses a
//! stream until the test lets it go on.
//!
//! # Replaying cassettes
//!
//! [`MockServer::replay`] serves a [`Cassette`](laracopilot::cassette::Cassette) instead of all of the above: a real
//! session recorded with [`ClientBuilder::record_to`](laracopilot::ClientBuilder::record_to),
//! or one of its fault variants ([`CassetteExt::cut_after`], [`CassetteExt::revoked`], ...),
//! answered as recorded, chunk for chunk, with the recorded pacing times
//! [`MockServerBuilder::replay_pacing`]. A request that is not on the tape gets a
//! [`UNMATCHED_STATUS`] (501) answer naming it, and is listed by
//! [`MockServer::unmatched`]. The format is described in [`laracopilot::cassette`].
//!
//! # Bounds
//!
//! One task per connection, no thread per request. A stream renders one event at a
//! time when the connection can take more, so memory per stream does not grow with
//! its length (oversized events are padded piece by piece). What the server keeps
//! is capped: [`MAX_RECORDED_REQUESTS`] requests and [`MAX_RECORDED_BODY_BYTES`] of
//! their bodies (the oldest dropped first), [`MAX_PROMPTS_PER_PROJECT`] prompts and
//! [`MAX_FILES_PER_PROJECT`] files per project, and [`MAX_RECORDED_STREAMS`] records
//! in each of the logs of POSTs and streams.

mod demo;
mod fault;
mod replay;
mod routes;
mod script;
mod server;
mod state;
mod stream;
mod tapes;
mod traffic;

pub use fault::{Fault, Reply};
pub use replay::{Unmatched, UNMATCHED_STATUS};
pub use server::{
    MockError, MockServer, MockServerBuilder, DEFAULT_CREDITS, DEFAULT_MIN_PROMPT_LEN,
    DEFAULT_READ_TIMEOUT,
};
pub use state::{
    MockProject, OnClientDrop, ProjectStatus, RecordedRequest, TokenState, UnknownStatus,
    MAX_FILES_PER_PROJECT, MAX_PROMPTS_PER_PROJECT, MAX_RECORDED_BODY_BYTES, MAX_RECORDED_REQUESTS,
};
pub use tapes::CassetteExt;
pub use traffic::{PostRecord, StreamRecord, MAX_RECORDED_STREAMS};
