//! Who is asking: viewer tokens from `Authorization: Bearer`, or the login cookie, checked
//! against the viewers file; then what their role may see.

mod viewers;

pub use viewers::{Role, Viewer, Viewers, ViewersError, new_token, token_digest};

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

use crate::ReportingError;
use crate::web::AppState;

/// Name of the HttpOnly cookie `/login` sets.
pub const COOKIE_NAME: &str = "veil_report_token";

/// The authenticated viewer of a request.
#[derive(Debug, Clone)]
pub struct Session {
    /// Their role.
    pub role: Role,
    /// The viewer's label (for logs).
    pub name: String,
}

impl Session {
    /// Refuses unless the viewer may see `tenant`'s adoption reports (its own tenant, or vendor).
    pub fn require_tenant(&self, tenant: &str) -> Result<(), ReportingError> {
        match &self.role {
            Role::Tenant(own) if own == tenant => Ok(()),
            Role::Vendor => Ok(()),
            _ => Err(ReportingError::Forbidden("this tenant's reports")),
        }
    }

    /// Refuses unless the viewer is the vendor.
    pub fn require_vendor(&self) -> Result<(), ReportingError> {
        match self.role {
            Role::Vendor => Ok(()),
            _ => Err(ReportingError::Forbidden("vendor reports")),
        }
    }

    /// Refuses unless the viewer is a compliance reviewer.
    pub fn require_reviewer(&self) -> Result<(), ReportingError> {
        match self.role {
            Role::Reviewer => Ok(()),
            _ => Err(ReportingError::Forbidden("compliance reports")),
        }
    }
}

/// The token a request presents: the bearer header wins over the cookie.
pub fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))?;
        return Some(token.trim().to_owned());
    }
    for value in parts.headers.get_all(COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, token)) = pair.trim().split_once('=')
                && name == COOKIE_NAME
            {
                return Some(token.to_owned());
            }
        }
    }
    None
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ReportingError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = presented_token(parts).ok_or(ReportingError::Unauthorized)?;
        let viewer = state
            .viewers()
            .authenticate(&token)
            .ok_or(ReportingError::Unauthorized)?;
        Ok(Session {
            role: viewer.role.clone(),
            name: viewer.name.clone(),
        })
    }
}
