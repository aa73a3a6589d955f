//! The `mcpgate convert` binary end to end: a file, standard input, a multi-file document and a
//! loopback URL in, the JSON or summary output and the exit status out, and for a document it
//! cannot read, a failure whose message says where and why.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use expect_test::expect;
use serde_json::{Value, json};

const PETS: &str = r#"openapi: 3.0.3
info:
  title: Pets
  version: "1.0"
paths:
  /pets/{id}:
    get:
      operationId: getPet
      summary: Get a pet by its id
      parameters:
        - name: id
          in: path
          required: true
          schema:
            type: integer
      responses:
        "200":
          description: The pet
          content:
            application/json:
              schema:
                type: object
                properties:
                  name:
                    type: string
"#;

const BROKEN: &str = r#"openapi: 3.0.3
info:
  title: Broken
  version: "1"
paths:
  /a/{id:
    get:
      operationId: getA
      responses:
        "200":
          description: ok
  /b:
    get: just a string
  /c:
    get:
      operationId: getC
      responses:
        "200":
          description: ok
"#;

/// An entry document in `spec/` whose request body is a schema in `common/`, a sibling folder.
const MAIN: &str = r#"openapi: 3.0.3
info:
  title: Pets
  version: "1.0"
paths:
  /pets:
    post:
      operationId: addPet
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: '../common/Pet.yaml'
      responses:
        "204":
          description: added
"#;

const PET: &str = r#"type: object
properties:
  petName:
    type: string
"#;

const PETS_JSON: &str = r#"{
  "openapi": "3.1.0",
  "info": {"title": "Remote pets", "version": "2"},
  "paths": {
    "/pets": {
      "get": {"operationId": "listPets", "responses": {"200": {"description": "ok"}}}
    }
  }
}"#;

/// Runs `mcpgate` in `dir`, so that file names in messages are the relative ones given.
fn mcpgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpgate")).args(args).current_dir(dir).output().unwrap()
}

fn mcpgate_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcpgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// The one JSON object a successful `--json` run prints.
#[track_caller]
fn json_output(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = std::str::from_utf8(&output.stdout).unwrap();
    let value: Value = serde_json::from_str(stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"));
    let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["tools", "report"]);
    value
}

/// The message of a failed run, which prints nothing on standard output.
#[track_caller]
fn failure(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(output.stdout, b"");
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn folder_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn tool_names(output: &Value) -> Vec<&str> {
    output["tools"].as_array().unwrap().iter().map(|it| it["name"].as_str().unwrap()).collect()
}

/// A loopback HTTP server answering every request with `body` as JSON, counting connections.
struct Server {
    url: String,
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn start(body: &'static str) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/openapi.json", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        // The thread outlives the test; it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else {
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|it| it == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        Server { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

#[test]
fn converts_a_yaml_file_to_tools_and_a_report_as_json() {
    let dir = folder_with(&[("pets.yaml", PETS)]);
    let output = json_output(&mcpgate(dir.path(), &["convert", "pets.yaml", "--json"]));

    let tools = output["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "getPet");
    assert_eq!(tools[0]["description"], "Get a pet by its id");
    assert_eq!(
        tools[0]["inputSchema"],
        json!({
            "type": "object",
            "properties": {"id": {"type": "integer"}},
            "required": ["id"],
            "additionalProperties": false,
        })
    );

    let report = &output["report"];
    assert_eq!(report["operations"], 1);
    assert_eq!(report["tools"], 1);
    assert_eq!(report["skipped"], json!([]));
    assert_eq!(report["warnings"], json!([]));
    assert_eq!(report["document"]["files"], 1);
    assert_eq!(report["tokens"]["per_tool"][0]["name"], "getPet");
    assert_eq!(report["tokens"]["per_tool"][0]["operation"], "GET /pets/{id}");
    assert!(report["tokens"]["total"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn skips_broken_operations_and_still_succeeds() {
    let dir = folder_with(&[("broken.yaml", BROKEN)]);
    let output = json_output(&mcpgate(dir.path(), &["convert", "broken.yaml", "--json"]));
    assert_eq!(tool_names(&output), ["getC"]);
    let report = &output["report"];
    assert_eq!(report["operations"], 3);
    assert_eq!(report["tools"], 1);
    assert_eq!(
        report["skipped"],
        json!([
            {
                "operation": "GET /a/{id",
                "location": "#/paths/~1a~1{id/get",
                "reason": "the path template has an unclosed `{`",
            },
            {
                "operation": "GET /b",
                "location": "#/paths/~1b/get",
                "reason": "the operation is not an object",
            },
        ])
    );
}

#[test]
fn fails_on_invalid_json_naming_line_and_column() {
    let dir = folder_with(&[("bad.json", "{\n  \"a\": 1,\n  \"b\": ]\n}\n")]);
    let message = failure(&mcpgate(dir.path(), &["convert", "bad.json", "--json"]));
    assert_eq!(message, "error: bad.json: invalid JSON at line 3, column 8: expected value\n");
}

#[test]
fn fails_on_invalid_yaml_naming_line_and_column_once() {
    let dir = folder_with(&[("bad.yaml", "openapi: 3.0.0\npaths:\n  /a: [\n")]);
    let message = failure(&mcpgate(dir.path(), &["convert", "bad.yaml"]));
    assert_eq!(message, "error: bad.yaml: invalid YAML at line 3, column 7: unclosed bracket '['\n");
}

#[test]
fn fails_on_json_that_is_not_openapi() {
    let dir = folder_with(&[("other.json", "{\"a\": 1}\n")]);
    let message = failure(&mcpgate(dir.path(), &["convert", "other.json"]));
    assert_eq!(
        message,
        "error: other.json: not an OpenAPI document: neither `openapi` nor `swagger` is set at #/\n"
    );
}

#[test]
fn fails_on_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let message = failure(&mcpgate(dir.path(), &["convert", "missing.yaml"]));
    assert!(message.starts_with("error: cannot read missing.yaml: "), "{message}");
}

#[test]
fn reads_standard_input_given_as_a_dash() {
    let output = json_output(&mcpgate_with_stdin(&["convert", "-", "--json"], PETS));
    assert_eq!(tool_names(&output), ["getPet"]);
    assert_eq!(output["report"]["document"]["format"], "YAML");
}

#[test]
fn names_standard_input_when_it_is_unreadable() {
    let message =
        failure(&mcpgate_with_stdin(&["convert", "-"], "{\"openapi\": \"3.1.0\",\n  \"info\": ]\n}\n"));
    assert_eq!(message, "error: standard input: invalid JSON at line 2, column 11: expected value\n");
}

#[test]
fn summarizes_the_tools_and_counts_by_default() {
    let dir = folder_with(&[("pets.yaml", PETS), ("broken.yaml", BROKEN)]);
    let output = mcpgate(dir.path(), &["convert", "pets.yaml"]);
    assert_eq!(output.status.code(), Some(0));
    expect![[r#"
        Pets 1.0 (OpenAPI 3.0.3, YAML)
        1 operations: 1 tools, 0 skipped, 0 warnings; about 91 tokens of tool definitions

        TOOL    TOKENS  OPERATION
        getPet      91  GET /pets/{id}
    "#]]
    .assert_eq(std::str::from_utf8(&output.stdout).unwrap());

    let output = mcpgate(dir.path(), &["convert", "broken.yaml"]);
    assert_eq!(output.status.code(), Some(0));
    expect![[r#"
        Broken 1 (OpenAPI 3.0.3, YAML)
        3 operations: 1 tools, 2 skipped, 0 warnings; about 58 tokens of tool definitions

        TOOL  TOKENS  OPERATION
        getC      58  GET /c

        Skipped:
          GET /a/{id (#/paths/~1a~1{id/get): the path template has an unclosed `{`
          GET /b (#/paths/~1b/get): the operation is not an object
    "#]]
    .assert_eq(std::str::from_utf8(&output.stdout).unwrap());
}

#[test]
fn reads_referenced_files_below_the_given_root() {
    let dir = folder_with(&[("spec/main.yaml", MAIN), ("common/Pet.yaml", PET)]);
    let root = dir.path().to_str().unwrap();
    let output = json_output(&mcpgate(dir.path(), &["convert", "spec/main.yaml", "--root", root, "--json"]));
    assert_eq!(tool_names(&output), ["addPet"]);
    assert_eq!(
        output["tools"][0]["inputSchema"],
        json!({
            "type": "object",
            "properties": {"petName": {"type": "string"}},
            "additionalProperties": false,
        })
    );
    assert_eq!(output["report"]["document"]["files"], 2);
    assert_eq!(output["report"]["warnings"], json!([]));
}

#[test]
fn warns_about_referenced_files_outside_the_default_root() {
    // Without `--root`, the root is the entry document's folder, `spec/`, and `common/` is outside.
    let dir = folder_with(&[("spec/main.yaml", MAIN), ("common/Pet.yaml", PET)]);
    let output = json_output(&mcpgate(dir.path(), &["convert", "spec/main.yaml", "--json"]));
    assert_eq!(tool_names(&output), ["addPet"]);
    assert_eq!(output["report"]["document"]["files"], 1);
    assert_eq!(
        output["report"]["warnings"],
        json!([{
            "kind": "schema",
            "operation": "POST /pets",
            "location": "#/paths/~1pets/post/requestBody/content/application~1json/schema",
            "message": "unresolvable reference, any value accepted: `../common/Pet.yaml` is outside the root folder",
        }])
    );
}

#[test]
fn refuses_an_entry_document_outside_the_root() {
    let dir = folder_with(&[("spec/main.yaml", MAIN), ("common/Pet.yaml", PET)]);
    let message = failure(&mcpgate(dir.path(), &["convert", "spec/main.yaml", "--root", "common"]));
    let real = dir.path().canonicalize().unwrap();
    let entry = real.join("spec/main.yaml");
    let root = real.join("common");
    assert_eq!(
        message,
        format!("error: {} is not inside the root folder {}\n", entry.display(), root.display())
    );
}

#[test]
fn converts_a_document_fetched_from_an_allowed_loopback_url() {
    let server = Server::start(PETS_JSON);
    let dir = tempfile::tempdir().unwrap();
    let output =
        json_output(&mcpgate(dir.path(), &["convert", &server.url, "--allow-private-url", "--json"]));
    assert_eq!(tool_names(&output), ["listPets"]);
    assert_eq!(output["report"]["document"]["title"], "Remote pets");
    assert_eq!(output["report"]["document"]["format"], "JSON");
    assert_eq!(server.connections(), 1);
}

#[test]
fn refuses_a_loopback_url_unless_allowed() {
    let server = Server::start(PETS_JSON);
    let dir = tempfile::tempdir().unwrap();
    let message = failure(&mcpgate(dir.path(), &["convert", &server.url, "--json"]));
    assert_eq!(message, "error: 127.0.0.1 resolves to the non-public address 127.0.0.1, which is refused\n");
    assert_eq!(server.connections(), 0);
}
