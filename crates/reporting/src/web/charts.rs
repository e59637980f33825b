//! Charts rendered on the server as inline SVG: nothing is loaded from outside the service and
//! the page needs no script. Suppressed values are drawn as hatched stubs labelled `< k`.

use crate::privacy::Cell;

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const PATTERN: &str = r##"<defs><pattern id="hatch" width="6" height="6" patternTransform="rotate(45)" patternUnits="userSpaceOnUse"><rect width="6" height="6" fill="#eef0f3"/><line x1="0" y1="0" x2="0" y2="6" stroke="#b8bec8" stroke-width="3"/></pattern></defs>"##;

/// One bar: a label, its value (None when suppressed) and the text shown at its end.
#[derive(Debug, Clone)]
pub struct Bar {
    /// The category.
    pub label: String,
    /// The length (None: suppressed).
    pub value: Option<f64>,
    /// The text beside the bar.
    pub text: String,
    /// A second, outlined bar behind it (e.g. licensed seats).
    pub reference: Option<f64>,
}

/// A bar for a count cell.
pub fn cell_bar(label: &str, cell: Cell, text: String) -> Bar {
    Bar {
        label: label.to_owned(),
        value: cell.value().map(|v| v as f64),
        text,
        reference: None,
    }
}

/// Horizontal bars, one per row, scaled to the largest value (or reference).
pub fn bars(title: &str, rows: &[Bar]) -> String {
    let width = 640.0;
    let label_width = 190.0;
    let text_width = 175.0;
    let row_height = 26.0;
    let top = 8.0;
    let height = top + row_height * rows.len().max(1) as f64 + 8.0;
    let max = rows
        .iter()
        .flat_map(|r| [r.value, r.reference])
        .flatten()
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let span = width - label_width - text_width;
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">{PATTERN}"#,
        escape(title)
    );
    if rows.is_empty() {
        svg.push_str(
            r##"<text x="10" y="22" fill="#6b7280" font-size="13">no data for this period</text>"##,
        );
    }
    for (index, row) in rows.iter().enumerate() {
        let y = top + row_height * index as f64;
        svg.push_str(&format!(
            r##"<text x="{}" y="{}" text-anchor="end" font-size="13" fill="#1f2937">{}</text>"##,
            label_width - 8.0,
            y + 17.0,
            escape(&truncate(&row.label, 26))
        ));
        let (bar_width, fill, class) = match row.value {
            Some(value) if row.reference.is_some_and(|r| value > r) => {
                ((value / max * span).max(1.5), "#ea580c", "bar")
            }
            Some(value) => ((value / max * span).max(1.5), "#2563eb", "bar"),
            None => (24.0, "url(#hatch)", "bar suppressed"),
        };
        svg.push_str(&format!(
            r##"<rect class="{class}" x="{label_width}" y="{}" width="{bar_width:.1}" height="18" rx="2" fill="{fill}"><title>{}: {}</title></rect>"##,
            y + 3.0,
            escape(&row.label),
            escape(&row.text)
        ));
        let mut text_x = label_width + bar_width + 6.0;
        if let Some(reference) = row.reference {
            let reference_width = (reference / max * span).max(1.0);
            svg.push_str(&format!(
                r##"<rect class="reference" x="{label_width}" y="{}" width="{reference_width:.1}" height="18" fill="none" stroke="#111827" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
                y + 3.0
            ));
            text_x = text_x.max(label_width + reference_width + 6.0);
        }
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{}" font-size="13" fill="#374151">{}</text>"##,
            text_x,
            y + 17.0,
            escape(&row.text)
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// One point of a column chart.
#[derive(Debug, Clone)]
pub struct Column {
    /// The x label (shown for some points).
    pub label: String,
    /// The height (None: suppressed).
    pub value: Option<f64>,
    /// The tooltip text.
    pub text: String,
}

/// Vertical columns over time (daily, weekly or monthly active users).
pub fn columns(title: &str, points: &[Column], label_every: usize) -> String {
    let width = 640.0;
    let height = 220.0;
    let left = 44.0;
    let bottom = 28.0;
    let top = 12.0;
    let plot_height = height - bottom - top;
    let max = points
        .iter()
        .filter_map(|p| p.value)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let nice_max = nice_step(max / 4.0) * 4.0;
    let slot = (width - left - 8.0) / points.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">{PATTERN}"#,
        escape(title)
    );
    for step in 0..=4 {
        let value = nice_max * f64::from(step) / 4.0;
        let y = top + plot_height - plot_height * f64::from(step) / 4.0;
        svg.push_str(&format!(
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="#6b7280">{}</text>"##,
            width - 8.0,
            left - 6.0,
            y + 4.0,
            crate::privacy::group_digits(value.round() as u64)
        ));
    }
    for (index, point) in points.iter().enumerate() {
        let x = left + slot * index as f64 + slot * 0.15;
        let bar_width = (slot * 0.7).max(1.0);
        match point.value {
            Some(value) => {
                let bar_height =
                    (value / nice_max * plot_height).max(if value > 0.0 { 1.5 } else { 0.0 });
                svg.push_str(&format!(
                    r##"<rect class="bar" x="{x:.1}" y="{:.1}" width="{bar_width:.1}" height="{bar_height:.1}" fill="#2563eb"><title>{}: {}</title></rect>"##,
                    top + plot_height - bar_height,
                    escape(&point.label),
                    escape(&point.text)
                ));
            }
            None => {
                svg.push_str(&format!(
                    r##"<rect class="bar suppressed" x="{x:.1}" y="{:.1}" width="{bar_width:.1}" height="10" fill="url(#hatch)"><title>{}: {}</title></rect>"##,
                    top + plot_height - 10.0,
                    escape(&point.label),
                    escape(&point.text)
                ));
            }
        }
        if index % label_every.max(1) == 0 {
            svg.push_str(&format!(
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11" fill="#6b7280">{}</text>"##,
                x + bar_width / 2.0,
                height - 10.0,
                escape(&point.label)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A whole axis step of 1, 2 or 5 times a power of ten, at least `value`.
fn nice_step(value: f64) -> f64 {
    let value = value.max(1.0);
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|step| value <= *step)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
fn nice_ceiling(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    for factor in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if value <= factor * magnitude {
            return factor * magnitude;
        }
    }
    10.0 * magnitude
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_suppressed_bars_are_hatched() {
        let svg = bars(
            "t",
            &[
                Bar {
                    label: "<script>".to_owned(),
                    value: Some(3.0),
                    text: "3".to_owned(),
                    reference: None,
                },
                Bar {
                    label: "b".to_owned(),
                    value: None,
                    text: "< 5".to_owned(),
                    reference: Some(10.0),
                },
            ],
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("class=\"bar suppressed\"").count(), 1);
        assert!(svg.contains("&lt; 5"));
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(40.0), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_step(40.0 / 4.0), 10.0);
        assert_eq!(nice_step(34.0 / 4.0), 10.0);
        assert_eq!(nice_step(0.1), 1.0);
        assert_eq!(nice_step(2.1), 5.0);
    }
}

/// One span of a timeline: a label and its first and last day (`YYYY-MM-DD`).
#[derive(Debug, Clone)]
pub struct Span {
    /// The row label.
    pub label: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
}

fn day_number(date: &str) -> Option<i64> {
    let parts: Vec<&str> = date.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return None;
    };
    let month = time::Month::try_from(month.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    Some(i64::from(date.to_julian_day()))
}

/// Spans over a shared date axis (which allowlist digests appear in stored data, and when).
pub fn timeline(title: &str, spans: &[Span]) -> String {
    let width = 640.0;
    let label_width = 150.0;
    let row_height = 28.0;
    let height = 30.0 + row_height * spans.len().max(1) as f64;
    let days: Vec<(i64, i64)> = spans
        .iter()
        .map(|s| {
            (
                day_number(&s.from).unwrap_or(0),
                day_number(&s.to).unwrap_or(0),
            )
        })
        .collect();
    let start = days.iter().map(|d| d.0).min().unwrap_or(0);
    let end = days.iter().map(|d| d.1).max().unwrap_or(0).max(start);
    let span = (end - start + 1) as f64;
    let plot = width - label_width - 12.0;
    let mut svg = format!(
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" xmlns="http://www.w3.org/2000/svg">"#,
        escape(title)
    );
    if spans.is_empty() {
        svg.push_str(
            r##"<text x="10" y="22" fill="#6b7280" font-size="13">no stored data</text>"##,
        );
    }
    for (index, (spanned, (from, to))) in spans.iter().zip(&days).enumerate() {
        let y = 6.0 + row_height * index as f64;
        let x = label_width + (from - start) as f64 / span * plot;
        let w = ((to - from + 1) as f64 / span * plot).max(3.0);
        svg.push_str(&format!(
            r##"<text x="{}" y="{}" text-anchor="end" font-size="12" fill="#1f2937">{}</text><rect class="bar" x="{x:.1}" y="{}" width="{w:.1}" height="18" rx="3" fill="#059669"><title>{}: {} – {}</title></rect>"##,
            label_width - 8.0,
            y + 14.0,
            escape(&truncate(&spanned.label, 20)),
            y + 1.0,
            escape(&spanned.label),
            escape(&spanned.from),
            escape(&spanned.to)
        ));
    }
    let axis_y = height - 8.0;
    if let (Some(first), Some(last)) = (
        spans.iter().map(|s| s.from.as_str()).min(),
        spans.iter().map(|s| s.to.as_str()).max(),
    ) {
        svg.push_str(&format!(
            r##"<text x="{label_width}" y="{axis_y}" font-size="11" fill="#6b7280">{}</text><text x="{}" y="{axis_y}" text-anchor="end" font-size="11" fill="#6b7280">{}</text>"##,
            escape(first),
            width - 12.0,
            escape(last)
        ));
    }
    svg.push_str("</svg>");
    svg
}
