//! What the dashboard shows about a token: name, created date, expiry, status.

use std::fmt;
use std::time::{Duration, SystemTime};

const DAY: u64 = 24 * 60 * 60;

/// The expiry chosen when the token was created in the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expiration {
    /// Expires 30 days after creation.
    Days30,
    /// Expires 60 days after creation.
    Days60,
    /// Expires 90 days after creation.
    Days90,
    /// Never expires (it can still be revoked).
    Never,
}

impl Expiration {
    /// How long a token lives after its creation; `None` for [`Expiration::Never`].
    pub fn lifetime(self) -> Option<Duration> {
        let days = match self {
            Expiration::Days30 => 30,
            Expiration::Days60 => 60,
            Expiration::Days90 => 90,
            Expiration::Never => return None,
        };
        Some(Duration::from_secs(days * DAY))
    }
}

impl fmt::Display for Expiration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Expiration::Days30 => "30 days",
            Expiration::Days60 => "60 days",
            Expiration::Days90 => "90 days",
            Expiration::Never => "never",
        })
    }
}

/// A token's status, as the dashboard shows it (it may gain a value, such as a
/// revoked one, should the dashboard show it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenStatus {
    /// Not expired (it may still have been revoked: only the server knows).
    Active,
    /// Past its expiry date.
    Expired,
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenStatus::Active => "Active",
            TokenStatus::Expired => "Expired",
        })
    }
}

/// What the dashboard shows about a token (Settings -> API Tokens), minus the masked
/// value, which [`Token::masked`](crate::Token::masked) gives.
///
/// The expiry is `created` plus 30, 60 or 90 days, to the second. The dashboard shows
/// dates, not times: give the creation time as precisely as you know it, and expect
/// the server's own cut-off to differ by up to a day if it rounds.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use laracopilot::tokens::{Expiration, TokenInfo, TokenStatus};
///
/// let created = SystemTime::now() - Duration::from_secs(25 * 86_400);
/// let info = TokenInfo::new("Production", created, Expiration::Days30);
/// assert_eq!(info.status(), TokenStatus::Active);
/// assert!(info.expires_within(Duration::from_secs(7 * 86_400)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenInfo {
    name: String,
    created: SystemTime,
    expiration: Expiration,
}

impl TokenInfo {
    /// A token named `name`, created at `created`, with the expiry chosen then.
    pub fn new(name: impl Into<String>, created: SystemTime, expiration: Expiration) -> Self {
        TokenInfo {
            name: name.into(),
            created,
            expiration,
        }
    }

    /// The token's name ("Production", "CI Pipeline", ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the token was created.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// The expiry chosen at creation.
    pub fn expiration(&self) -> Expiration {
        self.expiration
    }

    /// When the token expires; `None` if it never does.
    pub fn expiry_time(&self) -> Option<SystemTime> {
        // An overflow needs a creation date hundreds of billions of years ahead: no
        // such token expires within any time we can represent.
        self.created.checked_add(self.expiration.lifetime()?)
    }

    /// The time left at `now`: `None` if the token never expires, zero once expired.
    pub fn time_left_at(&self, now: SystemTime) -> Option<Duration> {
        let expires_at = self.expiry_time()?;
        Some(expires_at.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// The status at `now`: [`TokenStatus::Expired`] from the expiry instant on.
    pub fn status_at(&self, now: SystemTime) -> TokenStatus {
        match self.time_left_at(now) {
            Some(left) if left.is_zero() => TokenStatus::Expired,
            _ => TokenStatus::Active,
        }
    }

    /// The status now.
    pub fn status(&self) -> TokenStatus {
        self.status_at(SystemTime::now())
    }

    /// Whether the token will have expired `within` from `now` (an expired token
    /// does).
    pub fn expires_within_at(&self, within: Duration, now: SystemTime) -> bool {
        self.time_left_at(now).is_some_and(|left| left <= within)
    }

    /// Whether the token will have expired `within` from now (an expired token does).
    pub fn expires_within(&self, within: Duration) -> bool {
        self.expires_within_at(within, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * DAY)
    }

    #[test]
    fn each_expiration_adds_its_days_to_the_creation_time() {
        let created = SystemTime::UNIX_EPOCH + days(1000);
        for (expiration, n) in [
            (Expiration::Days30, 30),
            (Expiration::Days60, 60),
            (Expiration::Days90, 90),
        ] {
            let info = TokenInfo::new("t", created, expiration);
            assert_eq!(info.expiry_time(), Some(created + days(n)));
        }
        assert_eq!(
            TokenInfo::new("t", created, Expiration::Never).expiry_time(),
            None
        );
    }

    #[test]
    fn status_turns_expired_at_the_expiry_instant() {
        let created = SystemTime::UNIX_EPOCH + days(1000);
        let info = TokenInfo::new("t", created, Expiration::Days30);
        let expiry = created + days(30);
        assert_eq!(
            info.status_at(expiry - Duration::from_secs(1)),
            TokenStatus::Active
        );
        assert_eq!(info.status_at(expiry), TokenStatus::Expired);
        assert_eq!(info.status_at(expiry + days(400)), TokenStatus::Expired);
        assert_eq!(info.time_left_at(expiry + days(1)), Some(Duration::ZERO));
        assert_eq!(info.time_left_at(created), Some(days(30)));
    }

    #[test]
    fn expires_within_compares_the_time_left_with_the_window() {
        let created = SystemTime::UNIX_EPOCH + days(1000);
        let info = TokenInfo::new("t", created, Expiration::Days60);
        let now = created + days(50);
        assert!(info.expires_within_at(days(10), now));
        assert!(!info.expires_within_at(days(9), now));
        assert!(info.expires_within_at(Duration::ZERO, created + days(61)));
        let never = TokenInfo::new("t", created, Expiration::Never);
        assert!(!never.expires_within_at(days(100_000), now));
        assert_eq!(never.status_at(now + days(100_000)), TokenStatus::Active);
    }

    #[test]
    fn dashboard_words_are_displayed() {
        assert_eq!(TokenStatus::Active.to_string(), "Active");
        assert_eq!(TokenStatus::Expired.to_string(), "Expired");
        assert_eq!(Expiration::Days90.to_string(), "90 days");
        assert_eq!(Expiration::Never.to_string(), "never");
    }
}
