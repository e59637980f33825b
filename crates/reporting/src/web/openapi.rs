//! The OpenAPI 3.1 document of every route the service answers.

use serde_json::{Map, Value, json};

/// Every route: method, path, who may call it, summary, and whether it takes `?month=`.
pub const ROUTES: &[(&str, &str, &str, &str, bool)] = &[
    (
        "get",
        "/",
        "any",
        "Home: redirects to the viewer's dashboard, or to the login page",
        false,
    ),
    (
        "get",
        "/login",
        "public",
        "Login page; `?token=` sets the HttpOnly session cookie and redirects home",
        false,
    ),
    (
        "get",
        "/logout",
        "public",
        "Clears the session cookie",
        false,
    ),
    ("get", "/healthz", "public", "Liveness", false),
    ("get", "/api/openapi.json", "public", "This document", false),
    (
        "get",
        "/tenants/{tenant}",
        "tenant (own) or vendor",
        "Adoption dashboard (HTML)",
        true,
    ),
    (
        "get",
        "/license",
        "vendor",
        "License-compliance dashboard (HTML)",
        true,
    ),
    (
        "get",
        "/review",
        "reviewer",
        "Allowlist-audit dashboard (HTML)",
        false,
    ),
    (
        "get",
        "/sql",
        "vendor",
        "SQL page (HTML); `?q=` runs a query",
        false,
    ),
    (
        "get",
        "/api/tenants/{tenant}/activity",
        "tenant (own) or vendor",
        "Daily, weekly (ISO weeks clipped to the month) and monthly active users, and the six-month trend",
        true,
    ),
    (
        "get",
        "/api/tenants/{tenant}/breakdowns",
        "tenant (own) or vendor",
        "Active users and events by feature, event, product, version and platform, k-suppressed",
        true,
    ),
    (
        "get",
        "/api/tenants/{tenant}/comparison",
        "tenant (own) or vendor",
        "The month against the month before: active users, events, feature adoption",
        true,
    ),
    (
        "get",
        "/api/license",
        "vendor",
        "Licensed seats against distinct active users per tenant and product",
        true,
    ),
    (
        "get",
        "/api/license.csv",
        "vendor",
        "The license report of every month with data, as CSV",
        false,
    ),
    (
        "get",
        "/api/review/allowlist",
        "reviewer",
        "The active allowlist with each entry's reason, and its digest",
        false,
    ),
    (
        "get",
        "/api/review/digests",
        "reviewer",
        "Allowlist digests found in stored events, with first and last dates",
        false,
    ),
    (
        "get",
        "/api/review/rejections",
        "reviewer",
        "Rejected messages and dropped fields by day and reason (names and counts only)",
        false,
    ),
    (
        "get",
        "/api/review/tenants",
        "reviewer",
        "Tenants on the enhanced tier with their consent records",
        false,
    ),
    (
        "get",
        "/api/review/keys",
        "reviewer",
        "Key epochs per tenant with their shred dates",
        false,
    ),
    (
        "post",
        "/api/sql",
        "vendor",
        "One read-only SELECT/WITH query over the stored tables (row limit, timeout; not k-suppressed)",
        false,
    ),
];

/// The document.
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for (method, path, role, summary, month) in ROUTES {
        let mut parameters = Vec::new();
        if path.contains("{tenant}") {
            parameters.push(json!({"name": "tenant", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}}));
        }
        if *month {
            parameters.push(json!({"name": "month", "in": "query", "required": false, "description": "YYYY-MM; default: the latest month with data", "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}}));
        }
        if *path == "/login" {
            parameters.push(json!({"name": "token", "in": "query", "required": false, "schema": {"type": "string"}}));
        }
        if *path == "/sql" {
            parameters.push(json!({"name": "q", "in": "query", "required": false, "schema": {"type": "string"}}));
        }
        let mut operation = json!({
            "summary": summary,
            "description": format!("Who may call it: {role}."),
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "No or unknown viewer token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "403": {"description": "The viewer's role may not see this", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "503": {"description": "The stored data changed while the query ran (code data_changed): ask again after Retry-After seconds", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if *role == "public" {
            operation["security"] = json!([]);
        }
        if matches!(*path, "/tenants/{tenant}" | "/license" | "/review" | "/sql") {
            operation["responses"]["303"] = json!({"description": "No or unknown viewer token from a client accepting text/html: to /login"});
        }
        if *path == "/api/sql" {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {
                "type": "object", "required": ["query"], "additionalProperties": false,
                "properties": {"query": {"type": "string"}}}}}});
        }
        paths
            .entry((*path).to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|item| item.insert((*method).to_owned(), operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Veil reporting",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Adoption, license-compliance and allowlist-audit reports. Counts of distinct users below k read \"< k\" (a string) instead of a number: see the Cell schema.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE_NAME},
            },
            "schemas": {
                "Cell": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^(< [0-9]+|withheld)$"}],
                         "description": "A count, or \"< k\" when its group has fewer than k distinct users"},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}}}},
            },
        },
        "security": [{"bearer": []}, {"cookie": []}],
    })
}
