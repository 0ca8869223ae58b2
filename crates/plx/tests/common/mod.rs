//! Helpers to run the real `plx` binary in a private home directory.

#![allow(dead_code, clippy::expect_used)]

pub mod netns;

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A temporary `$PLX_HOME` and a way to run `plx` in it.
pub struct Plx {
    pub home: tempfile::TempDir,
}

/// What one `plx` run did.
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts success and returns standard output.
    #[track_caller]
    pub fn ok(&self) -> String {
        assert_eq!(
            self.code,
            0,
            "plx failed: stdout {:?} stderr {:?}",
            self.out(),
            self.stderr
        );
        self.out()
    }

    /// Asserts a clean failure (exit 1 or 2, no panic) and returns standard error.
    #[track_caller]
    pub fn fails(&self) -> String {
        assert!(
            self.code == 1 || self.code == 2,
            "expected a clean failure, got code {} stderr {:?}",
            self.code,
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "panic: {}", self.stderr);
        self.stderr.clone()
    }
}

impl Plx {
    pub fn new() -> Plx {
        Plx {
            home: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Runs `plx ARGS` with `stdin` as input.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_env(args, stdin, &[])
    }

    /// Runs `plx ARGS` with extra environment variables.
    pub fn run_env(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_plx"));
        cmd.args(args)
            .env("PLX_HOME", self.home.path())
            .env("USER", "tester")
            .env_remove("PLX_PASSPHRASE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn plx");
        {
            let mut input = child.stdin.take().expect("stdin");
            // The child may exit before reading everything; that is fine.
            let _ = input.write_all(stdin);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("wait for plx");
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}
