//! What the SQLite and PostgreSQL engines share: the caller's side of an engine
//! thread (commands over a bounded channel, each answered on a oneshot), the
//! [`Store`] every such engine is, and the encoding of entries in rows.
//!
//! Each engine owns its connection on a thread of its own, so no journal I/O runs on
//! a caller's executor: a call sends a [`Command`] and awaits its answer. The thread
//! drains the commands waiting and runs them in one transaction (group commit), a
//! savepoint for each, and answers only once that transaction is durable.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use super::store::{Admission, Intent, Store, StoreFuture};
use super::{Entry, Kind, Settlement};
use crate::{Error, LocalId, ProjectId, Result};

/// Commands waiting for an engine thread, at most: a caller beyond that waits for
/// room (asynchronously), so memory stays bounded under any load.
pub(super) const QUEUE: usize = 1_024;

/// Commands run in one transaction, at most.
pub(super) const BATCH: usize = 256;

/// The most commands one transaction takes now: [`BATCH`], or 1 while a
/// measurement of what group commit buys turns it off.
pub(super) fn batch_limit() -> usize {
    match BATCH_LIMIT.load(std::sync::atomic::Ordering::Relaxed) {
        0 => BATCH,
        limit => limit,
    }
}

/// Set by measurements only (0: [`BATCH`]).
pub(super) static BATCH_LIMIT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Whether batches are run a savepoint per command from the start (set by
/// measurements only; otherwise an engine may first try a batch without them).
#[cfg(feature = "postgres")]
pub(super) fn savepoints_always() -> bool {
    SAVEPOINTS_ALWAYS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set by measurements only.
#[cfg(feature = "postgres")]
pub(super) static SAVEPOINTS_ALWAYS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The longest an engine thread waits between two renewals of its lease, whatever
/// the lease (renewing more often than needed is harmless).
pub(super) const RENEW_AT_MOST_EVERY: Duration = Duration::from_secs(3_600);

/// What the client's settlement is when an admission was written but its caller
/// stopped waiting for it (its future was dropped): the request was never sent.
pub(super) const CANCELLED: &str = "cancelled";

/// One question for an engine thread.
#[derive(Debug)]
pub(super) enum Op {
    Admit(Intent),
    Accepted {
        entry: LocalId,
        fence: u64,
    },
    ProjectKnown {
        entry: LocalId,
        fence: u64,
        project_id: ProjectId,
    },
    Settle {
        entry: LocalId,
        fence: u64,
        settlement: Settlement,
    },
    Release {
        entry: LocalId,
        fence: u64,
    },
    Unfinished,
    Claim {
        entry: LocalId,
    },
    Entry {
        entry: LocalId,
    },
    TripBreaker {
        scope: String,
        cooldown: Duration,
    },
    ResetBreaker {
        scope: String,
    },
    Breaker {
        scope: String,
    },
    Prune {
        settled_before: SystemTime,
    },
    /// Answered once every command sent before it is durable (the engine runs
    /// commands in order, and answers a batch once it committed).
    Flush,
}

impl Op {
    /// What it does, for the message of an error: "the journal X could not ...".
    pub(super) fn what(&self) -> &'static str {
        match self {
            Op::Admit(_) => "record a call about to be sent",
            Op::Accepted { .. } => "record that a call was accepted",
            Op::ProjectKnown { .. } => "record a call's project",
            Op::Settle { .. } => "settle an entry",
            Op::Release { .. } => "release an entry",
            Op::Unfinished => "list the unfinished entries",
            Op::Claim { .. } => "claim an entry",
            Op::Entry { .. } => "read an entry",
            Op::TripBreaker { .. } => "open a credits breaker",
            Op::ResetBreaker { .. } => "close a credits breaker",
            Op::Breaker { .. } => "read a credits breaker",
            Op::Prune { .. } => "prune settled entries",
            Op::Flush => "finish the writes handed to it",
        }
    }

    /// Whether it may write (a batch of reads only takes no write lock).
    pub(super) fn writes(&self) -> bool {
        !matches!(
            self,
            Op::Unfinished | Op::Entry { .. } | Op::Breaker { .. } | Op::Flush
        )
    }
}

/// An engine's answer to one [`Op`].
#[derive(Debug)]
pub(super) enum Reply {
    Admission(Admission),
    Written(bool),
    Entries(Vec<Entry>),
    Claimed(Option<(Entry, u64)>),
    Found(Option<(Entry, bool)>),
    Done,
    Until(Option<SystemTime>),
    Pruned(u64),
}

/// A question and where its answer goes (nowhere for a fire-and-forget write).
#[derive(Debug)]
pub(super) struct Command {
    pub(super) op: Op,
    pub(super) reply: Option<oneshot::Sender<Result<Reply>>>,
}

impl Command {
    /// Hands the answer over. An entry admitted for a caller who stopped waiting
    /// comes back as the write that settles it as never sent (nothing will send it,
    /// and it must not hold its slot or its key).
    pub(super) fn answer(self, result: Result<Reply>) -> Option<Op> {
        let reply = self.reply?;
        match reply.send(result) {
            Ok(()) => None,
            Err(unheard) => never_sent(unheard),
        }
    }
}

/// The write that settles an admission nobody heard of.
fn never_sent(unheard: Result<Reply>) -> Option<Op> {
    match unheard {
        Ok(Reply::Admission(Admission::Admitted { entry, fence })) => Some(Op::Settle {
            entry,
            fence,
            settlement: Settlement::failed(CANCELLED, false),
        }),
        _ => None,
    }
}

/// The caller's side of an engine thread, and the [`Store`] the client uses.
pub(super) struct Handle {
    id: String,
    lease: Duration,
    /// The journal as messages name it (a path; a URL without its password).
    name: String,
    engine: &'static str,
    commands: mpsc::Sender<Command>,
}

impl Handle {
    pub(super) fn new(
        engine: &'static str,
        name: String,
        id: String,
        lease: Duration,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Handle {
            id,
            lease,
            name,
            engine,
            commands,
        }
    }

    async fn call(&self, op: Op) -> Result<Reply> {
        let what = op.what();
        let (reply, answer) = oneshot::channel();
        let command = Command {
            op,
            reply: Some(reply),
        };
        // Cancel safe: a send that did not complete sent nothing.
        if self.commands.send(command).await.is_err() {
            return Err(self.stopped(what));
        }
        // From here on, a caller who stops waiting leaves no admission behind.
        let mut waiting = Waiting {
            answer: Some(answer),
            commands: self.commands.clone(),
        };
        let answered = match waiting.answer.as_mut() {
            Some(answer) => answer.await,
            None => return Err(self.stopped(what)),
        };
        waiting.answer = None;
        answered.map_err(|_| self.stopped(what))?
    }

    /// Sends a write nobody waits for (from `Drop`): never blocks. When the queue
    /// is full it is dropped with a warning (the lease expiry does its work in the
    /// end).
    fn forget(&self, op: Op) {
        let what = op.what();
        if self.commands.try_send(Command { op, reply: None }).is_err() {
            tracing::warn!(
                journal = %self.name,
                "the laracopilot journal could not {what}: its queue is full or it is closed"
            );
        }
    }

    fn stopped(&self, what: &str) -> Error {
        Error::journal(
            format!("the {} journal {} could not {what}", self.engine, self.name),
            Problem::new("its engine thread has stopped"),
        )
    }

    fn unexpected(&self, what: &str, reply: &Reply) -> Error {
        Error::journal(
            format!("the {} journal {} could not {what}", self.engine, self.name),
            Problem::new(format!("the engine answered out of turn: {reply:?}")),
        )
    }
}

/// A caller waiting for its answer. Dropped before the answer was read (the
/// caller's future was dropped), it settles an admission that was made for it as
/// never sent; the engine thread does the same when it cannot deliver one.
struct Waiting {
    answer: Option<oneshot::Receiver<Result<Reply>>>,
    commands: mpsc::Sender<Command>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        answer.close();
        if let Ok(unheard) = answer.try_recv() {
            if let Some(op) = never_sent(unheard) {
                // Never blocks; when the queue is full, the lease expiry (or the
                // close of this journal) frees the slot in the end.
                let _ = self.commands.try_send(Command { op, reply: None });
            }
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("engine", &self.engine)
            .field("journal", &self.name)
            .field("instance", &self.id)
            .field("lease", &self.lease)
            .finish()
    }
}

macro_rules! ask {
    ($handle:expr, $op:expr, $pattern:pat => $value:expr) => {{
        let handle = $handle;
        let op = $op;
        let what = op.what();
        Box::pin(async move {
            match handle.call(op).await? {
                $pattern => Ok($value),
                other => Err(handle.unexpected(what, &other)),
            }
        })
    }};
}

impl Store for Handle {
    fn instance(&self) -> &str {
        &self.id
    }

    fn lease(&self) -> Duration {
        self.lease
    }

    fn admit(&self, intent: Intent) -> StoreFuture<'_, Admission> {
        ask!(self, Op::Admit(intent), Reply::Admission(admission) => admission)
    }

    fn accepted(&self, entry: &LocalId, fence: u64) -> StoreFuture<'_, bool> {
        let op = Op::Accepted {
            entry: entry.clone(),
            fence,
        };
        ask!(self, op, Reply::Written(written) => written)
    }

    fn project_known(
        &self,
        entry: &LocalId,
        fence: u64,
        project_id: &ProjectId,
    ) -> StoreFuture<'_, bool> {
        let op = Op::ProjectKnown {
            entry: entry.clone(),
            fence,
            project_id: project_id.clone(),
        };
        ask!(self, op, Reply::Written(written) => written)
    }

    fn settle(&self, entry: &LocalId, fence: u64, settlement: Settlement) -> StoreFuture<'_, bool> {
        let op = Op::Settle {
            entry: entry.clone(),
            fence,
            settlement,
        };
        ask!(self, op, Reply::Written(written) => written)
    }

    fn release(&self, entry: &LocalId, fence: u64) {
        self.forget(Op::Release {
            entry: entry.clone(),
            fence,
        });
    }

    fn unfinished(&self) -> StoreFuture<'_, Vec<Entry>> {
        ask!(self, Op::Unfinished, Reply::Entries(entries) => entries)
    }

    fn claim(&self, entry: &LocalId) -> StoreFuture<'_, Option<(Entry, u64)>> {
        let op = Op::Claim {
            entry: entry.clone(),
        };
        ask!(self, op, Reply::Claimed(claimed) => claimed)
    }

    fn entry(&self, entry: &LocalId) -> StoreFuture<'_, Option<(Entry, bool)>> {
        let op = Op::Entry {
            entry: entry.clone(),
        };
        ask!(self, op, Reply::Found(found) => found)
    }

    fn trip_breaker(&self, scope: &str, cooldown: Duration) -> StoreFuture<'_, ()> {
        let op = Op::TripBreaker {
            scope: scope.to_owned(),
            cooldown,
        };
        ask!(self, op, Reply::Done => ())
    }

    fn reset_breaker(&self, scope: &str) -> StoreFuture<'_, ()> {
        let op = Op::ResetBreaker {
            scope: scope.to_owned(),
        };
        ask!(self, op, Reply::Done => ())
    }

    fn breaker(&self, scope: &str) -> StoreFuture<'_, Option<SystemTime>> {
        let op = Op::Breaker {
            scope: scope.to_owned(),
        };
        ask!(self, op, Reply::Until(until) => until)
    }

    fn prune(&self, settled_before: SystemTime) -> StoreFuture<'_, u64> {
        ask!(self, Op::Prune { settled_before }, Reply::Pruned(pruned) => pruned)
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        ask!(self, Op::Flush, Reply::Done => ())
    }
}

/// A reason of our own, as an error's source.
#[derive(Debug)]
pub(super) struct Problem(String);

impl Problem {
    pub(super) fn new(reason: impl Into<String>) -> Self {
        Problem(reason.into())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Problem {}

/// Milliseconds since the Unix epoch, as the engines store times (0 before the
/// epoch, `i64::MAX` at most).
pub(super) fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A duration in milliseconds, `i64::MAX` at most (`Duration::MAX` included).
pub(super) fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The time `millis` after the Unix epoch (the epoch for a negative number).
pub(super) fn time(millis: i64) -> SystemTime {
    crate::budget::from_unix_millis(u64::try_from(millis).unwrap_or(0))
}

/// How a settlement is stored: outcome, app URL, error kind, may have started work.
pub(super) fn settlement_columns(
    settlement: &Settlement,
) -> (&'static str, Option<&str>, Option<&str>, Option<bool>) {
    let outcome = settlement.outcome_name();
    match settlement {
        Settlement::Succeeded { app_url } => (outcome, app_url.as_deref(), None, None),
        Settlement::Failed {
            error,
            may_have_started_work,
        } => (outcome, None, Some(error), Some(*may_have_started_work)),
        Settlement::Unknown => (outcome, None, None, None),
    }
}

/// An entry's labels as stored: a JSON array of `[name, value]` pairs.
pub(super) fn labels_json(labels: &[(String, String)]) -> String {
    // A list of pairs of strings always serializes.
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".to_owned())
}

/// An entry as a row holds it, before it is checked.
pub(super) struct Stored {
    pub(super) local_id: String,
    pub(super) kind: String,
    pub(super) scope: String,
    pub(super) project_id: Option<String>,
    pub(super) prompt: String,
    pub(super) started_at: i64,
    pub(super) token: String,
    pub(super) labels: String,
    pub(super) idempotency_key: Option<String>,
    pub(super) accepted: bool,
    pub(super) outcome: Option<String>,
    pub(super) app_url: Option<String>,
    pub(super) error: Option<String>,
    pub(super) may_have_started_work: Option<bool>,
    pub(super) owner: String,
}

impl Stored {
    /// The entry, or why the row is not one this SDK can read.
    pub(super) fn into_entry(self) -> std::result::Result<Entry, Problem> {
        let kind = Kind::from_name(&self.kind).ok_or_else(|| {
            Problem::new(format!(
                "entry {} has a kind this SDK does not know: {:?}",
                self.local_id, self.kind
            ))
        })?;
        let labels: Vec<(String, String)> = serde_json::from_str(&self.labels).map_err(|e| {
            Problem::new(format!(
                "entry {} has unreadable labels: {e}",
                self.local_id
            ))
        })?;
        let settlement = match self.outcome.as_deref() {
            None => None,
            Some("succeeded") => Some(Settlement::succeeded(self.app_url)),
            Some("failed") => Some(Settlement::failed(
                self.error.unwrap_or_default(),
                self.may_have_started_work.unwrap_or(true),
            )),
            Some("unknown") => Some(Settlement::Unknown),
            Some(other) => {
                return Err(Problem::new(format!(
                    "entry {} has an outcome this SDK does not know: {other:?}",
                    self.local_id
                )))
            }
        };
        Ok(Entry {
            local_id: LocalId::from(self.local_id.as_str()),
            kind,
            scope: self.scope,
            project_id: self.project_id.map(|id| ProjectId::from(id.as_str())),
            prompt: self.prompt,
            start_time: time(self.started_at),
            token: self.token,
            labels,
            idempotency_key: self.idempotency_key,
            accepted: self.accepted,
            settlement,
            owner: self.owner,
        })
    }
}

/// A number as stored (fences, window starts: an `i64`, `i64::MAX` at most), and
/// back (0 for a negative one).
pub(super) fn signed(number: u64) -> i64 {
    i64::try_from(number).unwrap_or(i64::MAX)
}

pub(super) fn unsigned(column: i64) -> u64 {
    u64::try_from(column).unwrap_or(0)
}
