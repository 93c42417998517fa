//! `laracopilot plans`: the subscription plans, for people (one line each, server
//! text escaped, a missing field shown as `-`) and with `--json` (one line, the
//! plans' fields exact); offline, the embedded LaraCopilot's sample plans; a call
//! that spends nothing (one GET).

use laracopilot_mock::{MockServer, Reply, TokenState};
use serde_json::{json, Value};

use crate::common::*;

#[test]
fn plans_offline_are_the_sample_plans_for_people_and_in_json() {
    let (status, stdout, stderr) = run_bounded(&cli("plans"), &[], &[], LIMIT);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("embedded offline LaraCopilot"), "{stderr}");
    assert_eq!(
        stdout,
        "Starter ($19.00/month): 500 credits a month, 25 credits a dollar, 3 projects, 1 seats\n\
         Pro ($49.00/month): 1500 credits a month, 25 credits a dollar, 10 projects, 3 seats\n\
         Team ($99.00/month): 4000 credits a month, 25 credits a dollar, 50 projects, 10 seats\n\
         Offline: the embedded offline LaraCopilot's sample plans\n"
    );

    let (status, stdout, stderr) = run_bounded(&cli("plans"), &["--json"], &[], LIMIT);
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "one line, nothing else: {stdout}");
    assert_eq!(lines[0]["schema_version"], 1);
    let plans = lines[0]["plans"].as_array().unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Starter", "Pro", "Team"]);
    let pro = &plans[1];
    assert_eq!(pro["id"], "2");
    assert_eq!(pro["price"], "49.00");
    assert_eq!(pro["price_display"], "$49.00/month");
    assert_eq!(pro["credits_per_month"], 1500);
    assert_eq!(pro["credits_per_dollar"], 25.0);
    assert_eq!(pro["max_projects"], 10);
    assert_eq!(pro["is_featured"], true);
    assert_eq!(
        pro["features"],
        json!(["1500 credits a month", "10 projects"])
    );
}

#[test]
fn custom_plans_are_escaped_for_people_and_exact_in_json() {
    let hostile = "Custom\u{1b}[2J\n     Created /etc/passwd\u{202e}";
    let server = MockServer::builder()
        .subscription_plans(vec![
            json!({"id": 9, "name": hostile, "price": "1.00", "credits_per_month": "750",
                   "credits_per_dollar": 12.5, "max_projects": 2, "max_team_seats": 1,
                   "is_custom": true, "stripe_price_id": "price_123"}),
            json!({"name": "Bare"}),
        ])
        .start()
        .unwrap();
    server.add_token(TOKEN, TokenState::Valid);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let (status, stdout, stderr) = run_bounded(&cli("plans"), &[], &env, LIMIT);
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "Custom\\u{1b}[2J\\n     Created /etc/passwd\\u{202e} (1.00): 750 credits a month, \
         12.5 credits a dollar, 2 projects, 1 seats\n\
         Bare (-): - credits a month, - credits a dollar, - projects, - seats\n",
        "no Offline line against a server"
    );

    let (status, stdout, stderr) = run_bounded(&cli("plans"), &["--json"], &env, LIMIT);
    assert!(status.success(), "{stderr}");
    let lines = json_lines(&stdout);
    let plans = lines[0]["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0]["name"], hostile, "exact in JSON");
    assert_eq!(plans[0]["id"], "9");
    assert_eq!(
        plans[0]["credits_per_month"], 750,
        "a number sent as a string"
    );
    assert_eq!(plans[0]["is_custom"], true);
    assert_eq!(plans[1]["name"], "Bare");
    for field in [
        "id",
        "price",
        "credits_per_month",
        "credits_per_dollar",
        "max_projects",
    ] {
        assert_eq!(plans[1][field], Value::Null, "{field} of a plan without it");
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one call per run: {requests:?}");
    assert!(requests
        .iter()
        .all(|r| r.method == "GET" && r.path == "/api/v1/subscription-plans"));
}

#[test]
fn plans_that_cannot_be_read_are_an_error() {
    let server = MockServer::start();
    server.add_token(TOKEN, TokenState::Valid);
    let env = [
        ("LARACOPILOT_API_TOKEN", TOKEN),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    // Every attempt (the SDK retries a 5xx) gets the proxy's page.
    server.reply_next(10, Reply::server_error_html());
    let (status, stdout, stderr) = run_bounded(&cli("plans"), &["--json"], &env, LIMIT);
    assert_eq!(status.code(), Some(1), "{stdout}\n{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["error"]["kind"], "api");
    assert_eq!(lines[0]["error"]["status"], 500);

    // A revoked token: the API's 401.
    let server = MockServer::start();
    server.add_token("lcp_revoked_plans_0001", TokenState::Revoked);
    let env = [
        ("LARACOPILOT_API_TOKEN", "lcp_revoked_plans_0001"),
        ("LARACOPILOT_BASE_URL", server.base_url()),
    ];
    let (status, stdout, stderr) = run_bounded(&cli("plans"), &[], &env, LIMIT);
    assert_eq!(status.code(), Some(3), "{stdout}\n{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("error: the API refused the token"),
        "{stderr}"
    );
}
