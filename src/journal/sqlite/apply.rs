//! The SQLite engine's commands: what each does inside a batch's transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::Done;
use crate::journal::engine::{
    duration_millis, labels_json, millis, settlement_columns, signed, time, unsigned, Op, Reply,
    Stored,
};
use crate::journal::store::{Admission, Intent};
use crate::journal::Settlement;
use crate::LocalId;

/// Whether the entry `e` is driven by a live stream, at time `?1`.
pub(super) const DRIVEN: &str = "(e.outcome IS NULL AND e.released = 0 AND EXISTS (
    SELECT 1 FROM instances i
     WHERE i.id = e.owner AND i.incarnation = e.incarnation AND i.lease_until > ?1))";

pub(super) const ENTRY_COLUMNS: &str =
    "e.local_id, e.kind, e.scope, e.project_id, e.prompt, e.started_at, \
     e.token, e.labels, e.idempotency_key, e.accepted, e.outcome, e.app_url, e.error, \
     e.may_have_started_work, e.owner";

pub(super) fn stored(row: &Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        local_id: row.get(0)?,
        kind: row.get(1)?,
        scope: row.get(2)?,
        project_id: row.get(3)?,
        prompt: row.get(4)?,
        started_at: row.get(5)?,
        token: row.get(6)?,
        labels: row.get(7)?,
        idempotency_key: row.get(8)?,
        accepted: row.get(9)?,
        outcome: row.get(10)?,
        app_url: row.get(11)?,
        error: row.get(12)?,
        may_have_started_work: row.get(13)?,
        owner: row.get(14)?,
    })
}

/// Runs one command inside the batch's transaction (or a savepoint of it).
pub(super) fn apply(db: &Connection, id: &str, incarnation: i64, op: &Op, now: i64) -> Done<Reply> {
    Ok(match op {
        Op::Admit(intent) => Reply::Admission(admit(db, id, incarnation, intent, now)?),
        Op::Accepted { entry, fence } => {
            Reply::Written(update(db, "SET accepted = 1", entry, *fence)?)
        }
        Op::ProjectKnown {
            entry,
            fence,
            project_id,
        } => Reply::Written(
            db.prepare_cached(
                "UPDATE entries SET project_id = ?3
                  WHERE local_id = ?1 AND fence = ?2 AND outcome IS NULL",
            )?
            .execute(params![entry.as_str(), signed(*fence), project_id.as_str()])?
                == 1,
        ),
        Op::Settle {
            entry,
            fence,
            settlement,
        } => Reply::Written(settle(db, entry, *fence, settlement, now)?),
        Op::Release { entry, fence } => Reply::Written(update(
            db,
            "SET released = 1, holds_slot = 0",
            entry,
            *fence,
        )?),
        Op::Unfinished => {
            let sql = format!(
                "SELECT {ENTRY_COLUMNS} FROM entries e
                  WHERE e.outcome IS NULL AND NOT {DRIVEN} ORDER BY e.seq"
            );
            let mut statement = db.prepare_cached(&sql)?;
            let rows = statement.query_map(params![now], stored)?;
            let mut entries = Vec::new();
            for row in rows {
                entries.push(row?.into_entry()?);
            }
            Reply::Entries(entries)
        }
        Op::Claim { entry } => Reply::Claimed(claim(db, id, incarnation, entry, now)?),
        Op::Entry { entry } => {
            let sql =
                format!("SELECT {ENTRY_COLUMNS}, {DRIVEN} FROM entries e WHERE e.local_id = ?2");
            let found = db
                .prepare_cached(&sql)?
                .query_row(params![now, entry.as_str()], |row| {
                    Ok((stored(row)?, row.get::<_, bool>(15)?))
                })
                .optional()?;
            match found {
                Some((stored, driven)) => Reply::Found(Some((stored.into_entry()?, driven))),
                None => Reply::Found(None),
            }
        }
        Op::TripBreaker { scope, cooldown } => {
            let until = now.saturating_add(duration_millis(*cooldown));
            db.prepare_cached(
                "INSERT INTO breakers (scope, open_until) VALUES (?1, ?2)
                 ON CONFLICT (scope) DO UPDATE SET open_until = max(open_until, ?2)",
            )?
            .execute(params![scope, until])?;
            Reply::Done
        }
        Op::ResetBreaker { scope } => {
            db.prepare_cached("DELETE FROM breakers WHERE scope = ?1")?
                .execute(params![scope])?;
            Reply::Done
        }
        Op::Breaker { scope } => Reply::Until(breaker(db, scope, now)?.map(time)),
        Op::Flush => Reply::Done,
        Op::Prune { settled_before } => {
            let before = millis(*settled_before);
            let pruned = db
                .prepare_cached(
                    "DELETE FROM entries WHERE settled_at IS NOT NULL AND settled_at < ?1",
                )?
                .execute(params![before])?;
            // Windows and breakers that ended before then count nothing any more.
            db.prepare_cached("DELETE FROM budgets WHERE window_end < ?1")?
                .execute(params![before.min(now)])?;
            db.prepare_cached("DELETE FROM breakers WHERE open_until < ?1")?
                .execute(params![now])?;
            Reply::Pruned(pruned as u64)
        }
    })
}

/// Applies `set` to the unsettled entry when it still has `fence`.
fn update(db: &Connection, set: &str, entry: &LocalId, fence: u64) -> Done<bool> {
    let sql =
        format!("UPDATE entries {set} WHERE local_id = ?1 AND fence = ?2 AND outcome IS NULL");
    let changed = db
        .prepare_cached(&sql)?
        .execute(params![entry.as_str(), signed(fence)])?;
    Ok(changed == 1)
}

fn breaker(db: &Connection, scope: &str, now: i64) -> Done<Option<i64>> {
    Ok(db
        .prepare_cached("SELECT open_until FROM breakers WHERE scope = ?1 AND open_until > ?2")?
        .query_row(params![scope, now], |r| r.get::<_, i64>(0))
        .optional()?)
}

fn settle(
    db: &Connection,
    entry: &LocalId,
    fence: u64,
    settlement: &Settlement,
    now: i64,
) -> Done<bool> {
    let (outcome, app_url, error, started) = settlement_columns(settlement);
    let changed = db
        .prepare_cached(
            "UPDATE entries
                SET outcome = ?3, app_url = ?4, error = ?5, may_have_started_work = ?6,
                    settled_at = ?7, holds_slot = 0,
                    idempotency_key = CASE WHEN ?8 THEN NULL ELSE idempotency_key END
              WHERE local_id = ?1 AND fence = ?2 AND outcome IS NULL",
        )?
        .execute(params![
            entry.as_str(),
            signed(fence),
            outcome,
            app_url,
            error,
            started,
            now,
            settlement.frees_key()
        ])?;
    Ok(changed == 1)
}

fn claim(
    db: &Connection,
    id: &str,
    incarnation: i64,
    entry: &LocalId,
    now: i64,
) -> Done<Option<(crate::journal::Entry, u64)>> {
    let sql = format!(
        "UPDATE entries AS e
            SET owner = ?3, incarnation = ?4, fence = e.fence + 1, released = 0, holds_slot = 0
          WHERE e.local_id = ?2 AND e.outcome IS NULL AND NOT {DRIVEN}
         RETURNING {}, fence",
        // RETURNING names the columns without the table's alias.
        ENTRY_COLUMNS.replace("e.", "")
    );
    let claimed = db
        .prepare_cached(&sql)?
        .query_row(params![now, entry.as_str(), id, incarnation], |row| {
            Ok((stored(row)?, row.get::<_, i64>(15)?))
        })
        .optional()?;
    match claimed {
        Some((stored, fence)) => Ok(Some((stored.into_entry()?, unsigned(fence)))),
        None => Ok(None),
    }
}

fn admit(
    db: &Connection,
    id: &str,
    incarnation: i64,
    intent: &Intent,
    now: i64,
) -> Done<Admission> {
    if let Some(until) = breaker(db, &intent.scope, now)? {
        return Ok(Admission::BreakerOpen { until: time(until) });
    }
    let mut frees_key = None;
    if let Some(key) = &intent.idempotency_key {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries e WHERE e.scope = ?1 AND e.idempotency_key = ?2"
        );
        let holder = db
            .prepare_cached(&sql)?
            .query_row(params![intent.scope, key], stored)
            .optional()?;
        if let Some(holder) = holder {
            let entry = holder.into_entry()?;
            match &entry.settlement {
                Some(settlement) if settlement.frees_key() => frees_key = Some(entry.local_id),
                _ => return Ok(Admission::Duplicate(Box::new(entry))),
            }
        }
    }
    let now_unsigned = u64::try_from(now).unwrap_or(0);
    for budget in &intent.budgets {
        let window = budget.window();
        let start = window.start_millis(now_unsigned);
        let used: i64 = db
            .prepare_cached(
                "SELECT used FROM budgets WHERE scope = ?1 AND time_window = ?2 AND window_start = ?3",
            )?
            .query_row(
                params![intent.scope, window.as_str(), signed(start)],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        if u64::try_from(used).unwrap_or(0) >= budget.limit() {
            return Ok(Admission::OverBudget {
                budget: *budget,
                reset_time: crate::budget::from_unix_millis(window.end_millis(start)),
            });
        }
    }
    if let Some(cap) = intent.max_concurrent {
        let sql = format!(
            "SELECT count(*) FROM entries e
              WHERE e.scope = ?2 AND e.outcome IS NULL AND e.holds_slot = 1 AND {DRIVEN}"
        );
        let running: i64 = db
            .prepare_cached(&sql)?
            .query_row(params![now, intent.scope], |r| r.get(0))?;
        let running = u64::try_from(running).unwrap_or(0);
        if running >= cap {
            return Ok(Admission::Busy { running });
        }
    }
    // Admitted: everything below is written together.
    if let Some(holder) = frees_key {
        db.prepare_cached("UPDATE entries SET idempotency_key = NULL WHERE local_id = ?1")?
            .execute(params![holder.as_str()])?;
    }
    for budget in &intent.budgets {
        let window = budget.window();
        let start = window.start_millis(now_unsigned);
        db.prepare_cached(
            "INSERT INTO budgets (scope, time_window, window_start, window_end, used)
             VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (scope, time_window, window_start) DO UPDATE SET used = used + 1",
        )?
        .execute(params![
            intent.scope,
            window.as_str(),
            signed(start),
            signed(window.end_millis(start))
        ])?;
    }
    let local_id = LocalId::new();
    let fence = 1_u64;
    db.prepare_cached(
        "INSERT INTO entries (local_id, kind, scope, project_id, prompt, started_at, token,
                              labels, idempotency_key, owner, incarnation, fence, holds_slot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        local_id.as_str(),
        intent.kind.as_str(),
        intent.scope,
        intent.project_id.as_ref().map(|p| p.as_str()),
        intent.prompt,
        now,
        intent.token_mask,
        labels_json(&intent.labels),
        intent.idempotency_key,
        id,
        incarnation,
        signed(fence),
        intent.max_concurrent.is_some()
    ])?;
    Ok(Admission::Admitted {
        entry: local_id,
        fence,
    })
}
