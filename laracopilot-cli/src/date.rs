//! Calendar dates (`YYYY-MM-DD`, UTC) as day numbers since 1970-01-01: all that
//! `doctor` needs to tell how many days a token has left.

use std::time::SystemTime;

/// A day, counted from 1970-01-01 (day 0).
pub type Day = i64;

/// Today in UTC.
pub fn today() -> Day {
    let secs = match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    secs.div_euclid(86_400)
}

/// The day `YYYY-MM-DD` names (years 1970 to 9999).
///
/// # Errors
///
/// Why `text` is not such a date.
pub fn parse(text: &str) -> Result<Day, String> {
    let wrong = || format!("{text:?} is not a date as YYYY-MM-DD (e.g. 2026-03-01)");
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return Err(wrong());
    };
    let digits = |part: &str, len: usize| -> Result<i64, String> {
        if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(wrong());
        }
        part.parse().map_err(|_| wrong())
    };
    let (year, month, day) = (digits(year, 4)?, digits(month, 2)?, digits(day, 2)?);
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(wrong());
    }
    Ok(days_from_civil(year, month, day))
}

/// `YYYY-MM-DD` for `day`.
pub fn format(day: Day) -> String {
    let (year, month, date) = civil_from_days(day);
    format!("{year:04}-{month:02}-{date:02}")
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> Day {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number (Howard Hinnant's `civil_from_days`).
fn civil_from_days(day: Day) -> (i64, i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let date = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, date)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn dates_count_days_from_1970() {
        assert_eq!(parse("1970-01-01"), Ok(0));
        assert_eq!(parse("1970-01-02"), Ok(1));
        assert_eq!(parse("2000-03-01"), Ok(11_017));
        assert_eq!(
            parse("2024-02-29").unwrap() + 1,
            parse("2024-03-01").unwrap()
        );
        assert_eq!(parse(" 2026-12-31 "), Ok(parse("2027-01-01").unwrap() - 1));
    }

    #[test]
    fn a_day_formats_back_to_its_date() {
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2026-03-01",
            "2100-12-31",
            "9999-12-31",
        ] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
        let now = today();
        assert_eq!(parse(&format(now)), Ok(now));
    }

    #[test]
    fn what_is_not_a_date_is_refused() {
        for text in [
            "",
            "2026",
            "2026-3-1",
            "2026-13-01",
            "2026-02-29",
            "2025-04-31",
            "1969-12-31",
            "2026-01-01T00:00:00Z",
            "+2026-01-01",
            "2026-01-0x",
            "٢٠٢٦-01-01",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
