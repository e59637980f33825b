//! Calendar periods. Reports use fixed calendar units (UTC days, ISO weeks clipped to the month,
//! calendar months), never free date ranges, so overlapping windows cannot be differenced into
//! arbitrary small groups; and baseline tenants' pseudonyms change monthly (their key epoch is
//! the month), so no count crosses a month.

use time::{Date, Month as CalendarMonth};

/// A calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// 1..=12.
    pub month: u8,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: u8 = month.parse().ok()?;
        ((1..=12).contains(&month) && (1970..=9999).contains(&year))
            .then_some(Month { year, month })
    }

    /// The month of `YYYY-MM-DD`.
    pub fn of_date(date: &str) -> Option<Month> {
        Month::parse(date.get(..7)?)
    }

    /// The month before.
    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The first day.
    pub fn first_day(self) -> Date {
        let month = CalendarMonth::try_from(self.month).unwrap_or(CalendarMonth::January);
        Date::from_calendar_date(self.year, month, 1).unwrap_or(Date::MIN)
    }

    /// The last day (also of 9999-12, which has no next month to step back from).
    pub fn last_day(self) -> Date {
        let month = CalendarMonth::try_from(self.month).unwrap_or(CalendarMonth::January);
        let days = month.length(self.year);
        Date::from_calendar_date(self.year, month, days).unwrap_or(Date::MAX)
    }

    /// Every day of the month.
    pub fn days(self) -> Vec<Date> {
        let last = self.last_day();
        let mut out = Vec::with_capacity(31);
        let mut day = Some(self.first_day());
        while let Some(current) = day.filter(|current| *current <= last) {
            out.push(current);
            day = current.next_day();
        }
        out
    }

    /// ISO weeks overlapping the month, clipped to it: (label, first day, last day).
    pub fn weeks(self) -> Vec<(String, Date, Date)> {
        let mut out: Vec<(String, Date, Date)> = Vec::new();
        for day in self.days() {
            let (_, week, _) = day.to_iso_week_date();
            let label = format!("W{week:02}");
            match out.last_mut() {
                Some((current, _, end)) if *current == label => *end = day,
                _ => out.push((label, day, day)),
            }
        }
        out
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// `YYYY-MM-DD`.
pub fn iso(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_cover_their_days() {
        assert_eq!(Month::parse("2026-11").map(|m| m.days().len()), Some(30));
        assert_eq!(Month::parse("2024-02").map(|m| m.days().len()), Some(29));
        assert_eq!(
            Month::parse("2026-01").map(|m| m.previous().to_string()),
            Some("2025-12".to_owned())
        );
        // The last representable month has all its days (no step past the end of the calendar).
        assert_eq!(Month::parse("9999-12").map(|m| m.days().len()), Some(31));
        assert_eq!(Month::parse("9999-12").map(|m| m.weeks().len()), Some(5));
        for bad in ["2026-13", "2026-1", "26-11", "2026-11' OR 1=1", ""] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        let weeks = Month::parse("2026-11").expect("month").weeks();
        assert_eq!(
            weeks.first().map(|w| (iso(w.1), iso(w.2))),
            Some(("2026-11-01".to_owned(), "2026-11-01".to_owned()))
        );
        assert_eq!(
            weeks
                .iter()
                .map(|w| (w.2 - w.1).whole_days() + 1)
                .sum::<i64>(),
            30
        );
    }
}
