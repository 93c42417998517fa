//! Spend safety around each generation: a cap on how many run at once, a breaker that
//! stops calls once the credits ran out, and the journal's records of each one. The
//! client asks [`Spend::admit`] before sending and hands the stream the watcher it
//! returns.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::TimeoutKind;
use crate::generation::{Watcher, Write};
use crate::id::LocalId;
use crate::journal::{Entry, Journal, Kind, Record, Settlement};
use crate::{Error, Event, ProjectId, Result};

/// The spend guards of one client, shared by its clones.
pub(crate) struct Spend {
    pub(crate) journal: Option<Arc<dyn Journal>>,
    slots: Option<Arc<Semaphore>>,
    breaker: Arc<Breaker>,
}

/// Refuses generate calls for a while after a stream reported `credits_exhausted`.
pub(crate) struct Breaker {
    cooldown: Option<Duration>,
    tripped: Mutex<Option<Instant>>,
}

/// What a generate call may go on with once admitted.
pub(crate) struct Admitted {
    pub(crate) slot_wait: Duration,
    permit: Option<OwnedSemaphorePermit>,
}

/// The journal entry of one call, once its intent is recorded.
pub(crate) struct Journaled {
    journal: Arc<dyn Journal>,
    local_id: LocalId,
}

impl Spend {
    pub(crate) fn new(
        journal: Option<Arc<dyn Journal>>,
        max_concurrent: Option<usize>,
        credits_cooldown: Option<Duration>,
    ) -> Self {
        Spend {
            journal,
            slots: max_concurrent.map(|n| Arc::new(Semaphore::new(n))),
            breaker: Arc::new(Breaker {
                cooldown: credits_cooldown,
                tripped: Mutex::new(None),
            }),
        }
    }

    /// Checks the breaker, then waits for a free slot (until `deadline`, if any).
    ///
    /// # Errors
    ///
    /// [`Error::CreditsExhausted`] (`locally`) while the breaker is open;
    /// [`Error::Timeout`] (kind `Deadline`) when no slot freed up in time.
    pub(crate) async fn admit(
        &self,
        project_id: Option<&ProjectId>,
        deadline: Option<Instant>,
    ) -> Result<Admitted> {
        self.breaker.check(project_id)?;
        let Some(slots) = &self.slots else {
            return Ok(Admitted {
                slot_wait: Duration::ZERO,
                permit: None,
            });
        };
        let asked = Instant::now();
        let acquire = Arc::clone(slots).acquire_owned();
        let permit = match deadline {
            Some(at) => tokio::time::timeout_at(at, acquire)
                .await
                .map_err(|_| Error::timeout(TimeoutKind::Deadline).with_attempts(0))?,
            None => acquire.await,
        }
        // The semaphore is never closed.
        .map_err(|_| Error::config("the generation slots were closed"))?;
        // The breaker may have tripped while this call waited.
        self.breaker.check(project_id)?;
        Ok(Admitted {
            slot_wait: asked.elapsed(),
            permit: Some(permit),
        })
    }

    /// Records the intent of a call about to be sent, when there is a journal.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when it cannot be recorded: the call is then not sent.
    pub(crate) async fn intend(
        &self,
        kind: Kind,
        project_id: Option<&ProjectId>,
        prompt: &str,
        token_mask: String,
    ) -> Result<Option<Journaled>> {
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
        let local_id = LocalId::new();
        let entry = Entry {
            local_id: local_id.clone(),
            kind,
            project_id: project_id.cloned(),
            prompt: prompt.to_owned(),
            started_at: SystemTime::now(),
            token: token_mask,
        };
        journal
            .write(Record::Started(entry))
            .await
            .map_err(|source| Error::Journal {
                message: "the journal cannot record a call about to be sent".into(),
                source,
            })?;
        Ok(Some(Journaled {
            journal: Arc::clone(journal),
            local_id,
        }))
    }

    /// The watcher of a stream that was admitted and journaled.
    pub(crate) fn watch(
        &self,
        admitted: Admitted,
        journaled: Option<Journaled>,
    ) -> Box<dyn Watcher> {
        Box::new(Watch {
            _permit: admitted.permit,
            journaled,
            breaker: Arc::clone(&self.breaker),
        })
    }

    /// Records what polling found for entry `local_id` after its stream broke: a
    /// later [`Record::Settled`] than the stream's own, and the last word on it. A
    /// poll that settled nothing (a timeout, say) records nothing.
    pub(crate) async fn recovered(
        &self,
        local_id: Option<&LocalId>,
        project_id: &ProjectId,
        polled: std::result::Result<Option<String>, &Error>,
    ) {
        let (Some(journal), Some(local_id)) = (&self.journal, local_id) else {
            return;
        };
        let Some(outcome) = Settlement::of_poll(polled) else {
            return;
        };
        let record = Record::Settled {
            local_id: local_id.clone(),
            project_id: Some(project_id.clone()),
            outcome,
            at: SystemTime::now(),
        };
        write_quietly(Arc::clone(journal), record).await;
    }

    /// Closes the breaker at once.
    pub(crate) fn reset_breaker(&self) {
        *lock(&self.breaker.tripped) = None;
    }
}

impl Breaker {
    fn check(&self, project_id: Option<&ProjectId>) -> Result<()> {
        let (Some(cooldown), Some(at)) = (self.cooldown, *lock(&self.tripped)) else {
            return Ok(());
        };
        if at.elapsed() < cooldown {
            return Err(Error::CreditsExhausted {
                project_id: project_id.cloned(),
                raw: String::new(),
                locally: true,
            });
        }
        Ok(())
    }

    fn trip(&self) {
        if self.cooldown.is_some() {
            *lock(&self.tripped) = Some(Instant::now());
        }
    }
}

impl Journaled {
    /// Records how the call ended before any stream began.
    pub(crate) async fn settle(self, project_id: Option<&ProjectId>, error: &Error) {
        let record = Record::Settled {
            local_id: self.local_id,
            project_id: project_id.cloned(),
            outcome: Settlement::of_error(error),
            at: SystemTime::now(),
        };
        write_quietly(self.journal, record).await;
    }

    /// The entry's id.
    pub(crate) fn local_id(&self) -> &LocalId {
        &self.local_id
    }
}

/// Writes `record`; a failure leaves the entry unfinished, which resuming settles, so
/// it is logged and not raised into a stream that is going well.
async fn write_quietly(journal: Arc<dyn Journal>, record: Record) {
    let _written = journal.write(record).await;
    #[cfg(feature = "tracing")]
    if let Err(error) = &_written {
        tracing::warn!(%error, "the laracopilot journal could not record a generation's progress");
    }
}

struct Watch {
    /// The concurrency slot, freed when the stream ends or is dropped.
    _permit: Option<OwnedSemaphorePermit>,
    journaled: Option<Journaled>,
    breaker: Arc<Breaker>,
}

impl Watcher for Watch {
    fn project_known(&mut self, id: &ProjectId) -> Option<Write> {
        let journaled = self.journaled.as_ref()?;
        let record = Record::ProjectKnown {
            local_id: journaled.local_id.clone(),
            project_id: id.clone(),
            at: SystemTime::now(),
        };
        Some(Box::pin(write_quietly(
            Arc::clone(&journaled.journal),
            record,
        )))
    }

    fn ended(&mut self, item: &Result<Event>, project_id: Option<&ProjectId>) -> Option<Write> {
        let outcome = match item {
            Ok(Event::StreamEnd(end)) => Settlement::Succeeded {
                app_url: end.app_url.clone(),
            },
            Ok(_) => return None,
            Err(error) => {
                if matches!(error, Error::CreditsExhausted { .. }) {
                    self.breaker.trip();
                }
                Settlement::of_error(error)
            }
        };
        let journaled = self.journaled.take()?;
        let record = Record::Settled {
            local_id: journaled.local_id,
            project_id: project_id.cloned(),
            outcome,
            at: SystemTime::now(),
        };
        Some(Box::pin(write_quietly(journaled.journal, record)))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
