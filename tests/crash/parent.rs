//! The parent side: child processes (started, read line by line, killed and
//! reaped), and what the parent checks in the journal and at the mock.

use super::*;

/// A child process, its stdout as lines on a channel, its stderr kept; killed and
/// reaped when dropped.
pub(super) struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl ChildProcess {
    pub(super) fn spawn(
        mode: &str,
        run: usize,
        plan: &str,
        server: &MockServer,
        journal: &Path,
    ) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, mode)
            .env(BASE, server.base_url())
            .env(JOURNAL, journal)
            .env(PLAN, plan)
            .env(RUN, run.to_string())
            .env_remove(laracopilot::TOKEN_ENV)
            .env_remove(laracopilot::BASE_URL_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (send, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut kept = keep.lock().unwrap();
                if kept.len() < 64 * 1024 {
                    kept.push_str(&line);
                    kept.push('\n');
                }
            }
        });
        ChildProcess {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits for a stdout line equal to `want`.
    pub(super) fn wait_for(&mut self, want: &str) {
        let until = Instant::now() + PATIENCE;
        while !self.seen.iter().any(|l| l == want) {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "the child did not print {want:?}; stdout {:#?}; stderr:\n{}",
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Every stdout line until the child exits (bounded), for a child that ends.
    pub(super) fn output(mut self) -> Vec<String> {
        let until = Instant::now() + PATIENCE;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the child did not end"),
            }
        }
        let status = reap(&mut self.child);
        assert!(
            status.success(),
            "the child failed: {:#?}\n{}",
            self.seen,
            self.stderr.lock().unwrap()
        );
        std::mem::take(&mut self.seen)
    }

    /// SIGKILL, then wait for it to be gone.
    pub(super) fn kill(mut self) {
        self.child.kill().unwrap();
        let status = reap(&mut self.child);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = reap(&mut self.child);
        }
    }
}

/// Waits for `child` to exit, at most [`PATIENCE`].
pub(super) fn reap(child: &mut Child) -> std::process::ExitStatus {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `condition` every 10 ms for at most [`PATIENCE`].
pub(super) fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < until, "never came true: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The journal's lines about the entry started with `prompt`: its local id and
/// its records' names.
pub(super) fn entry_lines<'a>(
    lines: &'a [Value],
    prompt: &str,
) -> Option<(&'a str, Vec<&'a Value>)> {
    let id = lines
        .iter()
        .find(|l| l["record"] == "started" && l["prompt"] == prompt)?["local_id"]
        .as_str()?;
    Some((id, lines.iter().filter(|l| l["local_id"] == id).collect()))
}

/// The local ids left unfinished by `lines`.
pub(super) fn replay(lines: &[Value]) -> HashSet<String> {
    let mut open = HashSet::new();
    for line in lines {
        let id = line["local_id"].as_str().unwrap_or_default().to_owned();
        match line["record"].as_str() {
            Some("started") => {
                open.insert(id);
            }
            Some("settled") => {
                open.remove(&id);
            }
            _ => {}
        }
    }
    open
}

/// Cuts a copy of the journal at `path` at every byte of its last line (or at
/// `samples` of them) and opens each: it must open, drop the cut line (reporting
/// it when it was cut inside), and list what the lines before it leave unfinished.
pub(super) fn every_cut_of_the_last_line_opens(path: &Path, samples: Option<usize>) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let before: Vec<Value> = String::from_utf8_lossy(&bytes[..start])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let want = replay(&before);
    let cuts: Vec<usize> = match samples {
        None => (start..body.len()).collect(),
        Some(n) => (0..n)
            .map(|k| start + k * (body.len() - start) / n)
            .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for &cut in &cuts {
        let copy = dir.path().join("cut");
        std::fs::write(&copy, &bytes[..cut]).unwrap();
        let journal = FileJournal::open(&copy)
            .unwrap_or_else(|e| panic!("a journal cut at byte {cut} does not open: {e}"));
        assert_eq!(
            journal.torn_lines(),
            usize::from(cut > start),
            "cut at {cut}"
        );
        let open: HashSet<String> = rt
            .block_on(journal.unfinished())
            .unwrap()
            .iter()
            .map(|e| e.local_id.to_string())
            .collect();
        assert_eq!(open, want, "cut at {cut}");
    }
    cuts.len()
}
