//! The fourth documented endpoint, `GET /subscription-plans`: the offline
//! LaraCopilot's sample plans (and scripted ones), the documentation's sample with
//! and without the Stripe fields it says are hidden, and every answer that is not
//! the list of plans (an HTML page, `{"data": {}}`, a body that is not JSON, one over
//! 256 KiB), each its own error; from the async and the blocking client.

use crate::common;

use common::*;
use laracopilot::{Error, SubscriptionPlan};
use wiremock::ResponseTemplate;

/// The documentation's sample, Stripe fields included (the page says they are
/// hidden, its sample shows them).
const WITH_STRIPE: &str = r#"{"data":[
  {"id":1,"name":"Starter","slug":"starter","price":"19.00","stripe_price_id":"price_1Starter","stripe_product_id":"prod_Starter",
   "credits_per_month":500,"credits_per_dollar":25,"max_projects":3,"max_team_seats":1,
   "features":["500 credits a month","3 projects"],"is_active":true,"is_featured":false,"is_custom":false,
   "sort_order":1,"created_at":"2025-01-01T00:00:00.000000Z","updated_at":"2025-01-02T00:00:00.000000Z","price_display":"$19/month"},
  {"id":2,"name":"Pro","slug":"pro","price":"49.00","stripe_price_id":"price_1Pro","stripe_product_id":"prod_Pro",
   "credits_per_month":1500,"credits_per_dollar":30,"max_projects":10,"max_team_seats":5,
   "features":["1500 credits a month","10 projects","Priority support"],"is_active":true,"is_featured":true,"is_custom":false,
   "sort_order":2,"created_at":"2025-01-01T00:00:00.000000Z","updated_at":"2025-01-02T00:00:00.000000Z","price_display":"$49/month"}
]}"#;

/// The same without the Stripe fields, as the page says the API answers.
fn without_stripe() -> String {
    let mut value: serde_json::Value = serde_json::from_str(WITH_STRIPE).unwrap();
    for plan in value["data"].as_array_mut().unwrap() {
        let plan = plan.as_object_mut().unwrap();
        plan.remove("stripe_price_id");
        plan.remove("stripe_product_id");
    }
    value.to_string()
}

async fn plans_answering(
    answer: ResponseTemplate,
) -> (
    wiremock::MockServer,
    laracopilot::Result<Vec<SubscriptionPlan>>,
) {
    let server = server().await;
    mount(&server, "GET", "/subscription-plans", answer).await;
    let plans = bounded(client(&server).subscription_plans()).await;
    (server, plans)
}

fn assert_documented(plans: &[SubscriptionPlan]) {
    assert_eq!(plans.len(), 2, "{plans:?}");
    let (starter, pro) = (&plans[0], &plans[1]);
    assert_eq!(starter.id.as_deref(), Some("1"));
    assert_eq!(starter.name.as_deref(), Some("Starter"));
    assert_eq!(starter.slug.as_deref(), Some("starter"));
    assert_eq!(starter.price.as_deref(), Some("19.00"));
    assert_eq!(starter.price_display.as_deref(), Some("$19/month"));
    assert_eq!(starter.credits_per_month, Some(500));
    assert_eq!(starter.credits_per_dollar, Some(25.0));
    assert_eq!(starter.max_projects, Some(3));
    assert_eq!(starter.max_team_seats, Some(1));
    assert_eq!(starter.features, ["500 credits a month", "3 projects"]);
    assert_eq!(
        (starter.is_active, starter.is_featured, starter.is_custom),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(starter.sort_order, Some(1));
    assert_eq!(
        starter.created_at.as_deref(),
        Some("2025-01-01T00:00:00.000000Z")
    );
    assert_eq!(
        starter.updated_at.as_deref(),
        Some("2025-01-02T00:00:00.000000Z")
    );
    assert_eq!(pro.name.as_deref(), Some("Pro"), "in the answer's order");
    assert_eq!(pro.is_featured, Some(true));
    assert_eq!(pro.features.len(), 3);
}

#[tokio::test]
async fn the_documented_sample_reads_with_and_without_the_stripe_fields() {
    for (body, stripe) in [(WITH_STRIPE.to_owned(), true), (without_stripe(), false)] {
        let (server, plans) =
            plans_answering(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
                .await;
        let plans = plans.unwrap();
        assert_documented(&plans);
        // Fields this version does not name stay in the raw JSON.
        assert_eq!(plans[0].raw_json().contains("price_1Starter"), stripe);
        // Serialized with its named fields only.
        let json = serde_json::to_value(&plans[0]).unwrap();
        assert_eq!(json["credits_per_dollar"], 25.0);
        assert!(json.get("stripe_price_id").is_none());
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method.as_str(), "GET");
        assert_eq!(request.url.path(), "/api/v1/subscription-plans");
        assert_eq!(
            request
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            format!("Bearer {TOKEN}")
        );
        assert!(request.body.is_empty());
    }
}

#[tokio::test]
async fn an_answer_that_is_not_the_list_of_plans_is_an_error_that_says_what_it_is() {
    // (an answer, what its error says)
    let cases = [
        (
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Maintenance</body></html>", "text/html"),
            "not JSON",
        ),
        (
            ResponseTemplate::new(200).set_body_raw(r#"{"data": {}}"#, "application/json"),
            "\"data\" is not a list",
        ),
        (
            ResponseTemplate::new(200).set_body_raw("plans: starter, pro", "application/json"),
            "not JSON",
        ),
    ];
    for (answer, what) in cases {
        let (_server, plans) = plans_answering(answer).await;
        let error = plans.unwrap_err();
        let Error::Api {
            status, message, ..
        } = &error
        else {
            panic!("{what}: {error:?}");
        };
        assert_eq!(*status, 200, "{what}");
        let message = message.as_deref().unwrap_or_default();
        assert!(
            message.contains("not the list of subscription plans") && message.contains(what),
            "{what}: {message}"
        );
        assert!(!error.may_have_started_work(), "{what}");
        assert_eq!(error.attempts(), 1, "{what}");
    }
}

#[tokio::test]
async fn an_answer_over_256_kib_is_not_read_past_the_cap() {
    let mut body = String::from(r#"{"data":[{"name":"Big","features":[""#);
    body.push_str(&"x".repeat(300 * 1024));
    body.push_str(r#""]}]}"#);
    let (_server, plans) =
        plans_answering(ResponseTemplate::new(200).set_body_raw(body, "application/json")).await;
    let error = plans.unwrap_err();
    assert!(
        matches!(error, Error::Decode { what, .. } if what == "subscription plans"),
        "{error:?}"
    );
    assert!(error.to_string().contains("subscription plans"), "{error}");
}

#[tokio::test]
async fn a_refused_token_is_the_same_error_as_for_any_call() {
    let (_server, plans) = plans_answering(unauthorized()).await;
    let error = plans.unwrap_err();
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
}

#[tokio::test]
async fn the_offline_laracopilot_serves_its_sample_plans_and_scripted_ones() {
    let server = laracopilot_mock::MockServer::start();
    let credits = server.credits();
    let plans = bounded(server.client().subscription_plans()).await.unwrap();
    assert!(!plans.is_empty());
    for plan in &plans {
        assert!(plan.name.is_some() && plan.slug.is_some(), "{plan:?}");
        assert!(plan.credits_per_month.is_some(), "{plan:?}");
    }
    let orders: Vec<_> = plans.iter().map(|p| p.sort_order).collect();
    let mut sorted = orders.clone();
    sorted.sort();
    assert_eq!(orders, sorted, "in display order");
    assert_eq!(server.credits(), credits, "no credits spent");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");

    let scripted = laracopilot_mock::MockServer::builder()
        .subscription_plans(vec![serde_json::json!({
            "id": 9, "name": "Custom", "slug": "custom", "is_custom": true, "credits_per_dollar": 40
        })])
        .start()
        .unwrap();
    let plans = bounded(scripted.client().subscription_plans())
        .await
        .unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].name.as_deref(), Some("Custom"));
    assert_eq!(plans[0].is_custom, Some(true));
    assert_eq!(plans[0].credits_per_dollar, Some(40.0));
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_client_reads_the_plans_too() {
    let server = laracopilot_mock::MockServer::start();
    let client = laracopilot::blocking::Client::from_async(server.client()).unwrap();
    let plans = client.subscription_plans().unwrap();
    assert!(!plans.is_empty());
}
