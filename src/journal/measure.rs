//! A quick measurement of each engine (not a test: ignored unless asked for):
//! the latency of one admission and of one settlement, from one caller and from
//! 200 concurrent callers, with group commit and without.
//!
//! ```text
//! cargo test --release --lib --features sqlite,postgres journal::measure -- --ignored --nocapture
//! ```
//!
//! PostgreSQL is measured when a server is reachable (see `postgres_tests.rs`).

use std::io::Write;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use super::engine::BATCH_LIMIT;
#[cfg(feature = "postgres")]
use super::engine::SAVEPOINTS_ALWAYS;
use super::store::{Admission, Intent, Store};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use super::JournalOptions;
use super::Settlement;
use crate::Budget;

const SINGLE: usize = 300;
const CALLERS: usize = 200;
const ROUNDS: usize = 5;

fn intent(scope: &str) -> Intent {
    // Every guard checked, none ever reached.
    Intent {
        max_concurrent: Some(10_000),
        budgets: vec![Budget::per_day(1_000_000_000)],
        ..super::conformance::intent(scope)
    }
}

/// Admits and settles one call: the two latencies.
async fn one_call(store: &dyn Store, scope: &str) -> (Duration, Duration) {
    let started = Instant::now();
    let (entry, fence) = match store.admit(intent(scope)).await.unwrap() {
        Admission::Admitted { entry, fence } => (entry, fence),
        other => panic!("{other:?}"),
    };
    let admitted = started.elapsed();
    let started = Instant::now();
    assert!(store
        .settle(&entry, fence, Settlement::succeeded(None))
        .await
        .unwrap());
    (admitted, started.elapsed())
}

struct Summary {
    median: Duration,
    p99: Duration,
}

fn summary(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Summary {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn report(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

async fn measure(name: &str, store: Arc<dyn Store>) {
    // Warm up (prepared statements, pages in cache).
    for _ in 0..20 {
        one_call(&*store, "warm-up").await;
    }
    let (mut admits, mut settles) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for _ in 0..SINGLE {
        let (admit, settle) = one_call(&*store, "single").await;
        admits.push(admit);
        settles.push(settle);
    }
    let single_wall = started.elapsed();
    let started = Instant::now();
    let callers = (0..CALLERS).map(|caller| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..ROUNDS {
                latencies.push(one_call(&*store, &format!("busy-{}", caller % 8)).await);
            }
            latencies
        })
    });
    let mut many = Vec::new();
    for caller in futures::future::join_all(callers).await {
        many.extend(caller.unwrap());
    }
    let many_wall = started.elapsed();
    let (a1, s1) = (summary(admits), summary(settles));
    let (a2, s2) = (
        summary(many.iter().map(|l| l.0).collect()),
        summary(many.iter().map(|l| l.1).collect()),
    );
    let calls_per_second = |calls: usize, wall: Duration| calls as f64 / wall.as_secs_f64();
    report(format!(
        "{name:<40} 1 caller: admit {:>8.2?} p99 {:>8.2?}, settle {:>8.2?} p99 {:>8.2?} ({:>6.0} calls/s) | {CALLERS} callers: admit {:>8.2?} p99 {:>8.2?}, settle {:>8.2?} p99 {:>8.2?} ({:>6.0} calls/s)",
        a1.median, a1.p99, s1.median, s1.p99, calls_per_second(SINGLE, single_wall),
        a2.median, a2.p99, s2.median, s2.p99, calls_per_second(CALLERS * ROUNDS, many_wall),
    ));
}

#[test]
#[ignore = "a measurement, not a test: run it with --ignored --nocapture, in release"]
fn measure_the_engines() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let memory = super::MemoryJournal::new();
        measure("memory", super::store_of(&memory)).await;
        #[cfg(feature = "sqlite")]
        for grouped in [true, false] {
            BATCH_LIMIT.store(if grouped { 0 } else { 1 }, Ordering::Relaxed);
            let dir = tempfile::tempdir().unwrap();
            let journal =
                super::SqliteJournal::open_with(dir.path().join("j.db"), JournalOptions::new())
                    .unwrap();
            let name = format!(
                "sqlite, group commit {}",
                if grouped { "on" } else { "off" }
            );
            measure(&name, super::store_of(&journal)).await;
        }
        #[cfg(feature = "postgres")]
        if let Some(db) = super::postgres_tests::database("measure_the_engines").await {
            let modes = [
                ("on, pipelined", 0, false),
                ("on, a savepoint each", 0, true),
                ("off", 1, false),
            ];
            for (mode, limit, savepoints) in modes {
                BATCH_LIMIT.store(limit, Ordering::Relaxed);
                SAVEPOINTS_ALWAYS.store(savepoints, Ordering::Relaxed);
                let journal = db.open(JournalOptions::new()).await.unwrap();
                measure(
                    &format!("postgres, group commit {mode}"),
                    super::store_of(&journal),
                )
                .await;
            }
            SAVEPOINTS_ALWAYS.store(false, Ordering::Relaxed);
            db.drop_schema().await;
        }
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        BATCH_LIMIT.store(0, Ordering::Relaxed);
    });
}
