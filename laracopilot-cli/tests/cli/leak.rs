//! The subcommands never print the token, whether every call fails or succeeds.
//! Ported from the SDK's `tests/leak/examples.rs` (the search is the one of
//! `tests/leak/main.rs`); `doctor` joins the runs.

use wiremock::matchers::{any, method, path};
use wiremock::Mock;

use crate::common::*;

/// A second distinctive token, for rotations.
const SECOND: &str = "lcp_live_R0TAT3D-s3cond-never-print-7a6b";
/// The shortest piece of a secret that counts as a leak (the mask shows four).
const PIECE: usize = 10;

/// Where a secret, or a piece of one, shows up in `text`: the byte offset and the
/// length of the piece, never the text itself.
fn find_leak(text: &str) -> Option<(usize, usize)> {
    for secret in [TOKEN, SECOND] {
        for start in 0..=secret.len() - PIECE {
            if let Some(at) = text.find(&secret[start..start + PIECE]) {
                return Some((at, PIECE));
            }
        }
    }
    None
}

/// Everything a scenario printed, with a label saying where it came from.
#[derive(Default)]
struct Printed {
    texts: Vec<(String, String)>,
}

impl Printed {
    fn text(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.texts.push((label.into(), text.into()));
    }

    /// The labels of the texts that leak; empty when none does.
    fn leaks(&self) -> Vec<String> {
        self.texts
            .iter()
            .filter_map(|(label, text)| {
                find_leak(text)
                    .map(|(at, len)| format!("{label}: {len} secret characters at byte {at}"))
            })
            .collect()
    }

    /// Fails naming every leaking output (without printing the secret).
    fn assert_clean(&self) {
        assert!(!self.texts.is_empty(), "nothing was checked");
        let leaks = self.leaks();
        assert!(
            leaks.is_empty(),
            "the token leaked in:\n{}",
            leaks.join("\n")
        );
    }
}

#[test]
fn the_leak_check_catches_partial_leaks_but_allows_the_mask() {
    let mut leaky = Printed::default();
    leaky.text("sliced", format!("x{}y", &TOKEN[7..7 + PIECE]));
    leaky.text("second", format!("Bearer {SECOND}"));
    assert_eq!(leaky.leaks().len(), 2);
    let caught = std::panic::catch_unwind(|| leaky.assert_clean()).unwrap_err();
    let message = caught.downcast_ref::<String>().unwrap();
    assert!(
        find_leak(message).is_none(),
        "the failure itself must not leak"
    );

    let mut clean = Printed::default();
    clean.text("mask", "token ****9f8e, lcp_live_");
    clean.assert_clean();
}

/// Runs a subcommand off the async threads, bounded in time.
async fn run_example(
    sub: Sub,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String, String) {
    run_async(sub, args, env).await
}

/// Answers for the subcommands: every call rejected, or every call successful.
async fn answer_examples(server: &wiremock::MockServer, success: bool) {
    server.reset().await;
    if !success {
        Mock::given(any())
            .respond_with(unauthorized())
            .mount(server)
            .await;
        return;
    }
    // The token check's probe gets the API's documented 404; a project gets its status.
    mount_probe_not_found(server).await;
    // Plans whose text echoes the token: shown masked.
    Mock::given(method("GET"))
        .and(path("/api/v1/subscription-plans"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "data": [{"id": 1, "name": format!("Plan of {TOKEN}"), "price": "19.00"}]
            })),
        )
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .respond_with(project_json("abc123"))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/agent/generate"))
        .respond_with(documented_stream())
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse(sse_body(&[
            r#"{"type":"file_created","path":"resources/css/app.css"}"#,
            r#"{"type":"stream_end","project_id":"abc123"}"#,
        ])))
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_never_print_the_token() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.display().to_string();
    let cache = dir.path().join("cache.json");
    let cache_arg = cache.display().to_string();
    let base = format!("{}/api/v1", server.uri());
    let bad_token = format!("{TOKEN} {SECOND}");
    let prompt = "Build a task management app";
    let runs: [(&str, &[&str]); 12] = [
        ("status", &["abc123"]),
        ("status", &["--json", "abc123"]),
        ("plans", &[]),
        ("plans", &["--json"]),
        ("generate", &[prompt]),
        ("generate", &["--json", prompt]),
        ("follow-up", &["abc123", "Add a dark mode"]),
        ("follow-up", &["--json", "abc123", "Add a dark mode"]),
        ("generate", &["--cache", &cache_arg, "--fresh", prompt]),
        ("watch-token", &["2", "10"]),
        ("doctor", &[]),
        ("doctor", &["--json", "--expires", "2099-01-01"]),
    ];
    let with_token = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", &base),
    ];
    let with_bad_token = [
        ("LARACOPILOT_API_TOKEN", &bad_token[..]),
        ("LARACOPILOT_BASE_URL", &base),
    ];
    let with_token_file = [
        ("LARACOPILOT_TOKEN_FILE", &token_file[..]),
        ("LARACOPILOT_BASE_URL", &base),
    ];

    let mut printed = Printed::default();
    for success in [false, true] {
        answer_examples(&server, success).await;
        for (name, args) in &runs {
            let mut scenarios = vec![
                ("token", &with_token[..]),
                ("invalid token", &with_bad_token[..]),
            ];
            if matches!(*name, "watch-token" | "doctor") {
                scenarios.push(("token file", &with_token_file[..]));
            }
            for (scenario, env) in scenarios {
                let (status, stdout, stderr) = run_example(cli(name), args, env).await;
                let label = format!("{name} {args:?} [{scenario}, success: {success}]");
                if scenario == "invalid token" {
                    assert!(!status.success(), "{label} accepted an invalid token");
                } else if matches!(*name, "watch-token" | "doctor") {
                    assert_eq!(status.success(), success, "{label}: {stdout} {stderr}");
                }
                printed.text(format!("{label} stdout"), stdout);
                printed.text(format!("{label} stderr"), stderr);
            }
        }
        let sent = bearers(&server).await;
        assert!(
            sent.iter().any(|b| b == TOKEN),
            "the subcommands sent the token"
        );
        assert!(
            sent.iter().all(|b| b == TOKEN),
            "only the test token was sent"
        );
    }
    if let Ok(written) = std::fs::read_to_string(&cache) {
        printed.text("generate --cache file", written);
    }
    printed.assert_clean();
}
