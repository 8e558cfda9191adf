//! Helpers shared by the CLI's end-to-end tests.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tessera_testkit::process::{Process, ServerProcess};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A temp directory for one test: the server's data, token files, agent
/// state and logs.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// A fresh temp directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh temp directory and a server on it, on any free port.
    pub fn with_server() -> (Self, ServerProcess) {
        let dir = Self::new();
        let server = ServerProcess::start(
            BIN,
            &dir.data(),
            "127.0.0.1:0".parse().unwrap(),
            "server.log",
        );
        (dir, server)
    }

    /// A fresh temp directory and a server on it at `addr`.
    pub fn serving(addr: std::net::SocketAddr, log: &str) -> (Self, ServerProcess) {
        let dir = Self::new();
        let server = dir.server(addr, log);
        (dir, server)
    }

    /// The server's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn server(&self, addr: std::net::SocketAddr, log: &str) -> ServerProcess {
        ServerProcess::start(BIN, &self.data(), addr, log)
    }

    pub fn token_file(&self, token: &str) -> PathBuf {
        let path = self.dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        path
    }

    pub fn agent(
        &self,
        server_url: &str,
        public_key: &str,
        token_file: Option<&Path>,
        log: &str,
    ) -> Process {
        self.agent_with(server_url, public_key, token_file, log, &[])
    }

    /// As [`Workdir::agent`], with these environment variables.
    pub fn agent_with(
        &self,
        server_url: &str,
        public_key: &str,
        token_file: Option<&Path>,
        log: &str,
        envs: &[(&str, &str)],
    ) -> Process {
        let state = self.dir.path().join("agent-state");
        let mut args = vec![
            "agent",
            "--server",
            server_url,
            "--public-key",
            public_key,
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ];
        if let Some(f) = token_file {
            args.extend(["--token-file", f.to_str().unwrap()]);
        }
        Process::spawn(BIN, &args, &self.dir.path().join(log), envs)
    }

    /// An agent of `server` holding `token` (from a token file).
    pub fn agent_for(&self, server: &ServerProcess, token: &str, log: &str) -> Process {
        let token_file = self.token_file(token);
        self.agent(server.url(), &server.public_key, Some(&token_file), log)
    }

    /// The CLI against `server`, with its data directory (for the admin key).
    pub fn tessera(&self, server: &ServerProcess, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("TESSERA_SERVER", server.url())
            .env("TESSERA_DATA_DIR", self.data())
            .env_remove("TESSERA_ADMIN_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}
