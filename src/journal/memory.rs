//! The journal in memory: every rule of the engines, without a database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::store::{Admission, Intent, Store, StoreFuture};
use super::{sealed, Entry, Journal, JournalOptions, Settlement};
use crate::budget::{from_unix_millis, unix_millis};
use crate::{BudgetWindow, LocalId, ProjectId};

/// A journal in memory: for tests, and for one process that wants the spend guards
/// (concurrency cap, credits breaker, budgets, idempotency keys) without a database.
/// Nothing survives the process. Settled entries are kept (for their idempotency
/// keys) until [`Client::prune_journal`](crate::Client::prune_journal).
///
/// An instance stays alive (its entries driven) for as long as the journal is open,
/// that is until its last handle is dropped; [`MemoryJournal::open_another`] opens
/// another instance over the same data, as a second host would.
///
/// ```
/// use std::sync::Arc;
/// use laracopilot::journal::MemoryJournal;
///
/// let journal = Arc::new(MemoryJournal::new());
/// let client = laracopilot::Client::builder()
///     .token(laracopilot::Token::new("lcp_0123456789abcdef")?)
///     .journal(Arc::clone(&journal))
///     .build()?;
/// assert!(journal.entries().is_empty());
/// # Ok::<(), laracopilot::Error>(())
/// ```
pub struct MemoryJournal {
    inner: Arc<Instance>,
}

/// One open of the journal: its id, and the data it shares with other opens. The
/// instance ends (its entries no longer driven) when its last holder drops it: the
/// journal the caller opened, or a client built with it.
struct Instance {
    shared: Arc<Mutex<State>>,
    id: String,
    incarnation: u64,
}

#[derive(Default)]
struct State {
    rows: Vec<Row>,
    /// Instance id -> its live incarnation (0: none alive).
    instances: HashMap<String, u64>,
    next_incarnation: u64,
    /// Scope -> open until.
    breakers: HashMap<String, SystemTime>,
    /// (scope, window, window start) -> calls counted.
    budgets: HashMap<(String, BudgetWindow, u64), u64>,
    next_fence: u64,
}

struct Row {
    entry: Entry,
    fence: u64,
    /// The owner's incarnation when it took the entry.
    incarnation: u64,
    holds_slot: bool,
    released: bool,
    settled_at: Option<SystemTime>,
}

impl Row {
    /// Driven by a live stream of a live owner.
    fn driven(&self, state: &State) -> bool {
        self.entry.settlement.is_none()
            && !self.released
            && state.instances.get(&self.entry.owner) == Some(&self.incarnation)
    }

    fn holds_slot(&self, state: &State) -> bool {
        self.holds_slot && self.driven(state)
    }
}

impl MemoryJournal {
    /// An empty journal, opened as a new instance.
    pub fn new() -> Self {
        MemoryJournal::with_options(JournalOptions::new())
    }

    /// An empty journal, opened with `options` (only the instance name matters in
    /// memory: an instance lives as long as its journal is open).
    pub fn with_options(options: JournalOptions) -> Self {
        MemoryJournal::open_on(Arc::default(), &options)
    }

    /// Another instance over the same entries, as a second process or host sharing
    /// a database would be: what it admits counts against the same guards, and it
    /// may resume what this one left.
    pub fn open_another(&self, options: JournalOptions) -> Self {
        MemoryJournal::open_on(Arc::clone(&self.inner.shared), &options)
    }

    fn open_on(shared: Arc<Mutex<State>>, options: &JournalOptions) -> Self {
        let id = options.instance_id();
        let incarnation = {
            let mut state = lock(&shared);
            state.next_incarnation += 1;
            let incarnation = state.next_incarnation;
            // Under a name, this open ends the earlier ones' leases.
            state.instances.insert(id.clone(), incarnation);
            incarnation
        };
        MemoryJournal {
            inner: Arc::new(Instance {
                shared,
                id,
                incarnation,
            }),
        }
    }

    /// Every entry, settled ones included, in the order they were admitted.
    pub fn entries(&self) -> Vec<Entry> {
        self.inner
            .state()
            .rows
            .iter()
            .map(|row| row.entry.clone())
            .collect()
    }
}

impl Instance {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }
}

impl Default for MemoryJournal {
    fn default() -> Self {
        MemoryJournal::new()
    }
}

impl fmt::Debug for MemoryJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryJournal")
            .field("instance", &self.id)
            .field("entries", &self.state().rows.len())
            .finish()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let mut state = self.state();
        // The instance's lease ends with its last holder (unless a later open under
        // the same name took it over already).
        if state.instances.get(&self.id) == Some(&self.incarnation) {
            state.instances.remove(&self.id);
        }
    }
}

impl Journal for MemoryJournal {}

impl sealed::Sealed for MemoryJournal {
    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner) as Arc<dyn Store>
    }
}

fn ready<'a, T: Send + 'a>(value: crate::Result<T>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Store for Instance {
    fn instance(&self) -> &str {
        &self.id
    }

    fn lease(&self) -> Duration {
        super::DEFAULT_LEASE
    }

    fn admit(&self, intent: Intent) -> StoreFuture<'_, Admission> {
        ready(Ok(self.admit_now(intent)))
    }

    fn accepted(&self, entry: &LocalId, fence: u64) -> StoreFuture<'_, bool> {
        let written = self.update(entry, fence, |row| row.entry.accepted = true);
        ready(Ok(written))
    }

    fn project_known(
        &self,
        entry: &LocalId,
        fence: u64,
        project_id: &ProjectId,
    ) -> StoreFuture<'_, bool> {
        let written = self.update(entry, fence, |row| {
            row.entry.project_id = Some(project_id.clone());
        });
        ready(Ok(written))
    }

    fn settle(&self, entry: &LocalId, fence: u64, settlement: Settlement) -> StoreFuture<'_, bool> {
        let written = self.update(entry, fence, |row| {
            if settlement.frees_key() {
                row.entry.idempotency_key = None;
            }
            row.entry.settlement = Some(settlement);
            row.holds_slot = false;
            row.settled_at = Some(SystemTime::now());
        });
        ready(Ok(written))
    }

    fn release(&self, entry: &LocalId, fence: u64) {
        self.update(entry, fence, |row| {
            row.released = true;
            row.holds_slot = false;
        });
    }

    fn unfinished(&self) -> StoreFuture<'_, Vec<Entry>> {
        let state = self.state();
        let entries = state
            .rows
            .iter()
            .filter(|row| row.entry.settlement.is_none() && !row.driven(&state))
            .map(|row| row.entry.clone())
            .collect();
        ready(Ok(entries))
    }

    fn claim(&self, entry: &LocalId) -> StoreFuture<'_, Option<(Entry, u64)>> {
        let mut state = self.state();
        state.next_fence += 1;
        let fence = state.next_fence;
        let (instance, incarnation) = (self.id.clone(), self.incarnation);
        let claimable = state
            .rows
            .iter()
            .position(|row| &row.entry.local_id == entry && row.entry.settlement.is_none())
            .filter(|&index| state.rows.get(index).is_some_and(|row| !row.driven(&state)));
        let claimed = claimable
            .and_then(|index| state.rows.get_mut(index))
            .map(|row| {
                row.entry.owner = instance;
                row.incarnation = incarnation;
                row.fence = fence;
                row.released = false;
                row.holds_slot = false;
                (row.entry.clone(), fence)
            });
        ready(Ok(claimed))
    }

    fn entry(&self, entry: &LocalId) -> StoreFuture<'_, Option<(Entry, bool)>> {
        let state = self.state();
        let found = state
            .rows
            .iter()
            .find(|row| &row.entry.local_id == entry)
            .map(|row| (row.entry.clone(), row.driven(&state)));
        ready(Ok(found))
    }

    fn trip_breaker(&self, scope: &str, cooldown: Duration) -> StoreFuture<'_, ()> {
        let until = SystemTime::now()
            .checked_add(cooldown)
            .unwrap_or_else(far_future);
        let mut state = self.state();
        let open = state.breakers.entry(scope.to_owned()).or_insert(until);
        *open = (*open).max(until);
        ready(Ok(()))
    }

    fn reset_breaker(&self, scope: &str) -> StoreFuture<'_, ()> {
        self.state().breakers.remove(scope);
        ready(Ok(()))
    }

    fn breaker(&self, scope: &str) -> StoreFuture<'_, Option<SystemTime>> {
        let now = SystemTime::now();
        let open = self
            .state()
            .breakers
            .get(scope)
            .copied()
            .filter(|until| *until > now);
        ready(Ok(open))
    }

    fn prune(&self, settled_before: SystemTime) -> StoreFuture<'_, u64> {
        let mut state = self.state();
        let before = state.rows.len();
        state
            .rows
            .retain(|row| row.settled_at.is_none_or(|at| at >= settled_before));
        let pruned = (before - state.rows.len()) as u64;
        ready(Ok(pruned))
    }

    fn flush(&self) -> StoreFuture<'_, ()> {
        // Every write of the memory journal is done when its call returns.
        ready(Ok(()))
    }
}

impl Instance {
    fn admit_now(&self, intent: Intent) -> Admission {
        let now = SystemTime::now();
        let mut state = self.state();
        if let Some(until) = state.breakers.get(&intent.scope).copied() {
            if until > now {
                return Admission::BreakerOpen { until };
            }
        }
        let mut freed_key = None;
        if let Some(key) = &intent.idempotency_key {
            let holder = state.rows.iter().position(|row| {
                row.entry.scope == intent.scope && row.entry.idempotency_key.as_ref() == Some(key)
            });
            if let Some(row) = holder.and_then(|index| state.rows.get(index)) {
                match &row.entry.settlement {
                    Some(settlement) if settlement.frees_key() => freed_key = holder,
                    _ => return Admission::Duplicate(Box::new(row.entry.clone())),
                }
            }
        }
        let millis = unix_millis(now);
        for budget in &intent.budgets {
            let window = budget.window();
            let start = window.start_millis(millis);
            let used = state
                .budgets
                .get(&(intent.scope.clone(), window, start))
                .copied()
                .unwrap_or(0);
            if used >= budget.limit() {
                return Admission::OverBudget {
                    budget: *budget,
                    reset_time: from_unix_millis(window.end_millis(start)),
                };
            }
        }
        if let Some(cap) = intent.max_concurrent {
            let running = state
                .rows
                .iter()
                .filter(|row| row.entry.scope == intent.scope && row.holds_slot(&state))
                .count() as u64;
            if running >= cap {
                return Admission::Busy { running };
            }
        }
        // Admitted: everything below is written together.
        if let Some(row) = freed_key.and_then(|index| state.rows.get_mut(index)) {
            row.entry.idempotency_key = None;
        }
        for budget in &intent.budgets {
            let window = budget.window();
            let key = (intent.scope.clone(), window, window.start_millis(millis));
            *state.budgets.entry(key).or_insert(0) += 1;
        }
        state.next_fence += 1;
        let fence = state.next_fence;
        let local_id = LocalId::new();
        let entry = Entry {
            local_id: local_id.clone(),
            kind: intent.kind,
            scope: intent.scope,
            project_id: intent.project_id,
            prompt: intent.prompt,
            start_time: now,
            token: intent.token_mask,
            labels: intent.labels,
            idempotency_key: intent.idempotency_key,
            accepted: false,
            settlement: None,
            owner: self.id.clone(),
        };
        state.rows.push(Row {
            entry,
            fence,
            incarnation: self.incarnation,
            holds_slot: intent.max_concurrent.is_some(),
            released: false,
            settled_at: None,
        });
        Admission::Admitted {
            entry: local_id,
            fence,
        }
    }

    /// Applies `change` to the unsettled entry when it still has `fence`.
    fn update(&self, entry: &LocalId, fence: u64, change: impl FnOnce(&mut Row)) -> bool {
        let mut state = self.state();
        let row = state.rows.iter_mut().find(|row| {
            &row.entry.local_id == entry && row.fence == fence && row.entry.settlement.is_none()
        });
        match row {
            Some(row) => {
                change(row);
                true
            }
            None => false,
        }
    }
}

/// A time later than any cool-down could reach.
fn far_future() -> SystemTime {
    from_unix_millis(u64::MAX / 2)
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every change is made whole under the lock: a holder that panicked left no
    // half-written state.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}
