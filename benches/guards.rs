//! What each spend guard adds to a call, per journal engine: a generate call read to
//! its end (`client.generate(..).await?.finish().await?`, a short stream:
//! `project_created`, `stream_end`) against a loopback server, with no guard, with
//! the concurrency cap (`max_concurrent_generations` with free slots), with the
//! credits breaker (closed), with a budget, with an idempotency key (a new key: a
//! first call), and with all of them; from one caller, and from 16 callers at once.
//! Plus what a refusal costs: an open breaker refused from the client's cache (no
//! round trip), and a call over its budget (refused in the admission's
//! transaction).
//!
//! Engines: no journal (the cap and the breaker are then the client's own), a
//! `MemoryJournal`, an `SqliteJournal` (a file in a temporary directory) and a
//! `PostgresJournal` (when a server answers at `LARACOPILOT_TEST_POSTGRES`, or at
//! what `.ci/postgres.sh` makes). Each guard has a client, a journal and a scope
//! of its own. Every round runs each path once, in a new shuffled order.
//!
//! `cargo bench --features full --bench guards [-- --rounds 10]`
//!
//! "no guard" turns the breaker off (`credits_cooldown(None)`); the SDK's default
//! has it on (a minute), so a default client pays the breaker's row.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "benchmark harness: a failure stops the measurement"
)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use laracopilot::{Budget, Client, ClientBuilder, Error, Token};

#[path = "support/journals.rs"]
mod journals;
#[path = "support/server.rs"]
mod server;

use journals::{Engine, Journals};
use server::{Proto, Reply};

const SHORT: &str = "data: {\"type\":\"project_created\",\"project_id\":\"p1\",\"app_url\":\"https://p1.laracopilot.com\"}\n\n\
                     data: {\"type\":\"stream_end\",\"project_id\":\"p1\",\"app_url\":\"https://p1.laracopilot.com\"}\n\n";
const NO_CREDITS: &str = "data: {\"type\":\"project_created\",\"project_id\":\"p2\"}\n\n\
                          data: {\"type\":\"credits_exhausted\",\"project_id\":\"p2\",\"message\":\"Not enough credits\"}\n\n";

/// Calls per path and round: from one caller, and from each of 16 callers.
const SINGLE: usize = 20;
const CALLERS: usize = 16;
const PER_CALLER: usize = 4;
/// Refusals per path and round.
const REFUSALS: usize = 50;

/// The guards of one client.
#[derive(Debug, Clone, Copy)]
struct Guards {
    name: &'static str,
    cap: bool,
    breaker: bool,
    budget: bool,
    key: bool,
}

const GUARDS: [Guards; 6] = [
    guards("no guard", false, false, false, false),
    guards("cap", true, false, false, false),
    guards("breaker (closed)", false, true, false, false),
    guards("budget", false, false, true, false),
    guards("idempotency key", false, false, false, true),
    guards("all of them", true, true, true, true),
];

const fn guards(name: &'static str, cap: bool, breaker: bool, budget: bool, key: bool) -> Guards {
    Guards {
        name,
        cap,
        breaker,
        budget,
        key,
    }
}

/// What a path measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum What {
    /// Calls with these guards, from one caller or from [`CALLERS`].
    Calls { guards: usize, concurrent: bool },
    /// Refusals by an open breaker, from the client's cache.
    BreakerOpen,
    /// Refusals of a call over its budget.
    OverBudget,
}

struct Path {
    engine: Engine,
    what: What,
    client: Client,
    times: Vec<Duration>,
}

static KEYS: AtomicU64 = AtomicU64::new(0);

fn builder(base: &str, scope: &str) -> ClientBuilder {
    Client::builder()
        .token(Token::new("lcp_bench_0123456789abcdef").expect("a valid token"))
        .base_url(base)
        .scope(scope)
        .credits_cooldown(None)
}

fn guarded(builder: ClientBuilder, guards: Guards) -> ClientBuilder {
    let mut builder = builder;
    if guards.cap {
        builder = builder.max_concurrent_generations(10_000);
    }
    if guards.breaker {
        builder = builder.credits_cooldown(Duration::from_secs(60));
    }
    if guards.budget {
        builder = builder.budget(Budget::per_day(1_000_000_000));
    }
    builder
}

/// One call read to its end: its time.
async fn call(client: &Client, key: bool) -> Duration {
    let started = Instant::now();
    let mut request = client.generate("Build a task management app");
    if key {
        let n = KEYS.fetch_add(1, Ordering::Relaxed);
        request = request.idempotency_key(format!("bench-{}-{n}", std::process::id()));
    }
    let generation = request.await.expect("the call is admitted");
    assert!(!generation.is_replay(), "a new key is a first call");
    black_box(generation.finish().await.expect("the stream ends well"));
    started.elapsed()
}

/// One refused call: its time.
async fn refused(client: &Client, budget: bool) -> Duration {
    let started = Instant::now();
    let error = client
        .generate("Build a task management app")
        .await
        .expect_err("refused");
    let elapsed = started.elapsed();
    match (&error, budget) {
        (Error::BudgetExhausted { .. }, true) => {}
        (Error::CreditsExhausted { locally: true, .. }, false) => {}
        _ => panic!("not the refusal measured: {error:?}"),
    }
    elapsed
}

async fn run(path: &Path) -> Vec<Duration> {
    match path.what {
        What::Calls { guards, concurrent } => {
            let key = GUARDS[guards].key;
            if concurrent {
                let callers = (0..CALLERS).map(|_| async {
                    let mut times = Vec::with_capacity(PER_CALLER);
                    for _ in 0..PER_CALLER {
                        times.push(call(&path.client, key).await);
                    }
                    times
                });
                futures::future::join_all(callers)
                    .await
                    .into_iter()
                    .flatten()
                    .collect()
            } else {
                let mut times = Vec::with_capacity(SINGLE);
                for _ in 0..SINGLE {
                    times.push(call(&path.client, key).await);
                }
                times
            }
        }
        What::BreakerOpen | What::OverBudget => {
            let budget = path.what == What::OverBudget;
            let mut times = Vec::with_capacity(REFUSALS);
            for _ in 0..REFUSALS {
                times.push(refused(&path.client, budget).await);
            }
            times
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(10, |v| v.parse().expect("--rounds takes a number"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let short: Arc<[Bytes]> = Arc::new([Bytes::from_static(SHORT.as_bytes())]);
    let addr = server::spawn(Proto::Http1, move |_: &str| {
        Reply::frames(short.clone(), false)
    });
    let no_credits: Arc<[Bytes]> = Arc::new([Bytes::from_static(NO_CREDITS.as_bytes())]);
    let broke = server::spawn(Proto::Http1, move |_: &str| {
        Reply::frames(no_credits.clone(), false)
    });
    let base = format!("http://{addr}/api/v1");
    let broke_base = format!("http://{broke}/api/v1");
    let journals = runtime.block_on(Journals::new());
    let mut paths = Vec::new();
    for engine in journals.engines() {
        let attach = |builder| runtime.block_on(journals.attach(engine, builder));
        for (i, guards) in GUARDS.iter().enumerate() {
            let journaled = engine != Engine::None;
            if !journaled && (guards.budget || guards.key) {
                continue; // they need a journal
            }
            for concurrent in [false, true] {
                let scope = format!("{}-{i}-{concurrent}", engine.name());
                let client = guarded(attach(builder(&base, &scope)), *guards)
                    .build()
                    .expect("a client");
                paths.push(Path {
                    engine,
                    what: What::Calls {
                        guards: i,
                        concurrent,
                    },
                    client,
                    times: Vec::new(),
                });
            }
        }
        // An open breaker, learnt from a stream, cached for an hour.
        let client = attach(builder(&broke_base, "refuse-breaker"))
            .credits_cooldown(Duration::from_secs(3_600))
            .breaker_check_interval(Duration::from_secs(3_600))
            .build()
            .expect("a client");
        let tripped = runtime.block_on(async {
            client
                .generate("Build a task management app")
                .await
                .expect("the call is sent")
                .finish()
                .await
        });
        assert!(matches!(tripped, Err(Error::CreditsExhausted { .. })));
        paths.push(Path {
            engine,
            what: What::BreakerOpen,
            client,
            times: Vec::new(),
        });
        if engine != Engine::None {
            let client = attach(builder(&base, "refuse-budget"))
                .budget(Budget::per_day(1))
                .build()
                .expect("a client");
            runtime.block_on(call(&client, false));
            paths.push(Path {
                engine,
                what: What::OverBudget,
                client,
                times: Vec::new(),
            });
        }
    }
    // Warm up: every path once.
    for path in &paths {
        runtime.block_on(run(path));
    }
    let mut order: Vec<usize> = (0..paths.len()).collect();
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    for _ in 0..rounds {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            let times = runtime.block_on(run(&paths[i]));
            paths[i].times.extend(times);
        }
    }
    for path in &mut paths {
        path.times.sort();
    }
    report(&paths, rounds);
    drop(paths);
    runtime.block_on(journals.cleanup());
}

fn report(paths: &[Path], rounds: usize) {
    println!(
        "{rounds} rounds; per call (generate + read to stream_end); one caller: {SINGLE} calls a round, \
         {CALLERS} callers: {PER_CALLER} calls each a round"
    );
    println!(
        "{:<9} {:<17} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "engine", "guards", "1: p50 us", "p99 us", "+p50 us", "16: p50", "p99", "+p50"
    );
    let find = |engine: Engine, what: What| {
        paths
            .iter()
            .find(|p| p.engine == engine && p.what == what)
            .map(|p| &p.times)
    };
    let mut engines: Vec<Engine> = paths.iter().map(|p| p.engine).collect();
    engines.dedup();
    for engine in engines {
        let base = |concurrent| {
            let times = find(
                engine,
                What::Calls {
                    guards: 0,
                    concurrent,
                },
            )
            .expect("no guard is always measured");
            percentile(times, 0.5)
        };
        for (i, guards) in GUARDS.iter().enumerate() {
            let mut line = format!("{:<9} {:<17}", engine.name(), guards.name);
            for concurrent in [false, true] {
                let Some(times) = find(
                    engine,
                    What::Calls {
                        guards: i,
                        concurrent,
                    },
                ) else {
                    continue;
                };
                let p50 = percentile(times, 0.5);
                line += &format!(
                    " {:>9.1} {:>9.1} {:>+9.1}",
                    micros(p50),
                    micros(percentile(times, 0.99)),
                    micros(p50) - micros(base(concurrent)),
                );
                if !concurrent {
                    line += " |";
                }
            }
            if line.len() > 28 {
                println!("{line}");
            }
        }
        for (what, name) in [
            (What::BreakerOpen, "refused: breaker"),
            (What::OverBudget, "refused: budget"),
        ] {
            if let Some(times) = find(engine, what) {
                println!(
                    "{:<9} {:<17} {:>9.1} {:>9.1}",
                    engine.name(),
                    name,
                    micros(percentile(times, 0.5)),
                    micros(percentile(times, 0.99)),
                );
            }
        }
    }
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
