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
            eprintln!("veil: {error:#}");
            ExitCode::from(2)
        }
    }
}
