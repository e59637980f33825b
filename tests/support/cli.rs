//! Running programs as a user would: arguments, bytes on stdin, output collected.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::repo_root;

/// Runs `command` with `input` on stdin, collecting stdout and stderr (stdin is written from
/// another thread, so a chatty child cannot block on its output while we block on its input).
pub fn pipe(command: &mut Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("the program finishes");
    writer.join().expect("writer").expect("stdin written");
    output
}

/// Runs `veil arguments…` in the repository root with `input` on stdin.
pub fn veil(arguments: &[&str], input: &[u8]) -> Output {
    pipe(
        Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(arguments)
            .current_dir(repo_root()),
        input,
    )
}
