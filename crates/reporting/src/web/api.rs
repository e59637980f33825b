//! The JSON API behind every chart (described in `/api/openapi.json`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, check_params};
use crate::ReportingError;
use crate::auth::Session;
use crate::data::period::Month;
use crate::data::{admin, keys, license as license_data, review};

type Params = Query<HashMap<String, String>>;

/// Liveness.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// Unknown routes.
pub(super) async fn not_found() -> ReportingError {
    ReportingError::NotFound("route")
}

/// The OpenAPI document (public: it describes, it holds no data).
pub(super) async fn openapi() -> Json<Value> {
    Json(super::openapi_document())
}

/// Checks access to `tenant` before anything else about the request is looked at.
pub(super) fn tenant_access(
    state: &AppState,
    session: &Session,
    tenant: &str,
) -> Result<(), ReportingError> {
    session.require_tenant(tenant)?;
    if !state.known_tenant(tenant) {
        return Err(ReportingError::NotFound("tenant"));
    }
    Ok(())
}

pub(super) async fn activity_of(
    state: &AppState,
    tenant: &str,
    month: Month,
) -> Result<admin::Activity, ReportingError> {
    let warehouse = &state.inner.warehouse;
    let context = warehouse.context().await?;
    admin::activity(warehouse, &context, tenant, month, state.k()).await
}

pub(super) async fn breakdowns_of(
    state: &AppState,
    tenant: &str,
    month: Month,
    dimensions: &[&'static str],
) -> Result<admin::Breakdowns, ReportingError> {
    let warehouse = &state.inner.warehouse;
    let context = warehouse.context().await?;
    admin::breakdowns(warehouse, &context, tenant, month, dimensions, state.k()).await
}

/// DAU per day, WAU per week, MAU trend.
pub(super) async fn activity(
    session: Session,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Params,
) -> Result<Json<admin::Activity>, ReportingError> {
    tenant_access(&state, &session, &tenant)?;
    let month = state.month_param(&params, Some(&tenant))?;
    Ok(Json(activity_of(&state, &tenant, month).await?))
}

/// Adoption and mix breakdowns.
pub(super) async fn breakdowns(
    session: Session,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Params,
) -> Result<Json<admin::Breakdowns>, ReportingError> {
    tenant_access(&state, &session, &tenant)?;
    let month = state.month_param(&params, Some(&tenant))?;
    Ok(Json(
        breakdowns_of(&state, &tenant, month, &admin::DIMENSIONS).await?,
    ))
}

/// The month against the month before.
pub(super) async fn comparison(
    session: Session,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(params): Params,
) -> Result<Json<admin::Comparison>, ReportingError> {
    tenant_access(&state, &session, &tenant)?;
    let month = state.month_param(&params, Some(&tenant))?;
    let (current, previous) = tokio::try_join!(
        breakdowns_of(&state, &tenant, month, &["feature"]),
        breakdowns_of(&state, &tenant, month.previous(), &["feature"])
    )?;
    Ok(Json(admin::compare(&current, &previous)))
}

pub(super) async fn license_of(
    state: &AppState,
    months: &[Month],
) -> Result<license_data::LicenseReport, ReportingError> {
    let context = state.inner.warehouse.context().await?;
    license_data::license(
        &state.inner.warehouse,
        &context,
        &state.inner.tenants,
        months,
        state.k(),
    )
    .await
}

/// Seats against active users for one month.
pub(super) async fn license(
    session: Session,
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<Json<license_data::LicenseReport>, ReportingError> {
    session.require_vendor()?;
    let month = state.month_param(&params, None)?;
    Ok(Json(license_of(&state, &[month]).await?))
}

/// Every month with data, as CSV.
pub(super) async fn license_csv(
    session: Session,
    State(state): State<AppState>,
    Query(params): Params,
) -> Result<impl IntoResponse, ReportingError> {
    session.require_vendor()?;
    check_params(&params, &[])?;
    let months = state.months(None);
    let report = license_of(&state, &months).await?;
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"veil-license.csv\"",
            ),
        ],
        license_data::csv(&report),
    ))
}

/// The active allowlist with reasons and digest.
pub(super) async fn review_allowlist(
    session: Session,
    State(state): State<AppState>,
) -> Result<Json<review::AllowlistView>, ReportingError> {
    session.require_reviewer()?;
    Ok(Json(review::allowlist_view(&state.inner.allowlist)))
}

/// Digests found in stored data.
pub(super) async fn review_digests(
    session: Session,
    State(state): State<AppState>,
) -> Result<Json<Vec<review::DigestUse>>, ReportingError> {
    session.require_reviewer()?;
    let context = state.inner.warehouse.context().await?;
    Ok(Json(
        review::digests(
            &state.inner.warehouse,
            &context,
            &state.inner.allowlist.digest,
        )
        .await?,
    ))
}

/// Rejections and dropped fields by day and reason.
pub(super) async fn review_rejections(
    session: Session,
    State(state): State<AppState>,
) -> Result<Json<Value>, ReportingError> {
    session.require_reviewer()?;
    let context = state.inner.warehouse.context().await?;
    let rows = review::rejections(&state.inner.warehouse, &context).await?;
    Ok(Json(
        json!({"available": rows.is_some(), "rows": rows.unwrap_or_default()}),
    ))
}

/// Enhanced tenants with consent records.
pub(super) async fn review_tenants(
    session: Session,
    State(state): State<AppState>,
) -> Result<Json<Vec<review::EnhancedTenant>>, ReportingError> {
    session.require_reviewer()?;
    Ok(Json(review::enhanced_tenants(&state.inner.tenants)))
}

/// Key epochs and shred dates.
pub(super) async fn review_keys(
    session: Session,
    State(state): State<AppState>,
) -> Result<Json<Vec<keys::EpochInfo>>, ReportingError> {
    session.require_reviewer()?;
    Ok(Json(keys::epochs(&state.inner.keystore)))
}

/// Body of `POST /api/sql`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SqlRequest {
    query: String,
}

/// The vendor's read-only SQL.
pub(super) async fn sql(
    session: Session,
    State(state): State<AppState>,
    body: Result<Json<SqlRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<super::sql::SqlResult>, ReportingError> {
    session.require_vendor()?;
    let Json(request) = body.map_err(|_| {
        ReportingError::BadRequest("body must be {\"query\": \"SELECT …\"}".to_owned())
    })?;
    tracing::info!(viewer = %session.name, "sql query");
    Ok(Json(super::sql::run(&state, &request.query).await?))
}
