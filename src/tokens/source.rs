//! The client's view of its provider: local expiry, the expiry warning, and one
//! shared refresh for requests rejected together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{TokenInfo, TokenProvider, TokenStatus};
use crate::{Error, Result, Token};

/// The caller's hook for a token that expires soon.
pub(crate) type ExpiryHook = Arc<dyn Fn(&TokenInfo) + Send + Sync + 'static>;

/// When to warn about a token that expires soon, and how.
#[derive(Clone)]
pub(crate) struct ExpiryOptions {
    /// Warn when the token expires within this long.
    pub(crate) within: Duration,
    pub(crate) hook: Option<ExpiryHook>,
}

/// The warning window when no hook sets one: a week. Only the `tracing` warning uses
/// it.
const DEFAULT_WARNING_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl Default for ExpiryOptions {
    fn default() -> Self {
        ExpiryOptions {
            within: DEFAULT_WARNING_WINDOW,
            hook: None,
        }
    }
}

/// A token handed to one request, with the source's bookkeeping: how many refreshes
/// had completed when it was handed out. A rejected lease with an older count was
/// replaced since, and the request uses the replacement instead of refreshing again.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    pub(crate) token: Token,
    generation: u64,
}

/// What the transport asks for a token and for a refresh after a 401.
pub(crate) struct TokenSource {
    provider: Arc<dyn TokenProvider>,
    expiry: ExpiryOptions,
    /// How many refreshes have completed (see [`Lease`]).
    generation: AtomicU64,
    /// Held for the whole of a refresh (single flight); holds the result of the last
    /// one (`None` when it failed).
    refreshed: tokio::sync::Mutex<Option<Lease>>,
    /// The last token the expiry warning fired for (once per token).
    warned: Mutex<Option<Token>>,
}

impl TokenSource {
    pub(crate) fn new(provider: Arc<dyn TokenProvider>, expiry: ExpiryOptions) -> Self {
        TokenSource {
            provider,
            expiry,
            generation: AtomicU64::new(0),
            refreshed: tokio::sync::Mutex::new(None),
            warned: Mutex::new(None),
        }
    }

    /// The token for the next request.
    ///
    /// A token known to be expired is not returned: the provider is asked for a newer
    /// one (as after a 401), and without one this fails with
    /// `Error::TokenExpired { locally: true }` (whose source says why the provider
    /// failed, when it did).
    pub(crate) async fn current(&self) -> Result<Lease> {
        // Read before asking the provider: a refresh completing in between then counts
        // as newer than this token.
        let generation = self.generation.load(Ordering::Acquire);
        let lease = Lease {
            token: self.provider.token().await.map_err(Error::from_provider)?,
            generation,
        };
        let now = SystemTime::now();
        self.watch(&lease.token, now);
        if !is_expired(&lease.token, now) {
            return Ok(lease);
        }
        match self.refresh_once(&lease).await {
            Ok(fresh) if !fresh.token.same_as(&lease.token) && !is_expired(&fresh.token, now) => {
                self.watch(&fresh.token, now);
                Ok(fresh)
            }
            Ok(_) => Err(Error::token_expired_locally(None)),
            Err(error) => Err(Error::token_expired_locally(Some(Box::new(error)))),
        }
    }

    /// A lease to retry with after `rejected` got a 401. The same token means there
    /// is no newer one (the transport then reports the 401).
    pub(crate) async fn refresh_after_401(&self, rejected: &Lease) -> Result<Lease> {
        let fresh = self.refresh_once(rejected).await?;
        let now = SystemTime::now();
        if is_expired(&fresh.token, now) {
            return Err(Error::token_expired_locally(None));
        }
        self.watch(&fresh.token, now);
        Ok(fresh)
    }

    /// Refreshes the provider, unless a refresh completed since `rejected` was handed
    /// out: then its result is shared. Never two refreshes at a time.
    async fn refresh_once(&self, rejected: &Lease) -> Result<Lease> {
        let mut refreshed = self.refreshed.lock().await;
        let generation = self.generation.load(Ordering::Acquire);
        if rejected.generation != generation {
            // Replaced while this request was in flight (or waiting for the lock).
            return Ok(refreshed.clone().unwrap_or_else(|| rejected.clone()));
        }
        let outcome = self
            .provider
            .refresh(&rejected.token)
            .await
            .map_err(Error::from_provider)
            .map(|token| Lease {
                token,
                generation: generation + 1,
            });
        *refreshed = outcome.as_ref().ok().cloned();
        self.generation.store(generation + 1, Ordering::Release);
        match &outcome {
            Ok(fresh) if fresh.token.same_as(&rejected.token) => tracing::debug!(
                token = %rejected.token.masked(),
                "the token provider has no newer API token"
            ),
            Ok(fresh) => tracing::info!(
                old = %rejected.token.masked(),
                new = %fresh.token.masked(),
                "refreshed the API token"
            ),
            Err(error) => tracing::warn!(%error, "refreshing the API token failed"),
        }
        outcome
    }

    /// Fires the expiry warning (hook and `tracing`) once per token that expires
    /// within the window, including one already expired.
    fn watch(&self, token: &Token, now: SystemTime) {
        let Some(info) = token.info() else { return };
        if !info.expires_within_at(self.expiry.within, now) {
            return;
        }
        {
            let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
            if warned.as_ref().is_some_and(|w| w.same_as(token)) {
                return;
            }
            *warned = Some(token.clone());
        }
        {
            // Rounded up: "1" means within a day.
            let days_left = info
                .time_left_at(now)
                .map(|left| left.as_secs().div_ceil(86_400));
            tracing::warn!(
                token = %token.masked(),
                name = info.name(),
                days_left,
                status = %info.status_at(now),
                "the API token expires soon; create a new one in the LaraCopilot dashboard"
            );
        }
        if let Some(hook) = &self.expiry.hook {
            hook(info);
        }
    }
}

fn is_expired(token: &Token, now: SystemTime) -> bool {
    token
        .info()
        .is_some_and(|info| info.status_at(now) == TokenStatus::Expired)
}
