//! A throwaway PostgreSQL cluster for the tests of the shared store: Debian's `postgresql` 15
//! binaries, `initdb` into a temporary folder and `pg_ctl` on a free loopback port, trusting
//! local connections, stopped on drop. Run as root (as in a container), the cluster belongs to
//! the `postgres` user, since PostgreSQL refuses to run as root.
//!
//! Without the binaries the tests skip, unless `MCPGATE_REQUIRE_POSTGRES` is set.

// The test switches are read from the environment, as `harness.rs` reads its own.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use super::harness::{free_port, skip};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Cluster {
    dir: TempDir,
    pub port: u16,
    /// `Some("postgres")` when the cluster's programs run as that user.
    owner: Option<&'static str>,
}

impl Cluster {
    /// A running cluster, or `None` (recorded as skipped) when PostgreSQL is not installed.
    pub fn start() -> Option<Cluster> {
        if !Path::new(BIN).join("initdb").exists() {
            let required =
                std::env::var("MCPGATE_REQUIRE_POSTGRES").is_ok_and(|it| !it.is_empty() && it != "0");
            assert!(!required, "MCPGATE_REQUIRE_POSTGRES is set but {BIN}/initdb is missing");
            skip("PostgreSQL 15 is not installed (apt-get install postgresql)");
            return None;
        }
        let root = Command::new("id").arg("-u").output().is_ok_and(|it| it.stdout.starts_with(b"0\n"));
        let owner = root.then_some("postgres");
        let dir = tempfile::Builder::new().prefix("mcpgate-pg-").tempdir_in("/tmp").unwrap();
        if let Some(user) = owner {
            run(Command::new("chown").args([user, &dir.path().display().to_string()]));
        }
        let cluster = Cluster { dir, port: free_port().port(), owner };
        cluster.pg(
            "initdb",
            &["-D", &cluster.data(), "-U", "mcpgate", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server (again, after [`Cluster::stop`]), waiting until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
    }

    /// Stops the server (fast: open connections are ended, as in a failover).
    pub fn stop(&self) {
        self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// A new empty database, and its URL.
    pub fn database(&self, name: &str) -> String {
        self.sql("postgres", &format!("create database {name}"));
        self.url(name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://mcpgate@127.0.0.1:{}/{database}?sslmode=disable", self.port)
    }

    /// Runs `sql` in `database` with psql; its output, unaligned and without headers.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let output = run(Command::new(Path::new(BIN).join("psql")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "mcpgate",
            "-d",
            database,
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let program: PathBuf = Path::new(BIN).join(program);
        let mut command = match self.owner {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        run(command.args(args))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_quiet(&["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

impl Cluster {
    fn pg_quiet(&self, args: &[&str]) -> std::io::Result<Output> {
        let program = Path::new(BIN).join("pg_ctl");
        match self.owner {
            Some(user) => Command::new("runuser").args(["-u", user, "--"]).arg(program).args(args).output(),
            None => Command::new(program).args(args).output(),
        }
    }
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
