//! Budgets: at most so many generate and follow-up calls started per window of time,
//! per scope, counted in the journal's database so that every host sharing it shares
//! the count.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A window of time a [`Budget`] counts in. Windows are named by the time they
/// start (UTC, aligned on the minute, the hour or the day since the Unix epoch), so
/// a new window simply begins: nothing runs at midnight to reset a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BudgetWindow {
    /// A calendar minute (mostly for tests).
    Minute,
    /// A calendar hour, UTC.
    Hour,
    /// A calendar day, UTC.
    Day,
}

impl BudgetWindow {
    /// The window's length.
    pub fn length(self) -> Duration {
        Duration::from_secs(self.seconds())
    }

    fn seconds(self) -> u64 {
        match self {
            BudgetWindow::Minute => 60,
            BudgetWindow::Hour => 3_600,
            BudgetWindow::Day => 86_400,
        }
    }

    /// Its name in snake_case: `minute`, `hour`, `day` (what the database stores
    /// and `--budget COUNT/WINDOW` reads).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Minute => "minute",
            BudgetWindow::Hour => "hour",
            BudgetWindow::Day => "day",
        }
    }

    /// The window named `name` (`minute`, `hour`, `day`; ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        [BudgetWindow::Minute, BudgetWindow::Hour, BudgetWindow::Day]
            .into_iter()
            .find(|w| w.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The start of the window that holds `at`, in milliseconds since the Unix epoch
    /// (a time before the epoch belongs to the first window).
    pub(crate) fn start_millis(self, at_millis: u64) -> u64 {
        let length = self.seconds() * 1_000;
        at_millis - at_millis % length
    }

    /// The end of the window that starts at `start_millis`.
    pub(crate) fn end_millis(self, start_millis: u64) -> u64 {
        start_millis.saturating_add(self.seconds() * 1_000)
    }
}

impl fmt::Display for BudgetWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most `limit` generate and follow-up calls started per [`BudgetWindow`], per
/// scope: set with [`ClientBuilder::budget`](crate::ClientBuilder::budget), counted in
/// the journal (every host sharing its database shares the count), reserved in the
/// same transaction as the call's record, before anything is sent. A call over
/// budget fails with [`Error::BudgetExhausted`](crate::Error::BudgetExhausted) and
/// sends nothing. A call counts once admitted, whatever happens to it then.
///
/// ```
/// use laracopilot::Budget;
/// let hourly = Budget::per_hour(10);
/// assert_eq!(hourly.to_string(), "10/hour");
/// assert_eq!("200/day".parse::<Budget>(), Ok(Budget::per_day(200)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Budget {
    limit: u64,
    window: BudgetWindow,
}

impl Budget {
    /// At most `limit` calls per `window`.
    pub fn new(limit: u64, window: BudgetWindow) -> Self {
        Budget { limit, window }
    }

    /// At most `limit` calls per minute.
    pub fn per_minute(limit: u64) -> Self {
        Budget::new(limit, BudgetWindow::Minute)
    }

    /// At most `limit` calls per hour.
    pub fn per_hour(limit: u64) -> Self {
        Budget::new(limit, BudgetWindow::Hour)
    }

    /// At most `limit` calls per day.
    pub fn per_day(limit: u64) -> Self {
        Budget::new(limit, BudgetWindow::Day)
    }

    /// How many calls a window allows.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window.
    pub fn window(&self) -> BudgetWindow {
        self.window
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.window)
    }
}

/// Why a text is not a [`Budget`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a budget is COUNT/WINDOW, e.g. 10/hour or 200/day (WINDOW: minute, hour or day)")]
pub struct ParseBudgetError(());

impl std::str::FromStr for Budget {
    type Err = ParseBudgetError;

    /// `COUNT/WINDOW`: `10/hour`, `200/day`, `5/minute`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, window) = text.split_once('/').ok_or(ParseBudgetError(()))?;
        let limit = count.trim().parse().map_err(|_| ParseBudgetError(()))?;
        let window = BudgetWindow::from_name(window).ok_or(ParseBudgetError(()))?;
        Ok(Budget::new(limit, window))
    }
}

/// Milliseconds since the Unix epoch (0 before it; saturating far after it).
pub(crate) fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` after the Unix epoch (the epoch itself when out of range).
pub(crate) fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_named_by_their_start() {
        let at = 1_764_618_266_123; // 2025-12-01T19:44:26.123Z
        assert_eq!(BudgetWindow::Minute.start_millis(at), 1_764_618_240_000);
        assert_eq!(BudgetWindow::Hour.start_millis(at), 1_764_615_600_000);
        assert_eq!(BudgetWindow::Day.start_millis(at), 1_764_547_200_000);
        let start = BudgetWindow::Hour.start_millis(at);
        assert_eq!(BudgetWindow::Hour.end_millis(start), start + 3_600_000);
        assert_eq!(BudgetWindow::Day.end_millis(u64::MAX), u64::MAX);
    }

    #[test]
    fn budgets_parse_their_own_spelling_and_nothing_else() {
        for budget in [
            Budget::per_minute(5),
            Budget::per_hour(10),
            Budget::per_day(0),
        ] {
            assert_eq!(budget.to_string().parse::<Budget>(), Ok(budget));
        }
        assert_eq!(" 7 / HOUR ".parse::<Budget>(), Ok(Budget::per_hour(7)));
        for bad in [
            "",
            "10",
            "10/",
            "/hour",
            "-1/hour",
            "10/week",
            "1.5/day",
            "10/hour/x",
        ] {
            assert!(bad.parse::<Budget>().is_err(), "{bad:?}");
        }
    }
}
