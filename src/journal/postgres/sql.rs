//! The PostgreSQL engine's SQL: the schema, and the statements each connection
//! prepares once, every name qualified by the journal's schema.

use tokio_postgres::{Client, Statement};

use super::APPLICATION;

/// The server's clock, in milliseconds since the Unix epoch.
pub(super) const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

/// The statements of one connection, schema-qualified and prepared once.
pub(super) struct Statements {
    pub(super) admit: Statement,
    pub(super) accepted: Statement,
    pub(super) project_known: Statement,
    pub(super) settle: Statement,
    pub(super) release: Statement,
    pub(super) unfinished: Statement,
    pub(super) claim: Statement,
    pub(super) entry: Statement,
    pub(super) trip: Statement,
    pub(super) reset: Statement,
    pub(super) breaker: Statement,
    pub(super) prune_entries: Statement,
    pub(super) prune_budgets: Statement,
    pub(super) renew: Statement,
    pub(super) revive: Statement,
}

pub(super) const ENTRY_COLUMNS: &str =
    "e.local_id, e.kind, e.scope, e.project_id, e.prompt, e.started_at, \
     e.token, e.labels, e.idempotency_key, e.accepted, e.outcome, e.app_url, e.error, \
     e.may_have_started_work, e.owner";

/// Whether the entry `e` is driven by a live stream, by the server's clock.
fn driven(q: &str) -> String {
    format!(
        "(e.outcome IS NULL AND NOT e.released AND EXISTS (
            SELECT 1 FROM {q}.instances i
             WHERE i.id = e.owner AND i.incarnation = e.incarnation AND i.lease_until > {NOW}))"
    )
}

/// `now + millis`, saturating at the largest `int8`.
pub(super) fn later(millis: &str) -> String {
    format!("LEAST({NOW}::numeric + {millis}::int8, 9223372036854775807)::int8")
}

impl Statements {
    pub(super) async fn prepare(
        client: &Client,
        q: &str,
    ) -> std::result::Result<Self, tokio_postgres::Error> {
        let driven = driven(q);
        let prepare = |sql: String| async move { client.prepare(&sql).await };
        Ok(Statements {
            admit: prepare(format!(
                "SELECT verdict, at_ms, number, holder
                   FROM {q}.admit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ))
            .await?,
            accepted: prepare(format!(
                "UPDATE {q}.entries SET accepted = true
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            project_known: prepare(format!(
                "UPDATE {q}.entries SET project_id = $3
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            settle: prepare(format!(
                "UPDATE {q}.entries
                    SET outcome = $3, app_url = $4, error = $5, may_have_started_work = $6,
                        settled_at = {NOW}, holds_slot = false,
                        idempotency_key = CASE WHEN $7 THEN NULL ELSE idempotency_key END
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            release: prepare(format!(
                "UPDATE {q}.entries SET released = true, holds_slot = false
                  WHERE local_id = $1 AND fence = $2 AND outcome IS NULL"
            ))
            .await?,
            unfinished: prepare(format!(
                "SELECT {ENTRY_COLUMNS} FROM {q}.entries e
                  WHERE e.outcome IS NULL AND NOT {driven} ORDER BY e.seq"
            ))
            .await?,
            claim: prepare(format!(
                "UPDATE {q}.entries e
                    SET owner = $2, incarnation = $3, fence = e.fence + 1,
                        released = false, holds_slot = false
                  WHERE e.local_id = $1 AND e.outcome IS NULL AND NOT {driven}
                 RETURNING {ENTRY_COLUMNS}, e.fence"
            ))
            .await?,
            entry: prepare(format!(
                "SELECT {ENTRY_COLUMNS}, {driven} FROM {q}.entries e WHERE e.local_id = $1"
            ))
            .await?,
            trip: prepare(format!(
                "INSERT INTO {q}.scopes AS s (scope, breaker_until) VALUES ($1, {})
                 ON CONFLICT (scope) DO UPDATE
                 SET breaker_until = GREATEST(COALESCE(s.breaker_until, 0), EXCLUDED.breaker_until)",
                later("$2")
            ))
            .await?,
            reset: prepare(format!(
                "UPDATE {q}.scopes SET breaker_until = NULL WHERE scope = $1"
            ))
            .await?,
            breaker: prepare(format!(
                "SELECT breaker_until FROM {q}.scopes WHERE scope = $1 AND breaker_until > {NOW}"
            ))
            .await?,
            prune_entries: prepare(format!(
                "DELETE FROM {q}.entries WHERE settled_at IS NOT NULL AND settled_at < $1"
            ))
            .await?,
            prune_budgets: prepare(format!(
                "DELETE FROM {q}.budgets WHERE window_end < LEAST($1, {NOW})"
            ))
            .await?,
            renew: prepare(format!(
                "UPDATE {q}.instances SET lease_until = {} WHERE id = $1 AND incarnation = $2",
                later("$3")
            ))
            .await?,
            revive: prepare(format!(
                "INSERT INTO {q}.instances (id, incarnation, lease_until) VALUES ($1, $2, {})
                 ON CONFLICT (id) DO NOTHING",
                later("$3")
            ))
            .await?,
        })
    }
}

/// The journal's schema, version 1, in the (quoted) schema `q`.
pub(super) fn schema_1(q: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {q};
        CREATE TABLE {q}.journal_meta (
            application text NOT NULL,
            schema_version int4 NOT NULL
        );
        CREATE TABLE {q}.instances (
            id text PRIMARY KEY,
            incarnation int8 NOT NULL,
            lease_until int8 NOT NULL
        );
        CREATE TABLE {q}.scopes (
            scope text PRIMARY KEY,
            breaker_until int8
        );
        CREATE TABLE {q}.entries (
            seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            local_id text NOT NULL UNIQUE,
            kind text NOT NULL,
            scope text NOT NULL,
            project_id text,
            prompt text NOT NULL,
            started_at int8 NOT NULL,
            token text NOT NULL,
            labels text NOT NULL,
            idempotency_key text,
            accepted bool NOT NULL DEFAULT false,
            outcome text,
            app_url text,
            error text,
            may_have_started_work bool,
            settled_at int8,
            owner text NOT NULL,
            incarnation int8 NOT NULL,
            fence int8 NOT NULL,
            holds_slot bool NOT NULL,
            released bool NOT NULL DEFAULT false
        );
        CREATE UNIQUE INDEX entries_key ON {q}.entries (scope, idempotency_key)
            WHERE idempotency_key IS NOT NULL;
        CREATE INDEX entries_unsettled ON {q}.entries (scope) WHERE outcome IS NULL;
        CREATE INDEX entries_settled ON {q}.entries (settled_at) WHERE settled_at IS NOT NULL;
        CREATE TABLE {q}.budgets (
            scope text NOT NULL,
            time_window text NOT NULL,
            window_start int8 NOT NULL,
            window_end int8 NOT NULL,
            used int8 NOT NULL,
            PRIMARY KEY (scope, time_window, window_start)
        );
        INSERT INTO {q}.journal_meta (application, schema_version) VALUES ('{APPLICATION}', 1);
        {}",
        admit_function(q)
    )
}

/// Admission as one call to the server (one round trip instead of one per check):
/// the scope's row lock first (every later statement of the function sees what
/// the lock's last holder committed), then the rules of `Store::admit` in their
/// order. Answers a verdict: `breaker` (until `at_ms`), `duplicate` (`holder`),
/// `budget` (the `number`th budget, 0-based; its window ends at `at_ms`), `busy`
/// (`number` running) or `admitted` (at `at_ms`, the server's clock).
fn admit_function(q: &str) -> String {
    format!(
        "CREATE FUNCTION {q}.admit(
            p_scope text, p_key text, p_cap int8,
            p_windows text[], p_lengths int8[], p_limits int8[],
            p_local_id text, p_kind text, p_project_id text, p_prompt text,
            p_token text, p_labels text, p_owner text, p_incarnation int8)
        RETURNS TABLE (verdict text, at_ms int8, number int8, holder text)
        LANGUAGE plpgsql VOLATILE AS $admit$
        DECLARE
            v_now int8;
            v_breaker int8;
            v_holder text;
            v_outcome text;
            v_started bool;
            v_free text;
            v_used int8;
            v_start int8;
            v_running int8;
            v_budgets int4 := coalesce(array_length(p_windows, 1), 0);
        BEGIN
            INSERT INTO {q}.scopes AS s (scope) VALUES (p_scope)
                ON CONFLICT (scope) DO UPDATE SET scope = EXCLUDED.scope
                RETURNING {NOW}, s.breaker_until INTO v_now, v_breaker;
            IF v_breaker IS NOT NULL AND v_breaker > v_now THEN
                RETURN QUERY SELECT 'breaker'::text, v_breaker, 0::int8, NULL::text;
                RETURN;
            END IF;
            IF p_key IS NOT NULL THEN
                SELECT e.local_id, e.outcome, e.may_have_started_work
                  INTO v_holder, v_outcome, v_started
                  FROM {q}.entries e
                 WHERE e.scope = p_scope AND e.idempotency_key = p_key;
                IF v_holder IS NOT NULL THEN
                    IF v_outcome = 'failed' AND v_started = false THEN
                        v_free := v_holder;
                    ELSE
                        RETURN QUERY SELECT 'duplicate'::text, 0::int8, 0::int8, v_holder;
                        RETURN;
                    END IF;
                END IF;
            END IF;
            FOR i IN 1 .. v_budgets LOOP
                v_start := v_now - v_now % p_lengths[i];
                SELECT b.used INTO v_used FROM {q}.budgets b
                 WHERE b.scope = p_scope AND b.time_window = p_windows[i]
                   AND b.window_start = v_start;
                IF coalesce(v_used, 0) >= p_limits[i] THEN
                    RETURN QUERY SELECT 'budget'::text, v_start + p_lengths[i], (i - 1)::int8,
                        NULL::text;
                    RETURN;
                END IF;
            END LOOP;
            IF p_cap IS NOT NULL THEN
                SELECT count(*) INTO v_running FROM {q}.entries e
                 WHERE e.scope = p_scope AND e.outcome IS NULL AND e.holds_slot
                   AND NOT e.released AND EXISTS (
                       SELECT 1 FROM {q}.instances i
                        WHERE i.id = e.owner AND i.incarnation = e.incarnation
                          AND i.lease_until > v_now);
                IF v_running >= p_cap THEN
                    RETURN QUERY SELECT 'busy'::text, 0::int8, v_running, NULL::text;
                    RETURN;
                END IF;
            END IF;
            -- Admitted: everything below is written together.
            IF v_free IS NOT NULL THEN
                UPDATE {q}.entries SET idempotency_key = NULL WHERE local_id = v_free;
            END IF;
            FOR i IN 1 .. v_budgets LOOP
                v_start := v_now - v_now % p_lengths[i];
                INSERT INTO {q}.budgets AS b (scope, time_window, window_start, window_end, used)
                    VALUES (p_scope, p_windows[i], v_start, v_start + p_lengths[i], 1)
                    ON CONFLICT (scope, time_window, window_start)
                    DO UPDATE SET used = b.used + 1;
            END LOOP;
            INSERT INTO {q}.entries (local_id, kind, scope, project_id, prompt, started_at,
                    token, labels, idempotency_key, owner, incarnation, fence, holds_slot)
                VALUES (p_local_id, p_kind, p_scope, p_project_id, p_prompt, v_now, p_token,
                    p_labels, p_key, p_owner, p_incarnation, 1, p_cap IS NOT NULL);
            RETURN QUERY SELECT 'admitted'::text, v_now, 0::int8, NULL::text;
        END
        $admit$;"
    )
}
