//! Veil reporting: adoption, license-compliance and allowlist-audit dashboards on DataFusion.
//! Not built yet: this crate holds its place in the workspace layout until its issue lands.
