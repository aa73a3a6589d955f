//! The deployment files of `deploy/`, each checked by the program that reads it: the image of
//! `deploy/Containerfile` built with buildah and its entrypoint run as the image's user from the
//! mounted image (`/healthz`, the health check, a tool call); the Kubernetes overlays rendered by
//! kubectl, validated by kubernetes-validate and scanned by checkov; the systemd unit verified and
//! rated by systemd-analyze; nginx with `deploy/nginx/mcpgate.conf` in front of mcpgate; the
//! example configuration loaded.
//!
//! A test whose program is missing records itself as skipped (`tests/run` lists it), and fails
//! instead when `MCPGATE_REQUIRE_DEPLOY` is set, as CI does.

// Tests read their own switches from the environment, as `tests/corpus.rs` does.
#![allow(clippy::disallowed_methods)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use serde_json::{Value, json};
use tempfile::TempDir;

#[path = "support/app.rs"]
mod app;
#[path = "support/harness.rs"]
mod harness;
#[path = "../src/auth/testing.rs"]
#[allow(dead_code)] // The shared fixtures offer more than these tests use.
mod testing;

use app::{Backend, Events, McpClient, Setup};
use harness::{Gate, free_port, http_get, skip};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The largest the image may be, files of its root file system summed.
const IMAGE_BUDGET: u64 = 40 * 1000 * 1000;

/// The user the image runs as.
const IMAGE_USER: &str = "10001:10001";

const PETS: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "1"}
paths:
  /pets:
    get:
      operationId: listPets
      responses:
        "200":
          description: the pets
          content: {application/json: {schema: {type: array, items: {type: object}}}}
"#;

const PETS_AFTER: &str = r#"
openapi: 3.0.3
info: {title: Pets, version: "2"}
paths:
  /pets:
    get: {operationId: listPets, responses: {"204": {description: none}}}
  /pets/{id}/adopt:
    post:
      operationId: adoptPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"204": {description: none}}
"#;

const LIST_CHANGED: &str = "notifications/tools/list_changed";

// ---------------------------------------------------------------------------------------------
// The programs

fn required() -> bool {
    std::env::var("MCPGATE_REQUIRE_DEPLOY").is_ok_and(|it| !it.is_empty() && it != "0")
}

/// The programs `names` on `PATH` (and in `/usr/sbin`, where Debian puts nginx), or `None` after
/// recording the skip; with `MCPGATE_REQUIRE_DEPLOY` set a missing one fails the test.
fn programs(names: &[&str]) -> Option<Vec<PathBuf>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]).collect();
    let mut found = Vec::new();
    for name in names {
        match dirs.iter().map(|dir| dir.join(name)).find(|it| it.is_file()) {
            Some(program) => found.push(program),
            None => {
                unavailable(&format!(
                    "{name} is not installed (.ci/run shows how to install it: apt or pip)"
                ));
                return None;
            }
        }
    }
    Some(found)
}

/// Records that the calling test cannot run, or fails it when the deployment checks are required.
fn unavailable(why: &str) {
    assert!(!required(), "MCPGATE_REQUIRE_DEPLOY is set but {why}");
    skip(why);
}

/// Runs `command`, failing the test unless it succeeds; its output.
#[track_caller]
fn run(command: &mut Command) -> Output {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A child process, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `addr` accepts connections, unless `child` exits first (then the log at `log`).
fn wait_listening(addr: SocketAddr, child: &mut Running, log: &Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("it exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {addr} after 60 s:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

// ---------------------------------------------------------------------------------------------
// The example configuration and the health check

#[test]
fn the_example_configurations_load() {
    // Secrets come from the environment, as the examples say.
    let secrets = [
        (
            "MCPGATE_STORE__SECRET_KEYS",
            r#"[{id = "2026-12", key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]"#,
        ),
        ("MCPGATE_ADMIN__SESSION_KEY", "0123456789abcdef0123456789abcdef0123456789"),
        ("MCPGATE_ADMIN__BOOTSTRAP_TOKEN", "a-long-random-bootstrap-token"),
        ("MCPGATE_SERVERS__0__CREDENTIALS__CLIENT_SECRET", "backend-client-secret"),
    ];
    let env: Vec<(String, String)> =
        secrets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let example = std::fs::read_to_string(Path::new(ROOT).join("deploy/mcpgate.toml")).unwrap();
    let config = mcpgate::config::Config::parse(&example, &env).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.public_url(), "https://mcp.example.com");
    assert_eq!(config.http.accepted_hosts(), ["mcp.example.com"]);
    assert_eq!(config.servers.len(), 1);
    // Without the backend's client secret, the example says what is missing.
    let err = mcpgate::config::Config::parse(&example, &env[..3]).unwrap_err().to_string();
    assert!(err.contains("petstore") && err.contains("secret"), "{err}");

    // The Kubernetes base's file, with the variables its Deployment sets from the Secret.
    let base = std::fs::read_to_string(Path::new(ROOT).join("deploy/kubernetes/base/mcpgate.toml")).unwrap();
    let image_env = [("MCPGATE_HTTP__LISTEN".to_owned(), "0.0.0.0:8080".to_owned())];
    let config = mcpgate::config::Config::parse(&base, &[&image_env[..], &env[..3]].concat())
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.http.listen.to_string(), "0.0.0.0:8080");

    // The replicas overlay's file, on the PostgreSQL store its Deployment names from the Secret.
    let replicas =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/kubernetes/overlays/replicas/mcpgate.toml"))
            .unwrap();
    let url =
        ("MCPGATE_STORE__URL".to_owned(), "postgres://mcpgate:pw@db:5432/mcpgate?sslmode=require".to_owned());
    let config = mcpgate::config::Config::parse(&replicas, &[&image_env[..], &env[..3], &[url]].concat())
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(config.store.postgres().is_some() && !config.store.required_for_readiness());
}

#[test]
fn the_health_check_asks_the_configured_address() {
    let gate = Gate::start("");
    // A copy: the gate's folder goes with it.
    let kept = TempDir::new().unwrap();
    let config = kept.path().join("mcpgate.toml");
    std::fs::copy(gate.dir().join("mcpgate.toml"), &config).unwrap();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_mcpgate"))
            .args(["healthcheck", "--config"])
            .arg(&config)
            .env_remove("MCPGATE_REQUIRE_DEPLOY")
            .output()
            .unwrap()
    };
    let healthy = check();
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    drop(gate);
    let gone = check();
    assert!(!gone.status.success());
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(said.contains("cannot ask http://127.0.0.1:") && said.contains("/healthz"), "{said}");
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

#[test]
fn kubernetes_overlays_render_validate_and_pass_checkov() {
    let Some(found) = programs(&["kubectl", "kubernetes-validate", "checkov"]) else { return };
    let [kubectl, validate, checkov] = &found[..] else { unreachable!() };
    let dir = TempDir::new().unwrap();
    for overlay in ["single", "replicas"] {
        let rendered = run(Command::new(kubectl)
            .arg("kustomize")
            .arg(Path::new(ROOT).join("deploy/kubernetes/overlays").join(overlay)));
        let manifest = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&manifest, &rendered.stdout).unwrap();
        let text = stdout(&rendered);
        for kind in
            ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"]
        {
            assert!(text.contains(&format!("\nkind: {kind}\n")), "{overlay}: no {kind}:\n{text}");
        }
        for needed in [
            "path: /healthz",
            "path: /readyz",
            "readOnlyRootFilesystem: true",
            "runAsNonRoot: true",
            "type: RuntimeDefault",
            "automountServiceAccountToken: false",
            "name: mcpgate-secrets",
        ] {
            assert!(text.contains(needed), "{overlay}: no `{needed}`:\n{text}");
        }
        match overlay {
            "single" => {
                for needed in [
                    "replicas: 1\n",
                    "type: Recreate",
                    "claimName: mcpgate-data",
                    "kind: PersistentVolumeClaim",
                ] {
                    assert!(text.contains(needed), "single: no `{needed}`");
                }
            }
            _ => {
                for needed in ["replicas: 3\n", "name: MCPGATE_STORE__URL", "port: 5432"] {
                    assert!(text.contains(needed), "replicas: no `{needed}`");
                }
            }
        }

        run(Command::new(validate).arg("--strict").arg("--quiet").arg(&manifest));

        let scan = Command::new(checkov)
            .args(["--framework", "kubernetes", "--skip-download", "--quiet", "--output", "json", "--file"])
            .arg(&manifest)
            // checkov asks its vendor's servers for guidelines unless told not to.
            .env("BC_SKIP_MAPPING", "TRUE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&scan.stdout).unwrap_or_else(|err| {
            panic!(
                "checkov's output is not JSON ({err}):\n{}\n{}",
                stdout(&scan),
                String::from_utf8_lossy(&scan.stderr)
            )
        });
        let failed: Vec<String> = report["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|it| format!("{} {} ({})", it["check_id"], it["check_name"], it["resource"]))
            .collect();
        assert!(failed.is_empty(), "{overlay}: checkov finds:\n{}", failed.join("\n"));
        assert_eq!(report["summary"]["parsing_errors"], 0, "{overlay}: {}", report["summary"]);
        assert!(report["summary"]["passed"].as_u64().unwrap_or(0) > 50, "{overlay}: {}", report["summary"]);
        // Every check skipped says why.
        for skipped in report["results"]["skipped_checks"].as_array().into_iter().flatten() {
            let reason = skipped["check_result"]["suppress_comment"].as_str().unwrap_or_default();
            assert!(reason.len() > 20, "{overlay}: {} is skipped without a reason", skipped["check_id"]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// systemd

#[test]
fn the_systemd_unit_verifies_and_its_exposure_is_reported() {
    let Some(found) = programs(&["systemd-analyze"]) else { return };
    let analyze = &found[0];
    // `verify` checks that the program exists: the unit, naming the binary just built.
    let unit = std::fs::read_to_string(Path::new(ROOT).join("deploy/mcpgate.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/mcpgate serve"), "{unit}");
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mcpgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/mcpgate", env!("CARGO_BIN_EXE_mcpgate"))).unwrap();

    let verified = run(Command::new(analyze).args(["verify", "--man=no"]).arg(&path));
    let complaints = String::from_utf8_lossy(&verified.stderr);
    assert!(complaints.trim().is_empty(), "systemd-analyze verify says:\n{complaints}");

    let rated = run(Command::new(analyze).args(["security", "--offline=true", "--no-pager"]).arg(&path));
    let text = stdout(&rated);
    let overall = text
        .lines()
        .find_map(|it| it.split_once("Overall exposure level for mcpgate.service: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no overall exposure:\n{text}"));
    let score: f64 = overall.split_whitespace().next().and_then(|it| it.parse().ok()).unwrap();
    assert!(score <= 1.5, "exposure {overall}:\n{text}");
    let readme = std::fs::read_to_string(Path::new(ROOT).join("deploy/README.md")).unwrap();
    let reported = format!("exposure level: {score:.1}");
    assert!(readme.contains(&reported), "deploy/README.md should report `{reported}`");
}

// ---------------------------------------------------------------------------------------------
// The image

/// A buildah with its own storage, removed with it.
struct Buildah {
    program: PathBuf,
    storage: TempDir,
}

impl Buildah {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(self.storage.path().join("root"))
            .arg("--runroot")
            .arg(self.storage.path().join("runroot"));
        command
    }

    fn run(&self, args: &[&str]) -> String {
        stdout(&run(self.command().args(args))).trim().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_builds_and_serves_as_its_user_from_the_mounted_image() {
    let Some(found) = programs(&["buildah", "chroot"]) else { return };
    let [buildah, chroot] = &found[..] else { unreachable!() };
    if effective_uid() != 0 {
        return unavailable("the image check runs the image's entrypoint with chroot, which needs root");
    }
    let binary = std::env::var_os("MCPGATE_IMAGE_BINARY").map_or_else(
        || {
            Path::new(env!("CARGO_BIN_EXE_mcpgate"))
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("release/mcpgate")
        },
        PathBuf::from,
    );
    if !binary.is_file() {
        return unavailable(&format!(
            "{} does not exist: the image holds the release binary (cargo build --release --locked)",
            binary.display()
        ));
    }

    // Build: stage the files, then the Containerfile, as deploy/README.md says.
    let staged = run(Command::new(Path::new(ROOT).join("deploy/stage-image")).arg(&binary));
    let target_dir =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| Path::new(ROOT).join("target"), PathBuf::from);
    let context = target_dir.join("image");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let buildah = Buildah { program: buildah.clone(), storage: TempDir::new_in(tmp).unwrap() };
    let tag = "localhost/mcpgate:deploy-test";
    let containerfile = Path::new(ROOT).join("deploy/Containerfile");
    buildah.run(&[
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--file",
        containerfile.to_str().unwrap(),
        "--tag",
        tag,
        context.to_str().unwrap(),
    ]);

    let inspected: Value = serde_json::from_str(&buildah.run(&["inspect", "--type", "image", tag])).unwrap();
    let config = &inspected["Docker"]["config"];
    assert_eq!(config["User"], IMAGE_USER, "{config}");
    let healthcheck: Vec<String> = serde_json::from_value(config["Healthcheck"]["Test"].clone()).unwrap();
    assert_eq!(healthcheck[0], "CMD", "the health check runs without a shell: {healthcheck:?}");
    let entrypoint: Vec<String> = serde_json::from_value(config["Entrypoint"].clone()).unwrap();
    let cmd: Vec<String> = serde_json::from_value(config["Cmd"].clone()).unwrap();
    let image_env: Vec<(String, String)> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|it| it.as_str()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    assert!(
        image_env.contains(&("MCPGATE_HTTP__LISTEN".to_owned(), "0.0.0.0:8080".to_owned())),
        "{image_env:?}"
    );

    let container = buildah.run(&["from", tag]);
    let mounted = PathBuf::from(buildah.run(&["mount", &container]));

    // What the image holds, and how much of it.
    let files = walk(&mounted);
    let size: u64 = files.iter().map(|(_, len)| len).sum();
    let names: Vec<String> = files.iter().map(|(path, _)| path.clone()).collect();
    assert!(
        size <= IMAGE_BUDGET,
        "the image holds {size} bytes, more than {IMAGE_BUDGET}: {names:?}\n{}",
        stdout(&staged)
    );
    for needed in
        ["/usr/local/bin/mcpgate", "/etc/ssl/certs/ca-certificates.crt", "/lib64/ld-linux-x86-64.so.2"]
    {
        assert!(names.iter().any(|it| it == needed), "no {needed} in {names:?}");
    }
    assert!(!names.iter().any(|it| it.ends_with("/sh") || it.ends_with("/busybox")), "a shell: {names:?}");
    eprintln!("the image: {size} bytes in {names:?}");

    // A configuration file and a document, where a volume would put them, and a backend.
    let backend = Backend::start(|_| async { axum::Json(json!([{"name": "Rex"}])).into_response() }).await;
    let etc = mounted.join("etc/mcpgate");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("pets.yaml"), PETS).unwrap();
    std::fs::write(
        etc.join("mcpgate.toml"),
        format!(
            "[http]\n[store]\n[auth]\nmode = \"none\"\n[[servers]]\nslug = \"pets\"\nspec = \"pets.yaml\"\nbackend_url = \"{}\"\n",
            backend.url
        ),
    )
    .unwrap();

    // The entrypoint, as the image's user, with the image's environment; only the port is another,
    // since the chroot shares this machine's network.
    let port = free_port().port();
    let listen = format!("0.0.0.0:{port}");
    let in_image = |program: &[String]| {
        let mut command = Command::new(chroot);
        command
            .arg(format!("--userspec={IMAGE_USER}"))
            .arg(&mounted)
            .args(program)
            .env_clear()
            .envs(image_env.iter().cloned())
            .env("MCPGATE_HTTP__LISTEN", &listen)
            .stdin(Stdio::null());
        command
    };
    let log = tmp.join(format!("image-{port}.log"));
    let log_file = std::fs::File::create(&log).unwrap();
    let mut serving = Running(
        in_image(&[entrypoint.clone(), cmd].concat())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_listening(addr, &mut serving, &log);
    // The socket is bound before mcpgate says so.
    let said = format!("listening on http://{listen}");
    let start = Instant::now();
    while !std::fs::read_to_string(&log).unwrap().contains(&said) && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains(&said), "{logged}");
    assert_eq!(http_get(addr, "/healthz").map(|(status, _)| status), Some(200));
    // The port opens while the servers are built: ready once they are.
    let start = Instant::now();
    while http_get(addr, "/readyz").map(|(status, _)| status) != Some(200)
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http_get(addr, "/readyz").map(|(status, _)| status), Some(200), "{logged}");

    let health = in_image(&healthcheck[1..]).output().unwrap();
    assert!(
        health.status.success(),
        "the image's health check fails: {}",
        String::from_utf8_lossy(&health.stderr)
    );

    let client = McpClient::new(reqwest::Client::new(), format!("http://{addr}/mcp/pets"));
    let result = client.call("listPets", json!({})).await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"], json!({"result": [{"name": "Rex"}]}), "{result}");
    assert_eq!(backend.take_lines(), ["GET /pets"]);

    // The store is written by the image's user, in its volume.
    let store = mounted.join("var/lib/mcpgate");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&store).unwrap());
    assert_eq!(owner, 10001);
    assert!(std::fs::read_dir(&store).unwrap().count() > 0, "nothing in the store's folder");

    drop(serving);
    buildah.run(&["umount", &container]);
    buildah.run(&["rm", &container]);
    buildah.run(&["rmi", tag]);
}

fn effective_uid() -> u32 {
    // The owner of a file this process just made is its effective user.
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&probe.as_file().metadata().unwrap())
}

/// Every file below `root` (not directories; links count as their own size), by its path in the
/// image, with its size.
fn walk(root: &Path) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                let name = format!("/{}", entry.path().strip_prefix(root).unwrap().display());
                files.push((name, meta.len()));
            }
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// nginx in front

/// The public host name of `deploy/nginx/mcpgate.conf`.
const PUBLIC_HOST: &str = "mcp.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_passes_events_at_once_and_keeps_the_public_url_and_host_checks() {
    let Some(found) = programs(&["nginx", "openssl"]) else { return };
    let [nginx, openssl] = &found[..] else { unreachable!() };
    let dir = TempDir::new().unwrap();
    let prefix = dir.path();
    let ca = certificates(openssl, prefix);

    // mcpgate on loopback knowing the proxy's URL, as deploy/mcpgate.toml configures it.
    // Held until nginx starts: neither mcpgate nor the HTTP port below may be given it meanwhile
    // (a port released at once is the next one the kernel hands out, and nginx then merges the
    // two listeners into one and refuses the configuration).
    let https_reserved = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let https_port = https_reserved.local_addr().unwrap().port();
    let public = format!("https://{PUBLIC_HOST}:{https_port}");
    let issuer = testing::FakeIssuer::start().await;
    let key = testing::TestKey::rsa();
    issuer.json("/jwks", &testing::jwks(&[key.jwk("k1")]));
    let app = Setup::new()
        .http(&format!("public_url = \"{public}\"\nallowed_hosts = [\"{PUBLIC_HOST}\"]"))
        .jwt(&[issuer.origin()])
        .server("pets", PETS, "http://127.0.0.1:9", "")
        .start()
        .await;

    // nginx with the deploy configuration, on loopback ports, with a test certificate.
    let conf = std::fs::read_to_string(Path::new(ROOT).join("deploy/nginx/mcpgate.conf")).unwrap();
    let http_port = free_port().port();
    let mut templated = String::new();
    for line in conf.lines() {
        // IPv6 listeners are not needed on loopback, and may not be available.
        if !line.contains("listen [::]:") {
            templated.push_str(line);
            templated.push('\n');
        }
    }
    let replacements = [
        ("server 127.0.0.1:8080;", format!("server {};", app.addr)),
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        ("listen 443 ssl", format!("listen 127.0.0.1:{https_port} ssl")),
        (
            "/etc/letsencrypt/live/mcp.example.com/fullchain.pem",
            prefix.join("cert.pem").display().to_string(),
        ),
        ("/etc/letsencrypt/live/mcp.example.com/privkey.pem", prefix.join("key.pem").display().to_string()),
    ];
    for (from, to) in &replacements {
        assert!(templated.contains(from), "deploy/nginx/mcpgate.conf no longer has `{from}`");
        templated = templated.replace(from, to);
    }
    std::fs::write(prefix.join("mcpgate.conf"), templated).unwrap();
    let temp = prefix.join("temp");
    std::fs::create_dir_all(&temp).unwrap();
    let p = prefix.display();
    let main = format!(
        "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {p}/access.log;\n  client_body_temp_path {p}/temp/body;\n  \
         proxy_temp_path {p}/temp/proxy;\n  fastcgi_temp_path {p}/temp/fastcgi;\n  \
         uwsgi_temp_path {p}/temp/uwsgi;\n  scgi_temp_path {p}/temp/scgi;\n  include {p}/mcpgate.conf;\n}}\n"
    );
    std::fs::write(prefix.join("nginx.conf"), main).unwrap();
    // Workers drop root for nobody: they must be able to use the temporary folders.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(prefix, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let log = prefix.join("error.log");
    drop(https_reserved);
    let mut proxy = Running(
        Command::new(nginx)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(prefix.join("nginx.stderr")).unwrap())
            .spawn()
            .unwrap(),
    );
    let https = SocketAddr::from((Ipv4Addr::LOCALHOST, https_port));
    wait_listening(https, &mut proxy, &prefix.join("nginx.stderr"));

    let ca = reqwest::Certificate::from_pem(&ca).unwrap();
    let client_for = |host: &str| {
        reqwest::Client::builder().tls_certs_only([ca.clone()]).resolve(host, https).build().unwrap()
    };
    let http = client_for(PUBLIC_HOST);
    let client = McpClient::new(http.clone(), format!("{public}/mcp/pets"));

    // The public URL: in the challenge and in the metadata it leads to.
    let challenged = client.post(None, json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(challenged.status(), 401);
    let challenge = challenged.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let metadata_url = format!("{public}/.well-known/oauth-protected-resource/mcp/pets");
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{challenge}");
    let metadata: Value = http.get(&metadata_url).send().await.unwrap().json().await.unwrap();
    assert_eq!(metadata["resource"], format!("{public}/mcp/pets"), "{metadata}");

    // Another Host is refused: by nginx over a connection made for the public name, and during
    // the handshake when the client names another host.
    let misdirected =
        http.get(format!("{public}/healthz")).header("host", "evil.example.com").send().await.unwrap();
    assert_eq!(misdirected.status(), 421);
    let other = client_for("evil.example.com")
        .get(format!("https://evil.example.com:{https_port}/healthz"))
        .send()
        .await;
    assert!(other.is_err(), "{other:?}");
    // And by mcpgate, were a proxy to pass it.
    let direct = reqwest::Client::new()
        .get(format!("http://{}/admin", app.addr))
        .header("host", "evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 403);

    // A session through nginx: its answers and its notifications come as they are written.
    let claims = json!({
        "iss": issuer.origin(), "sub": "alice", "aud": format!("{public}/mcp/pets"),
        "exp": testing::unix_now() + 300, "iat": testing::unix_now(),
    });
    let alice = client.with_token(key.sign(json!({"kid": "k1", "typ": "at+jwt"}), &claims));
    let session = alice.open_session().await;
    assert_eq!(alice.list_in_session(&session).await, ["listPets"]);
    let stream = alice.get(Some(&session)).await;
    assert_eq!(stream.status(), 200);
    let mut events = Events::new(stream);
    // The stream is open at mcpgate once a first event (or none) has had time to pass.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let published = Instant::now();
    app.publish("pets", PETS_AFTER);
    let heard = tokio::time::timeout(Duration::from_secs(3), events.until(LIST_CHANGED)).await;
    assert!(
        heard.is_ok(),
        "list_changed did not pass nginx within 3 s:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    eprintln!("list_changed through nginx after {:?}", published.elapsed());
    assert_eq!(alice.list_in_session(&session).await, ["listPets", "adoptPet"]);
    drop(proxy);
}

/// A test certificate authority and a certificate for [`PUBLIC_HOST`] it signed, in `dir`
/// (`cert.pem`, `key.pem`): the authority's certificate, PEM.
fn certificates(openssl: &Path, dir: &Path) -> Vec<u8> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(Command::new(openssl).current_dir(dir).args(["req", "-x509"]).args(ec).args([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mcpgate test CA",
    ]));
    run(Command::new(openssl)
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args(["-keyout", "key.pem", "-out", "cert.csr", "-subj"])
        .arg(format!("/CN={PUBLIC_HOST}")));
    std::fs::write(
        dir.join("cert.ext"),
        format!("subjectAltName=DNS:{PUBLIC_HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run(Command::new(openssl).current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "cert.ext",
    ]));
    std::fs::read(dir.join("ca.pem")).unwrap()
}
