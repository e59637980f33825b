//! How client-chosen keys may appear in logs, counters and reports: keys are data too (one could
//! be an e-mail address or a name), so the gateway (dropped-field counters, rejection details)
//! and the processor (dead-letter reasons) render them by one rule.

/// Whether a client-chosen key may appear in counters and reports as it is.
///
/// Only short identifier-like keys are shown; anything else is reported as `*`.
pub fn is_reportable_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'$'))
        && !key
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'-')
}

/// Appends `key` to a dotted path as it may be reported.
pub fn push_reportable_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(if is_reportable_key(key) { key } else { "*" });
}

/// A dotted field path (an allowlist path, or one a producer wrote) as it may be reported: each
/// segment as [`push_reportable_key`] renders it.
pub fn reportable_path(path: &str) -> String {
    let mut reported = String::with_capacity(path.len().min(128));
    for segment in path.split('.') {
        push_reportable_key(&mut reported, segment);
    }
    reported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_identifier_segments_and_mask_the_rest() {
        assert_eq!(reportable_path("properties.feature"), "properties.feature");
        assert_eq!(
            reportable_path("traits.jane@example.com"),
            "traits.*.com",
            "each dotted segment on its own"
        );
        assert_eq!(reportable_path("properties.Jane Doe"), "properties.*");
        assert_eq!(reportable_path("properties.4111-1111"), "properties.*");
        assert_eq!(reportable_path(""), "*");
        assert_eq!(reportable_path(&"k".repeat(65)), "*");
    }
}
