//! Spend safety around each generate and follow-up call: the credits breaker, the
//! concurrency cap, the budgets and idempotency keys, and the journal's records of
//! each call. With a journal, every guard lives in its store, shared by every client
//! on every host with the same database and scope; without one, the cap and the
//! breaker are this client's own (its clones included).
//!
//! The client asks [`Spend::admit`] before sending, and hands the stream the
//! [`Watcher`] that [`Spend::watch`] makes of the admission.

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{ErrorContext, TimeoutKind};
use crate::generation::{Watcher, Write};
use crate::journal::store::{Admission, Intent, Store};
use crate::journal::{Entry, Kind, Settlement};
use crate::{Budget, Error, Event, LocalId, ProjectId, Result};

/// How often a call waiting for a slot of a fleet-wide cap asks the store again, at
/// most (a slot freed by this client wakes it at once).
const SLOT_POLL_MAX: Duration = Duration::from_millis(250);
const SLOT_POLL_MIN: Duration = Duration::from_millis(5);

/// The spend guards of one client, shared by its clones.
pub(crate) struct Spend {
    max_concurrent: Option<u64>,
    /// The cap without a store: this client's own slots.
    local_slots: Option<Arc<Semaphore>>,
    budgets: Vec<Budget>,
    /// Also where the journal's store and the scope are kept, once for the client
    /// and its streams' watchers.
    breaker: Arc<Breaker>,
    /// Wakes this client's calls waiting for a fleet-wide slot when one of its own
    /// streams frees one.
    freed: Arc<Notify>,
}

/// The settings of [`Spend`], from the builder.
pub(crate) struct Guards {
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) scope: String,
    pub(crate) max_concurrent: Option<u64>,
    pub(crate) budgets: Vec<Budget>,
    pub(crate) credits_cooldown: Option<Duration>,
    pub(crate) check_interval: Duration,
}

/// The credits breaker: this client's view of it. With a store, the store holds it
/// for the scope, and this caches an open breaker for one check interval, so that
/// refusing costs no round trip; without one, this is the breaker.
pub(crate) struct Breaker {
    /// Where the scope's breaker is kept, with a journal (the streams' watchers
    /// open it there); kept here so that a watcher holds one pointer for all three.
    store: Option<Arc<dyn Store>>,
    scope: String,
    cooldown: Option<Duration>,
    check_interval: Duration,
    /// Open until (wall clock, as the store says), and when that was learnt.
    open: Mutex<Option<(SystemTime, Instant)>>,
}

/// One call, as the caller asked for it.
pub(crate) struct Asked<'a> {
    pub(crate) kind: Kind,
    pub(crate) project_id: Option<&'a ProjectId>,
    pub(crate) prompt: &'a str,
    pub(crate) labels: &'a [(String, String)],
    pub(crate) idempotency_key: Option<&'a str>,
}

/// What a call may go on with.
pub(crate) enum Admitted {
    /// Send it, holding this.
    Send(Pass),
    /// The idempotency key belongs to an earlier call: send nothing.
    Duplicate(Box<Entry>),
}

/// An admitted call's slot and journal entry.
pub(crate) struct Pass {
    pub(crate) slot_wait: Duration,
    permit: Option<OwnedSemaphorePermit>,
    journaled: Option<Journaled>,
}

impl Pass {
    /// The call's journal entry, when it is journaled.
    pub(crate) fn journal_id(&self) -> Option<&LocalId> {
        self.journaled.as_ref().map(Journaled::local_id)
    }

    /// The journal entry, taken out (for a call that ends before its stream).
    pub(crate) fn take_journaled(&mut self) -> Option<Journaled> {
        self.journaled.take()
    }
}

/// The journal entry of one admitted call, and the fence its writes need. Dropped
/// without a settlement, it releases the entry (its slot freed, the entry left for
/// resuming).
pub(crate) struct Journaled {
    store: Arc<dyn Store>,
    freed: Arc<Notify>,
    local_id: LocalId,
    fence: u64,
    done: bool,
}

impl Spend {
    pub(crate) fn new(guards: Guards) -> Self {
        let local_slots = match (&guards.store, guards.max_concurrent) {
            (None, Some(n)) => Some(Arc::new(Semaphore::new(
                usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(Semaphore::MAX_PERMITS),
            ))),
            _ => None,
        };
        Spend {
            max_concurrent: guards.max_concurrent,
            local_slots,
            budgets: guards.budgets,
            breaker: Arc::new(Breaker {
                store: guards.store,
                scope: guards.scope,
                cooldown: guards.credits_cooldown,
                check_interval: guards.check_interval,
                open: Mutex::new(None),
            }),
            freed: Arc::new(Notify::new()),
        }
    }

    /// The journal's store, when the client has one.
    pub(crate) fn store(&self) -> Option<&Arc<dyn Store>> {
        self.breaker.store.as_ref()
    }

    /// The scope every guard counts under.
    pub(crate) fn scope(&self) -> &str {
        &self.breaker.scope
    }

    /// Admits `call` (waiting for a slot until `deadline`, if any): the breaker, the
    /// idempotency key, the budgets and the cap, and with a journal its entry, all
    /// in one transaction of the store. `token_mask` is asked only when the call is
    /// journaled.
    ///
    /// # Errors
    ///
    /// [`Error::CreditsExhausted`] (`locally`) while the breaker is open;
    /// [`Error::BudgetExhausted`] for a spent budget; [`Error::Timeout`] (kind
    /// `Deadline`, nothing sent) when no slot freed up in time; [`Error::Journal`]
    /// when the store cannot record the call; [`Error::Config`] for an idempotency
    /// key or a budget without a journal.
    pub(crate) async fn admit<F, Fut>(
        &self,
        call: Asked<'_>,
        deadline: Option<Instant>,
        token_mask: F,
    ) -> Result<Admitted>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<String>>,
    {
        self.breaker.check_cached(call.project_id)?;
        let Some(store) = self.store() else {
            if call.idempotency_key.is_some() {
                return Err(Error::config(
                    "an idempotency key needs a journal (ClientBuilder::journal; MemoryJournal for one process)",
                ));
            }
            return self.admit_locally(call.project_id, deadline).await;
        };
        let intent = Intent {
            scope: self.scope().to_owned(),
            kind: call.kind,
            project_id: call.project_id.cloned(),
            prompt: call.prompt.to_owned(),
            token_mask: token_mask().await?,
            labels: call.labels.to_vec(),
            idempotency_key: call.idempotency_key.map(str::to_owned),
            max_concurrent: self.max_concurrent,
            budgets: self.budgets.clone(),
        };
        let asked = Instant::now();
        let mut pause = SLOT_POLL_MIN;
        loop {
            // Registered before asking, so that a slot freed meanwhile is not missed.
            let freed = self.freed.notified();
            match store.admit(intent.clone()).await? {
                Admission::Admitted { entry, fence } => {
                    return Ok(Admitted::Send(Pass {
                        slot_wait: asked.elapsed(),
                        permit: None,
                        journaled: Some(Journaled {
                            store: Arc::clone(store),
                            freed: Arc::clone(&self.freed),
                            local_id: entry,
                            fence,
                            done: false,
                        }),
                    }))
                }
                Admission::Duplicate(entry) => return Ok(Admitted::Duplicate(entry)),
                Admission::BreakerOpen { until } => {
                    self.breaker.learn(until);
                    return Err(self.breaker.refusal(call.project_id, until));
                }
                Admission::OverBudget { budget, reset_time } => {
                    return Err(Error::BudgetExhausted {
                        budget,
                        scope: self.scope().to_owned(),
                        reset_time,
                        context: ErrorContext::of(call.project_id.cloned(), 0),
                    });
                }
                Admission::Busy { .. } => {}
            }
            let wake = match deadline {
                Some(at) => at.min(Instant::now() + pause),
                None => Instant::now() + pause,
            };
            if deadline.is_some_and(|at| Instant::now() >= at) {
                return Err(slot_timeout(call.project_id));
            }
            tokio::select! {
                () = freed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            pause = (pause * 2).min(SLOT_POLL_MAX);
        }
    }

    async fn admit_locally(
        &self,
        project_id: Option<&ProjectId>,
        deadline: Option<Instant>,
    ) -> Result<Admitted> {
        let Some(slots) = &self.local_slots else {
            return Ok(Admitted::Send(Pass {
                slot_wait: Duration::ZERO,
                permit: None,
                journaled: None,
            }));
        };
        let asked = Instant::now();
        let acquire = Arc::clone(slots).acquire_owned();
        let permit = match deadline {
            Some(at) => tokio::time::timeout_at(at, acquire)
                .await
                .map_err(|_| slot_timeout(project_id))?,
            None => acquire.await,
        }
        // The semaphore is never closed.
        .map_err(|_| Error::config("the generation slots were closed"))?;
        // The breaker may have tripped while this call waited.
        self.breaker.check_cached(project_id)?;
        Ok(Admitted::Send(Pass {
            slot_wait: asked.elapsed(),
            permit: Some(permit),
            journaled: None,
        }))
    }

    /// The watcher of an admitted call's stream.
    pub(crate) fn watch(&self, pass: Pass) -> Box<dyn Watcher> {
        Box::new(Watch {
            _permit: pass.permit,
            journaled: pass.journaled.map(Box::new),
            breaker: Arc::clone(&self.breaker),
        })
    }

    /// Closes the breaker at once, for every client of the scope when there is a
    /// journal.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the store cannot be written.
    pub(crate) async fn reset_breaker(&self) -> Result<()> {
        *lock(&self.breaker.open) = None;
        match self.store() {
            Some(store) => store.reset_breaker(self.scope()).await,
            None => Ok(()),
        }
    }
}

fn slot_timeout(project_id: Option<&ProjectId>) -> Error {
    Error::timeout(TimeoutKind::Deadline)
        .with_attempts(0)
        .with_project_id(project_id)
}

impl Breaker {
    /// Refuses from what this client knows: its own breaker, or an open one the
    /// store reported less than one check interval ago.
    fn check_cached(&self, project_id: Option<&ProjectId>) -> Result<()> {
        let Some((until, learnt)) = *lock(&self.open) else {
            return Ok(());
        };
        if self.cooldown.is_none() {
            return Ok(());
        }
        let fresh = learnt.elapsed() < self.check_interval;
        if fresh && SystemTime::now() < until {
            return Err(self.refusal(project_id, until));
        }
        Ok(())
    }

    fn refusal(&self, project_id: Option<&ProjectId>, until: SystemTime) -> Error {
        Error::CreditsExhausted {
            raw: String::new(),
            locally: true,
            until: Some(until),
            context: ErrorContext::of(project_id.cloned(), 0),
        }
    }

    fn learn(&self, until: SystemTime) {
        *lock(&self.open) = Some((until, Instant::now()));
    }

    /// Opens this client's view of the breaker (the store's is opened by the
    /// watcher's write).
    fn trip(&self) {
        if let Some(cooldown) = self.cooldown {
            let until = SystemTime::now()
                .checked_add(cooldown)
                .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(u32::MAX.into()));
            self.learn(until);
        }
    }
}

impl Journaled {
    /// The entry `local_id`, claimed with `fence` to be resumed.
    pub(crate) fn resumed(store: Arc<dyn Store>, local_id: LocalId, fence: u64) -> Self {
        Journaled {
            store,
            freed: Arc::new(Notify::new()),
            local_id,
            fence,
            done: false,
        }
    }

    /// Settles the entry, for a caller that reports a failed write: `Ok(false)` when
    /// another instance had taken the entry over.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the settlement cannot be written.
    pub(crate) async fn settle_checked(mut self, settlement: Settlement) -> Result<bool> {
        self.freed.notify_waiters();
        let written = self
            .store
            .settle(&self.local_id, self.fence, settlement)
            .await;
        // Not written (or this future dropped first): released on drop, so that the
        // entry is unfinished and its slot free, not held until the lease ends.
        self.done = matches!(written, Ok(true));
        written
    }

    /// The entry's id.
    pub(crate) fn local_id(&self) -> &LocalId {
        &self.local_id
    }

    /// Settles the entry; `false` (and a warning) when it could not be written or
    /// another instance had claimed the entry.
    pub(crate) async fn settle(self, settlement: Settlement) -> bool {
        reported(self.settle_checked(settlement).await, "settle")
    }

    /// How a call that never got a stream ends in the journal: settled as failed when
    /// nothing reached the server (which gives its idempotency key up), else left
    /// unfinished, since the server may be generating (resuming will find out).
    pub(crate) async fn call_failed(self, error: &Error) -> bool {
        if error.may_have_started_work() {
            drop(self);
            true
        } else {
            self.settle(Settlement::of_error(error)).await
        }
    }
}

impl Drop for Journaled {
    fn drop(&mut self) {
        if !self.done {
            self.store.release(&self.local_id, self.fence);
            self.freed.notify_waiters();
        }
    }
}

/// Logs a journal write that failed or was fenced out; `true` when it was written.
fn reported(written: Result<bool>, what: &str) -> bool {
    match written {
        Ok(true) => true,
        Ok(false) => {
            tracing_warn(what, "another instance took the entry over");
            false
        }
        Err(error) => {
            tracing_warn(what, &error.to_string());
            false
        }
    }
}

fn tracing_warn(what: &str, why: &str) {
    tracing::warn!(
        write = what,
        reason = why,
        "the laracopilot journal could not record a generation's progress"
    );
}

/// The client's records of one stream: its slot, its journal entry, the breaker
/// (with the store and the scope it is kept in). One per open stream: kept small.
struct Watch {
    /// The concurrency slot without a journal, freed when the stream ends or is
    /// dropped.
    _permit: Option<OwnedSemaphorePermit>,
    /// Boxed: only a journaled stream has one, and a stream without keeps a
    /// pointer instead of the entry's room.
    journaled: Option<Box<Journaled>>,
    breaker: Arc<Breaker>,
}

impl Watcher for Watch {
    fn accepted(&mut self) -> Option<Write> {
        let journaled = self.journaled.as_ref()?;
        let (store, id, fence) = (
            Arc::clone(&journaled.store),
            journaled.local_id.clone(),
            journaled.fence,
        );
        Some(Box::pin(async move {
            reported(store.accepted(&id, fence).await, "accepted")
        }))
    }

    fn project_known(&mut self, project_id: &ProjectId) -> Option<Write> {
        let journaled = self.journaled.as_ref()?;
        let (store, id, fence, project_id) = (
            Arc::clone(&journaled.store),
            journaled.local_id.clone(),
            journaled.fence,
            project_id.clone(),
        );
        Some(Box::pin(async move {
            let written = store.project_known(&id, fence, &project_id).await;
            reported(written, "project_known")
        }))
    }

    fn ended(&mut self, item: &Result<Event>) -> Option<Write> {
        let settlement = match item {
            Ok(Event::StreamEnd(end)) => Settlement::succeeded(end.app_url.clone()),
            Err(error @ Error::CreditsExhausted { .. }) => {
                self.breaker.trip();
                let trip = self.trip_store();
                let settlement = Settlement::of_error(error);
                let settle = self.journaled.take().map(|j| j.settle(settlement));
                return Some(Box::pin(async move {
                    let tripped = match trip {
                        Some(trip) => trip.await,
                        None => true,
                    };
                    let settled = match settle {
                        Some(settle) => settle.await,
                        None => true,
                    };
                    tripped && settled
                }));
            }
            // A broken stream is not settled here: the project may still finish.
            // `finish_or_recover` settles it with what its poll finds; dropped, it
            // is left for resuming.
            _ => return None,
        };
        let journaled = self.journaled.take()?;
        Some(Box::pin(journaled.settle(settlement)))
    }

    fn journal_id(&self) -> Option<&LocalId> {
        self.journaled.as_deref().map(Journaled::local_id)
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl Watch {
    /// The write that opens the scope's breaker in the store.
    fn trip_store(&self) -> Option<Write> {
        let breaker = &self.breaker;
        let (store, cooldown) = (Arc::clone(breaker.store.as_ref()?), breaker.cooldown?);
        let scope = breaker.scope.clone();
        Some(Box::pin(async move {
            reported(
                store.trip_breaker(&scope, cooldown).await.map(|()| true),
                "trip_breaker",
            )
        }))
    }
}

/// The journal entry a finished stream's watcher still holds (a broken stream's,
/// which recovery settles).
pub(crate) fn journaled_of(watcher: Box<dyn Watcher>) -> Option<Journaled> {
    watcher
        .into_any()
        .downcast::<Watch>()
        .ok()
        .and_then(|mut watch| watch.journaled.take())
        .map(|journaled| *journaled)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
