//! The child processes: what each role does, in a process the parent kills (or that
//! ends on its own: resumers and fleet workers whose tasks end). Each child reports
//! on stdout, one JSON object a line: marks (`{"mark": "held", "i": 3}`) the parent
//! waits for, and results.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use laracopilot::journal::Journal;
use laracopilot::reqwest;
use laracopilot::{Budget, Client, Error, ProjectId, Token, WaitOptions};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use super::*;

/// The child's entry point: a no-op in the normal test run.
#[test]
fn child() {
    let Ok(orders) = std::env::var(CHILD) else {
        return;
    };
    let orders: Orders = serde_json::from_str(&orders).unwrap();
    // Ends the line the test harness began ("test child::child ... "): the parent
    // reads whole lines.
    println!();
    // Never outlive the parent: its end closes our stdin. And never run for long.
    let commands = listen_to_the_parent();
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(150));
        std::process::exit(71);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let journal = orders.store.open(orders.instance.as_deref()).await;
        match orders.role.clone() {
            Role::Plan { steps } => plan(&orders, journal, steps, commands).await,
            Role::Chaos {
                prompts,
                stagger_ms,
            } => chaos(&orders, journal, prompts, stagger_ms).await,
            Role::Resume { seed } => resume(&orders, journal, seed, commands).await,
            Role::Fleet(fleet) => run_fleet(&orders, journal, fleet, commands).await,
        }
    });
    // Done: out at once, without the harness's summary.
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// Writes one JSON line to stdout, at once.
fn report(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn mark(mark: &str, i: usize) {
    report(json!({ "mark": mark, "i": i }));
}

/// The parent's orders on stdin, line by line; the process ends when stdin closes
/// (the parent is gone).
fn listen_to_the_parent() -> mpsc::UnboundedReceiver<String> {
    let (send, commands) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
        std::process::exit(70);
    });
    commands
}

/// Waits for the order `want` on stdin.
async fn order(commands: &mut mpsc::UnboundedReceiver<String>, want: &str) {
    while let Some(line) = commands.recv().await {
        if line == want {
            return;
        }
    }
    std::future::pending::<()>().await;
}

fn client(orders: &Orders, journal: &Arc<dyn Journal>) -> laracopilot::ClientBuilder {
    Client::builder()
        .base_url(orders.base_url.as_str())
        .token(Token::new(TOKEN).unwrap())
        .journal(Arc::clone(journal))
        // Streams the suites hold stay silent as long as the test needs.
        .idle_timeout(None)
}

/// `ok <project id>` or `error <kind>`.
fn result_of(result: &laracopilot::Result<laracopilot::Outcome>) -> String {
    match result {
        Ok(outcome) => format!(
            "ok {}",
            outcome.project_id().map(ProjectId::as_str).unwrap_or("-")
        ),
        Err(error) => format!("error {}", error.kind()),
    }
}

/// Runs each generation of the plan at once, holding each where its step says,
/// then waits to be killed.
async fn plan(
    orders: &Orders,
    journal: Arc<dyn Journal>,
    steps: Vec<Planned>,
    mut commands: mpsc::UnboundedReceiver<String>,
) {
    let client = client(orders, &journal).build().unwrap();
    // A client whose requests never leave: the server's name never resolves.
    let port = orders.base_url.rsplit(':').next().unwrap();
    let port: String = port.chars().take_while(char::is_ascii_digit).collect();
    let unresolved = client_that_never_resolves(orders, &journal, &port);
    let (projects, known) = watch::channel(HashMap::<usize, ProjectId>::new());
    let projects = Arc::new(projects);
    let mut admit_last = None;
    for (i, planned) in steps.into_iter().enumerate() {
        let prompt = planned.prompt;
        let (client, projects, mut known) = (client.clone(), Arc::clone(&projects), known.clone());
        let project_of = move |base: usize| async move {
            let known = known
                .wait_for(|projects| projects.contains_key(&base))
                .await
                .unwrap();
            known[&base].clone()
        };
        match planned.step {
            Step::Finish | Step::FollowUp { .. } => {
                tokio::spawn(async move {
                    let result = match planned.step {
                        Step::FollowUp { base } => {
                            let project = project_of(base).await;
                            async { client.follow_up(project, prompt).await?.finish().await }.await
                        }
                        _ => async { client.generate(prompt).await?.finish().await }.await,
                    };
                    if let Ok(outcome) = &result {
                        let id = outcome.project_id().unwrap().clone();
                        projects.send_modify(|p| {
                            p.insert(i, id);
                        });
                    }
                    report(json!({ "mark": "done", "i": i, "result": result_of(&result) }));
                });
            }
            Step::BeforePost => {
                let unresolved = unresolved.clone();
                tokio::spawn(async move {
                    // Its resolver marks `unresolved` when asked: after the
                    // admission, before anything is sent.
                    let _ = unresolved.generate(prompt).await;
                    mark("unexpected", i);
                });
            }
            Step::BeforeFirstByte => {
                tokio::spawn(async move {
                    mark("sending", i);
                    let _ = client.generate(prompt).await;
                    mark("unexpected", i);
                });
            }
            Step::AfterAcceptance
            | Step::AfterProject
            | Step::MidStream
            | Step::FollowUpMidStream { .. }
            | Step::BeforeSettlement => {
                tokio::spawn(async move {
                    let (mut generation, events) = match planned.step {
                        Step::FollowUpMidStream { base } => {
                            let project = project_of(base).await;
                            let generation = client.follow_up(project, prompt).await.unwrap();
                            (generation, FOLLOW_UP_MID)
                        }
                        step => {
                            let generation = client.generate(prompt).await.unwrap();
                            let events = match step {
                                Step::AfterAcceptance => 0,
                                Step::AfterProject => 1,
                                Step::MidStream => MID,
                                _ => EVENTS - 1,
                            };
                            (generation, events)
                        }
                    };
                    for _ in 0..events {
                        let event = generation.next().await.unwrap();
                        assert!(event.is_ok(), "{event:?}");
                    }
                    mark("held", i);
                    // Silent from here (a stall, a pause, or a hold before the
                    // end); the end of a held stream is settled only once the
                    // parent lets go of the journal, after this process is gone.
                    let last = generation.next().await;
                    report(json!({ "mark": "unexpected", "i": i, "item": format!("{last:?}") }));
                    std::future::pending::<()>().await
                });
            }
            Step::InAdmission => admit_last = Some((i, prompt)),
        }
    }
    if let Some((i, prompt)) = admit_last {
        // Once told, so that the parent holds the lock first.
        order(&mut commands, &format!("admit {i}")).await;
        mark("admitting", i);
        let _ = client.generate(prompt).await;
        mark("unexpected", i);
    }
    std::future::pending::<()>().await
}

/// How many requests asked for the address that never resolves.
static UNRESOLVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A client of `localhost` whose name never resolves: its requests never leave.
/// Its resolver, asked only once the journal admitted a call, marks `unresolved`
/// with how many were asked before (each request resolves once: a connection of
/// its own).
fn client_that_never_resolves(orders: &Orders, journal: &Arc<dyn Journal>, port: &str) -> Client {
    struct NeverResolves;
    impl reqwest::dns::Resolve for NeverResolves {
        fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let n = UNRESOLVED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            mark("unresolved", n);
            Box::pin(std::future::pending())
        }
    }
    let http = reqwest::Client::builder()
        .dns_resolver(NeverResolves)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    client(orders, journal)
        .base_url(format!("http://localhost:{port}/api/v1"))
        .http_client(http)
        .build()
        .unwrap()
}

/// Starts each generation `stagger_ms` after the one before, each to its end; goes
/// on until killed.
async fn chaos(orders: &Orders, journal: Arc<dyn Journal>, prompts: Vec<String>, stagger_ms: u64) {
    let client = client(orders, &journal).build().unwrap();
    report(json!({ "mark": "start", "i": 0 }));
    for (i, prompt) in prompts.into_iter().enumerate() {
        let client = client.clone();
        tokio::spawn(async move {
            let result = async { client.generate(prompt).await?.finish().await }.await;
            report(json!({ "mark": "done", "i": i, "result": result_of(&result) }));
        });
        tokio::time::sleep(Duration::from_millis(stagger_ms)).await;
    }
    std::future::pending::<()>().await
}

/// Once told `go`: lists the unfinished entries and resumes them all at once, in
/// an order drawn from `seed`; reports each result.
async fn resume(
    orders: &Orders,
    journal: Arc<dyn Journal>,
    seed: u64,
    mut commands: mpsc::UnboundedReceiver<String>,
) {
    let client = client(orders, &journal).build().unwrap();
    report(json!({ "mark": "ready", "i": 0 }));
    order(&mut commands, "go").await;
    let mut entries = client.unfinished().await.unwrap();
    Rng(seed).shuffle(&mut entries);
    let options = WaitOptions::default()
        .interval(Duration::from_millis(50), Duration::from_millis(200))
        .timeout(Duration::from_secs(30));
    let mut running = tokio::task::JoinSet::new();
    for entry in entries {
        let (client, options) = (client.clone(), options.clone());
        running.spawn(async move {
            let result = client.resume(&entry, options).await;
            let result = match result {
                Ok(outcome) => format!("ok {}", outcome.app_url.unwrap_or_default()),
                Err(error) => format!("error {}", error.kind()),
            };
            report(json!({
                "resumed": entry.local_id.as_str(),
                "prompt": entry.prompt,
                "result": result,
            }));
        });
    }
    while let Some(joined) = running.join_next().await {
        joined.unwrap();
    }
    report(json!({ "mark": "resumed", "i": 0 }));
}

/// Runs each task's prompts in order (all tasks at once), stopping a task at its
/// first error; reports each call.
async fn run_fleet(
    orders: &Orders,
    journal: Arc<dyn Journal>,
    fleet: Fleet,
    mut commands: mpsc::UnboundedReceiver<String>,
) {
    let mut builder = client(orders, &journal)
        .scope(fleet.scope.as_str())
        .breaker_check_interval(Duration::from_secs(1));
    if let Some(cap) = fleet.cap {
        builder = builder.max_concurrent_generations(cap);
    }
    if let Some(limit) = fleet.per_hour {
        builder = builder.budget(Budget::per_hour(limit));
    }
    if let Some(ms) = fleet.cooldown_ms {
        builder = builder.credits_cooldown(Duration::from_millis(ms));
    }
    let client = builder.build().unwrap();
    report(json!({ "mark": "ready", "i": 0 }));
    if fleet.wait_for_go {
        order(&mut commands, "go").await;
    }
    let mut running = tokio::task::JoinSet::new();
    for (task, prompts) in fleet.tasks.into_iter().enumerate() {
        let (client, key) = (client.clone(), fleet.key.clone());
        running.spawn(async move {
            for prompt in prompts {
                let mut request = client.generate(prompt.as_str());
                if let Some(key) = &key {
                    request = request.idempotency_key(key.as_str());
                }
                let (result, replay, locally) = match request.await {
                    Ok(generation) => {
                        let replay = generation.is_replay();
                        report(json!({ "task": task, "started": true, "replay": replay }));
                        (generation.finish().await, replay, false)
                    }
                    Err(error) => {
                        let locally =
                            matches!(error, Error::CreditsExhausted { locally: true, .. });
                        (Err(error), false, locally)
                    }
                };
                let failed = result.is_err();
                report(json!({
                    "task": task,
                    "prompt": prompt,
                    "result": result_of(&result),
                    "replay": replay,
                    "locally": locally,
                }));
                if failed {
                    break;
                }
            }
        });
    }
    while let Some(joined) = running.join_next().await {
        joined.unwrap();
    }
    report(json!({ "mark": "done", "i": 0 }));
}
