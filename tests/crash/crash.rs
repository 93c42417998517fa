//! Suite A: 4 processes x 16 generations killed at chosen points, 4 x 16 killed at
//! random moments, then resumed by 3 processes at once; every generation accounted
//! for, from the server's POSTs and the journal's rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use laracopilot_mock::{Fault, MockServer, ProjectStatus, Reply};
use serde_json::{json, Value};

use super::parent::{eventually, ChildProcess, Engine, Row};
use super::*;

/// Processes per round, and generations per process.
const PROCESSES: usize = 4;
const GENERATIONS: usize = 16;
/// Processes resuming at once.
const RESUMERS: usize = 3;
/// The scope of every call of this suite (the client's default).
const SCOPE: &str = "default";

/// One generation of the suite: its prompt, and where its process was killed
/// (`None`: at a random moment).
struct Generation {
    prompt: String,
    step: Option<Step>,
}

/// What the suite adds up to.
#[derive(Debug, Default)]
struct Tally {
    kills_at_points: usize,
    kills_at_random: usize,
    /// Kill point -> generations held there when their process was killed.
    points: BTreeMap<&'static str, usize>,
    finished: usize,
    resumed_succeeded: usize,
    resumed_failed: usize,
    unknown_sent: usize,
    unknown_unsent: usize,
    never_admitted: usize,
    entry_taken: usize,
    settled_by_resumers: usize,
}

pub(super) fn run(engine: &Engine, seed: u64) {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let server = MockServer::builder()
        .token(TOKEN)
        .events_per_generation(EVENTS)
        .pacing(Duration::from_millis(2))
        .start()
        .unwrap();
    let mut tally = Tally::default();
    let mut generations = chosen_points(engine, &server, &mut tally);
    generations.extend(random_moments(engine, &server, &mut rng, &mut tally));
    let reports = resume_everything(engine, &server, &mut rng);
    account(engine, &server, &generations, &reports, &mut tally);
    let frozen = frozen_resumer(engine, &server, &mut rng);

    let foreign = engine.foreign_untouched();
    let t = &tally;
    say(&format!(
        "crash suite, {}: {} generations, {} kills ({} at chosen points, each process \
         holding its generations at {} kill points {:?}; {} at random moments): {} finished, \
         {} resumed to success, {} resumed to failure, {} outcome unknown ({} sent, {} never \
         sent), {} never admitted (never sent); {RESUMERS} resumers at once: {} settlements, \
         {} EntryTaken; 0 POSTs sent twice, 0 by a resumer, 0 POSTs without an entry; \
         {frozen}; untouched: {foreign}; {:.1?}",
        engine.name,
        generations.len(),
        t.kills_at_points + t.kills_at_random,
        t.kills_at_points,
        t.points.len(),
        t.points,
        t.kills_at_random,
        t.finished,
        t.resumed_succeeded,
        t.resumed_failed,
        t.unknown_sent + t.unknown_unsent,
        t.unknown_sent,
        t.unknown_unsent,
        t.never_admitted,
        t.settled_by_resumers,
        t.entry_taken,
        started.elapsed(),
    ));
}

/// The plan of process `c`: every kill point, twice for most; the last one a hold in
/// the journal (after the terminal event for even processes, inside the admission
/// for odd ones).
fn plan_of(c: usize) -> Vec<Step> {
    use Step::*;
    vec![
        Finish,
        Finish,
        FollowUp { base: 0 },
        BeforePost,
        BeforeFirstByte,
        AfterAcceptance,
        AfterProject,
        MidStream,
        FollowUpMidStream { base: 1 },
        Finish,
        BeforePost,
        AfterProject,
        MidStream,
        AfterAcceptance,
        BeforeFirstByte,
        if c.is_multiple_of(2) {
            BeforeSettlement
        } else {
            InAdmission
        },
    ]
}

fn prompt_of(round: usize, c: usize, i: usize, step: Option<Step>) -> String {
    match step {
        Some(Step::FollowUp { .. } | Step::FollowUpMidStream { .. }) => {
            format!("Add a dark mode, round {round} process {c} generation {i}")
        }
        _ => format!("Build a crash test app, round {round} process {c} generation {i}"),
    }
}

/// The server's faults that hold a step where it is.
fn faults_of(step: Step) -> Vec<Fault> {
    match step {
        Step::BeforeFirstByte => vec![Fault::DelayHeaders(Duration::from_secs(120))],
        Step::AfterAcceptance => vec![Fault::StallBefore(0)],
        Step::AfterProject => vec![Fault::StallBefore(1)],
        Step::MidStream => vec![Fault::DelayBefore(MID, Duration::from_secs(120))],
        Step::FollowUpMidStream { .. } => {
            vec![Fault::DelayBefore(FOLLOW_UP_MID, Duration::from_secs(120))]
        }
        Step::BeforeSettlement => vec![Fault::HoldBefore(EVENTS - 1)],
        _ => Vec::new(),
    }
}

/// Round 1: each process holds its 16 generations at their kill points, then dies.
fn chosen_points(engine: &Engine, server: &MockServer, tally: &mut Tally) -> Vec<Generation> {
    let mut generations = Vec::new();
    let mut children = Vec::new();
    for c in 0..PROCESSES {
        let steps: Vec<Planned> = plan_of(c)
            .into_iter()
            .enumerate()
            .map(|(i, step)| {
                let prompt = prompt_of(1, c, i, Some(step));
                let faults = faults_of(step);
                if !faults.is_empty() {
                    server.faults_for_prompt(prompt.as_str(), faults);
                }
                generations.push(Generation {
                    prompt: prompt.clone(),
                    step: Some(step),
                });
                Planned { step, prompt }
            })
            .collect();
        children.push(ChildProcess::spawn(&Orders {
            name: format!("{} crash process {c}", engine.name),
            store: engine.store.clone(),
            instance: None,
            base_url: server.base_url().to_owned(),
            role: Role::Plan { steps },
        }));
    }
    for (c, child) in children.iter_mut().enumerate() {
        let mut unresolved = 0;
        for (i, step) in plan_of(c).into_iter().enumerate() {
            let prompt = prompt_of(1, c, i, Some(step));
            match step {
                Step::Finish | Step::FollowUp { .. } => {
                    let done = child.wait_for(&format!("done {i}"), |v| {
                        v["mark"] == "done" && v["i"].as_u64() == Some(i as u64)
                    });
                    assert!(
                        done["result"].as_str().unwrap().starts_with("ok "),
                        "{done}"
                    );
                }
                Step::BeforePost => {
                    child.wait_mark("unresolved", unresolved);
                    unresolved += 1;
                }
                Step::BeforeFirstByte => {
                    child.wait_mark("sending", i);
                    eventually(
                        &format!("the POST of {prompt:?} reached the server"),
                        || server.posts_with_prompt(&prompt) == 1,
                    );
                }
                Step::InAdmission => {}
                _ => child.wait_mark("held", i),
            }
            if !matches!(step, Step::Finish | Step::FollowUp { .. }) {
                let point = match (step, engine.waiting_for_locks()) {
                    // SQLite's transaction begins with its write lock: the process
                    // dies waiting for it, before its transaction.
                    (Step::InAdmission, None) => "waiting for the admission's write lock",
                    _ => step.name(),
                };
                *tally.points.entry(point).or_default() += 1;
            }
        }
    }
    // Every generation is where its step says: the last one of each process goes
    // into the journal's hold, and the process dies there.
    for (c, mut child) in children.into_iter().enumerate() {
        let last = GENERATIONS - 1;
        let prompt = prompt_of(1, c, last, Some(plan_of(c)[last]));
        match plan_of(c)[last] {
            Step::BeforeSettlement => {
                let row = row_of(engine, &prompt).expect("an entry");
                let project = row.project_id.clone().expect("its project is recorded");
                let hold = engine.hold_entry(&row.local_id);
                server.release_held(&project);
                eventually("the server wrote the stream's end", || {
                    let stream = server.streams().into_iter().find(|s| s.prompt == prompt);
                    stream.is_some_and(|s| s.closed_at.is_some() && s.complete)
                });
                match engine.waiting_for_locks() {
                    // The settlement's transaction waits for the row.
                    Some(_) => eventually("the settlement waits for its row", || {
                        engine.waiting_for_locks() >= Some(1)
                    }),
                    // SQLite's busy wait cannot be seen: the end was written, the
                    // settlement cannot be; give the client a moment to read it.
                    None => std::thread::sleep(Duration::from_millis(100)),
                }
                child.kill();
                let row = row_of(engine, &prompt).unwrap();
                assert_eq!(row.outcome, None, "settled despite the hold: {row:?}");
                engine.release(hold);
            }
            Step::InAdmission => {
                let hold = engine.hold_scope(SCOPE);
                child.tell(&format!("admit {last}"));
                child.wait_mark("admitting", last);
                match engine.waiting_for_locks() {
                    // The admission's transaction is open and waits for the scope.
                    Some(_) => eventually("the admission waits inside its transaction", || {
                        engine.waiting_for_locks() >= Some(1)
                    }),
                    None => std::thread::sleep(Duration::from_millis(100)),
                }
                child.kill();
                engine.release(hold);
            }
            other => unreachable!("no journal hold for {other:?}"),
        }
        let unexpected: Vec<&Value> = child
            .seen
            .iter()
            .filter(|v| v["mark"] == "unexpected")
            .collect();
        assert!(unexpected.is_empty(), "{}: {unexpected:?}", child.name);
        tally.kills_at_points += 1;
    }
    generations
}

/// Round 2: each process starts 16 generations 15 ms apart and dies at a moment
/// drawn from the seed.
fn random_moments(
    engine: &Engine,
    server: &MockServer,
    rng: &mut Rng,
    tally: &mut Tally,
) -> Vec<Generation> {
    let mut generations = Vec::new();
    let mut children = Vec::new();
    for c in 0..PROCESSES {
        let prompts: Vec<String> = (0..GENERATIONS).map(|i| prompt_of(2, c, i, None)).collect();
        for prompt in &prompts {
            generations.push(Generation {
                prompt: prompt.clone(),
                step: None,
            });
        }
        children.push(ChildProcess::spawn(&Orders {
            name: format!("{} chaos process {c}", engine.name),
            store: engine.store.clone(),
            instance: None,
            base_url: server.base_url().to_owned(),
            role: Role::Chaos {
                prompts,
                stagger_ms: 15,
            },
        }));
    }
    let mut schedule: Vec<(Instant, usize)> = children
        .iter_mut()
        .enumerate()
        .map(|(c, child)| {
            child.wait_mark("start", 0);
            // Within the ~300 ms the process takes to start and run its 16.
            (Instant::now() + Duration::from_millis(rng.below(350)), c)
        })
        .collect();
    schedule.sort();
    for (at, c) in schedule {
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        children[c].kill();
        tally.kills_at_random += 1;
    }
    generations
}

/// What the resumers reported, by entry: each result.
type Reports = HashMap<String, Vec<String>>;

/// Once every dead owner's lease expired, 3 processes resume everything at once.
fn resume_everything(engine: &Engine, server: &MockServer, rng: &mut Rng) -> Reports {
    let client = engine.client(server.base_url());
    eventually("every unsettled entry is unfinished", || {
        let unsettled: HashSet<String> = engine
            .entries()
            .into_iter()
            .filter(|row| row.outcome.is_none())
            .map(|row| row.local_id)
            .collect();
        let unfinished: HashSet<String> = engine
            .runtime
            .block_on(client.unfinished())
            .unwrap()
            .into_iter()
            .map(|entry| entry.local_id.to_string())
            .collect();
        unfinished == unsettled
    });
    let posts = server.posts().len();
    let mut resumers: Vec<ChildProcess> = (0..RESUMERS)
        .map(|r| {
            ChildProcess::spawn(&Orders {
                name: format!("{} resumer {r}", engine.name),
                store: engine.store.clone(),
                instance: None,
                base_url: server.base_url().to_owned(),
                role: Role::Resume { seed: rng.next() },
            })
        })
        .collect();
    for resumer in &mut resumers {
        resumer.wait_mark("ready", 0);
    }
    for resumer in &mut resumers {
        resumer.tell("go");
    }
    let mut reports = Reports::new();
    for resumer in resumers {
        for line in resumer.output() {
            if let Some(id) = line["resumed"].as_str() {
                let result = line["result"].as_str().unwrap().to_owned();
                reports.entry(id.to_owned()).or_default().push(result);
            }
        }
    }
    assert_eq!(server.posts().len(), posts, "a resumer sent a POST");
    assert!(
        engine
            .runtime
            .block_on(client.unfinished())
            .unwrap()
            .is_empty(),
        "something is left unfinished"
    );
    reports
}

fn row_of(engine: &Engine, prompt: &str) -> Option<Row> {
    let rows: Vec<Row> = engine
        .entries()
        .into_iter()
        .filter(|r| r.prompt == prompt)
        .collect();
    assert!(rows.len() <= 1, "{prompt:?} was admitted twice: {rows:#?}");
    rows.into_iter().next()
}

/// Every generation, accounted for.
fn account(
    engine: &Engine,
    server: &MockServer,
    generations: &[Generation],
    reports: &Reports,
    tally: &mut Tally,
) {
    let rows = engine.entries();
    let mut by_prompt: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in &rows {
        by_prompt.entry(row.prompt.as_str()).or_default().push(row);
    }
    // No record lost: every POST the server saw has its entry.
    for post in server.posts() {
        let prompt = post.prompt.unwrap();
        assert!(
            by_prompt.contains_key(prompt.as_str()),
            "a POST without an entry: {prompt:?}"
        );
    }
    for (id, results) in reports {
        for result in results {
            let known = result.starts_with("ok ")
                || [
                    "error generation_failed",
                    "error outcome_unknown",
                    "error entry_taken",
                ]
                .contains(&result.as_str());
            assert!(known, "{id}: resumed as {result}");
        }
    }
    for generation in generations {
        let prompt = generation.prompt.as_str();
        let posts = server.posts_with_prompt(prompt);
        assert!(posts <= 1, "{prompt:?} was sent {posts} times");
        let row = match by_prompt.get(prompt).map(Vec::as_slice) {
            None | Some([]) => {
                assert_eq!(posts, 0, "{prompt:?} was sent without an entry");
                assert!(
                    matches!(generation.step, None | Some(Step::InAdmission)),
                    "{prompt:?}: {:?} must have an entry",
                    generation.step
                );
                tally.never_admitted += 1;
                continue;
            }
            Some([row]) => *row,
            Some(more) => panic!("{prompt:?} was admitted {} times", more.len()),
        };
        let results = reports.get(&row.local_id).cloned().unwrap_or_default();
        let (taken, settling): (Vec<String>, Vec<String>) =
            results.into_iter().partition(|r| r == "error entry_taken");
        tally.entry_taken += taken.len();
        assert!(
            settling.len() <= 1,
            "{prompt:?} settled {} times: {settling:?}",
            settling.len()
        );
        let outcome = row
            .outcome
            .as_deref()
            .unwrap_or_else(|| panic!("{prompt:?} unsettled: {row:?}"));
        let Some(result) = settling.first() else {
            // Settled by its own process before the kill.
            assert_eq!(outcome, "succeeded", "{prompt:?}: {row:?}");
            assert_eq!(posts, 1, "{prompt:?}");
            assert!(
                matches!(
                    generation.step,
                    None | Some(Step::Finish | Step::FollowUp { .. })
                ),
                "{prompt:?}: {:?} ended before its kill",
                generation.step
            );
            tally.finished += 1;
            continue;
        };
        tally.settled_by_resumers += 1;
        let status = row
            .project_id
            .as_deref()
            .and_then(|id| server.project(id))
            .map(|project| project.status);
        match result.as_str() {
            ok if ok.starts_with("ok ") => {
                assert_eq!(outcome, "succeeded", "{prompt:?}");
                assert_eq!(status, Some(ProjectStatus::Ready), "{prompt:?}");
                tally.resumed_succeeded += 1;
            }
            "error generation_failed" => {
                assert_eq!(outcome, "failed", "{prompt:?}: {row:?}");
                assert_eq!(
                    row.error.as_deref(),
                    Some("generation_failed"),
                    "{prompt:?}"
                );
                assert_eq!(status, Some(ProjectStatus::Failed), "{prompt:?}");
                tally.resumed_failed += 1;
            }
            "error outcome_unknown" => {
                assert_eq!(outcome, "unknown", "{prompt:?}");
                if posts == 0 {
                    tally.unknown_unsent += 1;
                } else {
                    tally.unknown_sent += 1;
                }
            }
            other => panic!("{prompt:?}: resumed as {other}"),
        }
        // Where each kill point must end.
        // (how it was resumed, POSTs, accepted, project recorded)
        let ends_as = |want: (&str, usize, bool, bool)| {
            let how = if result.starts_with("ok ") {
                "ok"
            } else {
                &result[6..]
            };
            let seen = (how, posts, row.accepted, row.project_id.is_some());
            assert_eq!(seen, want, "{prompt:?} ({:?}): {row:?}", generation.step);
        };
        match generation.step {
            Some(Step::BeforePost) => ends_as(("outcome_unknown", 0, false, false)),
            Some(Step::BeforeFirstByte) => ends_as(("outcome_unknown", 1, false, false)),
            Some(Step::AfterAcceptance) => ends_as(("outcome_unknown", 1, true, false)),
            Some(Step::AfterProject) => ends_as(("generation_failed", 1, true, true)),
            Some(Step::MidStream | Step::FollowUpMidStream { .. } | Step::BeforeSettlement) => {
                ends_as(("ok", 1, true, true))
            }
            Some(step @ (Step::Finish | Step::FollowUp { .. } | Step::InAdmission)) => {
                panic!("{prompt:?}: {step:?} was left for resuming")
            }
            None => {}
        }
    }
    let unsettled: Vec<&Row> = rows.iter().filter(|r| r.outcome.is_none()).collect();
    assert!(unsettled.is_empty(), "{unsettled:#?}");
    assert_eq!(
        tally.finished + tally.settled_by_resumers,
        rows.len(),
        "one settlement per entry"
    );
}

/// A resumer frozen (SIGSTOP) while it holds its claim, until its lease expires:
/// another resumer settles the entry; the frozen one, woken (SIGCONT), goes on
/// polling, and its settlement is fenced out (`EntryTaken`).
fn frozen_resumer(engine: &Engine, server: &MockServer, rng: &mut Rng) -> String {
    let prompt = "Build a crash test app, for the frozen resumer";
    server.faults_for_prompt(prompt, faults_of(Step::MidStream));
    let orders = |name: &str, instance: Option<&str>, role: Role| Orders {
        name: format!("{} {name}", engine.name),
        store: engine.store.clone(),
        instance: instance.map(str::to_owned),
        base_url: server.base_url().to_owned(),
        role,
    };
    let steps = vec![Planned {
        step: Step::MidStream,
        prompt: prompt.to_owned(),
    }];
    let mut child = ChildProcess::spawn(&orders("crash process", None, Role::Plan { steps }));
    child.wait_mark("held", 0);
    child.kill();
    let row = row_of(engine, prompt).unwrap();
    let project = row.project_id.clone().unwrap();
    let client = engine.client(server.base_url());
    let unfinished = || {
        let listed = engine.runtime.block_on(client.unfinished()).unwrap();
        listed.iter().any(|e| e.local_id.as_str() == row.local_id)
    };
    eventually("its process's lease expired", unfinished);
    let posts = server.posts().len();

    // Its project answers "generating" to the next polls: the first resumer keeps
    // its claim while it polls.
    let generating = json!({
        "status": true,
        "project_id": project,
        "app_url": format!("https://{project}.laracopilot.com"),
        "project_status": "generating",
        "name": "Frozen",
    });
    let canned = 16;
    server.reply_next(canned, Reply::status(200, generating.to_string()));
    let name = "frozen-resumer";
    let role = Role::Resume { seed: rng.next() };
    let mut frozen = ChildProcess::spawn(&orders("frozen resumer", Some(name), role));
    frozen.wait_mark("ready", 0);
    frozen.tell("go");
    eventually("the first resumer claimed the entry", || {
        row_of(engine, prompt).unwrap().owner == name
    });
    frozen.signal("STOP");
    // The polls answered "generating" that it did not use: the parent's own.
    for _ in 0..=canned {
        let polled = engine.runtime.block_on(client.project(&project)).unwrap();
        if polled.project_status.as_deref() == Some("ready") {
            break;
        }
    }
    eventually("the frozen resumer's lease expired", unfinished);
    let role = Role::Resume { seed: rng.next() };
    let mut other = ChildProcess::spawn(&orders("resumer", None, role));
    other.wait_mark("ready", 0);
    other.tell("go");
    let result_of = |lines: Vec<Value>| {
        let results: Vec<String> = lines
            .iter()
            .filter(|l| l["resumed"] == row.local_id.as_str())
            .map(|l| l["result"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(results.len(), 1, "{lines:#?}");
        results.into_iter().next().unwrap()
    };
    let settled = result_of(other.output());
    assert!(settled.starts_with("ok "), "the other resumer: {settled}");
    frozen.signal("CONT");
    let woken = result_of(frozen.output());
    assert_eq!(woken, "error entry_taken", "the frozen resumer, woken");
    let row = row_of(engine, prompt).unwrap();
    assert_eq!(row.outcome.as_deref(), Some("succeeded"), "{row:?}");
    assert_ne!(row.owner, name, "{row:?}");
    assert_eq!(server.posts().len(), posts, "a resumer sent a POST");
    "a resumer frozen (SIGSTOP) with its claim past its lease: another settled the entry, \
     the frozen one, woken, was fenced out (EntryTaken)"
        .to_owned()
}
