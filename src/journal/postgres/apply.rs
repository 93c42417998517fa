//! The PostgreSQL engine's commands: what each does inside a batch's transaction.

use tokio_postgres::{Row, Transaction};

use super::sql::Statements;
use super::Done;
use crate::journal::engine::{
    duration_millis, labels_json, millis, settlement_columns, signed, time, unsigned, Command, Op,
    Problem, Reply, Stored,
};
use crate::journal::store::{Admission, Intent};
use crate::journal::Settlement;
use crate::LocalId;

fn stored(row: &Row) -> std::result::Result<Stored, tokio_postgres::Error> {
    Ok(Stored {
        local_id: row.try_get(0)?,
        kind: row.try_get(1)?,
        scope: row.try_get(2)?,
        project_id: row.try_get(3)?,
        prompt: row.try_get(4)?,
        started_at: row.try_get(5)?,
        token: row.try_get(6)?,
        labels: row.try_get(7)?,
        idempotency_key: row.try_get(8)?,
        accepted: row.try_get(9)?,
        outcome: row.try_get(10)?,
        app_url: row.try_get(11)?,
        error: row.try_get(12)?,
        may_have_started_work: row.try_get(13)?,
        owner: row.try_get(14)?,
    })
}

/// Runs a batch without savepoints: every command's first statement is sent
/// without waiting for the answers of those before it (the connection pipelines
/// them; the server runs them in the order sent, the batch's lock order, each
/// seeing what those before it wrote). An admission is one statement (the server's
/// `admit` function); a duplicate's entry and a prune's second statement follow
/// their first. The first failure fails it all (the transaction is aborted then).
pub(super) async fn pipelined(
    db: &Transaction<'_>,
    s: &Statements,
    batch: &[Command],
    id: &str,
    incarnation: i64,
) -> Done<Vec<Done<Reply>>> {
    let replies = join_all(
        batch
            .iter()
            .map(|command| apply(db, s, id, incarnation, &command.op))
            .collect(),
    )
    .await;
    let mut results = Vec::with_capacity(replies.len());
    for reply in replies {
        results.push(Ok(reply?));
    }
    Ok(results)
}

/// Polls every future, the first first (so that each sends its statement in
/// order), and answers their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Where a command takes its locks, in the one order every batch follows.
pub(super) fn lock_order(op: &Op) -> (u8, &str) {
    match op {
        Op::Admit(intent) => (0, &intent.scope),
        Op::TripBreaker { scope, .. } | Op::ResetBreaker { scope } => (0, scope),
        Op::Accepted { entry, .. }
        | Op::ProjectKnown { entry, .. }
        | Op::Settle { entry, .. }
        | Op::Release { entry, .. }
        | Op::Claim { entry } => (1, entry.as_str()),
        Op::Entry { .. } | Op::Breaker { .. } | Op::Unfinished | Op::Flush => (2, ""),
        Op::Prune { .. } => (3, ""),
    }
}

/// Runs one command in the batch's transaction (or a savepoint of it).
pub(super) async fn apply(
    db: &Transaction<'_>,
    s: &Statements,
    id: &str,
    incarnation: i64,
    op: &Op,
) -> Done<Reply> {
    Ok(match op {
        Op::Admit(intent) => Reply::Admission(admit(db, s, id, incarnation, intent).await?),
        Op::Accepted { entry, fence } => Reply::Written(
            db.execute(&s.accepted, &[&entry.as_str(), &signed(*fence)])
                .await?
                == 1,
        ),
        Op::ProjectKnown {
            entry,
            fence,
            project_id,
        } => Reply::Written(
            db.execute(
                &s.project_known,
                &[&entry.as_str(), &signed(*fence), &project_id.as_str()],
            )
            .await?
                == 1,
        ),
        Op::Settle {
            entry,
            fence,
            settlement,
        } => Reply::Written(settle(db, s, entry, *fence, settlement).await?),
        Op::Release { entry, fence } => Reply::Written(
            db.execute(&s.release, &[&entry.as_str(), &signed(*fence)])
                .await?
                == 1,
        ),
        Op::Flush => Reply::Done,
        Op::Unfinished => {
            let rows = db.query(&s.unfinished, &[]).await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                entries.push(stored(row)?.into_entry()?);
            }
            Reply::Entries(entries)
        }
        Op::Claim { entry } => {
            let row = db
                .query_opt(&s.claim, &[&entry.as_str(), &id, &incarnation])
                .await?;
            match row {
                Some(row) => {
                    let fence: i64 = row.try_get(15)?;
                    Reply::Claimed(Some((stored(&row)?.into_entry()?, unsigned(fence))))
                }
                None => Reply::Claimed(None),
            }
        }
        Op::Entry { entry } => match db.query_opt(&s.entry, &[&entry.as_str()]).await? {
            Some(row) => {
                let driven: bool = row.try_get(15)?;
                Reply::Found(Some((stored(&row)?.into_entry()?, driven)))
            }
            None => Reply::Found(None),
        },
        Op::TripBreaker { scope, cooldown } => {
            db.execute(&s.trip, &[scope, &duration_millis(*cooldown)])
                .await?;
            Reply::Done
        }
        Op::ResetBreaker { scope } => {
            db.execute(&s.reset, &[scope]).await?;
            Reply::Done
        }
        Op::Breaker { scope } => {
            let until = db
                .query_opt(&s.breaker, &[scope])
                .await?
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?;
            Reply::Until(until.map(time))
        }
        Op::Prune { settled_before } => {
            let before = millis(*settled_before);
            let pruned = db.execute(&s.prune_entries, &[&before]).await?;
            db.execute(&s.prune_budgets, &[&before]).await?;
            Reply::Pruned(pruned)
        }
    })
}

async fn settle(
    db: &Transaction<'_>,
    s: &Statements,
    entry: &LocalId,
    fence: u64,
    settlement: &Settlement,
) -> Done<bool> {
    let (outcome, app_url, error, started) = settlement_columns(settlement);
    let changed = db
        .execute(
            &s.settle,
            &[
                &entry.as_str(),
                &signed(fence),
                &outcome,
                &app_url,
                &error,
                &started,
                &settlement.frees_key(),
            ],
        )
        .await?;
    Ok(changed == 1)
}

async fn admit(
    db: &Transaction<'_>,
    s: &Statements,
    id: &str,
    incarnation: i64,
    intent: &Intent,
) -> Done<Admission> {
    // One call: the server's `admit` function (see `sql.rs`) takes the scope's row
    // lock, which serializes its admissions on every host, and checks and writes
    // in the order of `Store::admit`, by the server's clock.
    let windows: Vec<&str> = intent.budgets.iter().map(|b| b.window().as_str()).collect();
    let lengths: Vec<i64> = intent
        .budgets
        .iter()
        .map(|b| duration_millis(b.window().length()))
        .collect();
    let limits: Vec<i64> = intent.budgets.iter().map(|b| signed(b.limit())).collect();
    let cap = intent.max_concurrent.map(signed);
    let local_id = LocalId::new();
    let row = db
        .query_one(
            &s.admit,
            &[
                &intent.scope,
                &intent.idempotency_key,
                &cap,
                &windows,
                &lengths,
                &limits,
                &local_id.as_str(),
                &intent.kind.as_str(),
                &intent.project_id.as_ref().map(|p| p.as_str()),
                &intent.prompt,
                &intent.token_mask,
                &labels_json(&intent.labels),
                &id,
                &incarnation,
            ],
        )
        .await?;
    let verdict: String = row.try_get(0)?;
    let at: i64 = row.try_get(1)?;
    let number: i64 = row.try_get(2)?;
    Ok(match verdict.as_str() {
        "admitted" => Admission::Admitted {
            entry: local_id,
            fence: 1,
        },
        "breaker" => Admission::BreakerOpen { until: time(at) },
        "busy" => Admission::Busy {
            running: unsigned(number),
        },
        "budget" => {
            let budget = usize::try_from(number)
                .ok()
                .and_then(|index| intent.budgets.get(index))
                .ok_or_else(|| Problem::new(format!("the server named budget {number}")))?;
            Admission::OverBudget {
                budget: *budget,
                reset_time: time(at),
            }
        }
        "duplicate" => {
            let holder: String = row.try_get(3)?;
            let row = db.query_one(&s.entry, &[&holder.as_str()]).await?;
            Admission::Duplicate(Box::new(stored(&row)?.into_entry()?))
        }
        other => {
            return Err(
                Problem::new(format!("the server answered an admission with {other:?}")).into(),
            )
        }
    })
}
