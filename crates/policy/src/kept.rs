//! What a kept value must be to leave: its type, and the reviewed constraints on it (a range for
//! numbers, a list of values or a format for text).

use crate::TextFormat;

/// The type a kept value must have; anything else is dropped as `type_mismatch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// A JSON string.
    String,
    /// A JSON number without fraction that fits in an i64.
    Integer,
    /// Any finite JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
}

impl ValueType {
    pub(crate) fn from_name(name: &str) -> Option<ValueType> {
        match name {
            "string" => Some(ValueType::String),
            "integer" => Some(ValueType::Integer),
            "number" => Some(ValueType::Number),
            "boolean" => Some(ValueType::Boolean),
            _ => None,
        }
    }

    /// The name used in `allowlist.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
        }
    }
}

/// The inclusive range a kept number must lie in (`min`, `max` in `allowlist.yaml`); a value
/// outside it is dropped as `out_of_range`, so a count or duration cannot carry an identifier
/// such as a phone or account number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// The least value kept, if there is one.
    pub min: Option<i64>,
    /// The greatest value kept, if there is one.
    pub max: Option<i64>,
}

impl Bounds {
    /// No range: every value of the type is kept.
    pub const NONE: Bounds = Bounds {
        min: None,
        max: None,
    };

    /// Whether an integer value lies in the range.
    #[inline]
    pub fn contains_integer(&self, value: i64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }

    /// Whether a fractional value lies in the range.
    #[inline]
    pub fn contains_number(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min as f64)
            && self.max.is_none_or(|max| value <= max as f64)
    }

    /// Whether every value in `self` also lies in `outer`.
    pub fn within(&self, outer: &Bounds) -> bool {
        let min_ok = match (outer.min, self.min) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(outer), Some(inner)) => inner >= outer,
        };
        let max_ok = match (outer.max, self.max) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(outer), Some(inner)) => inner <= outer,
        };
        min_ok && max_ok
    }

    /// How the range reads after the type (` from 0 to 86400000`), empty without one.
    pub(crate) fn describe(&self) -> String {
        match (self.min, self.max) {
            (None, None) => String::new(),
            (Some(min), None) => format!(" from {min}"),
            (None, Some(max)) => format!(" up to {max}"),
            (Some(min), Some(max)) => format!(" from {min} to {max}"),
        }
    }
}

/// Lists up to this long are scanned; longer ones binary-searched.
const SHORT_LIST: usize = 16;

/// The only texts a kept string field may hold (`values` in `allowlist.yaml`), so a categorical
/// field such as a feature name cannot carry free text; without a list, any string that passes
/// the value checks. A text outside the list is dropped as `value_not_allowlisted`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Values(Option<Box<[Box<str>]>>);

impl Values {
    /// No list: any string is kept.
    pub const ANY: Values = Values(None);

    /// Exactly these texts, sorted (so a long list costs a binary search per value, and two
    /// lists in another order are the same list).
    pub fn listed(texts: impl IntoIterator<Item = String>) -> Values {
        let mut listed: Vec<Box<str>> = texts.into_iter().map(String::into_boxed_str).collect();
        listed.sort_unstable();
        listed.dedup();
        Values(Some(listed.into_boxed_slice()))
    }

    /// Whether `text` may leave.
    #[inline]
    pub fn admits(&self, text: &str) -> bool {
        match &self.0 {
            None => true,
            // Short lists (the usual: products, platforms, SDKs): lengths first, then the bytes
            // in two fixed-size loads, without a call per comparison.
            Some(listed) if listed.len() <= SHORT_LIST => listed
                .iter()
                .any(|value| crate::short_eq(value.as_bytes(), text.as_bytes())),
            Some(listed) => listed
                .binary_search_by(|value| value.as_ref().cmp(text))
                .is_ok(),
        }
    }

    /// The listed texts, if there is a list.
    pub fn listed_texts(&self) -> Option<&[Box<str>]> {
        self.0.as_deref()
    }

    /// Whether every text `self` admits, `outer` admits too.
    pub fn within(&self, outer: &Values) -> bool {
        match (&self.0, &outer.0) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(inner), Some(_)) => inner.iter().all(|value| outer.admits(value)),
        }
    }

    /// How the list reads after the type (` one of ["search", "share"]`), empty without one.
    fn describe(&self) -> String {
        match &self.0 {
            None => String::new(),
            Some(listed) => format!(" one of {listed:?}"),
        }
    }
}

/// What a kept field's value must be to leave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kept {
    /// Its JSON type.
    pub value_type: ValueType,
    /// For numbers: the range it must lie in.
    pub bounds: Bounds,
    /// For strings: the texts it must be one of.
    pub values: Values,
    /// For strings: the shape it must have, where values cannot be listed (versions, locales).
    pub format: Option<TextFormat>,
}

impl Kept {
    /// Any value of `value_type`.
    pub fn any(value_type: ValueType) -> Kept {
        Kept {
            value_type,
            bounds: Bounds::NONE,
            values: Values::ANY,
            format: None,
        }
    }

    /// Whether a text may leave as far as the allowlist's constraints go (the value checks for
    /// e-mail and IP addresses come after).
    #[inline]
    pub fn admits_text(&self, text: &str) -> bool {
        self.values.admits(text) && self.format.is_none_or(|format| format.admits(text))
    }

    /// How it reads in a review (`keep integer from 0 to 100`).
    pub fn describe(&self) -> String {
        let format = match self.format {
            Some(format) => format!(" in format {}", format.as_str()),
            None => String::new(),
        };
        format!(
            "keep {}{}{}{format}",
            self.value_type.as_str(),
            self.bounds.describe(),
            self.values.describe()
        )
    }

    /// Whether everything `self` keeps, `outer` keeps too.
    pub fn within(&self, outer: &Kept) -> bool {
        let format_within = match (self.format, outer.format) {
            (_, None) => true,
            (Some(inner), Some(outer)) => inner == outer,
            // A list within a format: every listed text has the shape.
            (None, Some(outer)) => self
                .values
                .listed_texts()
                .is_some_and(|texts| texts.iter().all(|text| outer.admits(text))),
        };
        self.value_type == outer.value_type
            && self.bounds.within(&outer.bounds)
            && self.values.within(&outer.values)
            && format_within
    }
}
