//! Suite B: the spend guards of one scope, shared by 4 processes over one journal,
//! checked at the server: the cap at every instant (with kills), slots of killed
//! hosts taken again within their lease, no POST after the credits breaker opened,
//! a budget, and a call made once per idempotency key.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use laracopilot_mock::{Fault, MockServer, MockServerBuilder, ProjectStatus, StreamRecord};
use serde_json::Value;

use super::parent::{eventually, ChildProcess, Engine};
use super::*;

const PROCESSES: usize = 4;
const TASKS: usize = 16;
/// The fleet's concurrency cap.
const CAP: usize = 4;
/// Rounds of the cap phase, one process killed in each.
const ROUNDS: usize = 3;
/// Kills of slot holders in the reuse phase.
const REUSES: usize = 3;
/// The breaker's check interval (the SDK's default, set explicitly by every child).
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The budget of the budget phase.
const PER_HOUR: u64 = 12;
/// Callers of one idempotency key in each process.
const KEY_CALLERS: usize = 4;

fn server(pacing: Duration) -> MockServer {
    builder(pacing).start().unwrap()
}

fn builder(pacing: Duration) -> MockServerBuilder {
    MockServer::builder()
        .token(TOKEN)
        .events_per_generation(EVENTS)
        .pacing(pacing)
}

fn spawn(engine: &Engine, server: &MockServer, name: String, fleet: Fleet) -> ChildProcess {
    ChildProcess::spawn(&Orders {
        name: format!("{} {name}", engine.name),
        store: engine.store.clone(),
        instance: None,
        base_url: server.base_url().to_owned(),
        role: Role::Fleet(fleet),
    })
}

/// The results a fleet process reported, one per call.
fn results(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l.get("result").is_some()).collect()
}

pub(super) fn run(engine: &Engine, seed: u64) {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let cap = cap_with_kills(engine, &mut rng);
    let reuse = slot_reuse(engine);
    let breaker = breaker(engine);
    let budget = budget(engine);
    let one_key = key(engine, false);
    let key_killed = key(engine, true);
    let foreign = engine.foreign_untouched();
    say(&format!(
        "fleet suite, {}: {cap}; {reuse}; {breaker}; {budget}; {one_key}; {key_killed}; \
         untouched: {foreign}; {:.1?}",
        engine.name,
        started.elapsed()
    ));
}

/// The most streams open at once, swept over the server's log of opens and closes
/// (an open counted before a close at the same instant).
fn most_at_once(streams: &[StreamRecord]) -> usize {
    let mut changes: Vec<(Instant, i8)> = Vec::new();
    for stream in streams {
        changes.push((stream.opened_at, 0));
        if let Some(closed) = stream.closed_at {
            changes.push((closed, 1));
        }
    }
    changes.sort();
    let (mut open, mut most) = (0_usize, 0_usize);
    for (_, change) in changes {
        if change == 0 {
            open += 1;
            most = most.max(open);
        } else {
            open -= 1;
        }
    }
    most
}

/// 3 rounds of 4 processes x 16 tasks under a cap of 4, one process killed at a
/// seeded moment in each round: never more than 4 streams of the scope at once.
fn cap_with_kills(engine: &Engine, rng: &mut Rng) -> String {
    let server = server(Duration::from_millis(5));
    let (mut calls, mut kills, mut holding) = (0, 0, 0);
    for round in 0..ROUNDS {
        let mut children: Vec<ChildProcess> = (0..PROCESSES)
            .map(|c| {
                let tasks = (0..TASKS)
                    .map(|t| {
                        vec![format!(
                            "Build a capped app, round {round} process {c} task {t}"
                        )]
                    })
                    .collect();
                let fleet = Fleet {
                    scope: "cap".into(),
                    cap: Some(CAP),
                    tasks,
                    wait_for_go: true,
                    ..Fleet::default()
                };
                spawn(
                    engine,
                    &server,
                    format!("cap round {round} process {c}"),
                    fleet,
                )
            })
            .collect();
        for child in &mut children {
            child.wait_mark("ready", 0);
        }
        for child in &mut children {
            child.tell("go");
        }
        // A moment within the round (which takes over a second: 64 streams of
        // 100 ms, 4 at a time), and a process holding slots then (its slots come
        // back only when its lease expires), or still at work.
        std::thread::sleep(Duration::from_millis(100 + rng.below(600)));
        let mut victim = None;
        let holders: BTreeSet<usize> = server
            .streams()
            .iter()
            .filter(|s| s.closed_at.is_none())
            .map(|s| process_of(&s.prompt))
            .collect();
        let mut candidates: Vec<usize> = holders.iter().copied().collect();
        rng.shuffle(&mut candidates);
        let mut others: Vec<usize> = (0..PROCESSES).filter(|c| !holders.contains(c)).collect();
        rng.shuffle(&mut others);
        candidates.extend(others);
        for c in candidates {
            if children[c].try_kill().is_some() {
                victim = Some(c);
                break;
            }
        }
        assert!(victim.is_some(), "every process had ended before its kill");
        if victim.is_some_and(|c| holders.contains(&c)) {
            holding += 1;
        }
        kills += 1;
        for (c, child) in children.into_iter().enumerate() {
            if Some(c) == victim {
                continue;
            }
            let lines = child.output();
            let results = results(&lines);
            assert_eq!(results.len(), TASKS, "{lines:#?}");
            for result in results {
                assert!(
                    result["result"].as_str().unwrap().starts_with("ok "),
                    "{result}"
                );
                calls += 1;
            }
        }
    }
    let live = server.max_open_streams();
    let swept = most_at_once(&server.streams());
    assert!(
        live <= CAP,
        "{live} streams of the scope were open at once (cap {CAP})"
    );
    assert_eq!(swept, live, "the log and the live count disagree");
    format!(
        "cap {CAP}: {ROUNDS} rounds x {PROCESSES} processes x {TASKS} tasks, {kills} processes \
         killed at seeded moments ({holding} of them holding slots), {} POSTs ({calls} calls \
         of survivors ended well), at most {live} streams open at once at the server",
        server.posts().len()
    )
}

/// Every stream stalls, so the cap's 4 slots stay held until their holders die.
/// The parent kills every holder, and measures at the server how long until the
/// next POST (which can only take a dead host's slot).
fn slot_reuse(engine: &Engine) -> String {
    let server = server(Duration::ZERO);
    let mut next = 0;
    let mut spawn_one = |server: &MockServer| {
        let c = next;
        next += 1;
        let tasks: Vec<Vec<String>> = (0..TASKS)
            .map(|t| vec![format!("Build a stalled app, process {c} task {t}")])
            .collect();
        for task in &tasks {
            server.faults_for_prompt(task[0].as_str(), [Fault::StallBefore(1)]);
        }
        let fleet = Fleet {
            scope: "reuse".into(),
            cap: Some(CAP),
            tasks,
            ..Fleet::default()
        };
        (
            c,
            spawn(engine, server, format!("reuse process {c}"), fleet),
        )
    };
    let mut children: HashMap<usize, ChildProcess> =
        (0..PROCESSES).map(|_| spawn_one(&server)).collect();
    let mut delays = Vec::new();
    for _ in 0..REUSES {
        eventually("the cap's slots are all held", || {
            server.open_streams() == CAP
        });
        let holders: BTreeSet<usize> = server
            .streams()
            .iter()
            .filter(|s| s.closed_at.is_none())
            .map(|s| process_of(&s.prompt))
            .collect();
        assert!(
            holders.iter().all(|c| children.contains_key(c)),
            "the server counts a stream of a dead process as open: {holders:?}"
        );
        let mut first_kill = None;
        for holder in &holders {
            let at = children.get_mut(holder).unwrap().kill();
            first_kill.get_or_insert(at);
            children.remove(holder);
        }
        let killed = first_kill.unwrap();
        for _ in 0..holders.len() {
            let (c, child) = spawn_one(&server);
            children.insert(c, child);
        }
        // Nothing else frees a slot: the next POST took a dead host's.
        let mut taken = None;
        eventually("a dead host's slot is taken again", || {
            taken = server.posts().iter().map(|p| p.at).find(|at| *at > killed);
            taken.is_some()
        });
        let delay = taken.unwrap() - killed;
        assert!(
            delay <= LEASE + REUSE_MARGIN,
            "a dead host's slot came back after {delay:?} (lease {LEASE:?}, margin {REUSE_MARGIN:?})"
        );
        delays.push(delay);
    }
    for (_, mut child) in children {
        child.kill();
    }
    let live = server.max_open_streams();
    assert!(live <= CAP, "{live} streams open at once (cap {CAP})");
    assert_eq!(most_at_once(&server.streams()), live);
    let shown: Vec<String> = delays
        .iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect();
    format!(
        "slot reuse: {REUSES} times every holder of the cap's {CAP} slots killed, the next \
         admission (a POST at the server) {} after the first kill (lease {} s, bound {} s), \
         at most {live} streams open at once",
        shown.join(", "),
        LEASE.as_secs_f64(),
        (LEASE + REUSE_MARGIN).as_secs_f64()
    )
}

/// `process N` in a prompt.
fn process_of(prompt: &str) -> usize {
    let rest = &prompt[prompt.find("process ").unwrap() + "process ".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// 64 tasks generate one after the other, until the server's credits run out:
/// every stream running then ends with `credits_exhausted`, and no POST reaches the
/// server one check interval after the first of them ended.
fn breaker(engine: &Engine) -> String {
    let server = server(Duration::from_millis(3));
    let mut children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|c| {
            let tasks = (0..TASKS)
                .map(|t| {
                    // Far more calls than run before the credits run out.
                    (0..50)
                        .map(|g| format!("Build a credit app, process {c} task {t} call {g}"))
                        .collect()
                })
                .collect();
            let fleet = Fleet {
                scope: "breaker".into(),
                cooldown_ms: Some(60_000),
                tasks,
                wait_for_go: true,
                ..Fleet::default()
            };
            spawn(engine, &server, format!("breaker process {c}"), fleet)
        })
        .collect();
    for child in &mut children {
        child.wait_mark("ready", 0);
    }
    for child in &mut children {
        child.tell("go");
    }
    // Once the fleet is past its first 64 calls.
    eventually("the fleet is generating", || server.posts().len() >= 80);
    server.set_credits(0);
    let mut lines = Vec::new();
    for child in children {
        lines.extend(child.output());
    }
    let results = results(&lines);
    let exhausted: Vec<StreamRecord> = server
        .streams()
        .into_iter()
        .filter(|s| {
            server.project(&s.project_id).unwrap().status == ProjectStatus::CreditsExhausted
        })
        .collect();
    let ended = exhausted
        .iter()
        .map(|s| s.closed_at.expect("an exhausted stream ended"))
        .min()
        .expect("a stream ran out of credits");
    let posts = server.posts();
    let after: Vec<Duration> = posts
        .iter()
        .filter(|p| p.at > ended)
        .map(|p| p.at - ended)
        .collect();
    let gap = after.iter().max().copied().unwrap_or_default();
    assert!(
        gap < CHECK_INTERVAL,
        "a POST reached the server {gap:?} after the credits ran out"
    );
    // Every task ended refused: the streams that ran out saw the event, every
    // later call was refused without a request.
    let ends: Vec<&&Value> = results
        .iter()
        .filter(|r| !r["result"].as_str().unwrap().starts_with("ok "))
        .collect();
    assert_eq!(ends.len(), PROCESSES * TASKS, "{lines:#?}");
    assert!(
        ends.iter()
            .all(|r| r["result"] == "error credits_exhausted"),
        "{ends:#?}"
    );
    let locally = ends.iter().filter(|r| r["locally"] == true).count();
    assert_eq!(
        PROCESSES * TASKS - locally,
        exhausted.len(),
        "each stream that ran out is a task that saw the event"
    );
    // A host that saw nothing of it, started now, is refused by the journal's
    // breaker: every call, without a request.
    let fleet = Fleet {
        scope: "breaker".into(),
        cooldown_ms: Some(60_000),
        tasks: (0..TASKS)
            .map(|t| vec![format!("Build a credit app, late process task {t}")])
            .collect(),
        ..Fleet::default()
    };
    let late_lines = spawn(engine, &server, "breaker late process".into(), fleet).output();
    let late: Vec<&Value> = late_lines
        .iter()
        .filter(|l| l.get("result").is_some())
        .collect();
    assert_eq!(late.len(), TASKS, "{late:#?}");
    assert!(
        late.iter()
            .all(|r| r["result"] == "error credits_exhausted" && r["locally"] == true),
        "{late:#?}"
    );
    assert_eq!(
        server.posts().len(),
        posts.len(),
        "the late host sent nothing"
    );
    format!(
        "breaker: {} POSTs, then the server's credits ran out under {} streams at once; {} \
         POSTs after the first of them ended, the last {:.1} ms after (bound: one check \
         interval, {} s); {locally} calls refused without a request, and all {TASKS} of a \
         host started afterwards",
        posts.len() - after.len(),
        exhausted.len(),
        after.len(),
        gap.as_secs_f64() * 1_000.0,
        CHECK_INTERVAL.as_secs_f64()
    )
}

/// 64 calls at once against a budget of 12 an hour: 12 POSTs.
fn budget(engine: &Engine) -> String {
    // Not across the turn of an hour (the budget's window): wait for the next one
    // when it is less than 20 s away.
    let into_hour = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 3_600;
    if into_hour > 3_580 {
        std::thread::sleep(Duration::from_secs(3_601 - into_hour));
    }
    let hour = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 3_600
    };
    let first_hour = hour();
    let server = server(Duration::from_millis(3));
    let mut children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|c| {
            let tasks = (0..TASKS)
                .map(|t| vec![format!("Build a budgeted app, process {c} task {t}")])
                .collect();
            let fleet = Fleet {
                scope: "budget".into(),
                per_hour: Some(PER_HOUR),
                tasks,
                wait_for_go: true,
                ..Fleet::default()
            };
            spawn(engine, &server, format!("budget process {c}"), fleet)
        })
        .collect();
    for child in &mut children {
        child.wait_mark("ready", 0);
    }
    for child in &mut children {
        child.tell("go");
    }
    let mut lines = Vec::new();
    for child in children {
        lines.extend(child.output());
    }
    assert_eq!(hour(), first_hour, "the phase crossed the turn of the hour");
    let results = results(&lines);
    let ok = results
        .iter()
        .filter(|r| r["result"].as_str().unwrap().starts_with("ok "))
        .count();
    let refused = results
        .iter()
        .filter(|r| r["result"] == "error budget_exhausted")
        .count();
    let posts = server.posts().len();
    assert_eq!(
        (posts, ok, refused),
        (
            PER_HOUR as usize,
            PER_HOUR as usize,
            PROCESSES * TASKS - PER_HOUR as usize
        ),
        "{lines:#?}"
    );
    format!(
        "budget {PER_HOUR}/hour: {} calls at once from {PROCESSES} processes, {posts} POSTs, \
         {refused} refused",
        PROCESSES * TASKS
    )
}

/// 16 callers over 4 processes with one idempotency key: one POST, one project,
/// every other caller a replay. With `kill`, the process whose call was sent dies
/// mid-stream: the others still get its project, without a request.
fn key(engine: &Engine, kill: bool) -> String {
    let server = server(Duration::from_millis(10));
    let prompt = format!(
        "Build the onboarding app, key {}",
        if kill { "killed" } else { "plain" }
    );
    if kill {
        server.faults_for_prompt(prompt.as_str(), [Fault::HoldBefore(5)]);
    }
    let mut children: Vec<ChildProcess> = (0..PROCESSES)
        .map(|c| {
            let fleet = Fleet {
                scope: "key".into(),
                key: Some(format!("onboarding-{kill}")),
                tasks: vec![vec![prompt.clone()]; KEY_CALLERS],
                wait_for_go: true,
                ..Fleet::default()
            };
            spawn(engine, &server, format!("key process {c}"), fleet)
        })
        .collect();
    for child in &mut children {
        child.wait_mark("ready", 0);
    }
    for child in &mut children {
        child.tell("go");
    }
    let mut survivors = PROCESSES;
    if kill {
        eventually("the call was sent", || {
            server.posts_with_prompt(&prompt) == 1
        });
        // The sender: the process that started a stream that is no replay.
        let mut sender = None;
        eventually("the sender says so", || {
            for (c, child) in children.iter_mut().enumerate() {
                child.drain();
                if child
                    .seen
                    .iter()
                    .any(|l| l["started"] == true && l["replay"] == false)
                {
                    sender = Some(c);
                }
            }
            sender.is_some()
        });
        // Mid-stream: once its project is recorded (before that, the others
        // could only answer OutcomeUnknown: nothing would name the project).
        eventually("the sender recorded its project", || {
            engine
                .entries()
                .iter()
                .any(|row| row.prompt == prompt && row.project_id.is_some())
        });
        let mut dead = children.remove(sender.unwrap());
        dead.kill();
        survivors -= 1;
    }
    let mut lines = Vec::new();
    for child in children {
        lines.extend(child.output());
    }
    let results = results(&lines);
    assert_eq!(results.len(), survivors * KEY_CALLERS, "{lines:#?}");
    let projects: BTreeSet<&str> = results
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        projects.len(),
        1,
        "one project for every caller: {results:#?}"
    );
    let project = *projects.iter().next().unwrap();
    assert!(project.starts_with("ok "), "{results:#?}");
    let replays = results.iter().filter(|r| r["replay"] == true).count();
    let expected = if kill {
        results.len()
    } else {
        results.len() - 1
    };
    assert_eq!(replays, expected, "{results:#?}");
    let posts = server.posts_with_prompt(&prompt);
    assert_eq!(
        (posts, server.posts().len()),
        (1, 1),
        "one POST for the key"
    );
    if kill {
        format!(
            "key with its sender killed mid-stream: {} surviving callers, {posts} POST, one \
             project ({}), {replays} replays",
            results.len(),
            &project[3..]
        )
    } else {
        format!(
            "key: {} callers over {PROCESSES} processes, {posts} POST, one project ({}), \
             {replays} replays",
            results.len(),
            &project[3..]
        )
    }
}
