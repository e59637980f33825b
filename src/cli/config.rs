//! `veil config show`: the effective settings after `veil.toml` and `VEIL_*` overrides, so an
//! operator (and the docker-compose test) can see what each service will actually read.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the effective settings as JSON (secrets in `kafka.properties` redacted).
    Show {
        /// Settings file; `VEIL_*` variables override it.
        #[arg(long, default_value = "veil.toml")]
        config: PathBuf,
    },
}

/// Whether a librdkafka property holds a secret (`sasl.password`, `ssl.key.password`, …).
fn is_secret(property: &str) -> bool {
    ["password", "secret", "key", "token"]
        .iter()
        .any(|word| property.contains(word))
}

pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Show { config } = command;
    let explicit = config != std::path::Path::new("veil.toml");
    let mut settings = Settings::load(&config, explicit)?;
    for (name, value) in settings.kafka.properties.iter_mut() {
        if is_secret(name) {
            *value = "<redacted>".to_owned();
        }
    }
    println!("{}", serde_json::to_string_pretty(&settings)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::is_secret;

    #[test]
    fn secrets_are_recognised_by_name() {
        assert!(is_secret("sasl.password"));
        assert!(is_secret("ssl.key.password"));
        assert!(!is_secret("security.protocol"));
    }
}
