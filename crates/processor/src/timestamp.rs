//! RFC 3339 date-times to milliseconds and UTC days, with the contract's fast path for the form
//! the gateway writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`) and the `time` crate for every other valid form.

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

/// Milliseconds since the Unix epoch of an RFC 3339 date-time; `None` when it is not one.
pub fn parse_ms(text: &str) -> Option<i64> {
    if let Some(ms) = veil_sanitized::timestamp::parse_canonical(text) {
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
                veil_sanitized::timestamp::parse_canonical(text),
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
