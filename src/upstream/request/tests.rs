//! The request builder against the OpenAPI style tables, traversal attempts and every body kind.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::body::{Part, choose_boundary, part_head, random_boundaries};
use super::*;
use crate::openapi;
use crate::tools::{self, Options};

const BASE: &str = "https://api.example.com/v1/";

fn call_at(base: &str, document: &str, tool: &str, arguments: Value) -> Result<Request, Error> {
    let spec = openapi::ingest(document.as_bytes()).unwrap();
    let generated = tools::generate(&spec, &Options::default());
    let Some(tool) = generated.tools.iter().find(|it| it.name == tool) else {
        panic!("no tool {tool} in {:?}", generated.tools.iter().map(|it| &it.name).collect::<Vec<_>>())
    };
    let Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
    build(&Url::parse(base).unwrap(), &tool.plan, &arguments)
}

fn call(document: &str, tool: &str, arguments: Value) -> Result<Request, Error> {
    call_at(BASE, document, tool, arguments)
}

#[track_caller]
fn ok(document: &str, tool: &str, arguments: Value) -> Request {
    match call(document, tool, arguments) {
        Ok(request) => request,
        Err(err) => panic!("unexpected error: {err}"),
    }
}

/// A document with one operation `op` on `/users/{id}` (path) or `/users` (other locations)
/// and one parameter, `id` in the path and `color` elsewhere.
fn one_parameter(location: &str, style: Option<&str>, explode: Option<bool>) -> String {
    let (path, name) = if location == "path" { ("/users/{id}", "id") } else { ("/users", "color") };
    let mut param = json!({"name": name, "in": location, "required": location == "path", "schema": {}});
    if let Some(style) = style {
        param["style"] = json!(style);
    }
    if let Some(explode) = explode {
        param["explode"] = json!(explode);
    }
    let operation =
        json!({"operationId": "op", "parameters": [param], "responses": {"200": {"description": "ok"}}});
    let mut paths = Map::new();
    paths.insert(path.to_owned(), json!({"get": operation}));
    json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}).to_string()
}

fn colors() -> [Value; 3] {
    [json!("blue"), json!(["blue", "black", "brown"]), json!({"R": 100, "G": 200, "B": 150})]
}

#[test]
fn path_styles_follow_the_style_examples() {
    let users = [json!(5), json!([3, 4, 5]), json!({"role": "admin", "firstName": "Alex"})];
    let table = [
        ("simple", false, ["5", "3,4,5", "role,admin,firstName,Alex"]),
        ("simple", true, ["5", "3,4,5", "role=admin,firstName=Alex"]),
        ("label", false, [".5", ".3,4,5", ".role,admin,firstName,Alex"]),
        ("label", true, [".5", ".3.4.5", ".role=admin.firstName=Alex"]),
        ("matrix", false, [";id=5", ";id=3,4,5", ";id=role,admin,firstName,Alex"]),
        ("matrix", true, [";id=5", ";id=3;id=4;id=5", ";role=admin;firstName=Alex"]),
    ];
    for (style, explode, expected) in table {
        let document = one_parameter("path", Some(style), Some(explode));
        for (value, expected) in users.iter().zip(expected) {
            let request = ok(&document, "op", json!({ "id": value }));
            let want = format!("https://api.example.com/v1/users/{expected}");
            assert_eq!(request.url.as_str(), want, "{style}, explode {explode}, {value}");
        }
    }
}

#[test]
fn path_styles_follow_the_color_table() {
    // OpenAPI 3.1.1 §4.8.12.6, with `id` in place of `color`.
    let table = [
        ("simple", false, ["blue", "blue,black,brown", "R,100,G,200,B,150"]),
        ("simple", true, ["blue", "blue,black,brown", "R=100,G=200,B=150"]),
        ("label", false, [".blue", ".blue,black,brown", ".R,100,G,200,B,150"]),
        ("label", true, [".blue", ".blue.black.brown", ".R=100.G=200.B=150"]),
        ("matrix", false, [";id=blue", ";id=blue,black,brown", ";id=R,100,G,200,B,150"]),
        ("matrix", true, [";id=blue", ";id=blue;id=black;id=brown", ";R=100;G=200;B=150"]),
    ];
    for (style, explode, expected) in table {
        let document = one_parameter("path", Some(style), Some(explode));
        for (value, expected) in colors().iter().zip(expected) {
            let request = ok(&document, "op", json!({ "id": value }));
            assert_eq!(request.url.path(), format!("/v1/users/{expected}"), "{style}, explode {explode}");
        }
    }
}

#[test]
fn path_defaults_to_simple_and_encodes_style_values() {
    let document = one_parameter("path", None, None);
    let request = ok(&document, "op", json!({"id": ["a,b", "c d"]}));
    assert_eq!(request.url.path(), "/v1/users/a%2Cb,c%20d");
    let request = ok(&one_parameter("path", Some("matrix"), Some(false)), "op", json!({"id": ""}));
    assert_eq!(request.url.path(), "/v1/users/;id");
    let request = ok(&one_parameter("path", Some("label"), Some(true)), "op", json!({"id": {"a.b": "c;d"}}));
    assert_eq!(request.url.path(), "/v1/users/.a.b=c%3Bd");
}

#[test]
fn query_styles_follow_the_color_table() {
    // The *n/a* cells of the table (a primitive in a delimited style or deepObject, an
    // exploded delimited style, a list in deepObject) fall back to form.
    let table = [
        ("form", false, ["color=blue", "color=blue,black,brown", "color=R,100,G,200,B,150"]),
        ("form", true, ["color=blue", "color=blue&color=black&color=brown", "R=100&G=200&B=150"]),
        (
            "spaceDelimited",
            false,
            ["color=blue", "color=blue%20black%20brown", "color=R%20100%20G%20200%20B%20150"],
        ),
        (
            "pipeDelimited",
            false,
            ["color=blue", "color=blue%7Cblack%7Cbrown", "color=R%7C100%7CG%7C200%7CB%7C150"],
        ),
        ("spaceDelimited", true, ["color=blue", "color=blue&color=black&color=brown", "R=100&G=200&B=150"]),
        (
            "deepObject",
            true,
            [
                "color=blue",
                "color=blue&color=black&color=brown",
                "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150",
            ],
        ),
    ];
    for (style, explode, expected) in table {
        let document = one_parameter("query", Some(style), Some(explode));
        for (value, expected) in colors().iter().zip(expected) {
            let request = ok(&document, "op", json!({ "color": value }));
            assert_eq!(request.url.query(), Some(expected), "{style}, explode {explode}, {value}");
            assert_eq!(request.url.path(), "/v1/users");
        }
    }
}

#[test]
fn query_defaults_to_exploded_form() {
    let document = one_parameter("query", None, None);
    let request = ok(&document, "op", json!({"color": [3, 4, 5]}));
    assert_eq!(request.url.query(), Some("color=3&color=4&color=5"));
    let request = ok(&document, "op", json!({"color": {"role": "admin", "firstName": "Alex"}}));
    assert_eq!(request.url.query(), Some("role=admin&firstName=Alex"));
    // An empty list is undefined (RFC 6570 §2.3) and sent as nothing; an empty string is not.
    let request = ok(&document, "op", json!({"color": []}));
    assert_eq!(request.url.query(), None);
    let request = ok(&document, "op", json!({"color": ""}));
    assert_eq!(request.url.query(), Some("color="));
}

#[test]
fn deep_objects_nest_and_are_bounded() {
    let document = one_parameter("query", Some("deepObject"), Some(true));
    let request = ok(&document, "op", json!({"color": {"a": {"b": 1, "c": [true, false]}, "d": null}}));
    assert_eq!(
        request.url.query(),
        Some("color%5Ba%5D%5Bb%5D=1&color%5Ba%5D%5Bc%5D=true&color%5Ba%5D%5Bc%5D=false")
    );
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "x": deep });
    }
    let err = call(&document, "op", json!({ "color": deep })).unwrap_err();
    assert!(matches!(&err, Error::TooDeep(name) if name == "color"), "{err}");
}

#[test]
fn nested_values_in_flat_styles_are_refused() {
    let document = one_parameter("query", Some("form"), Some(true));
    let err = call(&document, "op", json!({"color": {"a": {"b": 1}}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "argument `color` cannot be sent as a query parameter in style form: it holds nested objects or arrays"
    );
    let document = one_parameter("path", None, None);
    let err = call(&document, "op", json!({"id": [[1]]})).unwrap_err();
    assert!(matches!(&err, Error::Unserializable { argument, .. } if argument == "id"), "{err}");
}

#[test]
fn query_values_are_percent_encoded() {
    let document = one_parameter("query", None, None);
    let request = ok(&document, "op", json!({"color": "a b&c=d+e#f%g~h/é?"}));
    assert_eq!(request.url.query(), Some("color=a%20b%26c%3Dd%2Be%23f%25g~h%2F%C3%A9%3F"));
    assert_eq!(request.url.fragment(), None);
    let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
    assert_eq!(pairs, [("color".to_owned(), "a b&c=d+e#f%g~h/é?".to_owned())]);
}

#[test]
fn allow_reserved_keeps_reserved_characters_but_not_separators() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /search:
    get:
      operationId: search
      parameters:
        - {name: path, in: query, allowReserved: true, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let request = ok(document, "search", json!({"path": "a/b?c:d@e,f;g=h[i]!$()*+ x&y#z%"}));
    assert_eq!(request.url.query(), Some("path=a/b?c:d@e,f;g=h[i]!$()*+%20x%26y%23z%25"));
}

#[test]
fn primitives_serialize_as_json_writes_them() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: flag, in: query, schema: {type: boolean}}
        - {name: ratio, in: query, schema: {type: number}}
        - {name: count, in: query, schema: {type: integer}}
        - {name: off, in: query, schema: {type: boolean}}
        - {name: skipped, in: query, schema: {type: string}}
        - {name: absent, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let arguments = json!({"flag": true, "ratio": 1.5, "count": 12345678901234_u64, "off": false, "skipped": null, "unknown": 1});
    let request = ok(document, "list", arguments);
    assert_eq!(request.url.query(), Some("flag=true&ratio=1.5&count=12345678901234&off=false"));
    assert_eq!(request.method, http::Method::GET);
}

#[test]
fn swagger_collection_formats() {
    let document = r#"
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: tsv, in: query, type: array, items: {type: string}, collectionFormat: tsv}
        - {name: ssv, in: query, type: array, items: {type: string}, collectionFormat: ssv}
        - {name: pipes, in: query, type: array, items: {type: string}, collectionFormat: pipes}
        - {name: csv, in: query, type: array, items: {type: string}, collectionFormat: csv}
        - {name: multi, in: query, type: array, items: {type: string}, collectionFormat: multi}
        - {name: X-Ids, in: header, type: array, items: {type: integer}}
      responses: {"200": {description: ok}}
"#;
    let ab = json!(["a", "b"]);
    let arguments = json!({"tsv": ab, "ssv": ab, "pipes": ab, "csv": ab, "multi": ab, "X-Ids": [1, 2]});
    let request = ok(document, "list", arguments);
    assert_eq!(request.url.query(), Some("tsv=a%09b&ssv=a%20b&pipes=a%7Cb&csv=a,b&multi=a&multi=b"));
    assert_eq!(request.headers, [("X-Ids".to_owned(), "1,2".to_owned())]);
}

#[test]
fn missing_required_parameters_are_refused() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things/{id}:
    get:
      operationId: get
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: q, in: query, required: true, schema: {type: [string, "null"]}}
      responses: {"200": {description: ok}}
"#;
    let err = call(document, "get", json!({"q": "x"})).unwrap_err();
    assert_eq!(err.to_string(), "missing required argument `id`");
    let err = call(document, "get", json!({"id": "1"})).unwrap_err();
    assert!(matches!(&err, Error::Missing(name) if name == "q"), "{err}");
    // Null passes a nullable schema, but a required parameter still needs a value.
    let err = call(document, "get", json!({"id": "1", "q": null})).unwrap_err();
    assert!(matches!(&err, Error::Missing(name) if name == "q"), "{err}");
    let err = call(document, "get", json!({"id": null, "q": "x"})).unwrap_err();
    assert!(matches!(&err, Error::Missing(name) if name == "id"), "{err}");
}

const FILES: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /files/{name}/content:
    get:
      operationId: read
      parameters:
        - {name: name, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
  /labels/{name}:
    get:
      operationId: label
      parameters:
        - {name: name, in: path, required: true, style: label, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;

#[test]
fn path_values_stay_in_their_segment() {
    let cases = [
        ("../admin", "..%2Fadmin"),
        ("../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd"),
        ("a/b", "a%2Fb"),
        ("x?y#z", "x%3Fy%23z"),
        ("%2e%2e", "%252e%252e"),
        ("%2F", "%252F"),
        ("..\\admin", "..%5Cadmin"),
        ("\\\\evil.com", "%5C%5Cevil.com"),
        ("//evil.com", "%2F%2Fevil.com"),
        ("@evil.com:80", "%40evil.com%3A80"),
        ("a b;c=d,e", "a%20b%3Bc%3Dd%2Ce"),
        ("...", "..."),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("\u{202e}x\r\n", "%E2%80%AEx%0D%0A"),
        ("~me.txt", "~me.txt"),
    ];
    for (value, encoded) in cases {
        let request = ok(FILES, "read", json!({ "name": value }));
        let url = &request.url;
        assert_eq!(url.as_str(), format!("https://api.example.com/v1/files/{encoded}/content"), "{value:?}");
        assert_eq!(url.host_str(), Some("api.example.com"));
        assert_eq!(url.path_segments().map(Iterator::count), Some(4), "{value:?}");
        assert_eq!((url.query(), url.fragment()), (None, None));
    }
}

#[test]
fn empty_and_dot_segments_are_refused() {
    for value in ["", ".", ".."] {
        let err = call(FILES, "read", json!({ "name": value })).unwrap_err();
        assert!(matches!(&err, Error::PathSegment(name) if name == "name"), "{value:?}: {err}");
    }
    // Label style puts a `.` in front: an empty value would be `.`, a `.` would be `..`.
    for value in ["", "."] {
        let err = call(FILES, "label", json!({ "name": value })).unwrap_err();
        assert!(matches!(&err, Error::PathSegment(_)), "{value:?}: {err}");
    }
    assert_eq!(ok(FILES, "label", json!({"name": ".."})).url.path(), "/v1/labels/...");
    let err = call(FILES, "read", json!({"name": []})).unwrap_err();
    assert!(matches!(&err, Error::PathSegment(_)), "{err}");
}

#[test]
fn base_urls_with_and_without_a_path() {
    let cases = [
        ("https://api.example.com/v1", "https://api.example.com/v1/files/a/content"),
        ("https://api.example.com/v1/", "https://api.example.com/v1/files/a/content"),
        ("https://api.example.com", "https://api.example.com/files/a/content"),
        ("https://api.example.com/", "https://api.example.com/files/a/content"),
        ("http://127.0.0.1:8080/api/v2", "http://127.0.0.1:8080/api/v2/files/a/content"),
        ("https://api.example.com/v1?key=k#frag", "https://api.example.com/v1/files/a/content?key=k"),
    ];
    for (base, expected) in cases {
        let request = call_at(base, FILES, "read", json!({"name": "a"})).unwrap();
        assert_eq!(request.url.as_str(), expected);
    }
    let document = one_parameter("query", None, None);
    let request =
        call_at("https://api.example.com/v1?key=k", &document, "op", json!({"color": "x"})).unwrap();
    assert_eq!(request.url.as_str(), "https://api.example.com/v1/users?key=k&color=x");
}

#[test]
fn a_template_that_leaves_the_base_is_refused() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /a/../../admin:
    get:
      operationId: escape
      responses: {"200": {description: ok}}
"#;
    let err = call(document, "escape", json!({})).unwrap_err();
    assert!(matches!(err, Error::Escape), "{err}");
}

#[test]
fn several_expressions_in_one_segment() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /reports/{year}-{month}.{format}:
    get:
      operationId: report
      parameters:
        - {name: year, in: path, required: true, schema: {type: integer}}
        - {name: month, in: path, required: true, schema: {type: integer}}
        - {name: format, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let request = ok(document, "report", json!({"year": 2024, "month": 7, "format": "c/s v"}));
    assert_eq!(request.url.path(), "/v1/reports/2024-7.c%2Fs%20v");
}

#[test]
fn header_styles() {
    let table = [
        (false, ["blue", "blue,black,brown", "R,100,G,200,B,150"]),
        (true, ["blue", "blue,black,brown", "R=100,G=200,B=150"]),
    ];
    for (explode, expected) in table {
        let document = one_parameter("header", Some("simple"), Some(explode));
        for (value, expected) in colors().iter().zip(expected) {
            let request = ok(&document, "op", json!({ "color": value }));
            assert_eq!(request.headers, [("color".to_owned(), expected.to_owned())]);
            assert_eq!(request.url.query(), None);
        }
    }
    // Headers are not percent-encoded.
    let document = one_parameter("header", None, None);
    let request = ok(&document, "op", json!({"color": "a b/ü;c"}));
    assert_eq!(request.headers, [("color".to_owned(), "a b/ü;c".to_owned())]);
}

#[test]
fn header_values_with_line_breaks_are_refused() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: X-Tags, in: header, schema: {type: array, items: {type: string}}}
      responses: {"200": {description: ok}}
"#;
    for value in ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\u{0}b", "a\u{7f}"] {
        let err = call(document, "list", json!({ "X-Trace": value })).unwrap_err();
        assert!(matches!(&err, Error::HeaderValue(name) if name == "X-Trace"), "{value:?}: {err}");
    }
    let err = call(document, "list", json!({"X-Tags": ["ok", "bad\r\nHost: evil"]})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "argument `X-Tags` contains a line break or another control character, which a header cannot carry"
    );
    let request = ok(document, "list", json!({"X-Trace": "tab\tis fine"}));
    assert_eq!(request.headers, [("X-Trace".to_owned(), "tab\tis fine".to_owned())]);
}

#[test]
fn reserved_headers_are_not_set_by_parameters() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: Host, in: header, schema: {type: string}}
        - {name: Content-Length, in: header, schema: {type: string}}
        - {name: Transfer-Encoding, in: header, schema: {type: string}}
        - {name: Accept, in: header, schema: {type: string}}
        - {name: Content-Type, in: header, schema: {type: string}}
        - {name: X-Kept, in: header, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let arguments = json!({
        "Host": "internal.example", "Content-Length": "0", "Transfer-Encoding": "chunked",
        "Accept": "text/html", "Content-Type": "text/plain", "X-Kept": "yes"
    });
    let request = ok(document, "list", arguments);
    assert_eq!(request.headers, [("X-Kept".to_owned(), "yes".to_owned())]);
}

#[test]
fn reserved_headers_never_become_arguments() {
    let reserved = [
        "Accept",
        "Authorization",
        "Connection",
        "Content-Length",
        "Content-Type",
        "Cookie",
        "Expect",
        "Host",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    ];
    let parameters: Vec<Value> = reserved
        .iter()
        .chain(&["X-Kept"])
        .map(|name| json!({"name": name, "in": "header", "schema": {"type": "string"}}))
        .collect();
    let document = json!({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/things": {"get": {
            "operationId": "list", "parameters": parameters, "responses": {"200": {"description": "ok"}}
        }}}
    });
    let spec = openapi::ingest(document.to_string().as_bytes()).unwrap();
    let tool = tools::generate(&spec, &Options::default()).tools.remove(0);
    let arguments: Vec<&String> = tool.input_schema["properties"].as_object().unwrap().keys().collect();
    assert_eq!(arguments, ["X-Kept"]);
    let planned: Vec<&str> = tool.plan.parameters.iter().map(|it| it.name.as_str()).collect();
    assert_eq!(planned, ["X-Kept"]);
    for name in reserved {
        assert!(
            tools::plan::is_reserved_header(name) && tools::plan::is_reserved_header(&name.to_lowercase())
        );
    }
}

#[test]
fn cookie_styles() {
    let table = [
        (false, ["color=blue", "color=blue,black,brown", "color=R,100,G,200,B,150"]),
        (true, ["color=blue", "color=blue; color=black; color=brown", "R=100; G=200; B=150"]),
    ];
    for (explode, expected) in table {
        let document = one_parameter("cookie", Some("form"), Some(explode));
        for (value, expected) in colors().iter().zip(expected) {
            let request = ok(&document, "op", json!({ "color": value }));
            assert_eq!(request.headers, [("Cookie".to_owned(), expected.to_owned())]);
        }
    }
}

#[test]
fn cookies_are_joined_into_one_header() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /things:
    get:
      operationId: list
      parameters:
        - {name: theme, in: cookie, schema: {type: string}}
        - {name: X-Before, in: header, schema: {type: string}}
        - {name: ids, in: cookie, explode: false, schema: {type: array, items: {type: integer}}}
        - {name: unset, in: cookie, schema: {type: string}}
        - {name: lang, in: cookie, schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let arguments = json!({"theme": "dark mode; admin=1\r\n", "ids": [1, 2], "lang": "fr", "X-Before": "h"});
    let request = ok(document, "list", arguments);
    let expected = [
        ("X-Before".to_owned(), "h".to_owned()),
        ("Cookie".to_owned(), "theme=dark%20mode%3B%20admin%3D1%0D%0A; ids=1,2; lang=fr".to_owned()),
    ];
    assert_eq!(request.headers, expected);
}

#[test]
fn content_parameters_are_json_text() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /places/{selector}:
    get:
      operationId: find
      parameters:
        - name: selector
          in: path
          required: true
          content: {application/json: {schema: {type: object}}}
        - name: coordinates
          in: query
          content: {application/json: {schema: {type: object, properties: {lat: {type: number}, long: {type: number}}}}}
        - name: X-Filter
          in: header
          content: {application/json: {schema: {type: object}}}
        - name: raw
          in: query
          content: {text/plain: {schema: {type: string}}}
        - name: session
          in: cookie
          content: {application/json: {schema: {type: object}}}
      responses: {"200": {description: ok}}
"#;
    let arguments = json!({
        "selector": {"a": "b/c"},
        "coordinates": {"lat": 1.5, "long": 2},
        "X-Filter": {"text": "two\nlines"},
        "raw": "as is",
        "session": ["x"],
    });
    let request = ok(document, "find", arguments);
    assert_eq!(request.url.path(), "/v1/places/%7B%22a%22%3A%22b%2Fc%22%7D");
    assert_eq!(request.url.query(), Some("coordinates=%7B%22lat%22%3A1.5%2C%22long%22%3A2%7D&raw=as%20is"));
    let expected = [
        ("X-Filter".to_owned(), r#"{"text":"two\nlines"}"#.to_owned()),
        ("Cookie".to_owned(), "session=%5B%22x%22%5D".to_owned()),
    ];
    assert_eq!(request.headers, expected);
}

const PETS: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /pets/{id}:
    put:
      operationId: updatePet
      parameters:
        - {name: id, in: path, required: true, schema: {type: integer}}
      requestBody:
        required: true
        content:
          application/vnd.api+json:
            schema:
              type: object
              required: [name]
              properties:
                id: {type: integer}
                $type: {type: string}
                name: {type: string}
                tags: {type: array, items: {type: string}}
                owner: {type: [object, "null"]}
      responses: {"200": {description: ok}}
  /pets:
    post:
      operationId: addPets
      requestBody:
        content:
          application/json:
            schema: {type: array, items: {type: object}}
      responses: {"200": {description: ok}}
    patch:
      operationId: patchPets
      requestBody:
        content:
          '*/*':
            schema: {type: object, properties: {note: {type: string}}}
      responses: {"200": {description: ok}}
"#;

fn json_of(body: &Body) -> Value {
    serde_json::from_slice(&body.bytes).unwrap()
}

#[test]
fn json_bodies_from_flattened_properties_use_original_names() {
    let arguments = json!({"id": 7, "id_body": 8, "type": "cat", "name": "Rex", "owner": null, "tags": ["a"], "extra": 1});
    let request = ok(PETS, "updatePet", arguments);
    assert_eq!(request.method, http::Method::PUT);
    assert_eq!(request.url.path(), "/v1/pets/7");
    let Some(body) = &request.body else { panic!("no body") };
    assert_eq!(body.content_type, "application/vnd.api+json");
    let body = json_of(body);
    assert_eq!(body, json!({"id": 8, "$type": "cat", "name": "Rex", "tags": ["a"], "owner": null}));
    // In document order, not argument order.
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "$type", "name", "tags", "owner"]);

    let err = call(PETS, "updatePet", json!({"id": 7})).unwrap_err();
    assert!(matches!(&err, Error::Missing(name) if name == "name"), "{err}");
}

#[test]
fn json_bodies_from_the_body_argument() {
    let request = ok(PETS, "addPets", json!({"body": [{"name": "a"}, {"name": "b"}]}));
    let Some(body) = &request.body else { panic!("no body") };
    assert_eq!(body.content_type, "application/json");
    assert_eq!(json_of(body), json!([{"name": "a"}, {"name": "b"}]));
    // An optional body left out is not sent.
    assert_eq!(ok(PETS, "addPets", json!({})).body, None);
    assert_eq!(ok(PETS, "addPets", json!({"body": null})).body, None);
    // A media range is sent as JSON.
    let request = ok(PETS, "patchPets", json!({"note": "hi"}));
    let Some(body) = &request.body else { panic!("no body") };
    assert_eq!((body.content_type.as_str(), json_of(body)), ("application/json", json!({"note": "hi"})));
    assert_eq!(ok(PETS, "patchPets", json!({})).body, None);
}

#[test]
fn a_required_whole_body_must_be_given() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /notes:
    post:
      operationId: addNote
      requestBody:
        required: true
        content:
          text/plain: {schema: {type: string}}
      responses: {"200": {description: ok}}
"#;
    let err = call(document, "addNote", json!({"body": null})).unwrap_err();
    assert!(matches!(&err, Error::Missing(name) if name == "body"), "{err}");
    let request = ok(document, "addNote", json!({"body": "line 1\nline 2"}));
    let body = request.body.unwrap();
    assert_eq!((body.content_type.as_str(), body.bytes.as_slice()), ("text/plain", &b"line 1\nline 2"[..]));
}

#[test]
fn form_bodies_follow_their_encoding() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /forms:
    post:
      operationId: submit
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              properties:
                name: {type: string}
                tags: {type: array, items: {type: string}}
                address: {type: object}
                csv: {type: array, items: {type: string}}
                color: {type: object}
                spread: {type: object}
                quoted: {type: string}
                path: {type: string}
                none: {type: string}
            encoding:
              csv: {style: form, explode: false}
              color: {style: deepObject, explode: true}
              spread: {style: form}
              quoted: {contentType: application/json}
              path: {allowReserved: true}
      responses: {"200": {description: ok}}
"#;
    let arguments = json!({
        "name": "Rex the ~dog & co=1+1",
        "tags": ["a", "b c"],
        "address": {"city": "Paris", "zip": "75001"},
        "csv": ["a,b", "c"],
        "color": {"R": 100, "G": 200},
        "spread": {"x": 1, "y": 2},
        "quoted": "q",
        "path": "a/b?c&d",
        "none": null,
    });
    let request = ok(document, "submit", arguments);
    let body = request.body.unwrap();
    assert_eq!(body.content_type, "application/x-www-form-urlencoded");
    let expected = [
        "name=Rex%20the%20%7Edog%20%26%20co%3D1%2B1",
        "tags=a",
        "tags=b%20c",
        "address=%7B%22city%22%3A%22Paris%22%2C%22zip%22%3A%2275001%22%7D",
        "csv=a%2Cb,c",
        "color%5BR%5D=100",
        "color%5BG%5D=200",
        "x=1",
        "y=2",
        "quoted=%22q%22",
        "path=a/b?c%26d",
    ]
    .join("&");
    assert_eq!(String::from_utf8(body.bytes).unwrap(), expected);
    let decoded: Vec<(String, String)> =
        url::form_urlencoded::parse(expected.as_bytes()).into_owned().take(1).collect();
    assert_eq!(decoded, [("name".to_owned(), "Rex the ~dog & co=1+1".to_owned())]);
}

#[test]
fn swagger_form_data_fields() {
    let document = r#"
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /login:
    post:
      operationId: login
      consumes: [application/x-www-form-urlencoded]
      parameters:
        - {name: user, in: formData, type: string, required: true}
        - {name: scopes, in: formData, type: array, items: {type: string}, collectionFormat: ssv}
      responses: {"200": {description: ok}}
"#;
    let request = ok(document, "login", json!({"user": "me", "scopes": ["read", "write"]}));
    let body = request.body.unwrap();
    assert_eq!(String::from_utf8(body.bytes).unwrap(), "user=me&scopes=read%20write");
}

/// Each part's header block and content, checking the framing on the way.
fn parts_of(body: &Body) -> Vec<(String, Vec<u8>)> {
    let (essence, boundary) = body.content_type.split_once("; boundary=").unwrap();
    assert_eq!(essence, "multipart/form-data");
    assert!((1..=70).contains(&boundary.len()));
    let mut bytes = b"\r\n".to_vec();
    bytes.extend_from_slice(&body.bytes);
    let delimiter = format!("\r\n--{boundary}");
    let mut pieces = Vec::new();
    let mut rest = bytes.as_slice();
    while let Some(at) = rest.windows(delimiter.len()).position(|it| it == delimiter.as_bytes()) {
        pieces.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    assert_eq!(rest, b"--\r\n");
    assert_eq!(pieces.first(), Some(&&b""[..]));
    pieces[1..]
        .iter()
        .map(|piece| {
            let piece = piece.strip_prefix(b"\r\n").unwrap();
            let end = piece.windows(4).position(|it| it == b"\r\n\r\n").unwrap();
            (String::from_utf8(piece[..end].to_vec()).unwrap(), piece[end + 4..].to_vec())
        })
        .collect()
}

const UPLOAD: &str = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /uploads:
    post:
      operationId: upload
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [file]
              properties:
                title: {type: string}
                file: {type: string, format: binary}
                avatar: {$ref: '#/components/schemas/Image'}
                meta: {type: object}
                labels: {type: array, items: {type: string}}
                attachments: {type: array, items: {type: string, format: binary}}
                count: {type: integer}
            encoding:
              avatar: {contentType: 'image/png, image/jpeg'}
              attachments: {contentType: 'image/*'}
      responses: {"200": {description: ok}}
  /raw:
    post:
      operationId: rawUpload
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              additionalProperties: true
              properties:
                doc: {type: string, format: binary}
      responses: {"200": {description: ok}}
components:
  schemas:
    Image: {type: string, format: binary}
"#;

#[test]
fn multipart_bodies_with_file_parts() {
    let file = b"line\r\n--not-a-boundary\r\n\x00\xff".to_vec();
    let avatar = b"\x89PNG\r\n".to_vec();
    let arguments = json!({
        "title": "Hello \"world\"",
        "file": STANDARD.encode(&file),
        "avatar": format!("data:image/png;base64,{}", STANDARD.encode(&avatar)),
        "meta": {"a": 1},
        "labels": ["x", "y"],
        "attachments": [STANDARD.encode(b"one"), "dHdv"],
        "count": 3,
    });
    let request = ok(UPLOAD, "upload", arguments);
    let body = request.body.unwrap();
    let parts = parts_of(&body);
    let expected: Vec<(String, Vec<u8>)> = vec![
            ("Content-Disposition: form-data; name=\"title\"".into(), b"Hello \"world\"".to_vec()),
            (
                "Content-Disposition: form-data; name=\"file\"; filename=\"file\"\r\nContent-Type: application/octet-stream"
                    .into(),
                file,
            ),
            (
                "Content-Disposition: form-data; name=\"avatar\"; filename=\"avatar\"\r\nContent-Type: image/png".into(),
                avatar,
            ),
            (
                "Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json".into(),
                br#"{"a":1}"#.to_vec(),
            ),
            ("Content-Disposition: form-data; name=\"labels\"".into(), b"x".to_vec()),
            ("Content-Disposition: form-data; name=\"labels\"".into(), b"y".to_vec()),
            (
                "Content-Disposition: form-data; name=\"attachments\"; filename=\"attachments\"\r\nContent-Type: application/octet-stream"
                    .into(),
                b"one".to_vec(),
            ),
            (
                "Content-Disposition: form-data; name=\"attachments\"; filename=\"attachments\"\r\nContent-Type: application/octet-stream"
                    .into(),
                b"two".to_vec(),
            ),
            ("Content-Disposition: form-data; name=\"count\"".into(), b"3".to_vec()),
        ];
    assert_eq!(parts, expected);
}

#[test]
fn multipart_from_a_whole_body_argument() {
    let arguments = json!({"body": {"doc": "aGk=", "note": "n"}});
    let request = ok(UPLOAD, "rawUpload", arguments);
    let parts = parts_of(&request.body.unwrap());
    let expected: Vec<(String, Vec<u8>)> = vec![
            (
                "Content-Disposition: form-data; name=\"doc\"; filename=\"doc\"\r\nContent-Type: application/octet-stream"
                    .into(),
                b"hi".to_vec(),
            ),
            ("Content-Disposition: form-data; name=\"note\"".into(), b"n".to_vec()),
        ];
    assert_eq!(parts, expected);
    let err = call(UPLOAD, "rawUpload", json!({"body": {"doc": "%%%"}})).unwrap_err();
    assert!(matches!(&err, Error::Base64 { argument, .. } if argument == "body.doc"), "{err}");
}

#[test]
fn invalid_base64_names_the_argument() {
    let err = call(UPLOAD, "upload", json!({"file": "not base64!"})).unwrap_err();
    assert!(err.to_string().starts_with("argument `file` is not valid base64: "), "{err}");
    let err = call(UPLOAD, "upload", json!({"file": "aGk=", "attachments": ["aGk=", 5]})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "argument `attachments` cannot be sent as a file: it must be a base64 string"
    );
    // Unpadded, URL-safe and wrapped base64 are accepted.
    for text in ["aGk", "aGk=\n", "_-8="] {
        assert!(call(UPLOAD, "upload", json!({ "file": text })).is_ok(), "{text:?}");
    }
}

#[test]
fn swagger_file_uploads_are_multipart() {
    let document = r#"
swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /upload:
    post:
      operationId: upload
      consumes: [multipart/form-data]
      parameters:
        - {name: file, in: formData, type: file, required: true}
        - {name: note, in: formData, type: string}
      responses: {"200": {description: ok}}
"#;
    let request = ok(document, "upload", json!({"file": STANDARD.encode(b"%PDF-1.7"), "note": "n"}));
    let parts = parts_of(&request.body.unwrap());
    assert_eq!(parts[0].1, b"%PDF-1.7");
    assert!(parts[0].0.contains("filename=\"file\""), "{}", parts[0].0);
    assert_eq!(parts[1], ("Content-Disposition: form-data; name=\"note\"".to_owned(), b"n".to_vec()));
}

#[test]
fn boundaries_are_never_in_the_content() {
    let part =
        |bytes: &[u8]| Part { name: "f".into(), filename: None, content_type: None, bytes: bytes.to_vec() };
    let parts = [part(b"xx--taken--xx"), part(b"other")];
    let candidates = ["--taken--", "f", "", "free"].map(str::to_owned);
    assert_eq!(choose_boundary(&parts, candidates).unwrap(), "free");
    let err = choose_boundary(&parts, std::iter::repeat("other".to_owned())).unwrap_err();
    assert!(matches!(err, Error::Boundary));
    let random: Vec<String> = random_boundaries().take(3).collect();
    assert!(random[0] != random[1] && random[1] != random[2], "{random:?}");
}

#[test]
fn part_names_cannot_break_the_part_headers() {
    let part = Part {
        name: "a\"\r\nX: y".into(),
        filename: Some("f\".txt".into()),
        content_type: Some("text/plain".into()),
        bytes: Vec::new(),
    };
    assert_eq!(
        part_head(&part),
        "Content-Disposition: form-data; name=\"a%22%0D%0AX: y\"; filename=\"f%22.txt\"\r\nContent-Type: text/plain\r\n"
    );
}

#[test]
fn binary_bodies_are_decoded() {
    let document = r#"
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /blobs:
    put:
      operationId: putBlob
      requestBody:
        required: true
        content:
          application/octet-stream: {}
      responses: {"200": {description: ok}}
  /images:
    put:
      operationId: putImage
      requestBody:
        content:
          image/*: {schema: {type: string, format: binary}}
      responses: {"200": {description: ok}}
"#;
    let bytes = vec![0_u8, 1, 2, 254, 255];
    let request = ok(document, "putBlob", json!({"body": STANDARD.encode(&bytes)}));
    assert_eq!(request.body, Some(Body { content_type: "application/octet-stream".into(), bytes }));
    let request = ok(document, "putImage", json!({"body": "iVBORw=="}));
    let body = request.body.unwrap();
    assert_eq!(
        (body.content_type.as_str(), body.bytes.as_slice()),
        ("application/octet-stream", &b"\x89PNG"[..])
    );
    let err = call(document, "putBlob", json!({"body": "***"})).unwrap_err();
    assert!(matches!(&err, Error::Base64 { argument, .. } if argument == "body"), "{err}");
}
