//! `laracopilot plans`: LaraCopilot's subscription plans (spends no credits).

use std::process::ExitCode;

use laracopilot::SubscriptionPlan;
use serde_json::Value;

use crate::connect::{self, Talk};
use crate::failure::{self, Failure};
use crate::out;

/// Prints LaraCopilot's subscription plans (spends no credits): what each costs, the
/// credits it grants and what a dollar buys, and its project and seat limits.
///
/// With --json, one line: {"schema_version": 1, "plans": [...]}, each plan with the
/// fields the API documents (null when the answer lacks one). Offline (no
/// LARACOPILOT_API_TOKEN), the embedded LaraCopilot's three sample plans.
#[derive(Debug, clap::Args)]
#[command(after_help = failure::after_help(&[failure::ENVIRONMENT, failure::EXIT_STATUS]))]
pub struct Args {
    /// The flags shared by the subcommands that talk to LaraCopilot.
    #[command(flatten)]
    pub talk: Talk,
}

/// Runs `plans`.
///
/// # Errors
///
/// Why the call failed (an answer that is not the list of plans, say), or a closed
/// stdout.
pub async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let connection = connect::connect(&args.talk, None, &connect::GuardFlags::default())?;
    let plans = connection.client.subscription_plans().await?;
    if args.talk.json {
        let plans = serde_json::to_value(&plans).unwrap_or(Value::Null);
        out::json(
            &serde_json::json!({ "schema_version": crate::json::SCHEMA_VERSION, "plans": plans }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if plans.is_empty() {
        out::line("No plans")?;
    }
    for plan in &plans {
        out::line(&describe(plan))?;
    }
    if connection.offline.is_some() {
        out::line("Offline: the embedded offline LaraCopilot's sample plans")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `Pro ($49/month): 1500 credits a month, 25 credits a dollar, 10 projects, 3 seats`.
fn describe(plan: &SubscriptionPlan) -> String {
    let number = |value: Option<u64>| value.map_or("-".to_owned(), |n| n.to_string());
    let price = plan
        .price_display
        .clone()
        .or_else(|| plan.price.clone())
        .unwrap_or_else(|| "-".to_owned());
    format!(
        "{} ({price}): {} credits a month, {} credits a dollar, {} projects, {} seats",
        plan.name.as_deref().unwrap_or("(unnamed)"),
        number(plan.credits_per_month),
        plan.credits_per_dollar
            .map_or("-".to_owned(), |n| n.to_string()),
        number(plan.max_projects),
        number(plan.max_team_seats),
    )
}
