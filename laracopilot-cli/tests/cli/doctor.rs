//! `doctor`: each finding (token source and mask, expiry, base URL, the status call)
//! and its exit code, for people and with `--json`; and `watch-token`'s exit code
//! for a rejected token.

use std::time::SystemTime;

use serde_json::Value;
use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

use crate::common::*;

/// `YYYY-MM-DD` of the day `offset` days from today (UTC), as the civil calendar
/// counts (Howard Hinnant's `civil_from_days`).
fn day(offset: i64) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let z = i64::try_from(now.as_secs() / 86_400).unwrap() + offset + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A server whose token check answers as the API does for an accepted token.
async fn accepting() -> wiremock::MockServer {
    let server = server().await;
    mount_probe_not_found(&server).await;
    server
}

/// A server answering every request with `answer`.
async fn answering(answer: ResponseTemplate) -> wiremock::MockServer {
    let server = server().await;
    Mock::given(any()).respond_with(answer).mount(&server).await;
    server
}

/// `doctor --json ARGS` with `env` and the base URL of `server`: the exit code and
/// the findings by name.
async fn doctor(
    server: &wiremock::MockServer,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, Value) {
    let base = format!("{}/api/v1", server.uri());
    let mut all = vec![("LARACOPILOT_BASE_URL", base.as_str())];
    all.extend_from_slice(env);
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    let (status, stdout, stderr) = run_async(cli("doctor"), &with_json, &all).await;
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}\n{stderr}");
    assert_eq!(lines[0]["schema_version"], 1);
    let report = &lines[0]["doctor"];
    assert_eq!(report["exit_code"].as_i64(), status.code().map(i64::from));
    let mut by_name = serde_json::Map::new();
    for finding in report["findings"].as_array().unwrap() {
        by_name.insert(
            finding["finding"].as_str().unwrap().to_owned(),
            finding.clone(),
        );
    }
    (status.code(), Value::Object(by_name))
}

const WITH_TOKEN: [(&str, &str); 1] = [("LARACOPILOT_API_TOKEN", TOKEN)];

#[tokio::test]
async fn an_accepted_token_is_reported_with_its_source_and_mask_and_exits_0() {
    let server = accepting().await;
    let (code, findings) = doctor(&server, &[], &WITH_TOKEN).await;
    assert_eq!(code, Some(0), "{findings}");
    let token = &findings["token"];
    assert_eq!(
        (token["status"].as_str(), token["source"].as_str()),
        (Some("ok"), Some("LARACOPILOT_API_TOKEN"))
    );
    assert_eq!(token["mask"], "****9f8e");
    assert_eq!(findings["expiry"]["status"], "unknown");
    assert_eq!(findings["base_url"]["status"], "ok");
    assert_eq!(findings["base_url"]["default"], false);
    assert_eq!(findings["status"]["result"], "accepted");
    assert_eq!(
        bearers(&server).await,
        [TOKEN],
        "one status call, nothing else"
    );

    let base = format!("{}/api/v1", server.uri());
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", base.as_str()),
    ];
    let (status, stdout, _) = run_async(cli("doctor"), &[], &env).await;
    assert!(status.success());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert_eq!(
        lines[0],
        "token     ok       LARACOPILOT_API_TOKEN: ****9f8e"
    );
    assert!(lines[1].starts_with("expiry    unknown  "), "{stdout}");
    assert!(
        lines[2].starts_with(&format!("base URL  ok       {base}")),
        "{stdout}"
    );
    assert!(
        lines[3].starts_with("status    ok       the API accepts the token"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_rejected_or_expired_token_exits_3() {
    for (answer, result) in [(unauthorized(), "unauthorized"), (expired(), "expired")] {
        let server = answering(answer).await;
        let (code, findings) = doctor(&server, &[], &WITH_TOKEN).await;
        assert_eq!(code, Some(3), "{findings}");
        assert_eq!(findings["status"]["result"], result);
        assert_eq!(findings["status"]["exit_code"], 3);
    }
}

#[tokio::test]
async fn a_status_call_that_fails_otherwise_exits_1() {
    let server = answering(ResponseTemplate::new(500).set_body_string("<html>oops</html>")).await;
    let (code, findings) = doctor(&server, &[], &WITH_TOKEN).await;
    assert_eq!(code, Some(1), "{findings}");
    assert_eq!(findings["status"]["result"], "error");
    assert_eq!(findings["status"]["error"]["kind"], "api");
}

/// `doctor --json ARGS` with the token, run again should the day change (UTC
/// midnight) while it runs, so that its dates and the test's agree.
async fn doctor_today(
    server: &wiremock::MockServer,
    args: impl Fn() -> Vec<String>,
    env: &[(&str, &str)],
) -> (Option<i32>, Value) {
    loop {
        let today = day(0);
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let answer = doctor(server, &args, env).await;
        if day(0) == today {
            return answer;
        }
    }
}

#[tokio::test]
async fn the_expiry_date_is_ok_a_warning_or_expired() {
    let server = accepting().await;
    let cases = [
        (60, 0, "ok"),
        (3, 5, "warning"),
        (0, 5, "warning"),
        (-2, 3, "problem"),
    ];
    for (offset, exit, status) in cases {
        let args = || vec!["--expires".to_owned(), day(offset)];
        let (code, findings) = doctor_today(&server, args, &WITH_TOKEN).await;
        assert_eq!(code, Some(exit), "{offset}: {findings}");
        let expiry = &findings["expiry"];
        assert_eq!(
            (expiry["status"].as_str(), expiry["days_left"].as_i64()),
            (Some(status), Some(offset))
        );
        assert_eq!(expiry["expires"].as_str().map(str::len), Some(10));
    }
    let args = || {
        ["--expires", &day(10), "--warn-days", "30"]
            .map(str::to_owned)
            .to_vec()
    };
    let (code, findings) = doctor_today(&server, args, &WITH_TOKEN).await;
    assert_eq!(
        (code, findings["expiry"]["status"].as_str()),
        (Some(5), Some("warning"))
    );

    let far = "2099-12-31";
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_TOKEN_EXPIRES", far),
    ];
    let (code, findings) = doctor(&server, &[], &env).await;
    assert_eq!(
        (code, findings["expiry"]["expires"].as_str()),
        (Some(0), Some(far))
    );

    let (code, findings) = doctor(&server, &["--expires", "next tuesday"], &WITH_TOKEN).await;
    assert_eq!(
        (code, findings["expiry"]["status"].as_str()),
        (Some(2), Some("problem"))
    );
}

#[tokio::test]
async fn the_most_serious_finding_decides_the_exit_code() {
    // Rejected (3) and expiring soon (5): 3.
    let server = answering(unauthorized()).await;
    let (code, _) = doctor(&server, &["--expires", &day(2)], &WITH_TOKEN).await;
    assert_eq!(code, Some(3));
    let (code, _) = doctor(&server, &["--expires", "2000-01-01"], &WITH_TOKEN).await;
    assert_eq!(code, Some(3));
    // No token (2), the status call skipped.
    let server = accepting().await;
    let (code, findings) = doctor(&server, &["--expires", "2000-01-01"], &[]).await;
    assert_eq!(code, Some(2), "{findings}");
    assert_eq!(findings["token"]["status"], "problem");
    assert_eq!(findings["status"]["status"], "skipped");
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn a_token_file_is_read_and_an_unreadable_one_is_a_configuration_problem() {
    let server = accepting().await;
    let dir = tempfile::tempdir().unwrap();
    let file = arg_path(&dir, "token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let (code, findings) = doctor(&server, &["--token-file", &file], &[]).await;
    assert_eq!(code, Some(0), "{findings}");
    assert_eq!(findings["token"]["source"], "--token-file");
    assert_eq!(findings["token"]["file"], file);

    let env = [
        ("LARACOPILOT_TOKEN_FILE", file.as_str()),
        ("LARACOPILOT_API_TOKEN", "lcp_other_token_1234"),
    ];
    let (code, findings) = doctor(&server, &[], &env).await;
    assert_eq!(
        (code, findings["token"]["source"].as_str()),
        (Some(0), Some("LARACOPILOT_TOKEN_FILE"))
    );
    assert_eq!(
        findings["token"]["mask"], "****9f8e",
        "the file wins over the variable"
    );

    let missing = arg_path(&dir, "missing");
    let (code, findings) = doctor(&server, &["--token-file", &missing], &[]).await;
    assert_eq!(
        (code, findings["token"]["status"].as_str()),
        (Some(2), Some("problem"))
    );
    assert_eq!(findings["status"]["status"], "skipped");
}

#[tokio::test]
async fn an_invalid_base_url_is_a_configuration_problem() {
    let server = accepting().await;
    for url in ["http://example.com/api/v1", "not a url"] {
        let env = [
            ("LARACOPILOT_API_TOKEN", TOKEN),
            ("LARACOPILOT_BASE_URL", url),
        ];
        let (status, stdout, _) = run_async(cli("doctor"), &["--json"], &env).await;
        assert_eq!(status.code(), Some(2), "{url}: {stdout}");
        let findings = &json_lines(&stdout)[0]["doctor"]["findings"];
        assert_eq!(findings[2]["finding"], "base_url");
        assert_eq!(findings[2]["status"], "problem", "{url}");
        assert_eq!(findings[3]["status"], "skipped");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn watch_token_exits_3_when_a_check_is_rejected() {
    let server = answering(unauthorized()).await;
    let (status, stdout, stderr) = against(&server, cli("watch-token"), &["2", "10"]).await;
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.contains("1/2: token ****9f8e: the API token is invalid or revoked"),
        "{stdout}"
    );
}
