//! The HTML dashboards: one page per kind of viewer, charts as inline SVG, no script.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};

use super::api::{activity_of, breakdowns_of, license_of, tenant_access};
use super::charts::{Bar, Column, Span, bars, cell_bar, columns, escape, timeline};
use super::{AppState, check_params};
use crate::ReportingError;
use crate::auth::{COOKIE_NAME, Role, Session, presented_token};
use crate::data::period::Month;
use crate::data::{admin, keys, review};
use crate::privacy::{Breakdown, Cell};

type Params = Query<HashMap<String, String>>;

const STYLE: &str = r#"
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#111827;background:#f3f4f6}
header{background:#111827;color:#f9fafb;padding:10px 24px;display:flex;gap:24px;align-items:center}
header strong{font-size:16px}header a{color:#d1d5db;text-decoration:none}header a:hover{color:#fff}
header .who{margin-left:auto;color:#9ca3af;font-size:13px}
main{max-width:1380px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:22px;margin:6px 0 4px}h2{font-size:16px;margin:0 0 8px}
.sub{color:#4b5563;margin:0 0 14px}
.months a,.months span{display:inline-block;padding:2px 9px;margin:0 4px 4px 0;border-radius:12px;background:#e5e7eb;color:#111827;text-decoration:none;font-size:13px}
.months span{background:#2563eb;color:#fff}
.kpis{display:flex;gap:12px;flex-wrap:wrap;margin:10px 0 16px}
.kpi{background:#fff;border-radius:8px;padding:10px 16px;min-width:170px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.kpi b{display:block;font-size:26px}.kpi small{color:#6b7280}
.up{color:#047857}.down{color:#b91c1c}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:14px;margin-bottom:14px}
.card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06);overflow-x:auto}
.card figcaption{color:#6b7280;font-size:12px;margin-top:4px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#f9fafb;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.sup{color:#6b7280;font-style:italic}.over{color:#b91c1c;font-weight:600}
code{font-size:12px;background:#f3f4f6;padding:1px 4px;border-radius:4px;word-break:break-all}
.note{color:#4b5563;font-size:12px;margin-top:14px}
form.login{background:#fff;max-width:420px;margin:60px auto;padding:24px;border-radius:8px}
input,textarea{font:inherit;width:100%;padding:6px;margin:6px 0 10px;border:1px solid #d1d5db;border-radius:6px}
button{font:inherit;background:#2563eb;color:#fff;border:0;border-radius:6px;padding:6px 14px}
.error{color:#b91c1c}
"#;

fn page(title: &str, session: Option<&Session>, body: &str) -> Html<String> {
    let nav = match session.map(|s| &s.role) {
        Some(Role::Tenant(tenant)) => {
            format!(r#"<a href="/tenants/{0}">Adoption</a>"#, escape(tenant))
        }
        Some(Role::Vendor) => {
            r#"<a href="/license">License compliance</a><a href="/sql">SQL</a>"#.to_owned()
        }
        Some(Role::Reviewer) => r#"<a href="/review">Allowlist audit</a>"#.to_owned(),
        None => String::new(),
    };
    let who = session
        .map(|s| {
            format!(
                r#"<span class="who">{} · {} · <a href="/logout">log out</a></span>"#,
                escape(&s.name),
                s.role.name()
            )
        })
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Veil reporting</title><style>{STYLE}</style></head><body><header><strong>Veil reporting</strong>{nav}{who}</header><main>{body}</main></body></html>",
        escape(title)
    ))
}

fn cell_td(cell: Cell) -> String {
    match cell {
        Cell::Shown(_) => format!(r#"<td class="n">{}</td>"#, cell.display()),
        Cell::Suppressed(_) | Cell::Withheld => {
            format!(r#"<td class="n sup">{}</td>"#, escape(&cell.display()))
        }
    }
}

fn percent(share: Option<f64>) -> String {
    share
        .map(|s| format!("{:.0}%", s * 100.0))
        .unwrap_or_else(|| "—".to_owned())
}

fn signed_percent(change: Option<f64>) -> String {
    match change {
        Some(c) if c >= 0.0 => format!(r#"<span class="up">+{:.1}%</span>"#, c * 100.0),
        Some(c) => format!(r#"<span class="down">{:.1}%</span>"#, c * 100.0),
        None => "—".to_owned(),
    }
}

fn month_links(base: &str, months: &[Month], current: Month) -> String {
    let mut out = String::from(r#"<div class="months">"#);
    for month in months {
        if *month == current {
            out.push_str(&format!("<span>{month}</span>"));
        } else {
            out.push_str(&format!(r#"<a href="{base}?month={month}">{month}</a>"#));
        }
    }
    out.push_str("</div>");
    out
}

fn figure(title: &str, api: &str, svg: String, caption: &str) -> String {
    format!(
        r#"<figure class="card" data-api="{}"><h2>{}</h2>{svg}<figcaption>{} · JSON: <a href="{0}">{0}</a></figcaption></figure>"#,
        escape(api),
        escape(title),
        escape(caption)
    )
}

fn breakdown_bars(breakdown: &Breakdown, as_share: bool) -> Vec<Bar> {
    let mut rows: Vec<Bar> = breakdown
        .rows
        .iter()
        .map(|row| {
            let text = if as_share {
                format!("{} · {} users", percent(row.share), row.users.display())
            } else {
                format!(
                    "{} users · {} events",
                    row.users.display(),
                    row.events.display()
                )
            };
            cell_bar(&row.label, row.users, text)
        })
        .collect();
    if let Some(other) = &breakdown.other {
        let label = format!("Other ({} groups)", other.groups);
        let text = if as_share {
            format!("{} · {} users", percent(other.share), other.users.display())
        } else {
            format!(
                "{} users · {} events",
                other.users.display(),
                other.events.display()
            )
        };
        rows.push(cell_bar(&label, other.users, text));
    }
    rows
}

/// `/`: the viewer's dashboard, or the login page.
pub(super) async fn home(State(state): State<AppState>, parts: Parts) -> Response {
    let viewer =
        presented_token(&parts).and_then(|token| state.viewers().authenticate(&token).cloned());
    let target = match viewer.map(|v| v.role) {
        Some(Role::Tenant(tenant)) => format!("/tenants/{tenant}"),
        Some(Role::Vendor) => "/license".to_owned(),
        Some(Role::Reviewer) => "/review".to_owned(),
        None => "/login".to_owned(),
    };
    (StatusCode::SEE_OTHER, [(LOCATION, target)]).into_response()
}

fn login_form(message: &str) -> String {
    format!(
        r#"<form class="login" method="get" action="/login"><h1>Sign in</h1><p class="sub">Paste the viewer token you were given.</p>{message}<input type="password" name="token" autocomplete="off" aria-label="token"><button type="submit">Sign in</button></form>"#
    )
}

/// `/login`: the form, or `?token=` → cookie and redirect.
pub(super) async fn login(State(state): State<AppState>, Query(params): Params) -> Response {
    let Some(token) = params.get("token") else {
        return page("Sign in", None, &login_form("")).into_response();
    };
    let Some(viewer) = state.viewers().authenticate(token) else {
        let body = login_form(r#"<p class="error">That token is not valid.</p>"#);
        return (StatusCode::UNAUTHORIZED, page("Sign in", None, &body)).into_response();
    };
    let target = match &viewer.role {
        Role::Tenant(tenant) => format!("/tenants/{tenant}"),
        Role::Vendor => "/license".to_owned(),
        Role::Reviewer => "/review".to_owned(),
    };
    let secure = if state.inner.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, target), (SET_COOKIE, cookie)],
    )
        .into_response()
}

/// `/logout`: clears the cookie.
pub(super) async fn logout() -> Response {
    let cookie = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, "/login".to_owned()), (SET_COOKIE, cookie)],
    )
        .into_response()
}

/// `/tenants/{tenant}`: the administrator's adoption dashboard.
pub(super) async fn tenant_page(
    session: Session,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Params,
) -> Result<Html<String>, ReportingError> {
    tenant_access(&state, &session, &tenant)?;
    let month = state.month_param(&params, Some(&tenant))?;
    let (activity, current, previous) = tokio::try_join!(
        activity_of(&state, &tenant, month),
        breakdowns_of(&state, &tenant, month, &admin::DIMENSIONS),
        breakdowns_of(&state, &tenant, month.previous(), &["feature"])
    )?;
    let comparison = admin::compare(&current, &previous);
    let k = state.k().0;
    let api = |what: &str| format!("/api/tenants/{tenant}/{what}?month={month}");
    let mut body = format!(
        r#"<h1>Adoption · {}</h1><p class="sub">{month} · distinct pseudonymous users; groups of fewer than {k} users read “&lt; {k}”.</p>"#,
        escape(&tenant)
    );
    body.push_str(&month_links(
        &format!("/tenants/{}", escape(&tenant)),
        &state.months(Some(&tenant)),
        month,
    ));
    // The busiest shown day; days without users read 0 and say nothing of the peak, and when
    // every active day is under k, so is the peak.
    let peak = activity
        .daily
        .iter()
        .filter_map(|d| d.users.value())
        .filter(|users| *users > 0)
        .max();
    let peak = match peak {
        Some(users) => crate::privacy::group_digits(users),
        None if activity.daily.iter().any(|d| d.users.value().is_none()) => {
            escape(&crate::privacy::Cell::Suppressed(k).display())
        }
        None => "—".to_owned(),
    };
    body.push_str(&format!(
        r#"<div class="kpis"><div class="kpi"><small>Monthly active users</small><b id="mau">{}</b><small>{} vs {}</small></div><div class="kpi"><small>Events</small><b>{}</b><small>{} vs {}</small></div><div class="kpi"><small>Peak daily active users</small><b>{}</b><small>highest shown day</small></div><div class="kpi"><small>Previous month MAU</small><b>{}</b><small>{}</small></div></div>"#,
        escape(&comparison.users.display()),
        signed_percent(comparison.users_change),
        comparison.previous,
        escape(&comparison.events.display()),
        signed_percent(comparison.events_change),
        comparison.previous,
        peak,
        escape(&comparison.previous_users.display()),
        comparison.previous,
    ));
    body.push_str(r#"<div class="grid">"#);
    let daily: Vec<Column> = activity
        .daily
        .iter()
        .map(|d| Column {
            label: d.date[8..].to_owned(),
            value: d.users.value().map(|v| v as f64),
            text: format!("{} users", d.users.display()),
        })
        .collect();
    body.push_str(&figure(
        "Daily active users",
        &api("activity"),
        columns("Daily active users", &daily, 3),
        "one bar per UTC day",
    ));
    let weekly: Vec<Column> = activity
        .weekly
        .iter()
        .map(|w| Column {
            label: format!("{} ({}–{})", w.week, &w.from[8..], &w.to[8..]),
            value: w.users.value().map(|v| v as f64),
            text: format!("{} users", w.users.display()),
        })
        .collect();
    body.push_str(&figure(
        "Weekly active users",
        &api("activity"),
        columns("Weekly active users", &weekly, 1),
        "ISO weeks, clipped to the month (pseudonyms change monthly)",
    ));
    let monthly: Vec<Column> = activity
        .monthly
        .iter()
        .map(|m| Column {
            label: m.month.clone(),
            value: m.users.value().map(|v| v as f64),
            text: format!("{} users", m.users.display()),
        })
        .collect();
    body.push_str(&figure(
        "Monthly active users, six months",
        &api("activity"),
        columns("Monthly active users", &monthly, 1),
        "trend up to the selected month",
    ));
    for (dimension, title, as_share) in [
        ("feature", "Feature adoption (share of active users)", true),
        ("event", "Event adoption (share of active users)", true),
        ("product", "Products", false),
        ("version", "App versions", false),
        ("platform", "Platforms", false),
    ] {
        let breakdown = &current.by[dimension];
        body.push_str(&figure(
            title,
            &api("breakdowns"),
            bars(title, &breakdown_bars(breakdown, as_share)),
            "distinct users per group; pooled small groups read Other",
        ));
    }
    let mut table = String::from(
        r#"<table><tr><th>Feature</th><th class="n">This month</th><th class="n">Previous</th><th class="n">Change</th></tr>"#,
    );
    for row in &comparison.features {
        let change = match row.change_points {
            Some(p) if p >= 0.0 => format!(r#"<span class="up">+{p:.1} pp</span>"#),
            Some(p) => format!(r#"<span class="down">{p:.1} pp</span>"#),
            None => "—".to_owned(),
        };
        table.push_str(&format!(
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{change}</td></tr>"#,
            escape(&row.label),
            percent(row.share),
            percent(row.previous_share)
        ));
    }
    table.push_str("</table>");
    body.push_str(&format!(
        r#"<section class="card" data-api="{0}"><h2>Feature adoption against {1}</h2>{table}<p class="note">JSON: <a href="{0}">{0}</a></p></section>"#,
        api("comparison"),
        comparison.previous
    ));
    body.push_str("</div>");
    Ok(page(&format!("Adoption {tenant}"), Some(&session), &body))
}

/// `/license`: the vendor's license-compliance dashboard.
pub(super) async fn license_page(
    session: Session,
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Html<String>, ReportingError> {
    session.require_vendor()?;
    let month = state.month_param(&params, None)?;
    let report = license_of(&state, &[month]).await?;
    let k = state.k().0;
    let mut body = format!(
        r#"<h1>License compliance</h1><p class="sub">{month} · licensed seats against distinct active users per tenant and product; cells under {k} users read “&lt; {k}”. <a href="/api/license.csv">Download CSV (all months)</a></p>"#
    );
    body.push_str(&month_links("/license", &state.months(None), month));
    let mut products: Vec<&str> = report.rows.iter().map(|r| r.product.as_str()).collect();
    products.sort();
    products.dedup();
    body.push_str(r#"<div class="kpis">"#);
    for total in &report.totals {
        body.push_str(&format!(
            r#"<div class="kpi"><small>{}</small><b>{} / {}</b><small>active / seats over shown tenants{}</small></div>"#,
            escape(&total.product),
            crate::privacy::group_digits(total.active_users_of_shown),
            crate::privacy::group_digits(total.seats_of_shown),
            if total.suppressed_rows > 0 { format!(" · {} withheld", total.suppressed_rows) } else { String::new() }
        ));
    }
    body.push_str(r#"</div><div class="grid">"#);
    let api = format!("/api/license?month={month}");
    for product in &products {
        let rows: Vec<Bar> = report
            .rows
            .iter()
            .filter(|r| r.product == *product)
            .map(|r| Bar {
                label: r.tenant.clone(),
                value: r.active_users.value().map(|v| v as f64),
                text: format!("{} of {} seats", r.active_users.display(), r.seats),
                reference: Some(r.seats as f64),
            })
            .collect();
        body.push_str(&figure(
            &format!("{product}: active users against seats"),
            &api,
            bars(product, &rows),
            "bar: active users (orange: more than the seats) · dashed outline: licensed seats",
        ));
    }
    body.push_str("</div>");
    let mut table = String::from(
        r#"<section class="card"><h2>All rows</h2><table><tr><th>Tenant</th><th>Product</th><th class="n">Seats</th><th class="n">Active users</th><th class="n">Utilization</th><th class="n">Over-deployed</th><th class="n">Unused seats</th></tr>"#,
    );
    for row in &report.rows {
        let over = match row.over_deployed {
            Some(0) => "0".to_owned(),
            Some(n) => format!(r#"<span class="over">{n}</span>"#),
            None => "—".to_owned(),
        };
        table.push_str(&format!(
            r#"<tr><td>{}</td><td>{}</td><td class="n">{}</td>{}<td class="n">{}</td><td class="n">{over}</td><td class="n">{}</td></tr>"#,
            escape(&row.tenant),
            escape(&row.product),
            row.seats,
            cell_td(row.active_users),
            percent(row.utilization),
            row.unused_seats.map(|n| n.to_string()).unwrap_or_else(|| "—".to_owned())
        ));
    }
    table.push_str("</table></section>");
    body.push_str(&table);
    Ok(page("License compliance", Some(&session), &body))
}

/// `/review`: the compliance reviewer's allowlist audit.
pub(super) async fn review_page(
    session: Session,
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Html<String>, ReportingError> {
    session.require_reviewer()?;
    check_params(&params, &[])?;
    let view = review::allowlist_view(&state.inner.allowlist);
    let context = state.inner.warehouse.context().await?;
    let digests = review::digests(&state.inner.warehouse, &context, &view.digest).await?;
    let rejections = review::rejections(&state.inner.warehouse, &context).await?;
    let enhanced = review::enhanced_tenants(&state.inner.tenants);
    let epochs = keys::epochs(&state.inner.keystore);
    let mut body = format!(
        r#"<h1>Allowlist audit</h1><p class="sub">Active allowlist digest <code id="digest">{}</code> · {} fields · {} event and view names · types: {}</p><div class="grid">"#,
        escape(&view.digest),
        view.fields.len(),
        view.names.len(),
        escape(&view.kinds.join(", "))
    );
    let mut digest_table = String::from(
        r#"<table><tr><th>Digest</th><th>From</th><th>To</th><th class="n">Tenants</th><th class="n">Events</th></tr>"#,
    );
    for d in &digests {
        digest_table.push_str(&format!(
            r#"<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            escape(&d.digest),
            if d.active { " (active)" } else { "" },
            escape(&d.first_date),
            escape(&d.last_date),
            d.tenants,
            crate::privacy::group_digits(d.events)
        ));
    }
    digest_table.push_str("</table>");
    let spans: Vec<Span> = digests
        .iter()
        .map(|d| Span {
            label: format!(
                "{}…{}",
                &d.digest[..d.digest.len().min(15)],
                if d.active { " (active)" } else { "" }
            ),
            from: d.first_date.clone(),
            to: d.last_date.clone(),
        })
        .collect();
    body.push_str(&format!(
        r#"<section class="card" data-api="/api/review/digests"><h2>Digests in stored data</h2>{}{digest_table}</section>"#,
        timeline("allowlist digests over time", &spans)
    ));
    match &rejections {
        None => body.push_str(r#"<section class="card" data-api="/api/review/rejections"><h2>Rejections and dropped fields</h2><p>The processor has not stored gateway audit records yet.</p></section>"#),
        Some(rows) => {
            let mut by_reason: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
            for row in rows {
                let label = match &row.field {
                    Some(field) => format!("{} {} · {}", row.kind, row.reason, field),
                    None => format!("{} {}", row.kind, row.reason),
                };
                *by_reason.entry(label).or_default() += row.count;
            }
            let mut sorted: Vec<(String, u64)> = by_reason.into_iter().collect();
            sorted.sort_by_key(|entry| std::cmp::Reverse(entry.1));
            let bars_rows: Vec<Bar> = sorted
                .iter()
                .take(20)
                .map(|(label, count)| Bar { label: label.clone(), value: Some(*count as f64), text: crate::privacy::group_digits(*count), reference: None })
                .collect();
            body.push_str(&figure("Rejections and dropped fields by reason", "/api/review/rejections", bars("rejections", &bars_rows), "all stored days; names and counts only, never values"));
            let mut days: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
            for row in rows {
                *days.entry(row.date.clone()).or_default() += row.count;
            }
            let points: Vec<Column> = days.iter().map(|(d, c)| Column { label: d[5..].to_owned(), value: Some(*c as f64), text: c.to_string() }).collect();
            body.push_str(&figure("Rejections and drops per day", "/api/review/rejections", columns("per day", &points, 3), "messages rejected plus fields dropped"));
        }
    }
    let mut tenants_table =
        String::from(r#"<table><tr><th>Tenant</th><th>Consent by</th><th>At</th></tr>"#);
    for t in &enhanced {
        tenants_table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&t.tenant),
            escape(t.consent_by.as_deref().unwrap_or("—")),
            escape(t.consent_at.as_deref().unwrap_or("—"))
        ));
    }
    tenants_table.push_str("</table>");
    body.push_str(&format!(r#"<section class="card" data-api="/api/review/tenants"><h2>Enhanced tenants and consent</h2>{tenants_table}</section>"#));
    let mut keys_table =
        String::from(r#"<table><tr><th>Tenant</th><th>Epoch</th><th>Shredded</th></tr>"#);
    for e in &epochs {
        keys_table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.tenant),
            escape(&e.epoch),
            escape(e.shredded_at.as_deref().unwrap_or("active"))
        ));
    }
    keys_table.push_str("</table>");
    body.push_str(&format!(r#"<section class="card" data-api="/api/review/keys"><h2>Key epochs</h2>{keys_table}</section>"#));
    body.push_str("</div>");
    let mut fields = String::from(
        r#"<section class="card" data-api="/api/review/allowlist"><h2>Allowlisted fields</h2><table><tr><th>Scope</th><th>Field</th><th>Action</th><th>Tier</th><th>Reason</th><th class="n">Line</th></tr>"#,
    );
    for f in &view.fields {
        fields.push_str(&format!(
            r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            escape(&f.scope), escape(&f.path), escape(&f.action), escape(&f.tier), escape(&f.reason), f.line
        ));
    }
    fields.push_str(r#"</table><h2 style="margin-top:14px">Allowlisted event and view names</h2><table><tr><th>Type</th><th>Name</th><th>Tier</th><th>Reason</th><th class="n">Line</th></tr>"#);
    for n in &view.names {
        fields.push_str(&format!(
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            escape(&n.kind),
            escape(&n.name),
            escape(&n.tier),
            escape(&n.reason),
            n.line
        ));
    }
    fields.push_str("</table></section>");
    body.push_str(&fields);
    Ok(page("Allowlist audit", Some(&session), &body))
}

/// `/sql`: the vendor's query page.
pub(super) async fn sql_page(
    session: Session,
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Html<String>, ReportingError> {
    session.require_vendor()?;
    check_params(&params, &["q"])?;
    let query = params.get("q").cloned().unwrap_or_else(|| {
        "SELECT tenant, \"context.app.name\" AS product, count(DISTINCT \"userId\") AS users\nFROM events GROUP BY 1, 2 ORDER BY 1, 2".to_owned()
    });
    let mut body = format!(
        r#"<h1>SQL</h1><p class="sub">One read-only SELECT or WITH query over <code>events</code>, <code>rejections</code>, <code>daily_activity</code> (partition columns <code>tenant</code>, <code>date</code>). At most {} rows, {} ms. Results are not k-suppressed: this page is reserved to the vendor.</p><form method="get" action="/sql" class="card"><textarea name="q" rows="5">{}</textarea><button type="submit">Run</button></form>"#,
        state.inner.config.sql_row_limit,
        state.inner.config.sql_timeout_ms,
        escape(&query)
    );
    if params.contains_key("q") {
        match super::sql::run(&state, &query).await {
            Ok(result) => {
                let mut table = String::from("<section class=\"card\"><table><tr>");
                for column in &result.columns {
                    table.push_str(&format!("<th>{}</th>", escape(column)));
                }
                table.push_str("</tr>");
                for row in &result.rows {
                    table.push_str("<tr>");
                    for value in row {
                        let text = match value {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        table.push_str(&format!("<td>{}</td>", escape(&text)));
                    }
                    table.push_str("</tr>");
                }
                table.push_str("</table>");
                if result.truncated {
                    table.push_str(r#"<p class="note">Truncated at the row limit.</p>"#);
                }
                table.push_str("</section>");
                body.push_str(&table);
            }
            Err(error) => body.push_str(&format!(
                r#"<p class="error">{}</p>"#,
                escape(&error.to_string())
            )),
        }
    }
    Ok(page("SQL", Some(&session), &body))
}
