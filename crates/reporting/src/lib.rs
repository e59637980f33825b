//! Veil reporting: adoption, license-compliance and allowlist-audit dashboards over the
//! processor's Parquet tables, with DataFusion.
//!
//! [`web::app`] is the axum router (HTML pages with server-rendered SVG charts, the JSON API
//! behind every chart, OpenAPI, the vendor's read-only SQL); [`serve`] runs it until a shutdown
//! future completes. [`auth`] checks viewer tokens and roles; [`data`] runs the queries;
//! [`privacy`] applies the k-anonymity rule to every number shown.

pub mod auth;
pub mod config;
pub mod data;
mod error;
pub mod privacy;
pub mod web;

use std::future::Future;

pub use config::{DataSources, ReportingConfig};
pub use error::ReportingError;
pub use web::{AppState, app};

/// Serves the dashboards on `config.listen` until `shutdown` completes (what `veil reporting`
/// and `veil up` run).
pub async fn serve(
    config: ReportingConfig,
    sources: DataSources,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ReportingError> {
    let state = AppState::load(&config, &sources)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| {
            ReportingError::Server(format!("cannot listen on {}: {error}", config.listen))
        })?;
    serve_on(listener, state, shutdown).await
}

/// Serves `state` on an already bound listener (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ReportingError> {
    let address = listener
        .local_addr()
        .map_err(|error| ReportingError::Server(error.to_string()))?;
    tracing::info!(listen = %address, viewers = state.viewers().len(), "reporting started");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| ReportingError::Server(error.to_string()))?;
    tracing::info!("reporting stopped");
    Ok(())
}
