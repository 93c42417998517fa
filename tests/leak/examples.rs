//! The examples never print the token, whether every call fails or succeeds.

use crate::*;

/// Runs a built example off the async threads, bounded in time.
async fn run_example(
    program: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String, String) {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_bounded(&program, &args, &env, Duration::from_secs(60))
    })
    .await
    .expect("the example runner does not panic")
}

/// Answers for the examples: every call rejected, or every call successful.
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
    Mock::given(method("GET"))
        .and(path("/api/v1/agent/project/laracopilot-sdk-token-probe"))
        .respond_with(
            wiremock::ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"status": false, "message": "Project not found."}),
            ),
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
    let runs: [(&str, &[&str]); 8] = [
        ("project_status", &["abc123"]),
        ("project_status", &["--json", "abc123"]),
        ("generate", &[prompt]),
        ("generate", &["--json", prompt]),
        ("follow_up", &["abc123", "Add a dark mode"]),
        ("follow_up", &["--json", "abc123", "Add a dark mode"]),
        ("build_script", &["--cache", &cache_arg, "--fresh", prompt]),
        ("token_rotation", &["2", "10"]),
    ];
    let built: Vec<_> = runs
        .iter()
        .filter_map(|(name, args)| example(name).map(|program| (*name, program, *args)))
        .collect();
    if built.is_empty() {
        eprintln!("no example was built: nothing to check");
        return;
    }
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
        for (name, program, args) in &built {
            let mut scenarios = vec![
                ("token", &with_token[..]),
                ("invalid token", &with_bad_token[..]),
            ];
            if *name == "token_rotation" {
                scenarios.push(("token file", &with_token_file[..]));
            }
            for (scenario, env) in scenarios {
                let (status, stdout, stderr) = run_example(program, args, env).await;
                let label = format!("{name} {args:?} [{scenario}, success: {success}]");
                if scenario == "invalid token" {
                    assert!(!status.success(), "{label} accepted an invalid token");
                } else if *name == "token_rotation" {
                    assert_eq!(status.success(), success, "{label}: {stdout} {stderr}");
                }
                printed.text(format!("{label} stdout"), stdout);
                printed.text(format!("{label} stderr"), stderr);
            }
        }
        let sent = bearers(&server).await;
        assert!(
            sent.iter().any(|b| b == TOKEN),
            "the examples sent the token"
        );
        assert!(
            sent.iter().all(|b| b == TOKEN),
            "only the test token was sent"
        );
    }
    if let Ok(written) = std::fs::read_to_string(&cache) {
        printed.text("build_script cache file", written);
    }
    printed.assert_clean();
}
