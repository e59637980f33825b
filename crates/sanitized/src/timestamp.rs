//! The sanitized messages' one timestamp form, `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds):
//! the gateway copies client timestamps already in it, the processor reads it without a general
//! RFC 3339 parser.

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

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in milliseconds since the Unix epoch; `None` for any other shape
/// or an invalid date or time of day.
pub fn parse_canonical(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
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
    Some(days_from_civil(year, month, day) * 86_400_000 + seconds * 1_000 + i64::from(millis))
}

#[cfg(test)]
mod tests {
    use super::parse_canonical;

    #[test]
    fn reads_the_canonical_form_and_refuses_impossible_dates() {
        assert_eq!(parse_canonical("1970-01-01T00:00:00.001Z"), Some(1));
        assert_eq!(
            parse_canonical("2024-02-29T00:00:00.000Z"),
            Some(1_709_164_800_000)
        );
        for refused in [
            "2026-02-29T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-11-22T24:00:00.000Z",
            "2026-11-22T10:00:00.000+00:00",
            "2026-11-22T10:00:00Z",
        ] {
            assert_eq!(parse_canonical(refused), None, "{refused}");
        }
    }
}
