//! The subscription plans (`GET /subscription-plans`), read as leniently as the
//! events: a field of an unexpected type is `None`, unknown fields (the Stripe ids
//! the sample still shows, say) stay in the plan's raw JSON.

use std::fmt;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::lenient::{self, Fields};

/// One subscription plan of LaraCopilot, as `GET /subscription-plans` describes it
/// ([`Client::subscription_plans`](crate::Client::subscription_plans)).
///
/// Every documented field is optional: one the answer lacks, or gives with another
/// type than documented, is `None`. Numbers given as strings (`"29.00"`) are read as
/// numbers; `price` and the timestamps are kept as the text the server sent. The
/// whole plan as received is [`raw_json`](SubscriptionPlan::raw_json), for fields
/// this version does not name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SubscriptionPlan {
    /// The plan's id (a number or a string, kept as text).
    pub id: Option<String>,
    /// The plan's name, e.g. `"Pro"`.
    pub name: Option<String>,
    /// Its slug, e.g. `"pro"`.
    pub slug: Option<String>,
    /// Its price as the server wrote it (`"29.00"`, or a number's digits).
    pub price: Option<String>,
    /// The price as the dashboard shows it, e.g. `"$29/month"`.
    pub price_display: Option<String>,
    /// Credits granted each month.
    pub credits_per_month: Option<u64>,
    /// Credits a dollar buys: the one place the API states credit units.
    pub credits_per_dollar: Option<f64>,
    /// How many projects the plan allows.
    pub max_projects: Option<u64>,
    /// How many team seats the plan allows.
    pub max_team_seats: Option<u64>,
    /// The plan's features as listed (strings; other entries are left out).
    pub features: Vec<String>,
    /// Whether the plan is offered.
    pub is_active: Option<bool>,
    /// Whether the plan is highlighted.
    pub is_featured: Option<bool>,
    /// Whether the plan is a custom one.
    pub is_custom: Option<bool>,
    /// Its place in the display order.
    pub sort_order: Option<i64>,
    /// When it was created, as the server wrote it.
    pub created_at: Option<String>,
    /// When it was last updated, as the server wrote it.
    pub updated_at: Option<String>,
    #[serde(skip)]
    raw: String,
}

impl SubscriptionPlan {
    /// The plan exactly as received (fields this version does not name included),
    /// the token masked should the server echo it.
    pub fn raw_json(&self) -> &str {
        &self.raw
    }

    /// Applies `redact` to every text that came from the server.
    pub(crate) fn redact_with(&mut self, redact: impl Fn(&mut String)) {
        redact(&mut self.raw);
        let texts = [
            &mut self.id,
            &mut self.name,
            &mut self.slug,
            &mut self.price,
            &mut self.price_display,
            &mut self.created_at,
            &mut self.updated_at,
        ];
        for text in texts.into_iter().flatten() {
            redact(text);
        }
        self.features.iter_mut().for_each(redact);
    }
}

/// Why an answer is not the list of plans.
#[derive(Debug)]
pub(crate) enum NotPlans {
    /// Not JSON at all (the cause).
    Json(serde_json::Error),
    /// JSON, but not `{"data": [...]}` (what it is instead).
    Shape(String),
}

impl fmt::Display for NotPlans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotPlans::Json(error) => write!(f, "not JSON: {error}"),
            NotPlans::Shape(why) => f.write_str(why),
        }
    }
}

const KEYS: [&str; 16] = [
    "id",
    "name",
    "slug",
    "price",
    "price_display",
    "credits_per_month",
    "credits_per_dollar",
    "max_projects",
    "max_team_seats",
    "features",
    "is_active",
    "is_featured",
    "is_custom",
    "sort_order",
    "created_at",
    "updated_at",
];

/// The plans of an answer `{"data": [plan, ...]}`, in the answer's order.
pub(crate) fn decode_plans(text: &str) -> Result<Vec<SubscriptionPlan>, NotPlans> {
    let fields = Fields::read(text, &["data"]).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            NotPlans::Shape("the answer is not a JSON object".to_owned())
        }
        _ => NotPlans::Json(e),
    })?;
    let data = fields
        .get(0)
        .ok_or_else(|| NotPlans::Shape("the answer has no \"data\"".to_owned()))?;
    let items: Vec<&RawValue> = serde_json::from_str(data.get())
        .map_err(|_| NotPlans::Shape("\"data\" is not a list".to_owned()))?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            plan(item).ok_or_else(|| {
                NotPlans::Shape(format!("plan {index} of \"data\" is not a JSON object"))
            })
        })
        .collect()
}

/// One plan, or `None` when `raw` is not an object.
fn plan(raw: &RawValue) -> Option<SubscriptionPlan> {
    let fields = Fields::read(raw.get(), &KEYS).ok()?;
    let text = |index| fields.get(index).and_then(lenient::text);
    let number = |index| fields.get(index).and_then(lenient::number);
    // A whole number within range; a fraction or an overflow is none.
    let count = |index| {
        number(index)
            .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n < 1.8e19)
            .map(|n| n as u64)
    };
    let order = |index| {
        number(index)
            .filter(|n| n.fract() == 0.0 && n.abs() < 9.0e18)
            .map(|n| n as i64)
    };
    let flag = |index| fields.get(index).and_then(flag);
    let id = fields.get(0).and_then(lenient::id).map(|id| id.to_string());
    let price = fields.get(3).and_then(|raw| {
        lenient::text(raw).or_else(|| lenient::number(raw).map(|_| raw.get().to_owned()))
    });
    Some(SubscriptionPlan {
        id,
        name: text(1),
        slug: text(2),
        price,
        price_display: text(4),
        credits_per_month: count(5),
        credits_per_dollar: number(6),
        max_projects: count(7),
        max_team_seats: count(8),
        features: fields.get(9).map(features).unwrap_or_default(),
        is_active: flag(10),
        is_featured: flag(11),
        is_custom: flag(12),
        sort_order: order(13),
        created_at: text(14),
        updated_at: text(15),
        raw: raw.get().to_owned(),
    })
}

/// `true`/`false`, or the `1`/`0` PHP often writes for them.
fn flag(raw: &RawValue) -> Option<bool> {
    match raw.get() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The strings of a list (other entries left out); nothing for anything else.
fn features(raw: &RawValue) -> Vec<String> {
    serde_json::from_str::<Vec<&RawValue>>(raw.get())
        .map(|items| items.into_iter().filter_map(lenient::text).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented sample: Stripe fields included, though the page says they are
    /// hidden.
    const SAMPLE: &str = r#"{"data":[{"id":1,"name":"Starter","slug":"starter","price":"19.00","stripe_price_id":"price_123","stripe_product_id":"prod_123","credits_per_month":500,"credits_per_dollar":25,"max_projects":3,"max_team_seats":1,"features":["500 credits","3 projects"],"is_active":true,"is_featured":false,"is_custom":false,"sort_order":1,"created_at":"2025-01-01T00:00:00.000000Z","updated_at":"2025-01-01T00:00:00.000000Z","price_display":"$19/month"},{"id":"2","name":"Pro","slug":"pro","price":49,"credits_per_month":"1500","credits_per_dollar":30.5,"max_projects":null,"max_team_seats":5,"features":["Priority",7,{"x":1}],"is_active":1,"is_featured":true,"is_custom":0,"sort_order":2,"price_display":"$49/month"}]}"#;

    #[test]
    fn the_documented_sample_reads_with_and_without_the_stripe_fields() {
        let plans = decode_plans(SAMPLE).unwrap();
        assert_eq!(plans.len(), 2);
        let starter = &plans[0];
        assert_eq!(starter.id.as_deref(), Some("1"));
        assert_eq!(starter.name.as_deref(), Some("Starter"));
        assert_eq!(starter.price.as_deref(), Some("19.00"));
        assert_eq!(starter.credits_per_month, Some(500));
        assert_eq!(starter.credits_per_dollar, Some(25.0));
        assert_eq!(starter.max_projects, Some(3));
        assert_eq!(starter.features, ["500 credits", "3 projects"]);
        assert_eq!(starter.is_active, Some(true));
        assert_eq!(starter.price_display.as_deref(), Some("$19/month"));
        assert!(starter.raw_json().contains("stripe_price_id"));
        let pro = &plans[1];
        assert_eq!(pro.id.as_deref(), Some("2"));
        assert_eq!(pro.price.as_deref(), Some("49"));
        assert_eq!(pro.credits_per_month, Some(1500), "a number as a string");
        assert_eq!(pro.max_projects, None, "null is none");
        assert_eq!(
            pro.features,
            ["Priority"],
            "entries that are not text are left out"
        );
        assert_eq!(pro.is_active, Some(true), "PHP's 1");
        assert_eq!(pro.is_custom, Some(false), "PHP's 0");
        assert!(!pro.raw_json().contains("stripe"));
    }

    #[test]
    fn odd_fields_are_none_and_odd_answers_are_refused() {
        let odd = r#"{"data":[{"id":{"a":1},"name":5,"price":true,"credits_per_dollar":"lots","features":"all","is_active":"yes","sort_order":1e999,"max_projects":2.5,"max_team_seats":-1,"credits_per_month":1e30},{}],"links":{},"meta":{}}"#;
        let plans = decode_plans(odd).unwrap();
        assert_eq!(plans.len(), 2);
        let plan = &plans[0];
        assert_eq!(
            (plan.id.clone(), plan.name.clone(), plan.price.clone()),
            (None, None, None)
        );
        assert_eq!(plan.credits_per_dollar, None);
        assert!(plan.features.is_empty());
        assert_eq!(plan.is_active, None);
        assert_eq!(plan.sort_order, None, "out of range");
        assert_eq!(plan.max_projects, None, "a fraction is no count");
        assert_eq!(plan.max_team_seats, None, "a negative count is none");
        assert_eq!(plan.credits_per_month, None, "an overflow is none");
        assert_eq!(decode_plans(r#"{"data":[]}"#).unwrap(), []);
        for (answer, says) in [
            ("<html>502 Bad Gateway</html>", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"plans":[]}"#, "no \"data\""),
            (r#"{"data":{"id":1}}"#, "not a list"),
            (r#"{"data":[{"id":1},"pro"]}"#, "plan 1"),
            (r#"{"data":[]} trailing"#, "not JSON"),
        ] {
            let why = decode_plans(answer).unwrap_err().to_string();
            assert!(why.contains(says), "{answer}: {why}");
        }
    }

    #[test]
    fn a_plan_serializes_its_named_fields() {
        let plans = decode_plans(SAMPLE).unwrap();
        let json = serde_json::to_value(&plans[0]).unwrap();
        assert_eq!(json["slug"], "starter");
        assert_eq!(json["credits_per_dollar"], 25.0);
        assert!(json.get("raw").is_none() && json.get("stripe_price_id").is_none());
    }
}
