//! `veil`: the one command-line entry point to Veil's pipeline.

mod cli;
mod demo;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let command = cli::Cli::parse();
    match cli::run(command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("veil: {}", error_chain(&error));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, `: `-separated, leaving out a cause whose text the message so far
/// already holds (many error types print their source themselves).
fn error_chain(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// An error that prints its source itself, as thiserror's `{source}` does.
    #[derive(Debug)]
    struct ReadError {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for ReadError {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                formatter,
                "cannot read allowlist {}: {}",
                self.path, self.source
            )
        }
    }

    impl std::error::Error for ReadError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn causes_are_printed_once() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = anyhow::Error::new(ReadError {
            path: "allowlist.yaml".to_owned(),
            source: missing,
        })
        .context("allowlist.yaml is refused");
        assert_eq!(
            error_chain(&error),
            "allowlist.yaml is refused: cannot read allowlist allowlist.yaml: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_chain(&plain), "outer: inner");
    }
}
