//! The executor is never blocked by journal I/O: a 1 ms ticker task
//! (`tokio::time::interval`, each tick's lateness recorded) runs on a multi-thread
//! runtime (two workers) while 200 generations run at once against the offline
//! LaraCopilot (`laracopilot_mock`, on its own thread), once without a journal and
//! once with each engine (a `MemoryJournal`, an `SqliteJournal` in a temporary
//! directory, a `PostgresJournal` when a server answers), in a new shuffled order
//! every round. Each generation's journal writes (admission, acceptance, project
//! id, settlement) happen while the ticker runs; an engine that did its I/O on the
//! caller's executor would delay the ticks of the worker it blocked.
//!
//! A counterfactual path shows what the bench sees when I/O does block the
//! executor: no journal, but each generation does four `fdatasync`s of a small
//! file inline, on the worker (what a journal writing on the caller's thread
//! would do).
//!
//! `cargo bench --features full --bench executor [-- --rounds 6 --generations 200]`
//!
//! Prints, per path, the p50 and p99 of the ticks' lateness (over every round, and
//! the median of the rounds' p99s), the ratio of each p99 to no journal's, and the
//! CPU time the process spent per round (the engines' threads included; not the
//! PostgreSQL server's): on two cores, a journal's own work competes with the
//! workers for the CPU even when nothing blocks them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure stops the measurement"
)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use laracopilot::Client;
use laracopilot_mock::MockServer;
use tokio::time::{Instant, MissedTickBehavior};

#[path = "support/journals.rs"]
mod journals;

use journals::{Engine, Journals};

/// Events per generation, and the server's delay before each after the first:
/// a generation lasts about 0.6 s, so the 200 overlap for most of a round.
const EVENTS: usize = 60;
const PACING: Duration = Duration::from_millis(10);

/// What a path runs its generations with.
enum Path {
    Journal(Engine, Client),
    /// No journal; four `fdatasync`s of `file` per generation, on the worker.
    BlockingControl(Client, Arc<std::fs::File>),
}

impl Path {
    fn name(&self) -> String {
        match self {
            Path::Journal(engine, _) => engine.name().to_owned(),
            Path::BlockingControl(..) => "fdatasync on the executor".to_owned(),
        }
    }
}

/// One generation to its end.
async fn generation(client: Client, fsynced: Option<Arc<std::fs::File>>) {
    let started = client
        .generate("Build a task management app")
        .await
        .expect("the offline LaraCopilot answers");
    if let Some(file) = &fsynced {
        block_on_io(file);
    }
    let outcome = started.finish().await.expect("the generation succeeds");
    assert_eq!(outcome.progress.stats().events, EVENTS as u64);
    if let Some(file) = &fsynced {
        for _ in 0..3 {
            block_on_io(file);
        }
    }
}

fn block_on_io(mut file: &std::fs::File) {
    file.write_all(&[b'x'; 200]).expect("a write");
    file.sync_data().expect("an fdatasync");
}

/// Runs `generations` at once with the ticker beside them: each tick's lateness.
async fn round(path: &Path, generations: usize) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            // The first tick completes at once.
            interval.tick().await;
            let mut late = Vec::with_capacity(4096);
            while !stop.load(Ordering::Relaxed) {
                let due = interval.tick().await;
                late.push(Instant::now().saturating_duration_since(due));
            }
            late
        }
    });
    let (client, fsynced) = match path {
        Path::Journal(_, client) => (client, None),
        Path::BlockingControl(client, file) => (client, Some(file)),
    };
    let tasks: Vec<_> = (0..generations)
        .map(|_| tokio::spawn(generation(client.clone(), fsynced.cloned())))
        .collect();
    for task in tasks {
        task.await.expect("a generation task");
    }
    stop.store(true, Ordering::Relaxed);
    ticker.await.expect("the ticker")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn arg(args: &[String], flag: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds = arg(&args, "--rounds", 10);
    let generations = arg(&args, "--generations", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let server = MockServer::builder()
        .events_per_generation(EVENTS)
        .pacing(PACING)
        .start()
        .expect("the offline LaraCopilot");
    let journals = runtime.block_on(Journals::new());
    let builder = || server.client_builder();
    let mut paths: Vec<Path> = journals
        .engines()
        .into_iter()
        .map(|engine| {
            let client = runtime
                .block_on(journals.attach(engine, builder()))
                .build()
                .expect("a client");
            Path::Journal(engine, client)
        })
        .collect();
    let file = std::fs::File::create(journals.dir().join("fsync-control")).expect("a file");
    paths.push(Path::BlockingControl(
        builder().build().expect("a client"),
        Arc::new(file),
    ));
    // Warm up: every path once (connections, journal files and tables in place).
    for path in &paths {
        runtime.block_on(round(path, generations.min(16)));
    }
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut p99s: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut order: Vec<usize> = (0..paths.len()).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    for r in 0..rounds {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            let started = std::time::Instant::now();
            let cpu_before = cpu_ms();
            let mut late = runtime.block_on(round(&paths[i], generations));
            let cpu_used = cpu_ms() - cpu_before;
            late.sort();
            eprintln!(
                "round {r} {:<26} {:>6} ticks in {:>5.2} s, p50 {:>7.1} us, p99 {:>8.1} us, CPU {cpu_used:>5.0} ms",
                paths[i].name(),
                late.len(),
                started.elapsed().as_secs_f64(),
                micros(percentile(&late, 0.5)),
                micros(percentile(&late, 0.99)),
            );
            p99s[i].push(percentile(&late, 0.99));
            cpu[i].push(cpu_used);
            all[i].extend(late);
        }
    }
    println!(
        "{generations} generations at once ({EVENTS} events, {} ms apart), {rounds} rounds; tick lateness:",
        PACING.as_millis()
    );
    println!(
        "{:<26} {:>10} {:>10} {:>12} {:>12} {:>18} {:>12}",
        "path", "p50 us", "p99 us", "p99 / none", "median p99", "median p99 / none", "CPU ms/round"
    );
    let none_p99 = {
        all[0].sort();
        percentile(&all[0], 0.99)
    };
    p99s[0].sort();
    let none_median_p99 = percentile(&p99s[0], 0.5);
    for (i, path) in paths.iter().enumerate() {
        all[i].sort();
        p99s[i].sort();
        let (p50, p99) = (percentile(&all[i], 0.5), percentile(&all[i], 0.99));
        let median_p99 = percentile(&p99s[i], 0.5);
        cpu[i].sort_by(f64::total_cmp);
        println!(
            "{:<26} {:>10.1} {:>10.1} {:>11.2}x {:>12.1} {:>17.2}x {:>12.0}",
            path.name(),
            micros(p50),
            micros(p99),
            micros(p99) / micros(none_p99),
            micros(median_p99),
            micros(median_p99) / micros(none_median_p99),
            cpu[i][cpu[i].len() / 2],
        );
    }
    drop(paths);
    runtime.block_on(journals.cleanup());
    server.shutdown();
}

/// CPU time of this process so far (user and system, every thread), in ms, from
/// /proc/self/stat (clock ticks of 10 ms); 0 where there is none.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime: fields 14 and 15 of the line; what follows the name starts
    // at field 3.
    (ticks(11) + ticks(12)) * 10.0
}

/// Fisher-Yates with xorshift64*.
fn shuffle(order: &mut [usize], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        let j = (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
}
