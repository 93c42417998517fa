//! The SQLite engine: every rule of `conformance.rs` over one file, and what only a
//! file has (kinds of paths, permissions, foreign contents, several processes).

use std::fs;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::conformance::{self, admit, intent, Fixture};
use super::store::{Admission, Store};
use super::{store_of, JournalOptions, Settlement, SqliteJournal};
use crate::{Error, LocalId};

struct Sqlite {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sqlite {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Sqlite {
            path: dir.path().join("journal.db"),
            _dir: dir,
        }
    }
}

impl Fixture for Sqlite {
    fn open(
        &self,
        options: JournalOptions,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        let path = self.path.clone();
        Box::pin(async move {
            let journal =
                tokio::task::spawn_blocking(move || SqliteJournal::open_with(path, options))
                    .await
                    .unwrap()
                    .unwrap();
            store_of(&journal)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_journal_follows_every_rule() {
    let fixture = Sqlite::new();
    conformance::run_all(&fixture).await;
}

/// What a refused file must still be: its bytes (first and last MiB for a large
/// one), its length and its modification time.
#[derive(Debug, PartialEq)]
struct Snapshot {
    len: u64,
    modified: SystemTime,
    head: Vec<u8>,
    tail: Vec<u8>,
}

fn snapshot(path: &Path) -> Snapshot {
    use std::io::{Read, Seek, SeekFrom};
    let meta = fs::metadata(path).unwrap();
    let mut file = fs::File::open(path).unwrap();
    let mut head = Vec::new();
    (&mut file).take(1 << 20).read_to_end(&mut head).unwrap();
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(meta.len().saturating_sub(1 << 20)))
        .unwrap();
    file.read_to_end(&mut tail).unwrap();
    Snapshot {
        len: meta.len(),
        modified: meta.modified().unwrap(),
        head,
        tail,
    }
}

/// Waits (bounded) until the journal at `path` was closed by every engine: SQLite
/// removes the `-wal` file when its last connection closes.
fn wait_closed(path: &Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    for _ in 0..500 {
        if !Path::new(&wal).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} is still open", path.display());
}

fn refusal(path: &Path) -> String {
    match SqliteJournal::open(path) {
        Err(error @ Error::Journal { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "the message names the path: {message}"
            );
            // The error, then its cause: why the path is refused.
            let chain = format!("{:#}", anyhow::Error::new(error));
            assert!(chain.starts_with(&message), "{chain}");
            chain
        }
        Err(other) => panic!("not a journal error: {other:?}"),
        Ok(journal) => panic!("opened {journal:?}"),
    }
}

/// Asserts that opening `path` is refused, leaves it unchanged and creates no side
/// file; answers the message.
fn refused_unchanged(path: &Path) -> String {
    let before = snapshot(path);
    let message = refusal(path);
    assert_eq!(snapshot(path), before, "{} was changed", path.display());
    for side in ["-wal", "-shm", "-journal"] {
        let mut side_path = path.as_os_str().to_owned();
        side_path.push(side);
        assert!(
            !Path::new(&side_path).exists(),
            "{side} was left beside {}",
            path.display()
        );
    }
    message
}

#[test]
fn files_that_are_not_sqlite_are_refused_and_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 7] = [
        (
            "settings.env",
            b"LARACOPILOT_API_TOKEN=lcp_secret\nLARACOPILOT_BASE_URL=https://x\n",
        ),
        ("notes.txt", b"hello"),
        ("binary.bin", &[0xff, 0xfe, 0x00, 0xc3, 0x28, 0xa0, 0xa1]),
        (
            "journal.jsonl",
            b"{\"v\":1,\"local_id\":\"lcj-1\",\"kind\":\"generate\",\"prompt\":\"x\"}\n",
        ),
        ("short-sqlite", b"SQLite format 3\0 but cut short"),
        ("one-newline", b"\n"),
        ("almost.db", &[b'S'; 4096]),
    ];
    for (name, contents) in cases {
        let path = dir.path().join(name);
        fs::write(&path, contents).unwrap();
        let message = refused_unchanged(&path);
        assert!(message.contains("not"), "{message}");
        assert!(!message.contains("lcp_secret"), "{message}");
    }
}

#[test]
fn a_large_file_is_refused_from_its_header_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let mut file = fs::File::create(&path).unwrap();
    file.write_all(b"PK\x03\x04 an archive, say").unwrap();
    file.set_len(200 << 20).unwrap();
    drop(file);
    let started = std::time::Instant::now();
    let message = refused_unchanged(&path);
    assert!(message.contains("not an SQLite database"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn sqlite_databases_of_other_applications_are_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // Tables of its own, no application id.
    let tables = dir.path().join("app.db");
    let other = rusqlite::Connection::open(&tables).unwrap();
    other
        .execute_batch(
            "CREATE TABLE settings (k TEXT, v TEXT); INSERT INTO settings VALUES ('a', 'b');",
        )
        .unwrap();
    drop(other);
    let message = refused_unchanged(&tables);
    assert!(message.contains("settings"), "{message}");
    // Another application id, even without tables.
    let foreign = dir.path().join("foreign.db");
    let other = rusqlite::Connection::open(&foreign).unwrap();
    other
        .execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);")
        .unwrap();
    drop(other);
    let message = refused_unchanged(&foreign);
    assert!(message.contains("another application"), "{message}");
    // In WAL mode, with tables of its own.
    let wal = dir.path().join("wal.db");
    let other = rusqlite::Connection::open(&wal).unwrap();
    other
        .execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE entries (x); INSERT INTO entries VALUES (1);",
        )
        .unwrap();
    drop(other);
    let before = snapshot(&wal);
    let message = refusal(&wal);
    assert!(message.contains("tables of its own"), "{message}");
    assert_eq!(snapshot(&wal), before);
}

#[test]
fn a_journal_of_a_newer_schema_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    drop(SqliteJournal::open(&path).unwrap());
    wait_closed(&path);
    let newer = rusqlite::Connection::open(&path).unwrap();
    newer
        .execute_batch("PRAGMA user_version = 99; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(newer);
    wait_closed(&path);
    let before = snapshot(&path);
    let message = refusal(&path);
    assert!(message.contains("newer"), "{message}");
    assert!(message.contains("99"), "{message}");
    assert_eq!(snapshot(&path), before);
}

#[test]
fn paths_that_are_not_regular_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    // A FIFO: opening it to read would block until a writer came.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A socket.
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let directory = dir.path().join("directory");
    fs::create_dir(&directory).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let paths = vec![
        (fifo, "FIFO"),
        (socket, "socket"),
        (directory, "directory"),
        (PathBuf::from("/dev/zero"), "device"),
        (PathBuf::from("/dev/null"), "device"),
    ];
    std::thread::spawn(move || {
        for (path, kind) in paths {
            let message = refusal(&path);
            assert!(message.contains(kind), "{message}");
        }
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(20))
        .expect("no open blocked");
}

#[test]
fn a_symbolic_link_is_refused_not_followed_nor_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // To a journal.
    let target = dir.path().join("journal.db");
    drop(SqliteJournal::open(&target).unwrap());
    wait_closed(&target);
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let before = snapshot(&target);
    let message = refusal(&link);
    assert!(message.contains("symbolic link"), "{message}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(snapshot(&target), before);
    // Dangling: its target is not created.
    let nowhere = dir.path().join("nowhere.db");
    let dangling = dir.path().join("dangling.db");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    let message = refusal(&dangling);
    assert!(message.contains("symbolic link"), "{message}");
    assert!(!nowhere.exists());
    // A side file that is a link is refused too: SQLite would write through it.
    let fresh = dir.path().join("fresh.db");
    let mut wal = fresh.as_os_str().to_owned();
    wal.push("-wal");
    let victim = dir.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, &wal).unwrap();
    let message = refusal(&fresh);
    assert!(message.contains("-wal"), "{message}");
    assert_eq!(fs::read(&victim).unwrap(), b"keep me");
}

#[tokio::test]
async fn a_new_journal_and_its_side_files_are_the_owners_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    let store = store_of(&journal);
    admit(&*store, intent("modes")).await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{suffix}: {mode:o}");
    }
}

/// Opens that race to create one new file: each sees an empty file, a journal, or
/// one being created, never "a database with tables of its own" (what a check that
/// read the header and the tables in two snapshots saw between them).
#[test]
fn journals_opened_together_on_a_new_path_all_open() {
    const OPENS: usize = 8;
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let start = Arc::new(std::sync::Barrier::new(OPENS));
        let opens: Vec<_> = (0..OPENS)
            .map(|_| {
                let (path, start) = (path.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    SqliteJournal::open(&path).map(drop)
                })
            })
            .collect();
        for open in opens {
            if let Err(error) = open.join().unwrap() {
                panic!(
                    "round {round}: {error}: {:?}",
                    std::error::Error::source(&error)
                );
            }
        }
    }
}

#[tokio::test]
async fn an_empty_file_becomes_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    fs::File::create(&path).unwrap();
    let journal = SqliteJournal::open(&path).unwrap();
    admit(&*store_of(&journal), intent("empty")).await;
}

#[tokio::test]
async fn reopening_keeps_every_entry_and_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (id, settled) = {
        let journal = SqliteJournal::open(&path).unwrap();
        let store = store_of(&journal);
        let (id, _) = admit(&*store, intent("reopen")).await;
        let (settled, fence) = admit(&*store, intent("reopen")).await;
        assert!(store
            .settle(&settled, fence, Settlement::succeeded(None))
            .await
            .unwrap());
        (id, settled)
    };
    for _ in 0..3 {
        let journal = SqliteJournal::open(&path).unwrap();
        let store = store_of(&journal);
        assert!(store.entry(&id).await.unwrap().is_some());
        let (entry, driven) = store.entry(&settled).await.unwrap().unwrap();
        assert!(!driven);
        assert_eq!(entry.settlement, Some(Settlement::succeeded(None)));
    }
    // The first open ended its lease when it was dropped (in the background).
    let journal = SqliteJournal::open(&path).unwrap();
    let store = store_of(&journal);
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids = store
            .unfinished()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.local_id)
            .collect();
        if !ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ids, vec![id]);
}

#[tokio::test]
async fn a_live_instance_renews_its_lease_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let short = JournalOptions::new().lease(Duration::from_secs(1));
    let journal = SqliteJournal::open_with(&path, short.clone()).unwrap();
    let store = store_of(&journal);
    let (id, _) = admit(&*store, intent("renew")).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (_, driven) = store.entry(&id).await.unwrap().unwrap();
    assert!(driven, "renewed every third of its lease");
    // Even a lease of `Duration::MAX` is one the engine can hold.
    let forever =
        SqliteJournal::open_with(&path, JournalOptions::new().lease(Duration::MAX)).unwrap();
    let store = store_of(&forever);
    let (id, _) = admit(&*store, intent("renew")).await;
    assert!(store.entry(&id).await.unwrap().unwrap().1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_that_waited_for_the_write_lock_is_dated_when_it_got_it() {
    let fixture = Sqlite::new();
    let store = fixture.open(JournalOptions::new()).await;
    // Another process holds the file's write lock (a connection of its own).
    let other = rusqlite::Connection::open(&fixture.path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let admission = tokio::spawn({
        let store = Arc::clone(&store);
        async move { admit(&*store, intent("dated")).await }
    });
    // The admission waits for the lock meanwhile (its engine's busy wait).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let released = SystemTime::now();
    other.execute_batch("ROLLBACK").unwrap();
    let (id, _) = admission.await.unwrap();
    let (entry, _) = store.entry(&id).await.unwrap().unwrap();
    // Its time is the admission's, which the lock's release preceded: leases,
    // breakers and budget windows are read at that time too (a budget's window
    // is the one the call was sent in).
    let released_ms = released
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let started_ms = entry
        .start_time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        started_ms >= released_ms,
        "dated {} ms before the lock was released",
        released_ms - started_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_that_waited_for_the_write_lock_grants_a_whole_lease() {
    let fixture = Sqlite::new();
    let lease = Duration::from_secs(1);
    let journal =
        SqliteJournal::open_with(&fixture.path, JournalOptions::new().lease(lease)).unwrap();
    let other = rusqlite::Connection::open(&fixture.path).unwrap();
    let lease_until = |db: &rusqlite::Connection| -> i64 {
        db.query_row(
            "SELECT lease_until FROM instances WHERE id = ?1",
            [journal.instance()],
            |row| row.get(0),
        )
        .unwrap()
    };
    let before = lease_until(&other);
    // Another process holds the write lock across a renewal (every third of the
    // lease), for longer than the lease's last two thirds.
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let released = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    other.execute_batch("ROLLBACK").unwrap();
    // The renewal that waited lands first (the next one is a third of a lease later).
    let mut renewed = before;
    for _ in 0..2_000 {
        renewed = lease_until(&other);
        if renewed != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_ne!(renewed, before, "renewed once the lock was released");
    // A whole lease from when it could be written: a live instance's lease never
    // lapses because its renewal waited.
    assert!(
        renewed >= released + lease.as_millis() as i64,
        "the renewal granted {} ms from the lock's release (lease {} ms)",
        renewed - released,
        lease.as_millis()
    );
}

/// The child's side of the tests with two processes: set by the parent.
const CHILD: &str = "LARACOPILOT_SQLITE_TEST_CHILD";

/// Runs this test binary again as a child doing `mode` on the journal at `path`.
fn child(mode: &str, path: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "journal::sqlite_tests::child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{mode}:{}", path.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Not a test of its own: the child process of the tests with two processes (it
/// does nothing unless the parent set `LARACOPILOT_SQLITE_TEST_CHILD`).
#[tokio::test]
async fn child_process() {
    let Ok(job) = std::env::var(CHILD) else {
        return;
    };
    let (mode, path) = job.split_once(':').unwrap();
    match mode {
        "keys" => {
            let journal = SqliteJournal::open(path).unwrap();
            let store = store_of(&journal);
            let admitted = admit_keys(&*store).await;
            println!("child-admitted {admitted}");
        }
        "crash" => {
            let options = JournalOptions::new().lease(Duration::from_secs(1));
            let journal = SqliteJournal::open_with(path, options).unwrap();
            let (id, _) = admit(&*store_of(&journal), intent("crash")).await;
            println!("child-entry {id}");
            std::io::stdout().flush().unwrap();
            // Gone without closing anything, as a killed process would be.
            std::process::exit(0);
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Admits keys `k0` to `k59` of one scope, counts those it was the first to admit.
async fn admit_keys(store: &dyn Store) -> usize {
    let mut admitted = 0;
    for i in 0..60 {
        let mut keyed = intent("two-processes");
        keyed.idempotency_key = Some(format!("k{i}"));
        keyed.max_concurrent = Some(1_000);
        match store.admit(keyed).await.unwrap() {
            Admission::Admitted { .. } => admitted += 1,
            Admission::Duplicate(_) => {}
            other => panic!("{other:?}"),
        }
    }
    admitted
}

#[tokio::test]
async fn two_processes_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    // Three processes create it and admit the same keys, at the same time.
    let others = [child("keys", &path), child("keys", &path)];
    let journal = tokio::task::spawn_blocking({
        let path = path.clone();
        move || SqliteJournal::open(path)
    })
    .await
    .unwrap()
    .unwrap();
    let store = store_of(&journal);
    let mine = admit_keys(&*store).await;
    let mut theirs = 0;
    for other in others {
        let output = tokio::task::spawn_blocking(move || other.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(output.status.success());
        let stdout = String::from_utf8_lossy(&output.stdout);
        theirs += stdout
            .lines()
            .find_map(|line| line.split("child-admitted ").nth(1))
            .unwrap_or_else(|| panic!("the child said: {stdout}"))
            .trim()
            .parse::<usize>()
            .unwrap();
    }
    assert_eq!(
        mine + theirs,
        60,
        "each key admitted once: {mine} + {theirs}"
    );
    // Every entry of each process is kept: each key is held by the one that won it.
    let mut owners = std::collections::HashMap::new();
    for i in 0..60 {
        let mut keyed = intent("two-processes");
        keyed.idempotency_key = Some(format!("k{i}"));
        match store.admit(keyed).await.unwrap() {
            Admission::Duplicate(entry) => *owners.entry(entry.owner).or_insert(0) += 1,
            other => panic!("k{i}: {other:?}"),
        }
    }
    assert_eq!(owners.values().sum::<usize>(), 60);
    assert_eq!(owners.get(store.instance()).copied().unwrap_or(0), mine);
}

#[tokio::test]
async fn what_a_killed_process_left_is_unfinished_once_its_lease_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    drop(SqliteJournal::open(&path).unwrap());
    let journal = SqliteJournal::open(&path).unwrap();
    let store = store_of(&journal);
    let output = tokio::task::spawn_blocking({
        let path = path.clone();
        move || child("crash", &path).wait_with_output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = LocalId::from(
        stdout
            .lines()
            .find_map(|line| line.split("child-entry ").nth(1))
            .unwrap_or_else(|| panic!("the child said: {stdout}")),
    );
    let mut claimed = None;
    for _ in 0..100 {
        if let Some(claim) = store.claim(&id).await.unwrap() {
            claimed = Some(claim);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (entry, fence) = claimed.expect("claimable once the child's lease ended");
    assert_eq!(entry.owner, store.instance());
    assert!(store.settle(&id, fence, Settlement::Unknown).await.unwrap());
}
