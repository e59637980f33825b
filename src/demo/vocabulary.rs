//! The product vocabulary of `../shared/workload/gen_events.py` (apps and their versions,
//! platforms, features, events), defined once for the demo traffic and the reporting bench
//! (which includes this file by path: the root package has no library target).

/// Client applications and the versions in use.
pub(crate) const APPS: [(&str, &[&str]); 3] = [
    ("DMS Desktop", &["10.8.2", "10.9.0", "10.9.1"]),
    ("DMS Web", &["2026.10", "2026.11"]),
    ("DMS Drive", &["4.2.0", "4.3.1"]),
];

/// Operating systems and versions the clients run on.
pub(crate) const OSES: [(&str, &str); 4] = [
    ("Windows", "11"),
    ("Windows", "10"),
    ("Mac OS X", "14.6"),
    ("iOS", "18.1"),
];

/// The product features a track event names.
pub(crate) const FEATURES: [&str; 10] = [
    "search",
    "checkin",
    "checkout",
    "share",
    "email_filing",
    "versioning",
    "preview",
    "workspace_browse",
    "co_authoring",
    "recent_items",
];

/// Track event names.
pub(crate) const EVENTS: [&str; 8] = [
    "Document Opened",
    "Document Saved",
    "Search Performed",
    "Email Filed",
    "Document Shared",
    "Version Checked In",
    "Workspace Created",
    "App Launched",
];
