//! Proof by killing processes: the spend record survives SIGKILL at every point of a
//! generation, and the spend guards hold for a fleet of processes, on both real
//! journal engines: one SQLite file (feature `sqlite`) and one PostgreSQL database
//! (feature `postgres`, a fresh schema per run).
//!
//! This binary re-executes itself as its children (the test `child::child`, a no-op
//! unless `LARACOPILOT_CRASH_CHILD` carries a child's orders as JSON). Every child is
//! a separate process with its own journal instance (a lease of [`LEASE`]), talking
//! to one `laracopilot_mock::MockServer` in the parent, which counts what really
//! happened on the wire: each POST with its prompt and time, each stream with when
//! it opened and closed (`posts`, `streams`, `max_open_streams`), and which holds
//! each generation where the suite needs it (`faults_for_prompt`,
//! `Fault::HoldBefore`). Every count asserted below is the server's or the journal's (read back
//! with SQL in the parent, not through the SDK), never what a client says it did.
//! Every prompt is unique, so the server's POSTs per prompt name the generation.
//!
//! # A. Crash suite (`crash.rs`): every generation accounted for
//!
//! Per engine, 4 processes x 16 generations, twice:
//!
//! 1. **Chosen kill points.** Each process starts 16 generations and holds each at
//!    its own point, with the server's faults given per prompt: finished (and a
//!    follow-up finished); after the intent, before the POST (the request's address
//!    never resolves); after the POST, before the first byte (the answer's head
//!    never comes); after acceptance (an answer, no event); after
//!    `project_created`; mid-stream (in a new project and in a follow-up); after the
//!    terminal event, before its settlement is written (the server holds the stream
//!    before its end, the parent takes the journal's lock, then lets the end go);
//!    and inside the admission's transaction (PostgreSQL: the transaction is open
//!    and waits on the scope's row, which the parent holds; SQLite takes its write
//!    lock when its transaction begins, so there the process dies waiting for it).
//!    Then the parent kills each process with SIGKILL.
//! 2. **Random moments.** Each process starts 16 generations a few milliseconds
//!    apart, and is killed at a moment drawn from a seeded generator (the seed is
//!    printed; `LARACOPILOT_CRASH_SEED` replays one).
//!
//! Then, once every dead owner's lease has expired (the parent waits until every
//! unsettled entry is listed as unfinished), three new processes resume every
//! unfinished entry at once, racing for each. The checks: every generation is
//! accounted for (finished by its process, resumed to success, to failure, or to
//! `OutcomeUnknown`, or never admitted: then the server never saw its prompt); each
//! kill point ends where it must; exactly one settlement per entry (of the racing
//! resumers one settles it, the others get `EntryTaken`; counted from their reports
//! and read back from the journal); no POST sent twice and none by a resumer; no
//! record lost (every POST the server saw has its entry); no foreign file touched
//! (a file beside the SQLite journal, a table beside the PostgreSQL one: same bytes,
//! same mtime, same row versions).
//!
//! Last, a stale owner that wakes up: a resumer is frozen (SIGSTOP) while it holds
//! its claim and polls (the server answers "generating" meanwhile), until its lease
//! expires; another resumer settles the entry; woken (SIGCONT), the first goes on
//! and its settlement is fenced out: `EntryTaken`, the entry settled once.
//!
//! # B. Fleet suite (`fleet.rs`): the guards hold across processes
//!
//! Per engine, each phase with 4 processes x 16 tasks in one scope of its own, on
//! a server of its own (so that its counts are the phase's):
//!
//! - **Cap, with kills** (3 rounds; in each, a process holding slots is killed at
//!   a seeded moment, so the next round starts with slots only its lease gives
//!   back): the server never had more streams of the scope open than the cap, at
//!   any instant (its own count as streams open and close, and a sweep of its log).
//! - **Slot reuse after a kill**: every stream stalls, so the cap's slots stay held
//!   until their holders die; 3 times, the parent kills every holder, and the next
//!   admission anywhere can only take a dead host's slot. Measured at the server,
//!   from the first kill to the next POST: at most the lease plus [`REUSE_MARGIN`].
//! - **Credits breaker**: while the 64 tasks generate, the server's credits run out,
//!   so every stream running then ends with `credits_exhausted`; no POST reaches the
//!   server later than one breaker check interval after the first of them ended
//!   (the largest gap is printed), every later call is refused without a request,
//!   as many tasks saw the event as streams ran out, and a host started afterwards,
//!   which saw nothing of it, is refused every call by the journal's breaker.
//! - **Budget**: 64 calls at once against `Budget::per_hour(12)`: exactly 12 POSTs,
//!   52 `BudgetExhausted` (not across the turn of an hour: the phase waits for the
//!   next one when it is less than 20 s away).
//! - **Idempotency key**: 16 callers over 4 processes with one key: one POST, one
//!   project id for all, 15 replays; and again with the sending process killed
//!   mid-stream once its project is recorded: the 12 callers left all get its
//!   project, as replays, without a POST of their own.
//!
//! # What is timed, and why
//!
//! Every wait of the parent is for an event (a child's mark, a count at the server,
//! a row in the journal, a connection waiting for a lock in `pg_stat_activity`),
//! bounded by [`PATIENCE`]. Three things are timed on purpose: the random kill
//! moments (drawn from the seed: that is the point); the 100 ms the parent gives an
//! SQLite child to read its held stream's end before killing it (a busy wait for
//! SQLite's lock cannot be seen from outside; nothing asserted depends on it: the
//! end was written and the settlement cannot be); and the two bounds the guards
//! promise, a dead host's slot back within its lease plus [`REUSE_MARGIN`], and no
//! POST later than one breaker check interval after the credits ran out.
//!
//! Each suite prints its counts and measurements. PostgreSQL is
//! `LARACOPILOT_TEST_POSTGRES` or, unset, the README's default URL; with neither
//! answering, the PostgreSQL half is skipped and says so on stderr (a set variable
//! whose server does not answer fails instead). The suites run one at a time (they
//! kill processes and measure delays; two at once on two cores only add noise).
//!
//! `child.rs` runs in the children; `parent.rs` starts, reads, kills and reaps them
//! and reads the journal back with SQL; `crash.rs` and `fleet.rs` are the suites.
#![cfg(unix)]
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test code: a failed unwrap or index is a failed test"
)]

mod child;
mod crash;
mod fleet;
mod parent;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use laracopilot::journal::{Journal, JournalOptions};
use serde::{Deserialize, Serialize};

/// Carries a child's [`Orders`] as JSON: set, the test `child::child` runs them.
const CHILD: &str = "LARACOPILOT_CRASH_CHILD";
/// A seed to replay (else one is drawn and printed).
const SEED: &str = "LARACOPILOT_CRASH_SEED";
/// The mock's token, which every child uses.
const TOKEN: &str = "lcp_mock_crash_test_token_0001";

/// Every child's journal lease: short, so that dead owners' entries and slots come
/// back within seconds.
const LEASE: Duration = Duration::from_secs(2);

/// What a slot may take beyond the lease to be taken again after its holder died:
/// a waiting call asks the journal again at least every 250 ms (the SDK's longest
/// pause between two asks), then one admission commits (a group commit with
/// `fsync`, or one round trip to PostgreSQL) and its POST crosses loopback. 250 ms
/// for the pause, and 750 ms for the commit and the scheduler of two busy cores.
const REUSE_MARGIN: Duration = Duration::from_millis(1_000);

/// The longest any single wait of the parent takes (a child's mark, a count at the
/// server): long enough for a loaded machine, short enough to fail a hung run.
const PATIENCE: Duration = Duration::from_secs(60);

/// Where the PostgreSQL tests look when `LARACOPILOT_TEST_POSTGRES` is unset (what
/// `.ci/postgres.sh` makes).
#[cfg(feature = "postgres")]
const DEFAULT_POSTGRES: &str = "postgres://laracopilot:laracopilot@127.0.0.1:5432/laracopilot";
#[cfg(feature = "postgres")]
const POSTGRES_ENV: &str = "LARACOPILOT_TEST_POSTGRES";

/// Where a child's journal is.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Store {
    Sqlite { path: PathBuf },
    Postgres { url: String, schema: String },
}

impl Store {
    /// Opens the journal as a new instance with the suite's lease (named `instance`,
    /// when given).
    async fn open(&self, instance: Option<&str>) -> Arc<dyn Journal> {
        let mut options = JournalOptions::new().lease(LEASE);
        if let Some(name) = instance {
            options = options.instance(name);
        }
        match self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite { path } => {
                Arc::new(laracopilot::journal::SqliteJournal::open_with(path, options).unwrap())
            }
            #[cfg(feature = "postgres")]
            Store::Postgres { url, schema } => Arc::new(
                laracopilot::journal::PostgresJournal::connect_in(url, schema, options)
                    .await
                    .unwrap(),
            ),
            #[allow(unreachable_patterns, reason = "one engine may be compiled out")]
            other => panic!("this build has no engine for {other:?}"),
        }
    }
}

/// What a child process does: its journal, the server, and its role.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Orders {
    /// For messages: the engine and the child's name (`sqlite a2`).
    name: String,
    store: Store,
    /// The journal instance's name (a random id otherwise).
    instance: Option<String>,
    base_url: String,
    role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Role {
    /// Starts each generation and holds it where its step says; waits to be killed.
    Plan { steps: Vec<Planned> },
    /// Starts these generations `stagger_ms` apart and goes on until killed.
    Chaos {
        prompts: Vec<String>,
        stagger_ms: u64,
    },
    /// Resumes every unfinished entry of the journal, all at once, in an order drawn
    /// from `seed`, once told `go`.
    Resume { seed: u64 },
    /// Runs each task's prompts one after the other, stopping at the first error.
    Fleet(Fleet),
}

/// One generation of a [`Role::Plan`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Planned {
    step: Step,
    prompt: String,
}

/// Where a generation of a plan is when its process is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
enum Step {
    /// Generated to its end.
    Finish,
    /// A follow-up on the project of the plan's generation `base`, to its end.
    FollowUp { base: usize },
    /// After its intent was recorded, before the POST: its address never resolves.
    BeforePost,
    /// After the POST, before the first byte of the answer.
    BeforeFirstByte,
    /// After the answer's head (accepted recorded), before any event.
    AfterAcceptance,
    /// After `project_created` (the stream stalls for good after it).
    AfterProject,
    /// In the middle of the stream (a long pause there).
    MidStream,
    /// In the middle of a follow-up's stream, on the project of generation `base`.
    FollowUpMidStream { base: usize },
    /// After the terminal event, before its settlement is written.
    BeforeSettlement,
    /// Inside the admission's transaction (PostgreSQL), or waiting for the write
    /// lock that begins it (SQLite).
    InAdmission,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Finish => "finished",
            Step::FollowUp { .. } => "follow-up finished",
            Step::BeforePost => "before the POST",
            Step::BeforeFirstByte => "before the first byte",
            Step::AfterAcceptance => "after acceptance",
            Step::AfterProject => "after project_created",
            Step::MidStream => "mid-stream",
            Step::FollowUpMidStream { .. } => "follow-up mid-stream",
            Step::BeforeSettlement => "after the terminal event, before its settlement",
            Step::InAdmission => "inside the admission's transaction",
        }
    }
}

/// The orders of a [`Role::Fleet`] process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Fleet {
    scope: String,
    /// `max_concurrent_generations`.
    cap: Option<usize>,
    /// `Budget::per_hour`.
    per_hour: Option<u64>,
    /// `credits_cooldown` (the SDK's default otherwise).
    cooldown_ms: Option<u64>,
    /// Every call with this idempotency key.
    key: Option<String>,
    /// Each task's prompts, run in order.
    tasks: Vec<Vec<String>>,
    /// Start only when told `go` (so that processes start together).
    wait_for_go: bool,
}

/// The events of every default stream of the suites' servers (`stream_end` is the
/// last): a fixed count, so that a hold can name the terminal event.
const EVENTS: usize = 20;
/// Where a mid-stream hold pauses (after `project_created`, the container and a
/// file or two).
const MID: usize = 12;
/// Where a follow-up's mid-stream hold pauses.
const FOLLOW_UP_MID: usize = 3;

/// The suites kill processes and measure delays: one at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SUITES: Mutex<()> = Mutex::new(());
    SUITES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A line on the real stderr: libtest captures `eprintln!`, and a skip or a seed
/// must be seen.
fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// The run's seed: `LARACOPILOT_CRASH_SEED`, or drawn from the clock.
fn seed(suite: &str) -> u64 {
    let seed = match std::env::var(SEED) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED}={text:?} is not a number")),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (now.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
        }
    };
    say(&format!("{suite}: seed {seed} (replay with {SEED}={seed})"));
    seed
}

/// A small seeded generator (SplitMix64): the same seed, the same kills.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn crash_suite_on_one_sqlite_file() {
    let _alone = one_at_a_time();
    let engine = parent::Engine::sqlite();
    crash::run(&engine, seed("crash suite, SQLite"));
    engine.finish();
}

#[cfg(feature = "postgres")]
#[test]
fn crash_suite_on_one_postgres_database() {
    let _alone = one_at_a_time();
    let Some(engine) = parent::Engine::postgres("the PostgreSQL crash suite") else {
        return;
    };
    crash::run(&engine, seed("crash suite, PostgreSQL"));
    engine.finish();
}

#[cfg(feature = "sqlite")]
#[test]
fn fleet_suite_on_one_sqlite_file() {
    let _alone = one_at_a_time();
    let engine = parent::Engine::sqlite();
    fleet::run(&engine, seed("fleet suite, SQLite"));
    engine.finish();
}

#[cfg(feature = "postgres")]
#[test]
fn fleet_suite_on_one_postgres_database() {
    let _alone = one_at_a_time();
    let Some(engine) = parent::Engine::postgres("the PostgreSQL fleet suite") else {
        return;
    };
    fleet::run(&engine, seed("fleet suite, PostgreSQL"));
    engine.finish();
}
