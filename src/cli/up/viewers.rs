//! Dashboard access for `veil up`: a fresh token per demo viewer (one per tenant, the vendor and
//! a reviewer) at every start. Only their SHA-256 digests are written, to a viewers file under
//! the data directory that only the owner can read; the tokens themselves are printed once.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use veil_config::TenantsFile;
use veil_reporting::auth::{new_token, token_digest};

/// One viewer's token, for the banner.
#[derive(Debug, Clone)]
pub(crate) struct DemoViewer {
    /// `tenant t-1000`, `vendor`, `reviewer`.
    pub(crate) label: String,
    /// The secret to give the viewer.
    pub(crate) token: String,
}

/// Writes `<data_dir>/viewers.yaml` with new tokens and returns its path and the tokens.
pub(crate) fn write_demo_viewers(
    data_dir: &Path,
    tenants: &TenantsFile,
) -> anyhow::Result<(PathBuf, Vec<DemoViewer>)> {
    let mut viewers = Vec::new();
    let mut file = String::from(
        "# Written by `veil up` at every start: token digests of the demo viewers it printed.\nversion: 1\nviewers:\n",
    );
    let mut add = |label: String, entry: String| -> anyhow::Result<()> {
        let token = new_token().map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        file.push_str(&format!(
            "  - {{ {entry}, token_sha256: {} }}\n",
            token_digest(&token)
        ));
        viewers.push(DemoViewer { label, token });
        Ok(())
    };
    for tenant in &tenants.tenants {
        add(
            format!("tenant {}", tenant.id),
            format!(
                "name: {}-admin, role: tenant, tenant: {}",
                tenant.id, tenant.id
            ),
        )?;
    }
    add(
        "vendor".to_owned(),
        "name: licensing, role: vendor".to_owned(),
    )?;
    add(
        "reviewer".to_owned(),
        "name: compliance, role: reviewer".to_owned(),
    )?;

    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join("viewers.yaml");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut handle = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    handle.write_all(file.as_bytes())?;
    Ok((path, viewers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewers_file_holds_digests_that_authenticate_the_printed_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tenants = TenantsFile::load(Path::new("tenants.yaml")).expect("tenants");
        let (path, printed) = write_demo_viewers(dir.path(), &tenants).expect("viewers");
        assert_eq!(printed.len(), tenants.tenants.len() + 2);
        let text = std::fs::read_to_string(&path).expect("read");
        let viewers = veil_reporting::auth::Viewers::parse(&text).expect("valid viewers file");
        for viewer in &printed {
            assert!(!text.contains(&viewer.token), "tokens are never stored");
            assert!(
                viewers.authenticate(&viewer.token).is_some(),
                "{}",
                viewer.label
            );
        }
        let t1000 = &printed[0];
        assert_eq!(
            viewers
                .authenticate(&t1000.token)
                .map(|viewer| viewer.role.clone()),
            Some(veil_reporting::auth::Role::Tenant("t-1000".to_owned()))
        );
    }
}
