//! The child process: runs a plan of generations with a `FileJournal`, holds
//! each where the plan says, and waits to be killed; or resumes what a killed
//! child left.

use super::*;

/// The child's entry point: a no-op in the normal test run.
#[test]
pub(super) fn crash_child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    // Ends the line the test harness began ("test child::crash_child ... "): the parent
    // reads whole lines.
    println!();
    // Never outlive a parent that went away.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(70);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = env(BASE);
    let path = PathBuf::from(env(JOURNAL));
    let run: usize = env(RUN).parse().unwrap();
    match mode.as_str() {
        "run" => {
            let plan: Vec<Step> = env(PLAN).split(',').map(Step::parse).collect();
            runtime.block_on(child_run(run, &plan, &base, &path));
        }
        "chaos" => {
            let count: usize = env(PLAN).parse().unwrap();
            runtime.block_on(child_chaos(run, count, &base, &path));
        }
        "resume" => {
            let (torn, resumed) = runtime.block_on(resume_all(&base, &path));
            println!("{}", json!({ "torn": torn }));
            for entry in resumed {
                println!("{}", json!({ "resumed": entry }));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

pub(super) fn mark(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "MARK {text}");
    let _ = out.flush();
}

pub(super) fn child_client(base: &str, journal: impl Journal) -> Client {
    Client::builder()
        .base_url(base)
        .token(Token::new(TOKEN).unwrap())
        .journal(journal)
        .build()
        .unwrap()
}

/// A `FileJournal` that stops for good at the writes of the steps that hold in the
/// journal: after `Started` (before the POST), instead of `Settled`, or in the
/// middle of writing `Settled` (half a line on disk, and every later write stuck, as
/// a process stopped inside its write would be).
pub(super) struct Holding {
    inner: FileJournal,
    path: PathBuf,
    /// Prompt -> (step index, step) for the steps that hold here.
    holds: HashMap<String, (usize, Step)>,
    ids: Mutex<HashMap<LocalId, (usize, Step)>>,
    frozen: AtomicBool,
    held: tokio::sync::mpsc::UnboundedSender<usize>,
}

impl Holding {
    fn hold(&self, index: usize, step: Step) {
        mark(&format!("held {index} {}", step.name()));
        let _ = self.held.send(index);
    }
}

impl Journal for Holding {
    fn write(&self, record: Record) -> JournalFuture<'_, ()> {
        if self.frozen.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        let hold = match &record {
            Record::Started(entry) => {
                let hold = self.holds.get(&entry.prompt).copied();
                if let Some(hold) = hold {
                    self.ids
                        .lock()
                        .unwrap()
                        .insert(entry.local_id.clone(), hold);
                }
                hold.filter(|(_, step)| *step == Step::BeforePost)
            }
            Record::Settled { local_id, .. } => self
                .ids
                .lock()
                .unwrap()
                .get(local_id)
                .copied()
                .filter(|(_, step)| matches!(step, Step::BeforeSettled | Step::TornWrite)),
            _ => None,
        };
        let Some((index, step)) = hold else {
            return self.inner.write(record);
        };
        match step {
            Step::BeforePost => {
                let written = self.inner.write(record);
                Box::pin(async move {
                    written.await?;
                    self.hold(index, step);
                    std::future::pending().await
                })
            }
            Step::TornWrite => {
                self.frozen.store(true, Ordering::SeqCst);
                let Record::Settled {
                    local_id,
                    project_id,
                    ..
                } = &record
                else {
                    unreachable!("only Settled holds here");
                };
                // The start of the line FileJournal would write.
                let line = format!(
                    "{{\"v\":1,\"record\":\"settled\",\"local_id\":\"{local_id}\",\"project_id\":\"{}\",\"outcome\":\"succ",
                    project_id.as_ref().map_or("", |p| p.as_str())
                );
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .unwrap();
                file.write_all(line.as_bytes()).unwrap();
                file.sync_all().unwrap();
                self.hold(index, step);
                Box::pin(std::future::pending())
            }
            _ => {
                self.hold(index, step);
                Box::pin(std::future::pending())
            }
        }
    }

    fn unfinished(&self) -> JournalFuture<'_, Vec<laracopilot::journal::Entry>> {
        self.inner.unfinished()
    }
}

/// Runs `plan` one step after the other (each held step stays where it is), says
/// `ready`, and waits to be killed.
pub(super) async fn child_run(run: usize, plan: &[Step], base: &str, path: &Path) {
    let (held, mut holding) = tokio::sync::mpsc::unbounded_channel();
    let holds = plan
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Step::BeforePost | Step::BeforeSettled | Step::TornWrite))
        .map(|(i, s)| (prompt(run, i, *s), (i, *s)))
        .collect();
    let journal = Holding {
        inner: FileJournal::open(path).unwrap(),
        path: path.to_owned(),
        holds,
        ids: Mutex::default(),
        frozen: AtomicBool::new(false),
        held,
    };
    let client = child_client(base, journal);
    let mut first_project = None;
    for (i, &step) in plan.iter().enumerate() {
        let text = prompt(run, i, step);
        match step {
            Step::Finish | Step::FollowUp => {
                let generation = match step {
                    Step::Finish => client.generate(text).await,
                    _ => {
                        let id = first_project.clone().expect("a finished project first");
                        client.follow_up(id, text).await
                    }
                };
                let outcome = generation.unwrap().finish().await.unwrap();
                first_project.get_or_insert(outcome.project_id.unwrap());
                mark(&format!("finished {i}"));
            }
            Step::BeforePost | Step::BeforeSettled | Step::TornWrite => {
                let client = client.clone();
                tokio::spawn(async move {
                    let _ = client.generate(text).await?.finish().await;
                    Ok::<(), laracopilot::Error>(())
                });
                assert_eq!(holding.recv().await, Some(i));
            }
            Step::BeforeFirstByte => {
                let client = client.clone();
                tokio::spawn(async move { client.generate(text).await.map(drop) });
                mark(&format!("sending {i}"));
            }
            Step::AfterProject | Step::MidStream => {
                let events = if step == Step::AfterProject { 1 } else { MID };
                let (ready, is_ready) = tokio::sync::oneshot::channel();
                let client = client.clone();
                tokio::spawn(async move {
                    let mut generation = client.generate(text).await.unwrap();
                    for _ in 0..events {
                        generation.next().await.unwrap().unwrap();
                    }
                    mark(&format!("held {i} {}", step.name()));
                    let _ = ready.send(());
                    // The server stays silent from here.
                    let _ = generation.next().await;
                });
                is_ready.await.unwrap();
            }
        }
    }
    mark("ready");
    std::future::pending::<()>().await;
}

/// Starts `count` generations a little apart, all running at once on a paced
/// server, and goes on until killed.
pub(super) async fn child_chaos(run: usize, count: usize, base: &str, path: &Path) {
    let client = child_client(base, FileJournal::open(path).unwrap());
    mark("start");
    for i in 0..count {
        let client = client.clone();
        tokio::spawn(async move {
            let outcome = client
                .generate(prompt(run, i, Step::Finish))
                .await?
                .finish()
                .await?;
            mark(&format!("finished {i}"));
            Ok::<_, laracopilot::Error>(outcome)
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    std::future::pending::<()>().await;
}

/// What a restarted program finds in the journal and how each entry settles.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Resumed {
    pub(super) local_id: String,
    pub(super) prompt: String,
    pub(super) project_id: Option<String>,
    /// `ok <app_url>` or `error <kind>`.
    pub(super) result: String,
}

/// Opens the journal at `path` with a new client of `base`, and resumes every
/// unfinished entry; the torn lines dropped, and the results.
pub(super) async fn resume_all(base: &str, path: &Path) -> (usize, Vec<Resumed>) {
    let journal = FileJournal::open(path).unwrap();
    let torn = journal.torn_lines();
    let client = child_client(base, journal);
    let options = WaitOptions::default()
        .interval(Duration::from_millis(100), Duration::from_millis(200))
        .timeout(Duration::from_secs(10));
    let mut resumed = Vec::new();
    for entry in client.unfinished().await.unwrap() {
        let result = match client.resume(&entry, options.clone()).await {
            Ok(outcome) => format!("ok {}", outcome.app_url.unwrap_or_default()),
            Err(error) => format!("error {}", error.kind()),
        };
        resumed.push(Resumed {
            local_id: entry.local_id.to_string(),
            prompt: entry.prompt.clone(),
            project_id: entry.project_id.map(|p| p.to_string()),
            result,
        });
    }
    (torn, resumed)
}
