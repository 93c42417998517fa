//! `--journal PATH|postgres://URL`: an SQLite file that generate, follow-up and resume
//! share, a PostgreSQL database (its password never shown), and everything that is
//! not a journal refused, untouched, without blocking: exit 1, JSON kind `journal`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use laracopilot_mock::{MockProject, MockServer, ProjectStatus, TokenState};
use serde_json::Value;

use crate::common::*;
use crate::pg;
use crate::seed::{self, pairs, settled, Seeder};

/// A LaraCopilot that knows `p1` (ready) and the test token.
fn served() -> MockServer {
    let server = MockServer::builder()
        .project(MockProject::new("p1", ProjectStatus::Ready))
        .start()
        .unwrap();
    server.add_token(TOKEN, TokenState::Valid);
    server
}

fn env(server: &MockServer) -> [(&'static str, &str); 2] {
    [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ]
}

#[test]
fn an_sqlite_journal_is_shared_by_generate_follow_up_and_resume() {
    let server = served();
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.db");
    let run = |sub: &'static str, args: &[&str]| {
        let mut all = vec!["--json", "--journal", journal.as_str()];
        all.extend_from_slice(args);
        run_bounded(&cli(sub), &all, &env(&server), LIMIT)
    };
    let (status, stdout, stderr) = run("generate", &["Build a blog"]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(&format!("Journal {journal}")), "{stderr}");
    let generated = json_lines(&stdout).pop().unwrap();
    let project = generated["outcome"]["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, stdout, stderr) = run("follow-up", &[&project, "Add a dark mode"]);
    assert!(status.success(), "{stderr}");
    let followed = json_lines(&stdout).pop().unwrap();

    let settled = settled(Path::new(&journal));
    assert_eq!(
        pairs(&settled),
        [
            ("Build a blog", "succeeded"),
            ("Add a dark mode", "succeeded")
        ]
    );
    assert_eq!(
        generated["outcome"]["journal_id"],
        settled[0].local_id.as_str()
    );
    assert_eq!(
        followed["outcome"]["journal_id"],
        settled[1].local_id.as_str()
    );
    assert!(settled
        .iter()
        .all(|s| s.project_id.as_deref() == Some(project.as_str())));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "created owner-only: {mode:o}");
    }
    let (status, stdout, stderr) = run("resume", &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "", "nothing left unfinished");
    assert!(stderr.contains("Nothing left unfinished"), "{stderr}");
}

// ---- what is not a journal ----

/// What a path held: its bytes (the first 64 KiB), length and modification time,
/// and the names in its directory (a refusal creates no side file there).
#[derive(Debug, PartialEq)]
struct Snapshot {
    head: Vec<u8>,
    len: u64,
    modified: SystemTime,
    siblings: Vec<String>,
}

fn snapshot(path: &Path) -> Snapshot {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(path).unwrap();
    let mut head = Vec::new();
    if meta.is_file() {
        std::fs::File::open(path)
            .unwrap()
            .take(64 * 1024)
            .read_to_end(&mut head)
            .unwrap();
    }
    let mut siblings: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    siblings.sort();
    Snapshot {
        head,
        len: meta.len(),
        modified: meta.modified().unwrap(),
        siblings,
    }
}

/// A file with `bytes`, last modified a day ago (a write would move it to now).
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    age(&path);
    path
}

fn age(path: &Path) {
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
}

/// Runs each subcommand that takes `--journal` with `spec`, with and without
/// `--json`: each refuses it with exit 1 (JSON kind `journal`, a message naming
/// the path and `says`), before anything else (no LaraCopilot was started).
fn assert_refused(spec: &str, says: &str) {
    let runs: [(&str, Vec<&str>); 3] = [
        ("generate", vec!["--journal", spec, "Build a blog"]),
        (
            "follow-up",
            vec!["--journal", spec, "p1", "Add a dark mode"],
        ),
        ("resume", vec!["--journal", spec]),
    ];
    for (sub, args) in runs {
        let mut json = vec!["--json"];
        json.extend(&args);
        let (status, stdout, stderr) = run_bounded(&cli(sub), &json, &[], LIMIT);
        assert_eq!(status.code(), Some(1), "{sub} {spec}: {stdout}\n{stderr}");
        let lines = json_lines(&stdout);
        assert_eq!(lines.len(), 1, "{sub} {spec}: {stdout}");
        let error = &lines[0]["error"];
        assert_eq!(error["kind"], "journal", "{sub} {spec}: {error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(spec) && message.contains(says),
            "{sub} {spec}: {message}"
        );
        assert!(!stderr.contains("Using"), "nothing was started: {stderr}");

        let (status, stdout, stderr) = run_bounded(&cli(sub), &args, &[], LIMIT);
        assert_eq!(status.code(), Some(1), "{sub} {spec}: {stderr}");
        assert_eq!(stdout, "");
        assert!(stderr.contains(&format!("error: {spec}")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn files_that_are_not_journals_are_refused_and_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path();
    let settings = file(
        at,
        "settings.env",
        b"LARACOPILOT_API_TOKEN=lcp_not_a_journal\nAPP_ENV=production\n",
    );
    let mut invalid = b"journal\xff\xfe\xc3(".to_vec();
    invalid.extend_from_slice(&[0x80; 300]);
    let invalid = file(at, "invalid-utf8.db", &invalid);
    let large = file(at, "large.db", b"not an SQLite database\n");
    std::fs::File::options()
        .write(true)
        .open(&large)
        .unwrap()
        .set_len(50 * 1024 * 1024)
        .unwrap();
    age(&large);
    let other_app = at.join("other-app.db");
    {
        let db = rusqlite::Connection::open(&other_app).unwrap();
        db.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT); INSERT INTO invoices (total) VALUES ('12.50');")
            .unwrap();
    }
    age(&other_app);
    let cases: [(&Path, &str); 4] = [
        (&settings, "it is not an SQLite database"),
        (&invalid, "it is not an SQLite database"),
        (&large, "it is not an SQLite database"),
        (&other_app, "tables of its own (invoices)"),
    ];
    for (path, says) in cases {
        let before = snapshot(path);
        assert_refused(path.to_str().unwrap(), says);
        assert_eq!(snapshot(path), before, "{} was touched", path.display());
    }
}

#[cfg(unix)]
#[test]
fn links_fifos_directories_and_devices_are_refused_without_blocking() {
    use rustix::fs::{mknodat, FileType, Mode, CWD};

    let dir = tempfile::tempdir().unwrap();
    let at = dir.path();
    // A real journal, written by a run of the CLI, behind a symbolic link.
    let real = at.join("real.db");
    let (status, _, stderr) = run_bounded(
        &cli("generate"),
        &["--journal", real.to_str().unwrap(), "Build a blog"],
        &[],
        LIMIT,
    );
    assert!(status.success(), "{stderr}");
    let link = at.join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    // A link to nothing: SQLite would create its target.
    let dangling = at.join("dangling.db");
    std::os::unix::fs::symlink(at.join("target-never-made.db"), &dangling).unwrap();
    let fifo = at.join("journal.fifo");
    mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
    let directory = at.join("journal.d");
    std::fs::create_dir(&directory).unwrap();

    let real_before = snapshot(&real);
    let cases: [(&Path, &str); 5] = [
        (&link, "it is a symbolic link"),
        (&dangling, "it is a symbolic link"),
        (&fifo, "it is a FIFO"),
        (&directory, "it is a directory"),
        (Path::new("/dev/zero"), "it is a device"),
    ];
    for (path, says) in cases {
        let before = snapshot(path);
        // Bounded: opening a FIFO for reading, or reading /dev/zero, would never end.
        assert_refused(path.to_str().unwrap(), says);
        if path.starts_with(at) {
            assert_eq!(snapshot(path), before, "{} was touched", path.display());
        }
    }
    assert_eq!(
        snapshot(&real),
        real_before,
        "the link's target was not opened"
    );
    assert!(!at.join("target-never-made.db").exists());
}

#[test]
fn journal_schema_needs_a_postgres_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = arg_path(&dir, "app.db");
    let args = [
        "--json",
        "--journal",
        &journal,
        "--journal-schema",
        "staging",
        "Build a blog",
    ];
    let (status, stdout, _) = run_bounded(&cli("generate"), &args, &[], LIMIT);
    assert_eq!(status.code(), Some(2), "{stdout}");
    let error = &json_lines(&stdout)[0]["error"];
    assert_eq!(error["kind"], "usage", "{error}");
    assert!(!Path::new(&journal).exists(), "nothing was opened");
}

// ---- PostgreSQL ----

/// A port of 127.0.0.1 nobody listens on (bound, then freed).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Every output of a run, for the password checks.
fn outputs(runs: &[(String, String)]) -> String {
    runs.iter()
        .map(|(out, err)| format!("{out}\n{err}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_unreachable_postgres_journal_is_a_journal_error_that_never_shows_its_password() {
    const PASSWORD: &str = "Pg-S3cret-never-print-4b1d";
    let port = closed_port();
    let specs = [
        format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/app"),
        format!("postgresql://app@127.0.0.1:{port}/app?password={PASSWORD}&connect_timeout=5"),
        // Does not parse as a URL: not shown at all.
        format!("postgres://app:{PASSWORD}@[127.0.0.1:{port}/app"),
    ];
    let mut seen = Vec::new();
    for spec in &specs {
        for (sub, args) in [
            ("generate", vec!["--journal", spec.as_str(), "Build a blog"]),
            ("resume", vec!["--journal", spec.as_str()]),
        ] {
            let mut json = vec!["--json"];
            json.extend(&args);
            let (status, stdout, stderr) = run_bounded(&cli(sub), &json, &[], LIMIT);
            assert_eq!(status.code(), Some(1), "{sub}: {stdout}\n{stderr}");
            let error = &json_lines(&stdout)[0]["error"];
            assert_eq!(error["kind"], "journal", "{error}");
            seen.push((stdout, stderr));
            let (status, stdout, stderr) = run_bounded(&cli(sub), &args, &[], LIMIT);
            assert_eq!(status.code(), Some(1), "{sub}: {stderr}");
            assert!(stderr.contains("error: "), "{stderr}");
            seen.push((stdout, stderr));
        }
    }
    let all = outputs(&seen);
    assert!(!all.contains(PASSWORD), "{all}");
    assert!(
        all.contains(&format!("127.0.0.1:{port}")),
        "the server is named: {all}"
    );
}

#[tokio::test]
async fn a_postgres_journal_records_generations_and_resume_settles_them() {
    let Some(db) =
        pg::database("a_postgres_journal_records_generations_and_resume_settles_them").await
    else {
        return;
    };
    let server = served();
    let base = server.base_url().to_owned();
    let journal = [
        "--journal",
        db.url.as_str(),
        "--journal-schema",
        db.schema.as_str(),
    ];
    let mut seen = Vec::new();

    // A generation, journaled in the database.
    let mut args: Vec<&str> = vec!["--json"];
    args.extend(journal);
    args.push("Build a blog");
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", base.as_str()),
    ];
    let (status, stdout, stderr) = run_async(cli("generate"), &args, &env).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("(schema {})", db.schema))
            && stderr.contains("Journal postgres://"),
        "{stderr}"
    );
    let outcome = json_lines(&stdout).pop().unwrap();
    assert!(outcome["outcome"]["journal_id"].is_string(), "{outcome}");
    seen.push((stdout, stderr));

    // Two generations a run left unfinished there, made through the SDK.
    let mut seeder = Seeder::postgres(&db.url, &db.schema, &[]).await;
    seeder.generate_named("Build app a", "p1").await;
    seeder.generate_unanswered("Build app b").await;
    let entries = seeder.close().await;

    let mut args: Vec<&str> = vec!["--json", "--timeout", "5"];
    args.extend(journal);
    let (status, stdout, stderr) = run_async(cli("resume"), &args, &env).await;
    assert_eq!(
        status.code(),
        Some(1),
        "outcome_unknown is an error: {stderr}"
    );
    let lines = json_lines(&stdout);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["local_id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = entries.iter().map(|e| e.local_id.as_str()).collect();
    assert_eq!(ids, expected, "{stdout}");
    assert_eq!(lines[0]["outcome"]["project_id"], "p1");
    assert_eq!(lines[1]["error"]["kind"], "outcome_unknown");
    seen.push((stdout, stderr));

    // Settled: nothing is left for the next run.
    let (status, stdout, stderr) = run_async(cli("resume"), &args, &env).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "");
    seen.push((stdout, stderr));
    let reader = seed::reading(
        laracopilot::journal::PostgresJournal::connect_in(
            &db.url,
            &db.schema,
            laracopilot::journal::JournalOptions::new(),
        )
        .await
        .unwrap(),
    );
    assert!(reader.unfinished().await.unwrap().is_empty());
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
            == 1,
        "resume sent nothing: {:?}",
        server.requests()
    );

    // A wrong password: refused by the server, never shown.
    let mut wrong = url::Url::parse(&db.url).unwrap();
    wrong.set_password(Some("Wr0ng-Pg-passw0rd-5e6f")).unwrap();
    let wrong = wrong.to_string();
    for extra in [&["--json"][..], &[]] {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend([
            "--journal",
            wrong.as_str(),
            "--journal-schema",
            db.schema.as_str(),
        ]);
        let (status, stdout, stderr) = run_async(cli("resume"), &args, &env).await;
        assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
        let all = format!("{stdout}\n{stderr}");
        assert!(!all.contains("Wr0ng-Pg-passw0rd-5e6f"), "{all}");
        if extra.is_empty() {
            assert!(stderr.contains("error: "), "{stderr}");
        } else {
            let error: Value = json_lines(&stdout).remove(0);
            assert_eq!(error["error"]["kind"], "journal", "{error}");
        }
    }

    for (out, err) in &seen {
        db.assert_no_password("stdout", out);
        db.assert_no_password("stderr", err);
    }
    drop(reader);
    db.drop_schema().await;
}
