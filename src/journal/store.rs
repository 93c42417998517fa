//! What a journal engine does, whatever holds its data (memory, an SQLite file, a
//! PostgreSQL database): the one interface the client's spend guards use.
//!
//! The items here are `pub` inside a private module: nameable by the engines of this
//! crate, by no one outside it (the public [`Journal`](super::Journal) trait is
//! sealed, and hands its store out only to this crate).
//!
//! # The model
//!
//! An **entry** is one generate or follow-up call. It is written by [`Store::admit`]
//! before the request is sent, and never deleted except by [`Store::prune`] once
//! settled. Its life:
//!
//! ```text
//! admit ──▶ accepted ──▶ project known ──▶ settled
//!   │          (any of these may be skipped, in this order)     ▲
//!   └── released (its stream was dropped: no live stream drives it) ┘ resume claims it
//! ```
//!
//! - **Owner and lease.** Every entry belongs to the engine instance that admitted or
//!   last claimed it (an instance id, random for each open unless the journal was
//!   given a stable instance name). The instance holds a lease, renewed by the engine
//!   itself (its own thread) every third of [`Store::lease`] for as long as the
//!   journal is open. An entry is **driven** while its owner's lease is alive and it
//!   was not released; otherwise it is **unfinished** (resumable).
//! - **Fence.** Every entry has a fencing token, a number that [`Store::claim`]
//!   increments (fences of different entries are unrelated: the engines count
//!   per entry, memory counts for all). Each write about an entry names the fence its writer holds, and the
//!   engine applies it only when the entry still has that fence: a stale owner that
//!   wakes up after another instance claimed its entry cannot overwrite anything.
//! - **Settlement.** An entry is settled at most once: the first [`Store::settle`]
//!   with the current fence wins; every later one (any fence) changes nothing and
//!   answers `false`.
//! - **Slot.** An entry admitted under a concurrency cap holds a slot of its scope
//!   from admission until it is settled, released, or its owner's lease expires.
//!   The count of a scope's slots is the number of its unsettled, unreleased
//!   entries whose owner's lease is alive.
//! - **Scope.** Every guard counts per scope (a name the client chooses: a team, a
//!   tenant, an environment). Clients on any host that share the engine's database
//!   and a scope share its cap, its breaker, its budgets and its idempotency keys.
//!
//! # Time
//!
//! Leases, breakers and budget windows use the engine's clock: the host's for memory
//! and SQLite (one host), the database server's for PostgreSQL (so that hosts whose
//! clocks disagree still agree on every lease).
//!
//! # Atomicity
//!
//! [`Store::admit`] is one transaction: breaker, idempotency key, budgets and cap are
//! checked and the entry, its slot, its budget reservations and its key are written
//! together, or nothing is written. Concurrent admissions of one scope (from any
//! process or host) are serialized by the engine (SQLite: the write lock of
//! `BEGIN IMMEDIATE`; PostgreSQL: a row lock on the scope). Every other write is
//! atomic on its own.
//!
//! # Durability
//!
//! A future of a write completes only once the write is durable (committed and, for
//! the file engine, synced): the client sends a request only after its admission
//! completed, and hands an event to its caller only after the write it caused
//! completed. Engines may group concurrent writes into one commit.
//!
//! # Failure
//!
//! Every method fails with [`Error::Journal`](crate::Error::Journal) (naming the
//! journal and what failed, the engine's error as its source); a write whose future
//! failed may or may not have been applied, except [`Store::admit`], which applied
//! nothing when it failed.
//!
//! A future of [`Store::admit`] dropped before it completed (its caller gave up:
//! a `select!`, a timeout) either wrote nothing or wrote an entry that the engine
//! then settles as failed with error `"cancelled"` and `may_have_started_work:
//! false` (true: nothing was sent, since nobody learnt of the admission). Either
//! way it holds no slot and no idempotency key once that settlement lands, and it
//! is never listed as unfinished.
//!
//! # Engines with a thread of their own
//!
//! The SQLite and PostgreSQL engines own their connection on a thread of their
//! own: a method sends a command over a bounded channel (a caller beyond its bound
//! waits, asynchronously) and awaits the answer; the thread runs the commands
//! waiting in one transaction, a savepoint for each, so that one command's failure
//! fails no other, and answers once that transaction committed durably. The
//! instance's lease is renewed by that thread, and ended (its entries unfinished
//! at once) when the journal's last handle is dropped.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use super::{Entry, Kind, Settlement};
use crate::{Budget, LocalId, ProjectId, Result};

/// The future of a [`Store`] method.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// What a store can be asked; see the [module docs](self) for the model every engine
/// follows. Object safe: the client holds an `Arc<dyn Store>`.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// This open journal's instance id: the owner of the entries it admits or claims.
    fn instance(&self) -> &str;

    /// How long an instance's lease lasts without renewal: the longest time a
    /// crashed instance's entries stay driven (and its slots taken).
    fn lease(&self) -> Duration;

    /// Admits one call, in one transaction, checking in this order:
    ///
    /// 1. the scope's credits breaker: open (its `open_until` is in the future) →
    ///    [`Admission::BreakerOpen`], nothing written;
    /// 2. the idempotency key, when the intent has one: held by an entry of the scope
    ///    → [`Admission::Duplicate`] with that entry as it is now, nothing written;
    ///    except that an entry settled as failed with `may_have_started_work: false`
    ///    (nothing reached the server) gives its key up: the key moves to the new
    ///    entry, in the same transaction;
    /// 3. each budget of the intent: the scope's count for the current window of that
    ///    budget has reached the limit → [`Admission::OverBudget`], nothing written;
    /// 4. the concurrency cap, when the intent has one: the scope's slots taken (see
    ///    the module docs) are `max_concurrent` or more → [`Admission::Busy`],
    ///    nothing written.
    ///
    /// Otherwise it writes the entry (owner: this instance, a fresh fence, holding a
    /// slot when the intent has a cap), its key, and one count on each budget's
    /// current window, and answers [`Admission::Admitted`].
    fn admit(&self, intent: Intent) -> StoreFuture<'_, Admission>;

    /// Records that the server accepted the call (its 2xx answer arrived). `false`
    /// when the entry no longer has `fence`, or is settled (nothing written).
    fn accepted(&self, entry: &LocalId, fence: u64) -> StoreFuture<'_, bool>;

    /// Records the entry's project id. `false` as for [`Store::accepted`].
    fn project_known(
        &self,
        entry: &LocalId,
        fence: u64,
        project_id: &ProjectId,
    ) -> StoreFuture<'_, bool>;

    /// Settles the entry (frees its slot, and its key when the settlement is a
    /// failure that started no work). `false` when the entry no longer has `fence`
    /// or was already settled: nothing is written then.
    fn settle(&self, entry: &LocalId, fence: u64, settlement: Settlement) -> StoreFuture<'_, bool>;

    /// The entry's stream is gone without a settlement (dropped, or its resume gave
    /// up): it frees the slot and makes the entry unfinished, when it still has
    /// `fence`. Called from `Drop`: it must not block; the write may complete after
    /// the call returns (a failure is logged, and the lease expiry frees the slot in
    /// the end).
    fn release(&self, entry: &LocalId, fence: u64);

    /// The unsettled entries no live stream drives (owner's lease expired, or
    /// released), of every scope, oldest first.
    fn unfinished(&self) -> StoreFuture<'_, Vec<Entry>>;

    /// Takes an unfinished entry over, atomically: when it is unsettled and not
    /// driven, this instance becomes its owner, its fence is incremented, and it is
    /// driven again (it holds no slot). Answers the entry and its new fence, or
    /// `None` when it is settled, unknown, or driven by a live stream.
    fn claim(&self, entry: &LocalId) -> StoreFuture<'_, Option<(Entry, u64)>>;

    /// The entry as it is now, and whether a live stream drives it (its owner's
    /// lease is alive and it was not released; `false` once settled).
    fn entry(&self, entry: &LocalId) -> StoreFuture<'_, Option<(Entry, bool)>>;

    /// Opens the scope's credits breaker for `cooldown` from now (engine clock); an
    /// already open breaker is extended, never shortened.
    fn trip_breaker(&self, scope: &str, cooldown: Duration) -> StoreFuture<'_, ()>;

    /// Closes the scope's breaker.
    fn reset_breaker(&self, scope: &str) -> StoreFuture<'_, ()>;

    /// Until when the scope's breaker is open, if it is (engine clock, as a
    /// `SystemTime`).
    fn breaker(&self, scope: &str) -> StoreFuture<'_, Option<SystemTime>>;

    /// Deletes the entries settled before `settled_before` (with their keys);
    /// answers how many.
    fn prune(&self, settled_before: SystemTime) -> StoreFuture<'_, u64>;

    /// Resolves once every write handed over before it is durable, the releases
    /// [`release`](Store::release) sends without waiting included.
    fn flush(&self) -> StoreFuture<'_, ()>;
}

/// Everything the admission of one call writes or checks.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The scope every guard counts under.
    pub scope: String,
    /// Which call.
    pub kind: Kind,
    /// A follow-up's project.
    pub project_id: Option<ProjectId>,
    /// The prompt.
    pub prompt: String,
    /// The token's mask (never the token).
    pub token_mask: String,
    /// The caller's labels, in order.
    pub labels: Vec<(String, String)>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// The scope's concurrency cap as this client sees it (`None`: no cap, no slot).
    pub max_concurrent: Option<u64>,
    /// The budgets to count this call against.
    pub budgets: Vec<Budget>,
}

/// The answer of [`Store::admit`].
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Written: send the request.
    Admitted {
        /// The new entry.
        entry: LocalId,
        /// Its fence.
        fence: u64,
    },
    /// The idempotency key belongs to this entry: send nothing.
    Duplicate(Box<Entry>),
    /// The scope's cap is reached: nothing written; try again later.
    Busy {
        /// Slots taken.
        running: u64,
    },
    /// The scope's credits breaker is open: nothing written.
    BreakerOpen {
        /// Until when (engine clock).
        until: SystemTime,
    },
    /// A budget of the scope is spent for its current window: nothing written.
    OverBudget {
        /// The budget.
        budget: Budget,
        /// When its current window ends (engine clock).
        reset_time: SystemTime,
    },
}
