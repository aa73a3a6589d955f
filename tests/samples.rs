//! Snapshots of the tools and report generated from each document in `openapi-samples/`.
//! Update with `UPDATE_EXPECT=1 cargo test --test samples`, then review the diff.

use std::path::Path;

use expect_test::expect_file;
use mcpgate::source::{self, Limits};
use mcpgate::tools::{self, Options};
use serde_json::json;

#[track_caller]
fn check(sample: &str, root: Option<&str>, snapshot: expect_test::ExpectFile) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi-samples");
    let limits = Limits { root: root.map(|it| samples.join(it)), ..Limits::default() };
    let spec = source::load_file(&samples.join(sample), &limits).expect("sample documents are readable").spec;
    let generated = tools::generate(&spec, &Options::default());
    let tools: Vec<_> = generated.tools.iter().map(mcpgate::mcp::tool_definition).collect();
    let rendered = serde_json::to_string_pretty(&json!({"tools": tools, "report": generated.report}))
        .expect("tools serialize");
    snapshot.assert_eq(&(rendered + "\n"));
}

#[test]
fn petstore_swagger_2() {
    check("oai-petstore-v2.yaml", None, expect_file!["snapshots/oai-petstore-v2.json"]);
}

#[test]
fn petstore_split_over_files() {
    check(
        "oai-petstore-separate/spec/swagger.yaml",
        Some("oai-petstore-separate"),
        expect_file!["snapshots/oai-petstore-separate.json"],
    );
}

#[test]
fn circular_swagger_2() {
    check("readme-schema-circular-v2.yaml", None, expect_file!["snapshots/readme-schema-circular-v2.json"]);
}

#[test]
fn petstore_openapi_3_0() {
    check("swagger-petstore-v3.yaml", None, expect_file!["snapshots/swagger-petstore-v3.json"]);
}

#[test]
fn circular_openapi_3_0() {
    check("readme-circular.json", None, expect_file!["snapshots/readme-circular.json"]);
}

#[test]
fn file_uploads() {
    check("readme-file-uploads.yaml", None, expect_file!["snapshots/readme-file-uploads.json"]);
}

#[test]
fn parameter_styles() {
    check("readme-parameters-style.json", None, expect_file!["snapshots/readme-parameters-style.json"]);
}

#[test]
fn polymorphism() {
    check("readme-polymorphism.yaml", None, expect_file!["snapshots/readme-polymorphism.json"]);
}

#[test]
fn discriminators() {
    check("readme-discriminators.json", None, expect_file!["snapshots/readme-discriminators.json"]);
}

#[test]
fn train_travel_openapi_3_1() {
    check("readme-train-travel.yaml", None, expect_file!["snapshots/readme-train-travel.json"]);
}
