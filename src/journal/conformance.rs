//! The rules every journal engine follows (see `store.rs`), as one suite run against
//! each engine: memory here, SQLite and PostgreSQL beside their engines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::store::{Admission, Intent, Store};
use super::{JournalOptions, Kind, Settlement};
use crate::{Budget, LocalId, ProjectId};

/// Opens instances of one engine over one set of data, as several processes or
/// hosts sharing a database would.
pub(crate) trait Fixture: Sync {
    /// A new instance over the fixture's data.
    fn open(
        &self,
        options: JournalOptions,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
}

/// Runs every rule against `fixture`; each rule uses scopes of its own, so one set of
/// data serves them all.
pub(crate) async fn run_all(fixture: &dyn Fixture) {
    admitted_entries_read_back_whole(fixture).await;
    writes_need_the_current_fence_and_settle_once(fixture).await;
    a_released_entry_is_unfinished_and_frees_its_slot(fixture).await;
    a_flush_answers_once_the_releases_before_it_are_written(fixture).await;
    the_cap_counts_every_instance_of_a_scope(fixture).await;
    a_closed_instance_leaves_its_entries_unfinished_and_its_slots_free(fixture).await;
    exactly_one_of_many_claims_wins_and_fences_out_the_old_owner(fixture).await;
    the_breaker_is_shared_by_the_scope_and_only_extended(fixture).await;
    budgets_count_per_scope_and_window(fixture).await;
    an_idempotency_key_admits_once_per_scope(fixture).await;
    a_key_whose_call_started_nothing_is_given_up(fixture).await;
    concurrent_admissions_never_exceed_the_cap_nor_share_a_key(fixture).await;
    pruning_forgets_only_settled_entries(fixture).await;
    an_instance_name_takes_over_its_earlier_open(fixture).await;
    an_admission_whose_caller_gave_up_holds_nothing(fixture).await;
}

fn options() -> JournalOptions {
    JournalOptions::new().lease(Duration::from_secs(30))
}

/// A call's intent in `scope`, as the client builds one (no guard).
pub(super) fn intent(scope: &str) -> Intent {
    Intent {
        scope: scope.to_owned(),
        kind: Kind::Generate,
        project_id: None,
        prompt: "Build a task management app".to_owned(),
        token_mask: "****9f8e".to_owned(),
        labels: vec![("tenant".to_owned(), "a".to_owned())],
        idempotency_key: None,
        max_concurrent: None,
        budgets: Vec::new(),
    }
}

/// A scope no other rule (nor an earlier run against the same database) uses.
fn scope(rule: &str) -> String {
    format!("{rule}-{}", LocalId::new())
}

/// Admits `intent`, which must be admitted.
pub(super) async fn admit(store: &dyn Store, intent: Intent) -> (LocalId, u64) {
    match store.admit(intent).await.unwrap() {
        Admission::Admitted { entry, fence } => (entry, fence),
        other => panic!("not admitted: {other:?}"),
    }
}

async fn unfinished_ids(store: &dyn Store) -> Vec<LocalId> {
    let mut ids: Vec<LocalId> = store
        .unfinished()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.local_id)
        .collect();
    ids.sort();
    ids
}

async fn admitted_entries_read_back_whole(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let scope = scope("read-back");
    let mut follow_up = intent(&scope);
    follow_up.kind = Kind::FollowUp;
    follow_up.project_id = Some(ProjectId::from("abc123"));
    follow_up.idempotency_key = Some("job-17".to_owned());
    follow_up.labels = vec![
        ("tenant".to_owned(), "a".to_owned()),
        ("job".to_owned(), "17 ünïcødé \"quoted\"".to_owned()),
    ];
    let before = SystemTime::now() - Duration::from_secs(1);
    let (id, fence) = admit(&*store, follow_up.clone()).await;
    let (entry, driven) = store.entry(&id).await.unwrap().expect("the entry exists");
    assert!(driven, "its owner is alive and drives it");
    assert_eq!(entry.local_id, id);
    assert_eq!(entry.kind, Kind::FollowUp);
    assert_eq!(entry.scope, scope);
    assert_eq!(entry.project_id, follow_up.project_id);
    assert_eq!(entry.prompt, follow_up.prompt);
    assert_eq!(entry.token, "****9f8e");
    assert_eq!(entry.labels, follow_up.labels);
    assert_eq!(entry.idempotency_key.as_deref(), Some("job-17"));
    assert!(!entry.accepted);
    assert_eq!(entry.settlement, None);
    assert_eq!(entry.owner, store.instance());
    assert!(entry.start_time >= before, "{:?}", entry.start_time);
    // Driven: not unfinished.
    assert!(!unfinished_ids(&*store).await.contains(&id));
    assert!(store.accepted(&id, fence).await.unwrap());
    let known = ProjectId::from("p9");
    assert!(store.project_known(&id, fence, &known).await.unwrap());
    let entry = store.entry(&id).await.unwrap().unwrap().0;
    assert!(entry.accepted);
    assert_eq!(entry.project_id, Some(known));
    assert!(store
        .entry(&LocalId::from("lcj-none"))
        .await
        .unwrap()
        .is_none());
}

async fn writes_need_the_current_fence_and_settle_once(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let (id, fence) = admit(&*store, intent(&scope("fence"))).await;
    let stale = fence.wrapping_add(1_000);
    assert!(!store.accepted(&id, stale).await.unwrap());
    assert!(!store.settle(&id, stale, Settlement::Unknown).await.unwrap());
    let success = Settlement::succeeded(Some("https://p1.laracopilot.com".into()));
    assert!(store.settle(&id, fence, success.clone()).await.unwrap());
    // Settled once: later writes change nothing.
    assert!(!store.settle(&id, fence, Settlement::Unknown).await.unwrap());
    assert!(!store.accepted(&id, fence).await.unwrap());
    let entry = store.entry(&id).await.unwrap().unwrap().0;
    assert_eq!(entry.settlement, Some(success));
    assert!(!entry.accepted);
    let failed = Settlement::failed("credits_exhausted", true);
    let (other, fence) = admit(&*store, intent(&scope("fence"))).await;
    assert!(store.settle(&other, fence, failed.clone()).await.unwrap());
    assert_eq!(
        store.entry(&other).await.unwrap().unwrap().0.settlement,
        Some(failed)
    );
    assert!(!unfinished_ids(&*store).await.contains(&id));
}

async fn a_released_entry_is_unfinished_and_frees_its_slot(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let scope = scope("release");
    let mut capped = intent(&scope);
    capped.max_concurrent = Some(1);
    let (id, fence) = admit(&*store, capped.clone()).await;
    assert!(matches!(
        store.admit(capped.clone()).await.unwrap(),
        Admission::Busy { running: 1 }
    ));
    store.release(&id, fence);
    // A release may land after the call returns: wait for it, bounded.
    let mut freed = false;
    for _ in 0..200 {
        if unfinished_ids(&*store).await.contains(&id) {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(freed, "a released entry is listed as unfinished");
    let (second, fence2) = admit(&*store, capped).await;
    assert!(store
        .settle(&second, fence2, Settlement::Unknown)
        .await
        .unwrap());
    // A stale release changes nothing.
    store.release(&second, fence2);
    assert!(!unfinished_ids(&*store).await.contains(&second));
}

async fn a_flush_answers_once_the_releases_before_it_are_written(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let other = fixture.open(options()).await;
    let scope = scope("flush");
    let mut capped = intent(&scope);
    capped.max_concurrent = Some(1);
    for _ in 0..3 {
        let (id, fence) = admit(&*store, capped.clone()).await;
        store.release(&id, fence);
        store.flush().await.unwrap();
        // Written, for every instance: no waiting.
        assert!(unfinished_ids(&*other).await.contains(&id));
    }
    // And the slot it held is free at once, for another instance too.
    let (id, fence) = admit(&*other, capped).await;
    assert!(other.settle(&id, fence, Settlement::Unknown).await.unwrap());
    other.flush().await.unwrap();
}

async fn the_cap_counts_every_instance_of_a_scope(fixture: &dyn Fixture) {
    let a = fixture.open(options()).await;
    let b = fixture.open(options()).await;
    let scope = scope("cap");
    let mut capped = intent(&scope);
    capped.max_concurrent = Some(3);
    let (first, fence) = admit(&*a, capped.clone()).await;
    admit(&*b, capped.clone()).await;
    admit(&*a, capped.clone()).await;
    for store in [&a, &b] {
        assert!(matches!(
            store.admit(capped.clone()).await.unwrap(),
            Admission::Busy { running: 3 }
        ));
    }
    // Another scope, or a call without a cap, is not held back.
    let mut elsewhere = intent(&self::scope("cap-other"));
    elsewhere.max_concurrent = Some(1);
    admit(&*b, elsewhere).await;
    admit(&*b, intent(&scope)).await;
    // A settled entry gives its slot back.
    assert!(a.settle(&first, fence, Settlement::Unknown).await.unwrap());
    admit(&*b, capped.clone()).await;
    assert!(matches!(
        b.admit(capped).await.unwrap(),
        Admission::Busy { .. }
    ));
}

async fn a_closed_instance_leaves_its_entries_unfinished_and_its_slots_free(fixture: &dyn Fixture) {
    let survivor = fixture.open(options()).await;
    let scope = scope("closed");
    let mut capped = intent(&scope);
    capped.max_concurrent = Some(1);
    let (id, _) = {
        let doomed = fixture.open(options()).await;
        admit(&*doomed, capped.clone()).await
    };
    // The instance is gone: its entry is unfinished and its slot free (an engine may
    // end the lease in the background: bounded wait).
    let mut listed = false;
    for _ in 0..300 {
        if unfinished_ids(&*survivor).await.contains(&id) {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(listed, "the entry of a closed instance is unfinished");
    admit(&*survivor, capped).await;
}

async fn exactly_one_of_many_claims_wins_and_fences_out_the_old_owner(fixture: &dyn Fixture) {
    let owner = fixture.open(options()).await;
    let (id, old_fence) = admit(&*owner, intent(&scope("claim"))).await;
    // Driven by a live owner: nobody may claim it.
    let other = fixture.open(options()).await;
    assert_eq!(other.claim(&id).await.unwrap(), None);
    owner.release(&id, old_fence);
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(fixture.open(options()).await);
    }
    // Wait for the release to land.
    for _ in 0..200 {
        if unfinished_ids(&*other).await.contains(&id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let claims = futures::future::join_all(instances.iter().map(|store| store.claim(&id))).await;
    let winners: Vec<_> = claims
        .into_iter()
        .map(|claim| claim.unwrap())
        .zip(&instances)
        .filter_map(|(claim, store)| claim.map(|(entry, fence)| (entry, fence, store)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    let (entry, fence, winner) = &winners[0];
    assert_eq!(entry.local_id, id);
    assert_eq!(entry.owner, winner.instance());
    assert_ne!(*fence, old_fence);
    // Claimed: driven again, so not unfinished, and not claimable twice.
    assert!(!unfinished_ids(&*other).await.contains(&id));
    assert_eq!(other.claim(&id).await.unwrap(), None);
    // The old owner wakes up: fenced out.
    assert!(!owner
        .settle(&id, old_fence, Settlement::Unknown)
        .await
        .unwrap());
    let success = Settlement::succeeded(None);
    assert!(winner.settle(&id, *fence, success.clone()).await.unwrap());
    assert_eq!(
        owner.entry(&id).await.unwrap().unwrap().0.settlement,
        Some(success)
    );
    assert_eq!(
        winner.claim(&id).await.unwrap(),
        None,
        "settled: not claimable"
    );
    assert_eq!(
        winner.claim(&LocalId::from("lcj-none")).await.unwrap(),
        None
    );
}

async fn the_breaker_is_shared_by_the_scope_and_only_extended(fixture: &dyn Fixture) {
    let a = fixture.open(options()).await;
    let b = fixture.open(options()).await;
    let scope = scope("breaker");
    assert_eq!(b.breaker(&scope).await.unwrap(), None);
    a.trip_breaker(&scope, Duration::from_secs(600))
        .await
        .unwrap();
    let until = b
        .breaker(&scope)
        .await
        .unwrap()
        .expect("open for every instance");
    assert!(until > SystemTime::now() + Duration::from_secs(500));
    match b.admit(intent(&scope)).await.unwrap() {
        Admission::BreakerOpen { until: said } => assert_eq!(said, until),
        other => panic!("{other:?}"),
    }
    // A shorter trip does not shorten it; another scope is not affected.
    a.trip_breaker(&scope, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(b.breaker(&scope).await.unwrap(), Some(until));
    admit(&*b, intent(&self::scope("breaker-other"))).await;
    // Even `Duration::MAX` is a time the engine can hold.
    a.trip_breaker(&scope, Duration::MAX).await.unwrap();
    assert!(b.breaker(&scope).await.unwrap().is_some());
    b.reset_breaker(&scope).await.unwrap();
    assert_eq!(a.breaker(&scope).await.unwrap(), None);
    admit(&*a, intent(&scope)).await;
}

async fn budgets_count_per_scope_and_window(fixture: &dyn Fixture) {
    let a = fixture.open(options()).await;
    let b = fixture.open(options()).await;
    let scope = scope("budget");
    let mut budgeted = intent(&scope);
    budgeted.budgets = vec![Budget::per_day(3), Budget::per_hour(2)];
    admit(&*a, budgeted.clone()).await;
    admit(&*b, budgeted.clone()).await;
    match a.admit(budgeted.clone()).await.unwrap() {
        Admission::OverBudget { budget, reset_time } => {
            assert_eq!(budget, Budget::per_hour(2));
            let now = SystemTime::now();
            assert!(reset_time > now && reset_time <= now + Duration::from_secs(3_600));
        }
        other => panic!("{other:?}"),
    }
    // A refusal reserves nothing: with the hourly budget raised, the daily one
    // still counts two.
    budgeted.budgets = vec![Budget::per_day(3), Budget::per_hour(10)];
    admit(&*b, budgeted.clone()).await;
    assert!(matches!(
        b.admit(budgeted.clone()).await.unwrap(),
        Admission::OverBudget { budget, .. } if budget == Budget::per_day(3)
    ));
    // Counted per scope.
    let mut elsewhere = budgeted;
    elsewhere.scope = self::scope("budget-other");
    admit(&*a, elsewhere).await;
}

async fn an_idempotency_key_admits_once_per_scope(fixture: &dyn Fixture) {
    let a = fixture.open(options()).await;
    let b = fixture.open(options()).await;
    let scope = scope("key");
    let mut keyed = intent(&scope);
    keyed.idempotency_key = Some("order-42".to_owned());
    let (first, fence) = admit(&*a, keyed.clone()).await;
    for store in [&a, &b] {
        match store.admit(keyed.clone()).await.unwrap() {
            Admission::Duplicate(entry) => assert_eq!(entry.local_id, first),
            other => panic!("{other:?}"),
        }
    }
    // Settled with success: still the key's.
    let success = Settlement::succeeded(Some("https://p1.laracopilot.com".into()));
    assert!(a.settle(&first, fence, success.clone()).await.unwrap());
    match b.admit(keyed.clone()).await.unwrap() {
        Admission::Duplicate(entry) => assert_eq!(entry.settlement, Some(success)),
        other => panic!("{other:?}"),
    }
    // The same key in another scope is another key.
    keyed.scope = self::scope("key-other");
    admit(&*b, keyed).await;
}

async fn a_key_whose_call_started_nothing_is_given_up(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let scope = scope("key-free");
    let mut keyed = intent(&scope);
    keyed.idempotency_key = Some("retry-me".to_owned());
    let (first, fence) = admit(&*store, keyed.clone()).await;
    let refused = Settlement::failed("rate_limited", false);
    assert!(store.settle(&first, fence, refused).await.unwrap());
    let (second, fence) = admit(&*store, keyed.clone()).await;
    assert_ne!(first, second);
    assert_eq!(
        store
            .entry(&first)
            .await
            .unwrap()
            .unwrap()
            .0
            .idempotency_key,
        None
    );
    // A failure that may have started work keeps the key.
    let started = Settlement::failed("incomplete", true);
    assert!(store.settle(&second, fence, started).await.unwrap());
    assert!(matches!(
        store.admit(keyed).await.unwrap(),
        Admission::Duplicate(entry) if entry.local_id == second
    ));
}

async fn concurrent_admissions_never_exceed_the_cap_nor_share_a_key(fixture: &dyn Fixture) {
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(fixture.open(options()).await);
    }
    let scope = scope("race");
    let mut capped = intent(&scope);
    capped.max_concurrent = Some(5);
    let admissions =
        futures::future::join_all((0..24).map(|i| instances[i % 4].admit(capped.clone()))).await;
    let admitted = admissions
        .iter()
        .filter(|a| matches!(a, Ok(Admission::Admitted { .. })))
        .count();
    assert_eq!(admitted, 5, "{admissions:?}");
    let mut keyed = intent(&self::scope("race-key"));
    keyed.idempotency_key = Some("once".to_owned());
    let admissions =
        futures::future::join_all((0..24).map(|i| instances[i % 4].admit(keyed.clone()))).await;
    let admitted = admissions
        .iter()
        .filter(|a| matches!(a, Ok(Admission::Admitted { .. })))
        .count();
    assert_eq!(admitted, 1, "{admissions:?}");
    assert!(admissions
        .iter()
        .all(|a| matches!(a, Ok(Admission::Admitted { .. } | Admission::Duplicate(_)))));
}

async fn pruning_forgets_only_settled_entries(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let scope = scope("prune");
    let (done, fence) = admit(&*store, intent(&scope)).await;
    let (open, _) = admit(&*store, intent(&scope)).await;
    assert!(store
        .settle(&done, fence, Settlement::Unknown)
        .await
        .unwrap());
    let after = SystemTime::now() + Duration::from_secs(1);
    assert!(store.prune(after).await.unwrap() >= 1);
    assert!(store.entry(&done).await.unwrap().is_none());
    assert!(store.entry(&open).await.unwrap().is_some());
}

async fn an_instance_name_takes_over_its_earlier_open(fixture: &dyn Fixture) {
    let name = format!("worker-{}", LocalId::new());
    let first = fixture.open(options().instance(name.clone())).await;
    assert_eq!(first.instance(), name);
    let (id, _) = admit(&*first, intent(&scope("named"))).await;
    assert!(!unfinished_ids(&*first).await.contains(&id));
    // The process restarts under the same name: what it left is unfinished at once.
    let second = fixture.open(options().instance(name.clone())).await;
    assert!(unfinished_ids(&*second).await.contains(&id));
    let (entry, _) = second.claim(&id).await.unwrap().expect("claimable at once");
    assert_eq!(entry.owner, name);
    drop(first);
}

async fn an_admission_whose_caller_gave_up_holds_nothing(fixture: &dyn Fixture) {
    let store = fixture.open(options()).await;
    let scope = scope("gave-up");
    let mut capped = intent(&scope);
    capped.max_concurrent = Some(1);
    capped.idempotency_key = Some("given-up".to_owned());
    for _ in 0..10 {
        // Polled once (an engine with a thread has sent its command), then dropped.
        let mut admit = store.admit(capped.clone());
        match poll_once(&mut admit).await {
            // Answered at once: the caller knows of it, and gives it up properly.
            Some(Ok(Admission::Admitted { entry, fence })) => {
                let never_sent = Settlement::failed("cancelled", false);
                assert!(store.settle(&entry, fence, never_sent).await.unwrap());
            }
            Some(answer) => {
                assert!(
                    matches!(answer, Ok(Admission::Busy { .. } | Admission::Duplicate(_))),
                    "{answer:?}"
                );
            }
            None => drop(admit),
        }
    }
    // Every slot and the key come back (an engine settles in the background).
    let mut admitted = None;
    for _ in 0..300 {
        if let Admission::Admitted { entry, fence } = store.admit(capped.clone()).await.unwrap() {
            admitted = Some((entry, fence));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (entry, fence) = admitted.expect("the slot and the key were given back");
    let unfinished = store.unfinished().await.unwrap();
    assert!(
        unfinished.iter().all(|e| e.scope != scope),
        "{unfinished:?}"
    );
    assert!(store
        .settle(&entry, fence, Settlement::Unknown)
        .await
        .unwrap());
}

/// Polls `future` once: its output when it is ready at once.
async fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match Pin::new(&mut *future).poll(cx) {
            std::task::Poll::Ready(value) => Some(value),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

struct Memory(super::MemoryJournal);

impl Fixture for Memory {
    fn open(
        &self,
        options: JournalOptions,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        let journal = self.0.open_another(options);
        Box::pin(async move { super::store_of(&journal) })
    }
}

#[tokio::test]
async fn the_memory_journal_follows_every_rule() {
    run_all(&Memory(super::MemoryJournal::new())).await;
}
