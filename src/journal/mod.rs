//! A client-side record of spend, on a real storage engine: which generations were
//! started, whether the server accepted each, which project each became and how each
//! ended, written so that a crash loses nothing and a fleet of hosts shares it.
//!
//! LaraCopilot keeps no session a client could reattach to (no event ids, no resume,
//! no cancel), so a process that dies in minute six of a generation (a deploy, an OOM
//! kill, a recycled CI runner) cannot ask the server what it had started. With a
//! journal ([`ClientBuilder::journal`](crate::ClientBuilder::journal)), the client
//! records, for every generate and follow-up call:
//!
//! 1. the **intent**, durably, **before** the request is sent (an entry means "may
//!    have been sent"; no entry means "never sent"), in the same transaction as the
//!    spend guards it passed: a concurrency slot, a count on each budget, the
//!    idempotency key. If it cannot be written, the call fails with
//!    [`Error::Journal`] and nothing is sent;
//! 2. that the server **accepted** the call (its 2xx answer arrived), before the
//!    stream is handed back (so a stream dropped unread is still known accepted);
//! 3. the **project id** as soon as it is known, before the event that names it is
//!    handed out;
//! 4. the **settlement**: the outcome, or the error's kind, before the terminal item
//!    is handed out (after a broken stream,
//!    [`Client::finish_or_recover`](crate::Client::finish_or_recover) settles with
//!    what its poll found).
//!
//! A write of points 2 to 4 that fails does not end a stream that is going well: it
//! is counted in [`Stats::journal_failures`](crate::Stats::journal_failures) and
//! logged (`tracing`, warning), and the entry stays unfinished, which resuming
//! settles later.
//!
//! # Engines
//!
//! - [`SqliteJournal`] (feature `sqlite`): one file on one host, shared safely by
//!   every process there. The embedded default; SQLite is compiled in.
//! - [`PostgresJournal`] (feature `postgres`): one database shared by every host of a
//!   fleet; leases, breakers and budget windows follow the server's clock.
//! - [`MemoryJournal`]: in memory, for tests and single-process use.
//!
//! The file and database engines own their connection on a thread of their own
//! (no journal I/O on the caller's executor), commit the writes waiting together
//! in one transaction (group commit), and answer a write only once it is durable.
//!
//! The [`Journal`] trait is sealed: the spend guards rely on each engine's exact
//! transactional behaviour.
//!
//! # Owners, leases and resuming
//!
//! Every entry belongs to the open journal that started it (its *instance*), which
//! holds a lease renewed in the background (by the engine's own thread) for as long
//! as it is open ([`JournalOptions::lease`], 30 s by default). An entry no live
//! stream drives (its owner's lease expired: the process died; or its stream was
//! dropped) is *unfinished*: [`Client::unfinished`](crate::Client::unfinished) lists
//! such entries and [`Client::resume`](crate::Client::resume) claims one atomically
//! (a fencing token), so that of any number of hosts resuming at once exactly one
//! settles it, and a stale owner that wakes up cannot overwrite that settlement.
//! Resuming polls the project when that can tell the truth, and otherwise reports
//! [`Error::OutcomeUnknown`]: the SDK never re-sends a
//! generate request on its own.
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> laracopilot::Result<()> {
//! use laracopilot::journal::SqliteJournal;
//! use laracopilot::WaitOptions;
//!
//! let client = laracopilot::Client::builder()
//!     .from_env()
//!     .journal(SqliteJournal::open("/var/lib/app/laracopilot.db")?)
//!     .build()?;
//! // At start-up: settle what a crash left unfinished.
//! for entry in client.unfinished().await? {
//!     match client.resume(&entry, WaitOptions::default()).await {
//!         Ok(outcome) => println!("{}: done at {:?}", entry.local_id, outcome.app_url),
//!         Err(error) => eprintln!("{}: {error}", entry.local_id),
//!     }
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(feature = "sqlite", doc = "[`SqliteJournal`]: SqliteJournal")]
#![cfg_attr(
    not(feature = "sqlite"),
    doc = "[`SqliteJournal`]: https://docs.rs/laracopilot/latest/laracopilot/journal/struct.SqliteJournal.html"
)]
#![cfg_attr(feature = "postgres", doc = "[`PostgresJournal`]: PostgresJournal")]
#![cfg_attr(
    not(feature = "postgres"),
    doc = "[`PostgresJournal`]: https://docs.rs/laracopilot/latest/laracopilot/journal/struct.PostgresJournal.html"
)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Error, LocalId, ProjectId};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod engine;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(test)]
#[cfg(feature = "postgres")]
mod postgres_tests;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(test)]
#[cfg(feature = "sqlite")]
mod sqlite_tests;
pub(crate) mod store;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod measure;

pub use memory::MemoryJournal;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PostgresJournal;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteJournal;

/// A storage engine for the client's [journal](self): [`MemoryJournal`],
/// `SqliteJournal` (feature `sqlite`) or `PostgresJournal` (feature `postgres`).
///
/// Sealed: it cannot be implemented outside this crate, because the spend guards
/// rely on each engine's exact transactional behaviour. Implemented for `Arc<J>` too,
/// so a caller can keep a handle on the journal it gives a client.
pub trait Journal: sealed::Sealed + Send + Sync + 'static {}

pub(crate) mod sealed {
    use std::sync::Arc;

    use super::store::Store;

    /// What makes a [`Journal`](super::Journal): its store, for the client.
    pub trait Sealed {
        /// The engine behind this journal.
        fn store(&self) -> Arc<dyn Store>;
    }

    impl<J: Sealed + ?Sized> Sealed for Arc<J> {
        fn store(&self) -> Arc<dyn Store> {
            (**self).store()
        }
    }
}

impl<J: Journal + ?Sized> Journal for Arc<J> {}

/// How an open journal takes part in the fleet: its lease and its instance name.
///
/// ```
/// use std::time::Duration;
/// use laracopilot::journal::JournalOptions;
///
/// let options = JournalOptions::new()
///     .lease(Duration::from_secs(10))
///     .instance("worker-3");
/// assert_eq!(options.lease_duration(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct JournalOptions {
    lease: Duration,
    instance: Option<String>,
}

/// The lease of an open journal unless set otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            lease: DEFAULT_LEASE,
            instance: None,
        }
    }
}

impl JournalOptions {
    /// The defaults: a lease of 30 s, a random instance id.
    pub fn new() -> Self {
        JournalOptions::default()
    }

    /// How long the instance's entries stay driven (and its concurrency slots
    /// taken) after the instance stops renewing its lease (it crashed, or froze):
    /// the longest a crashed host's work waits before another host may resume it.
    /// Renewed every third of it. Values under 1 s count as 1 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// A stable name for this instance (a host or pod name), promising that at most
    /// one live process uses it at a time: opening the journal under a name ends
    /// the leases of that name's earlier opens, so what the last run of this
    /// instance left is unfinished at once instead of after its lease. Without one,
    /// each open is a new instance with a random id.
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// The lease, as set (at least 1 s).
    pub fn lease_duration(&self) -> Duration {
        self.lease.max(Duration::from_secs(1))
    }

    /// The instance name, when set.
    pub fn instance_name(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The instance id of an open: the name when given, else a fresh random id.
    pub(crate) fn instance_id(&self) -> String {
        match &self.instance {
            Some(name) => name.clone(),
            None => format!("lci-{:016x}", crate::random::u64()),
        }
    }
}

/// Which call an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// `POST /agent/generate`: a new project.
    Generate,
    /// `POST /agent/generate/{projectId}`: a follow-up.
    FollowUp,
}

impl Kind {
    /// The name the journal stores: `generate`, `follow_up`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Generate => "generate",
            Kind::FollowUp => "follow_up",
        }
    }

    /// The kind named `name`, as [`as_str`](Kind::as_str) spells it.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(
            dead_code,
            reason = "only the file and database engines read names back"
        )
    )]
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        [Kind::Generate, Kind::FollowUp]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// One generate or follow-up call, as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The client's id for it.
    pub local_id: LocalId,
    /// Which call it is.
    pub kind: Kind,
    /// The scope its guards counted under.
    pub scope: String,
    /// The project: a follow-up's from the start, a new project's once known.
    pub project_id: Option<ProjectId>,
    /// The prompt sent.
    pub prompt: String,
    /// When the call was admitted, just before it was sent.
    pub start_time: SystemTime,
    /// The token it was sent with, masked as the dashboard shows it (never the token).
    pub token: String,
    /// The caller's labels, in the order given.
    pub labels: Vec<(String, String)>,
    /// The caller's idempotency key, while the entry holds it.
    pub idempotency_key: Option<String>,
    /// Whether the server accepted the call (its 2xx answer arrived): work started.
    pub accepted: bool,
    /// How it ended, once settled.
    pub settlement: Option<Settlement>,
    /// The instance that owns it (see the [module docs](self#owners-leases-and-resuming)).
    pub owner: String,
}

/// How an entry ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settlement {
    /// The generation succeeded (`stream_end`, or a polled project that succeeded).
    #[non_exhaustive]
    Succeeded {
        /// Where the application is served, when known.
        app_url: Option<String>,
    },
    /// The call or the stream ended with an error.
    #[non_exhaustive]
    Failed {
        /// The error's [`kind`](crate::Error::kind), e.g. `"credits_exhausted"`.
        error: String,
        /// Whether the request may have started work
        /// ([`Error::may_have_started_work`](crate::Error::may_have_started_work)).
        may_have_started_work: bool,
    },
    /// Resumed, and nothing could tell whether it started work or how it ended.
    Unknown,
}

impl Settlement {
    /// A success.
    pub(crate) fn succeeded(app_url: Option<String>) -> Settlement {
        Settlement::Succeeded { app_url }
    }

    /// A failure of error kind `error`.
    pub(crate) fn failed(error: impl Into<String>, may_have_started_work: bool) -> Settlement {
        Settlement::Failed {
            error: error.into(),
            may_have_started_work,
        }
    }

    /// The settlement of a call or stream that ended with `error`.
    pub(crate) fn of_error(error: &Error) -> Settlement {
        Settlement::failed(error.kind(), error.may_have_started_work())
    }

    /// The name the journal stores: `succeeded`, `failed`, `unknown`.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(
            dead_code,
            reason = "only the file and database engines store outcomes by name"
        )
    )]
    pub(crate) fn outcome_name(&self) -> &'static str {
        match self {
            Settlement::Succeeded { .. } => "succeeded",
            Settlement::Failed { .. } => "failed",
            Settlement::Unknown => "unknown",
        }
    }

    /// Whether this settlement gives the entry's idempotency key up: a failure that
    /// started no work (nothing reached the server), so the same call may be made
    /// again under the same key.
    pub(crate) fn frees_key(&self) -> bool {
        matches!(
            self,
            Settlement::Failed {
                may_have_started_work: false,
                ..
            }
        )
    }
}

/// A journal's store, for the client.
pub(crate) fn store_of(journal: &impl Journal) -> Arc<dyn store::Store> {
    sealed::Sealed::store(journal)
}
