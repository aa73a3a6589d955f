//! How each OpenAPI construct becomes part of a tool: one small document per behaviour, and
//! the rendered tools and report it must produce. Update with `UPDATE_EXPECT=1` and review.

use expect_test::{Expect, expect};
use mcpgate::openapi;
use mcpgate::tools::plan::BodySource;
use mcpgate::tools::{self, Options};
use std::fmt::Write;

#[track_caller]
fn check(document: &str, expect: Expect) {
    check_with(document, &Options::default(), expect);
}

#[track_caller]
fn check_with(document: &str, options: &Options, expect: Expect) {
    let spec = openapi::ingest(document.as_bytes()).expect("the fixture is readable");
    let generated = tools::generate(&spec, options);
    let mut out = String::new();
    for tool in &generated.tools {
        let operation = &spec.operations[tool.operation];
        writeln!(out, "tool {} ({})", tool.name, operation.label()).unwrap();
        if let Some(title) = &tool.title {
            writeln!(out, "  title: {title}").unwrap();
        }
        writeln!(out, "  description: {}", tool.description.replace('\n', "\\n")).unwrap();
        let a = &tool.annotations;
        let hints: Vec<&str> = [
            (a.read_only, "read_only"),
            (a.destructive, "destructive"),
            (a.idempotent, "idempotent"),
            (a.open_world, "open_world"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        writeln!(out, "  hints: {}", hints.join(" ")).unwrap();
        let plan = &tool.plan;
        let mut parameters: Vec<_> = plan.parameters.iter().collect();
        parameters.sort_by_key(|it| it.location);
        for param in parameters {
            let location = format!("{:?}", param.location).to_lowercase();
            let (name, style, explode) = (&param.name, param.style, param.explode);
            writeln!(out, "  arg {} <- {location} {name} ({style:?}, explode {explode})", param.argument)
                .unwrap();
        }
        if let Some(body) = &plan.body {
            match &body.source {
                BodySource::Flattened(pairs) => {
                    for (argument, property) in pairs {
                        writeln!(out, "  arg {argument} <- body.{property}").unwrap();
                    }
                }
                BodySource::Whole(argument) => writeln!(out, "  arg {argument} <- body").unwrap(),
            }
            let files: Vec<&str> =
                body.fields.iter().filter(|it| it.file || it.file_items).map(|it| it.name.as_str()).collect();
            let files =
                if files.is_empty() { String::new() } else { format!(", files: {}", files.join(" ")) };
            writeln!(out, "  body: {} ({:?}){files}", body.media_type, body.kind).unwrap();
        }
        writeln!(out, "  input: {}", serde_json::to_string(&tool.input_schema).unwrap()).unwrap();
        if let Some(schema) = &tool.output_schema {
            writeln!(out, "  output ({:?}): {}", tool.output, serde_json::to_string(schema).unwrap())
                .unwrap();
        }
    }
    for skipped in &generated.report.skipped {
        writeln!(out, "skipped {} at {}: {}", skipped.operation, skipped.location, skipped.reason).unwrap();
    }
    for warning in &generated.report.warnings {
        let kind = serde_json::to_value(warning.kind).unwrap();
        writeln!(out, "warning {} at {}: {}", kind.as_str().unwrap(), warning.location, warning.message)
            .unwrap();
    }
    expect.assert_eq(&out);
}

#[test]
fn openapi_3_0_keywords_become_2020_12() {
    check(
        r##"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /items:
    get:
      operationId: listItems
      parameters:
        - {name: min, in: query, schema: {type: number, minimum: 0, exclusiveMinimum: true, example: 1.5}}
        - {name: max, in: query, schema: {type: integer, maximum: 10, exclusiveMaximum: false}}
        - {name: tag, in: query, schema: {type: string, nullable: true, enum: [a, b]}}
        - {name: any, in: query, schema: {nullable: true, allOf: [{type: string}], description: d}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: object, properties: {n: {type: integer, nullable: true}}, discriminator: {propertyName: n}, xml: {name: x}, x-internal: true}
"##,
        expect![[r##"
            tool listItems (GET /items)
              description: GET /items
              hints: read_only idempotent open_world
              arg min <- query min (Form, explode true)
              arg max <- query max (Form, explode true)
              arg tag <- query tag (Form, explode true)
              arg any <- query any (Form, explode true)
              input: {"type":"object","properties":{"min":{"type":"number","examples":[1.5],"exclusiveMinimum":0},"max":{"type":"integer","maximum":10},"tag":{"type":["string","null"],"enum":["a","b",null]},"any":{"description":"d","anyOf":[{"allOf":[{"type":"string"}]},{"type":"null"}]}},"additionalProperties":false}
              output (Object): {"type":"object","properties":{"n":{"type":["integer","null"]}}}
        "##]],
    );
}

#[test]
fn read_only_leaves_requests_and_write_only_leaves_responses() {
    check(
        r##"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /users:
    post:
      operationId: createUser
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/User"}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema: {$ref: "#/components/schemas/User"}
components:
  schemas:
    Id: {type: string, readOnly: true}
    User:
      type: object
      required: [id, name, password]
      properties:
        id: {$ref: "#/components/schemas/Id"}
        name: {type: string}
        password: {type: string, writeOnly: true}
"##,
        expect![[r#"
            tool createUser (POST /users)
              description: POST /users
              hints: open_world
              arg name <- body.name
              arg password <- body.password
              body: application/json (Json)
              input: {"type":"object","properties":{"name":{"type":"string"},"password":{"type":"string","writeOnly":true}},"required":["name","password"],"additionalProperties":false}
              output (Object): {"type":"object","required":["id","name"],"properties":{"id":{"type":"string","readOnly":true},"name":{"type":"string"}}}
        "#]],
    );
}

#[test]
fn clashing_names_get_their_location_and_credentials_stay_hidden() {
    check(
        r##"
openapi: 3.0.3
info: {title: t, version: "1"}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Api-Key}
    token: {type: apiKey, in: query, name: access_token}
paths:
  /things/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
      - {name: verbose, in: query, schema: {type: boolean}}
    put:
      operationId: putThing
      parameters:
        - {name: id, in: query, schema: {type: integer}}
        - {name: verbose, in: query, schema: {type: string}, description: overrides the path-level one}
        - {name: X-Api-Key, in: header, schema: {type: string}}
        - {name: access_token, in: query, schema: {type: string}}
        - {name: Authorization, in: header, schema: {type: string}}
        - {name: "filter[status]", in: query, style: deepObject, explode: true, schema: {type: object}}
        - {name: session, in: cookie, schema: {type: string}}
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [id]
              properties:
                id: {type: string}
                name: {type: string}
      responses:
        "204": {description: done}
"##,
        expect![[r#"
            tool putThing (PUT /things/{id})
              description: PUT /things/{id}
              hints: idempotent open_world
              arg id <- path id (Simple, explode false)
              arg id_query <- query id (Form, explode true)
              arg verbose <- query verbose (Form, explode true)
              arg filter_status <- query filter[status] (DeepObject, explode true)
              arg session <- cookie session (Form, explode true)
              arg id_body <- body.id
              arg name <- body.name
              body: application/json (Json)
              input: {"type":"object","properties":{"id":{"type":"string"},"id_query":{"type":"integer"},"verbose":{"type":"string","description":"overrides the path-level one"},"filter_status":{"type":"object"},"session":{"type":"string"},"id_body":{"type":"string"},"name":{"type":"string"}},"required":["id"],"additionalProperties":false}
            warning credential_hidden at #/paths/~1things~1{id}/put: query access_token carries a credential and is not shown to the model
            warning credential_hidden at #/paths/~1things~1{id}/put: header X-Api-Key carries a credential and is not shown to the model
            warning credential_hidden at #/paths/~1things~1{id}/put: header Authorization carries a credential and is not shown to the model
        "#]],
    );
}

#[test]
fn swagger_2_forms_files_and_collection_formats() {
    check(
        r##"
swagger: "2.0"
info: {title: t, version: "1"}
host: api.example.com
basePath: /v1
schemes: [http, https]
consumes: [application/x-www-form-urlencoded]
paths:
  /upload:
    post:
      operationId: upload
      consumes: [multipart/form-data]
      parameters:
        - {name: file, in: formData, type: file, required: true, description: the file}
        - {name: tags, in: formData, type: array, items: {type: string}, collectionFormat: pipes}
      responses:
        "200": {description: ok, schema: {type: string, x-nullable: true}}
  /search:
    get:
      operationId: search
      parameters:
        - {name: ids, in: query, type: array, items: {type: integer}, collectionFormat: multi}
        - {name: cols, in: query, type: array, items: {type: string}, collectionFormat: ssv}
        - {name: limit, in: query, type: integer, minimum: 1, maximum: 100, exclusiveMaximum: true, default: 10}
      responses:
        "200": {description: ok}
  /form:
    post:
      operationId: form
      parameters:
        - {name: a, in: formData, type: string, required: true}
      responses:
        "201": {description: ok}
"##,
        expect![[r#"
            tool upload (POST /upload)
              description: POST /upload
              hints: open_world
              arg file <- body.file
              arg tags <- body.tags
              body: multipart/form-data (Multipart), files: file
              input: {"type":"object","properties":{"file":{"contentEncoding":"base64","type":"string","description":"the file"},"tags":{"type":"array","items":{"type":"string"}}},"required":["file"],"additionalProperties":false}
              output (Wrapped): {"type":"object","properties":{"result":{"type":["string","null"]}},"required":["result"]}
            tool search (GET /search)
              description: GET /search
              hints: read_only idempotent open_world
              arg ids <- query ids (Form, explode true)
              arg cols <- query cols (SpaceDelimited, explode false)
              arg limit <- query limit (Form, explode true)
              input: {"type":"object","properties":{"ids":{"type":"array","items":{"type":"integer"}},"cols":{"type":"array","items":{"type":"string"}},"limit":{"type":"integer","default":10,"minimum":1,"exclusiveMaximum":100}},"additionalProperties":false}
            tool form (POST /form)
              description: POST /form
              hints: open_world
              arg a <- body.a
              body: application/x-www-form-urlencoded (Form)
              input: {"type":"object","properties":{"a":{"type":"string"}},"required":["a"],"additionalProperties":false}
            warning output_wrapped at #/paths/~1upload/post: the response is not an object; structured output is wrapped in `result`
        "#]],
    );
}

#[test]
fn x_mcp_extensions_override_names_descriptions_hints_and_exposure() {
    check(
        r##"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: getA
      summary: Get an A
      x-mcp-name: fetch_a
      x-mcp-description: "Fetches  the A.\n\n\n  Use sparingly."
    post:
      operationId: postA
      summary: Make an A
      description: Makes an A from scratch.
      deprecated: true
      x-mcp-annotations: {destructiveHint: true, openWorldHint: false}
    delete:
      operationId: deleteA
      x-mcp-hidden: true
"##,
        expect![[r#"
            tool fetch_a (GET /a)
              title: Get an A
              description: Fetches the A.\n\nUse sparingly.
              hints: read_only idempotent open_world
              input: {"type":"object","properties":{},"additionalProperties":false}
            tool postA (POST /a)
              title: Make an A
              description: Deprecated. Make an A\n\nMakes an A from scratch.
              hints: destructive
              input: {"type":"object","properties":{},"additionalProperties":false}
            skipped DELETE /a at #/paths/~1a/delete: hidden by `x-mcp-hidden`
        "#]],
    );
}

#[test]
fn recursive_schemas_stay_references_and_non_objects_are_wrapped() {
    check(
        r##"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /tree:
    get:
      operationId: getTree
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {type: array, items: {$ref: "#/components/schemas/Node"}}
  /pair:
    get:
      operationId: getPair
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema: {$ref: "#/components/schemas/A"}
components:
  schemas:
    Node:
      type: object
      properties:
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
        label: {$ref: "#/components/schemas/Label"}
    Label: {type: string, maxLength: 20}
    A: {type: object, properties: {b: {$ref: "#/components/schemas/B"}}}
    B: {type: object, properties: {a: {$ref: "#/components/schemas/A"}}}
"##,
        expect![[r##"
            tool getTree (GET /tree)
              description: GET /tree
              hints: read_only idempotent open_world
              input: {"type":"object","properties":{},"additionalProperties":false}
              output (Wrapped): {"type":"object","properties":{"result":{"type":"array","items":{"$ref":"#/$defs/Node"}}},"required":["result"],"$defs":{"Node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/$defs/Node"}},"label":{"type":"string","maxLength":20}}}}}
            tool getPair (GET /pair)
              description: GET /pair
              hints: read_only idempotent open_world
              input: {"type":"object","properties":{},"additionalProperties":false}
              output (Object): {"type":"object","properties":{"b":{"$ref":"#/$defs/B"}},"$defs":{"A":{"type":"object","properties":{"b":{"$ref":"#/$defs/B"}}},"B":{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}}}}}
            warning output_wrapped at #/paths/~1tree/get: the response is not an object; structured output is wrapped in `result`
            warning cycle at #/paths/~1tree/get: recursive schemas kept as references: Node
            warning cycle at #/paths/~1pair/get: recursive schemas kept as references: A, B
        "##]],
    );
}

#[test]
fn broken_parts_are_skipped_or_degraded_and_reported() {
    check(
        r##"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /ok/{id}/{undeclared}:
    get:
      operationId: ok
      parameters:
        - {name: id, in: path, schema: {type: integer}}
        - {name: ghost, in: path, schema: {type: string}}
        - {name: q, in: query, schema: {$ref: "#/components/schemas/Missing"}}
        - {name: r, in: query, schema: {$ref: "other.yaml#/R"}}
        - {name: s, in: query, schema: {$ref: "https://example.com/s.json"}}
        - {name: p, in: query, schema: {type: string, pattern: "(?<!x)y["}}
        - {name: t, in: query, schema: {type: [strin, integer]}}
        - {in: query}
        - {name: u, in: body}
  /broken/{id:
    get:
      operationId: brokenTemplate
  /not-an-object:
    get: 42
  /bad-ref:
    get: {$ref: "#/nowhere"}
"##,
        expect![[r#"
            tool ok (GET /ok/{id}/{undeclared})
              description: GET /ok/{id}/{undeclared}
              hints: read_only idempotent open_world
              arg id <- path id (Simple, explode false)
              arg undeclared <- path undeclared (Simple, explode false)
              arg q <- query q (Form, explode true)
              arg r <- query r (Form, explode true)
              arg s <- query s (Form, explode true)
              arg p <- query p (Form, explode true)
              arg t <- query t (Form, explode true)
              input: {"type":"object","properties":{"id":{"type":"integer"},"undeclared":{"type":"string"},"q":{},"r":{},"s":{},"p":{"type":"string"},"t":{"type":"integer"}},"required":["id","undeclared"],"additionalProperties":false}
            skipped GET /broken/{id at #/paths/~1broken~1{id/get: the path template has an unclosed `{`
            skipped GET /not-an-object at #/paths/~1not-an-object/get: the operation is not an object
            skipped GET /bad-ref at #/paths/~1bad-ref/get: the operation is unreadable: `#/nowhere` points at nothing
            warning document at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/7: parameter without a `name`; ignored
            warning document at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/8: parameter `u` is in `body`; ignored
            warning document at #/paths/~1ok~1{id}~1{undeclared}/get: path parameter `ghost` is not in the path; ignored
            warning document at #/paths/~1ok~1{id}~1{undeclared}/get: path parameter `undeclared` is not declared; read as a string
            warning schema at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/2/schema: unresolvable reference, any value accepted: `#/components/schemas/Missing` points at nothing
            warning schema at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/3/schema: unresolvable reference, any value accepted: cannot read `other.yaml`: external files cannot be read for this source
            warning schema at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/4/schema: unresolvable reference, any value accepted: network reference `https://example.com/s.json` is not followed
            warning schema at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/5/schema: pattern "(?<!x)y[" is not a valid regex; ignored
            warning schema at #/paths/~1ok~1{id}~1{undeclared}/get/parameters/6/schema: unknown type ["strin","integer"]; ignored
        "#]],
    );
}

#[test]
fn long_names_and_descriptions_are_cut_with_a_warning() {
    let options = Options { max_name_len: 20, max_description_len: 30, ..Options::default() };
    check_with(
        r##"
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      operationId: aVeryLongOperationIdentifierIndeed
      summary: Summary
      description: "Summary. And then a description that goes on and on."
  /b:
    get:
      operationId: aVeryLongOperationIdentifierIndeed
"##,
        &options,
        expect![[r#"
            tool aVeryLongOp_90a36c05 (GET /a)
              title: Summary
              description: Summary. And then a descripti…
              hints: read_only idempotent open_world
              input: {"type":"object","properties":{},"additionalProperties":false}
            tool aVeryLong_90a36c05_2 (GET /b)
              description: GET /b
              hints: read_only idempotent open_world
              input: {"type":"object","properties":{},"additionalProperties":false}
            warning name_shortened at #/paths/~1a/get: name shortened to `aVeryLongOp_90a36c05` (20 characters at most)
            warning description_capped at #/paths/~1a/get: description cut to 30 characters
            warning name_shortened at #/paths/~1b/get: name shortened to `aVeryLong_90a36c05_2` (20 characters at most)
            warning name_collision at #/paths/~1b/get: `aVeryLongOp_90a36c05` is taken by an earlier operation; named `aVeryLong_90a36c05_2`
        "#]],
    );
}

/// A response that is an object through `allOf` (inheritance) is structured content as it is,
/// not wrapped in `result`.
#[test]
fn an_all_of_object_response_is_not_wrapped() {
    check(
        r#"
openapi: 3.1.0
info: {title: T, version: "1"}
paths:
  /pets/{id}:
    get:
      operationId: getPet
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                allOf:
                  - $ref: '#/components/schemas/Base'
                  - {type: object, properties: {name: {type: string}}}
components:
  schemas:
    Base: {type: object, properties: {id: {type: string}}}
"#,
        expect![[r#"
            tool getPet (GET /pets/{id})
              description: GET /pets/{id}
              hints: read_only idempotent open_world
              arg id <- path id (Simple, explode false)
              input: {"type":"object","properties":{"id":{"type":"string"}},"required":["id"],"additionalProperties":false}
              output (Object): {"allOf":[{"type":"object","properties":{"id":{"type":"string"}}},{"type":"object","properties":{"name":{"type":"string"}}}],"type":"object"}
        "#]],
    );
}

/// Webhooks are reported, and `\p{…}` patterns, which Python's `re` cannot compile, dropped
/// with a warning.
#[test]
fn webhooks_are_reported_and_unicode_class_patterns_dropped() {
    check(
        r#"
openapi: 3.1.0
info: {title: T, version: "1"}
paths:
  /users:
    post:
      operationId: createUser
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                name: {type: string, pattern: '^\p{L}+$'}
                code: {type: string, pattern: '^[a-z]+$'}
      responses: {"201": {description: created}}
webhooks:
  userCreated:
    post:
      responses: {"200": {description: ok}}
"#,
        expect![[r#"
            tool createUser (POST /users)
              description: POST /users
              hints: open_world
              arg name <- body.name
              arg code <- body.code
              body: application/json (Json)
              input: {"type":"object","properties":{"name":{"type":"string"},"code":{"type":"string","pattern":"^[a-z]+$"}},"additionalProperties":false}
            warning document at #/webhooks: webhooks are requests the API sends, not operations: no tool for userCreated
            warning schema at #/paths/~1users/post/requestBody/content/application~1json/schema/properties/name: pattern "^\\p{L}+$" uses \p{…} classes, which some clients cannot compile; ignored
        "#]],
    );
}
