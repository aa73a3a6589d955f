//! Bytes to a JSON tree: the format is detected from the content, and every failure names the
//! line and column where reading stopped.

use super::node::Node;

/// The surface syntax a document was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }
}

/// Why a document could not be read as JSON or YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub format: Option<Format>,
    pub message: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(format) = self.format {
            write!(f, "invalid {}", format.as_str())?;
        } else {
            f.write_str("unreadable document")?;
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}")?,
            (Some(line), None) => write!(f, " at line {line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses `bytes` as JSON when the first significant character opens a JSON object or array,
/// and as YAML otherwise (JSON is YAML, but JSON's own parser is faster and its errors clearer).
pub fn parse(bytes: &[u8]) -> Result<(Node, Format), SyntaxError> {
    let text = decode(bytes)?;
    let first = text.trim_start().chars().next();
    if matches!(first, Some('{') | Some('[')) {
        parse_json(text).map(|value| (value, Format::Json))
    } else {
        parse_yaml(text).map(|value| (value, Format::Yaml))
    }
}

fn decode(bytes: &[u8]) -> Result<&str, SyntaxError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|err| {
        let valid = &bytes[..err.valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() as u64 + 1;
        SyntaxError {
            format: None,
            message: "the document is not valid UTF-8".to_owned(),
            line: Some(line),
            column: Some(column),
        }
    })
}

fn parse_json(text: &str) -> Result<Node, SyntaxError> {
    serde_json::from_str(text).map_err(|err| SyntaxError {
        format: Some(Format::Json),
        message: strip_position(&err.to_string()),
        line: Some(err.line() as u64),
        column: Some(err.column() as u64),
    })
}

/// The YAML node budget of any document, however small.
const MIN_YAML_NODES: usize = 1 << 20;

fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    // `yes`/`no`/`on`/`off` stay strings: enums such as `[yes, no]` are common in API documents.
    options.strict_booleans = true;
    // Real documents repeat keys now and then; the last one wins, as in JSON parsers.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    options.with_snippet = false;
    let mut budget = serde_saphyr::Budget::default();
    // The default budget suits configuration files; API documents are far larger, and share
    // parts through anchors, so a small document can expand to many times its size. The floor
    // lets such documents through; alias bombs, which expand exponentially, still meet it long
    // before memory runs out (a million nodes is about 100 MB of tree at worst).
    budget.max_nodes = text.len().saturating_mul(4).max(MIN_YAML_NODES);
    budget.max_events = text.len().saturating_mul(8).max(2 * MIN_YAML_NODES);
    budget.max_depth = 128;
    options.budget = Some(budget);
    serde_saphyr::from_str_with_options(text, options).map_err(|err| {
        let location = err.location();
        SyntaxError {
            format: Some(Format::Yaml),
            message: strip_position(&first_line(&err.to_string())),
            line: location.map(|it| it.line()),
            column: location.map(|it| it.column()),
        }
    })
}

/// serde_json appends " at line L column C" and serde-saphyr " at line L, column C"; the
/// position is reported in its own fields.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(idx) => message[..idx].to_owned(),
        None => message.to_owned(),
    }
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_json_and_yaml_from_content() {
        let (value, format) = parse(br#" {"openapi": "3.1.0"}"#).unwrap();
        assert_eq!(format, Format::Json);
        assert_eq!(value.get("openapi").and_then(Node::as_str), Some("3.1.0"));

        let (value, format) = parse(b"openapi: 3.0.0\nenum: [yes, no]\n200: ok\n").unwrap();
        assert_eq!(format, Format::Yaml);
        assert_eq!(value.get("openapi").and_then(Node::as_str), Some("3.0.0"));
        assert_eq!(value.get("enum").and_then(Node::as_array).and_then(|it| it[0].as_str()), Some("yes"));
        assert_eq!(value.get("200").and_then(Node::as_str), Some("ok"));
    }

    #[test]
    fn json_errors_name_line_and_column() {
        let err = parse(b"{\n  \"a\": 1,\n  \"b\": ]\n}").unwrap_err();
        assert_eq!(err.format, Some(Format::Json));
        assert_eq!((err.line, err.column), (Some(3), Some(8)));
        assert_eq!(err.to_string(), "invalid JSON at line 3, column 8: expected value");
    }

    #[test]
    fn yaml_errors_name_line_and_column() {
        let err = parse(b"openapi: 3.0.0\npaths:\n  /a: [\n").unwrap_err();
        assert_eq!(err.format, Some(Format::Yaml));
        assert!(err.line.is_some(), "{err}");
    }

    #[test]
    fn small_documents_may_reuse_an_anchor_many_times() {
        let properties: String =
            (0..40).map(|n| format!("      p{n}: {{type: string, description: field {n}}}\n")).collect();
        let mut text = format!(
            "openapi: 3.0.0\nx-shared:\n  ok: &ok\n    description: ok\n    content:\n      \
             application/json:\n        schema:\n          type: object\n          properties:\n{}",
            properties.replace("      p", "            p")
        );
        text.push_str("paths:\n");
        for n in 0..30 {
            text.push_str(&format!("  /r{n}: {{get: {{responses: {{'200': *ok}}}}}}\n"));
        }
        assert!(text.len() < 4096, "{} bytes", text.len());
        let (value, _) = parse(text.as_bytes()).unwrap();
        assert_eq!(value.get("paths").and_then(Node::as_object).map(|it| it.len()), Some(30));
    }

    #[test]
    fn invalid_utf8_names_its_position() {
        let err = parse(b"a: 1\nb: \xff\n").unwrap_err();
        assert_eq!((err.line, err.column), (Some(2), Some(4)));
    }
}
