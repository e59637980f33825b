//! RFC 3339 date-times to milliseconds and UTC days, with a fast path for the form the gateway
//! writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`) and the `time` crate for every other valid form.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC calendar day as days since 1970-01-01: the `date=` partition of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(pub i32);

const MS_PER_DAY: i64 = 86_400_000;

impl Day {
    /// The UTC day of `ms` since the Unix epoch.
    pub fn of_ms(ms: i64) -> Day {
        Day(i32::try_from(ms.div_euclid(MS_PER_DAY)).unwrap_or(i32::MAX))
    }

    /// `(year, month, day)` of the proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
    pub fn civil(self) -> (i64, u32, u32) {
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }
}

impl std::fmt::Display for Day {
    /// `YYYY-MM-DD`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (year, month, day) = self.civil();
        write!(formatter, "{year:04}-{month:02}-{day:02}")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in milliseconds; `None` for any other shape or an invalid value.
fn parse_canonical(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != 24
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
        || bytes[19] != b'.'
        || bytes[23] != b'Z'
    {
        return None;
    }
    let number = |from: usize, to: usize| {
        bytes[from..to].iter().try_fold(0_u32, |total, byte| {
            byte.is_ascii_digit()
                .then(|| total * 10 + u32::from(byte - b'0'))
        })
    };
    let year = i64::from(number(0, 4)?);
    let (month, day) = (number(5, 7)?, number(8, 10)?);
    let (hour, minute, second, millis) = (
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 23)?,
    );
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 60;
    if !valid {
        return None;
    }
    let seconds = i64::from(hour * 3_600 + minute * 60 + second);
    Some(days_from_civil(year, month, day) * MS_PER_DAY + seconds * 1_000 + i64::from(millis))
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time; `None` when it is not one.
pub fn parse_ms(text: &str) -> Option<i64> {
    if let Some(ms) = parse_canonical(text.as_bytes()) {
        return Some(ms);
    }
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_time_crate(text: &str) -> i64 {
        let at = OffsetDateTime::parse(text, &Rfc3339).expect("rfc 3339");
        i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).expect("fits")
    }

    #[test]
    fn the_fast_path_agrees_with_the_time_crate() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2026-11-22T23:59:59.999Z",
            "2024-02-29T12:00:00.001Z",
            "2000-03-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "2100-12-31T10:11:12.131Z",
        ] {
            assert_eq!(
                parse_canonical(text.as_bytes()),
                Some(by_time_crate(text)),
                "{text}"
            );
        }
    }

    #[test]
    fn other_forms_and_invalid_values() {
        assert_eq!(
            parse_ms("2026-11-22T23:59:59.5+01:00"),
            Some(by_time_crate("2026-11-22T22:59:59.500Z"))
        );
        for invalid in [
            "2026-02-29T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-11-22T24:00:00.000Z",
            "2026-11-2aT10:00:00.000Z",
            "",
        ] {
            assert_eq!(parse_ms(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn days_render_as_their_utc_date() {
        assert_eq!(Day::of_ms(0).to_string(), "1970-01-01");
        assert_eq!(Day::of_ms(-1).to_string(), "1969-12-31");
        let ms = by_time_crate("2026-11-22T22:59:59.500Z");
        assert_eq!(Day::of_ms(ms).to_string(), "2026-11-22");
        assert_eq!(
            Day::of_ms(by_time_crate("2024-02-29T23:00:00Z")).to_string(),
            "2024-02-29"
        );
    }
}
