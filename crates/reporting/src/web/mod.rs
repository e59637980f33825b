//! The HTTP service: shared state, the router, and the security headers every answer carries.

mod api;
pub mod charts;
mod openapi;
mod pages;
mod sql;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{ACCEPT, CACHE_CONTROL, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use veil_config::TenantsFile;
use veil_policy::Allowlist;
use veil_processor::columns::TableLayout;

pub use openapi::{ROUTES, openapi_document};

use crate::ReportingError;
use crate::auth::Viewers;
use crate::config::{DataSources, ReportingConfig};
use crate::data::Warehouse;
use crate::data::period::Month;
use crate::privacy::Threshold;

/// Everything a request handler reads; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ReportingConfig,
    warehouse: Warehouse,
    viewers: Viewers,
    tenants: TenantsFile,
    allowlist: Allowlist,
    keystore: PathBuf,
}

impl AppState {
    /// Loads the viewers, tenants and allowlist files named by the settings.
    pub fn load(
        config: &ReportingConfig,
        sources: &DataSources,
    ) -> Result<AppState, ReportingError> {
        let viewers = Viewers::load(&config.viewers)
            .map_err(|error| ReportingError::Source(error.to_string()))?;
        let tenants = TenantsFile::load(&sources.tenants)
            .map_err(|error| ReportingError::Source(error.to_string()))?;
        let allowlist = Allowlist::load(&sources.allowlist)
            .map_err(|error| ReportingError::Source(error.to_string()))?;
        AppState::new(config.clone(), viewers, tenants, allowlist, sources)
    }

    /// State from already loaded parts (tests build theirs this way).
    pub fn new(
        config: ReportingConfig,
        viewers: Viewers,
        tenants: TenantsFile,
        allowlist: Allowlist,
        sources: &DataSources,
    ) -> Result<AppState, ReportingError> {
        let schema = TableLayout::from_policy(&allowlist.compile()).schema();
        let mut warehouse = Warehouse::new(&sources.data_dir, schema)?;
        if !config.result_cache {
            warehouse = warehouse.without_result_cache();
        }
        if viewers.is_empty() {
            tracing::warn!("the viewers file names nobody: every request will be refused");
        }
        Ok(AppState {
            inner: Arc::new(Inner {
                config,
                warehouse,
                viewers,
                tenants,
                allowlist,
                keystore: sources.keystore.clone(),
            }),
        })
    }

    /// The viewers.
    pub fn viewers(&self) -> &Viewers {
        &self.inner.viewers
    }

    fn k(&self) -> Threshold {
        Threshold(self.inner.config.k_anonymity.max(1))
    }

    fn known_tenant(&self, tenant: &str) -> bool {
        veil_sanitized::is_valid_tenant(tenant)
            && (self.inner.tenants.tenant(tenant).is_some()
                || self
                    .inner
                    .warehouse
                    .event_days()
                    .iter()
                    .any(|(t, _)| t == tenant))
    }

    /// Months with stored events (of `tenant`, or of anyone), ascending.
    fn months(&self, tenant: Option<&str>) -> Vec<Month> {
        let mut months: Vec<Month> = self
            .inner
            .warehouse
            .event_days()
            .into_iter()
            .filter(|(t, _)| tenant.is_none_or(|wanted| wanted == t))
            .filter_map(|(_, date)| Month::of_date(&date))
            .collect();
        months.sort();
        months.dedup();
        months
    }

    /// The `month` parameter, else the latest month with data, else the current month.
    fn month_param(
        &self,
        params: &HashMap<String, String>,
        tenant: Option<&str>,
    ) -> Result<Month, ReportingError> {
        check_params(params, &["month"])?;
        if let Some(text) = params.get("month") {
            return Month::parse(text).ok_or_else(|| {
                ReportingError::BadRequest("parameter month must be YYYY-MM".to_owned())
            });
        }
        if let Some(latest) = self.months(tenant).last() {
            return Ok(*latest);
        }
        let now = time::OffsetDateTime::now_utc();
        Ok(Month {
            year: now.year(),
            month: u8::from(now.month()),
        })
    }
}

/// Refuses parameters the endpoint does not take (naming the parameter, never its value).
fn check_params(params: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ReportingError> {
    for name in params.keys() {
        if !allowed.contains(&name.as_str()) {
            let shown: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(32)
                .collect();
            return Err(ReportingError::BadRequest(format!(
                "unknown parameter {shown}"
            )));
        }
    }
    Ok(())
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A page refused for want of a valid token sends a browser (a client accepting `text/html`) to
/// the sign-in form instead of answering 401 with JSON; other clients still get the 401.
async fn login_redirect(request: Request, next: Next) -> Response {
    let wants_html = request
        .headers()
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let response = next.run(request).await;
    if wants_html && response.status() == StatusCode::UNAUTHORIZED {
        return Redirect::to("/login").into_response();
    }
    response
}

/// The service's router: HTML pages, their JSON API, the vendor's SQL endpoint and OpenAPI.
pub fn app(state: AppState) -> Router {
    let pages = Router::new()
        .route("/tenants/{tenant}", get(pages::tenant_page))
        .route("/license", get(pages::license_page))
        .route("/review", get(pages::review_page))
        .route("/sql", get(pages::sql_page))
        .route_layer(middleware::from_fn(login_redirect));
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login))
        .route("/logout", get(pages::logout))
        .merge(pages)
        .route("/healthz", get(api::healthz))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/tenants/{tenant}/activity", get(api::activity))
        .route("/api/tenants/{tenant}/breakdowns", get(api::breakdowns))
        .route("/api/tenants/{tenant}/comparison", get(api::comparison))
        .route("/api/license", get(api::license))
        .route("/api/license.csv", get(api::license_csv))
        .route("/api/review/allowlist", get(api::review_allowlist))
        .route("/api/review/digests", get(api::review_digests))
        .route("/api/review/rejections", get(api::review_rejections))
        .route("/api/review/tenants", get(api::review_tenants))
        .route("/api/review/keys", get(api::review_keys))
        .route("/api/sql", post(api::sql))
        .fallback(api::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}
