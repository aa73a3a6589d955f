//! The JSON-RPC envelope of an MCP POST, read once at the edge: what routing to a session and the
//! step-up scope check need, whether the message is JSON-RPC at all, and the parameters of the
//! `tools/call` and `tools/list` requests that `mcp::direct` answers without rmcp. rmcp reads
//! any other message again.

use std::borrow::Cow;

use rmcp::model::{CallToolRequestParams, JsonObject};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[derive(Debug, Default, PartialEq)]
pub(super) struct Envelope {
    /// The JSON-RPC id of an `initialize` request.
    pub initialize: Option<Value>,
    /// The tool a `tools/call` request names.
    pub called: Option<String>,
    /// A `tools/call` or `tools/list` request (not a notification), whole.
    pub tools: Option<ToolsRequest>,
}

/// A `tools/call` or `tools/list` request: its id, and its parameters.
#[derive(Debug, PartialEq)]
pub(super) struct ToolsRequest {
    pub id: Value,
    pub call: bool,
    pub params: Params,
}

/// The parameters of a [`ToolsRequest`].
#[derive(Debug, PartialEq)]
pub(super) enum Params {
    /// A call's, read straight into rmcp's type from the text: no map of the parameters to hash
    /// its keys into, look them up in again and convert.
    Call(CallToolRequestParams),
    /// A `tools/list`'s, or a call's that rmcp's type does not read as it is sent (without
    /// `arguments`, with a key twice, ...), as sent: the direct path answers it as rmcp would.
    Sent(Map<String, Value>),
}

impl ToolsRequest {
    /// The tool a call names.
    pub fn name(&self) -> Option<&str> {
        match &self.params {
            Params::Call(params) => Some(&params.name),
            Params::Sent(params) => params.get("name")?.as_str(),
        }
    }

    /// A call's arguments.
    pub fn arguments(&self) -> Option<&JsonObject> {
        match &self.params {
            Params::Call(params) => params.arguments.as_ref(),
            Params::Sent(params) => params.get("arguments")?.as_object(),
        }
    }

    /// The request's `_meta`.
    pub fn meta(&self) -> Option<&JsonObject> {
        match &self.params {
            Params::Call(params) => params.meta.as_ref().map(|it| &it.0.0),
            Params::Sent(params) => params.get("_meta")?.as_object(),
        }
    }

    /// Whether the request names its own protocol version in `_meta` (a 2026-07-28 request).
    pub fn versioned(&self) -> bool {
        self.meta().is_some_and(|it| it.contains_key("io.modelcontextprotocol/protocolVersion"))
    }
}

/// Why a body is not a JSON-RPC message mcpgate accepts, with the JSON-RPC error it gets.
#[derive(Debug, PartialEq)]
pub(super) struct Malformed {
    pub code: i64,
    pub message: &'static str,
    /// The request's id, when it had a usable one.
    pub id: Option<Value>,
}

pub(super) const PARSE_ERROR: i64 = -32700;
pub(super) const INVALID_REQUEST: i64 = -32600;
pub(super) const INVALID_PARAMS: i64 = -32602;

#[derive(Deserialize)]
struct Message<'a> {
    /// Borrowed from the body unless escaped.
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    /// `Some(Value::Null)` for `"id": null`, which is not the same as no id.
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    /// Kept as text until `method`, which may come after it, says what they are.
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// What `body` says, or why it is refused. Batches are refused: MCP has not had them since
/// 2025-06-18, and one request per POST keeps the scope check per call.
pub(super) fn read(body: &[u8]) -> Result<Envelope, Malformed> {
    let invalid = |message, id| Malformed { code: INVALID_REQUEST, message, id };
    let first = body.iter().find(|it| !it.is_ascii_whitespace());
    if first == Some(&b'[') {
        return match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(invalid("batches are not supported: send one JSON-RPC message per request", None)),
            Err(_) => Err(Malformed { code: PARSE_ERROR, message: "the body is not JSON", id: None }),
        };
    }
    let message = match serde_json::from_slice::<Message>(body) {
        Ok(message) => message,
        Err(err) if err.is_syntax() || err.is_eof() => {
            return Err(Malformed { code: PARSE_ERROR, message: "the body is not JSON", id: None });
        }
        Err(_) => return Err(invalid("the body is not a JSON-RPC message", None)),
    };
    // MCP ids are strings or integers, never null.
    let id = match message.id {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(_) => return Err(invalid("`id` must be a string or an integer", None)),
    };
    if message.jsonrpc.as_deref() != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\"", id));
    }
    let method = message.method.as_deref();
    let mut called = None;
    let mut tools = None;
    if let Some(method @ ("tools/call" | "tools/list")) = method {
        let call = method == "tools/call";
        let params = match message.params {
            // A call with arguments, as every client sends one: rmcp's type, read from the text.
            // One without goes through `sent`: rmcp's type takes `"arguments": null`, which
            // `sent` refuses.
            Some(raw) if call => match serde_json::from_str::<CallToolRequestParams>(raw.get()) {
                Ok(params) if params.arguments.is_some() => Params::Call(params),
                _ => sent(Some(raw), call, id.as_ref())?,
            },
            other => sent(other, call, id.as_ref())?,
        };
        if call {
            called = match &params {
                Params::Call(params) => Some(params.name.to_string()),
                Params::Sent(params) => match params.get("name") {
                    Some(Value::String(name)) => Some(name.clone()),
                    _ => {
                        return Err(Malformed {
                            code: INVALID_PARAMS,
                            message: "`name` must be a tool's name",
                            id,
                        });
                    }
                },
            };
        }
        tools = id.clone().map(|id| ToolsRequest { id, call, params });
    }
    let initialize = if method == Some("initialize") { id } else { None };
    Ok(Envelope { initialize, called, tools })
}

/// Parameters as sent: an object, whose `arguments`, in a call, are an object too.
fn sent(raw: Option<&RawValue>, call: bool, id: Option<&Value>) -> Result<Params, Malformed> {
    let refused = |message| Malformed { code: INVALID_PARAMS, message, id: id.cloned() };
    let params = match raw.map(|it| serde_json::from_str::<Value>(it.get())) {
        None => Map::new(),
        Some(Ok(Value::Object(params))) => params,
        // Text that parsed once parses again.
        Some(_) => return Err(refused("`params` must be an object")),
    };
    if call && params.get("arguments").is_some_and(|it| !it.is_object()) {
        return Err(refused("`arguments` must be an object"));
    }
    Ok(Params::Sent(params))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_initialize_requests_only() {
        let initialize = br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#;
        assert_eq!(read(initialize).unwrap().initialize, Some(json!(7)));
        assert_eq!(read(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap().initialize, None);
        let notification = br#"{"jsonrpc":"2.0","method":"initialize"}"#;
        assert_eq!(read(notification).unwrap().initialize, None, "a notification");
    }

    #[test]
    fn finds_the_called_tool() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"addPet","arguments":{"a":[1,{"b":2}]}}}"#;
        assert_eq!(read(call).unwrap().called.as_deref(), Some("addPet"));
        let escaped = br#"{"jsonrpc":"2\u002e0","id":1,"method":"tools\/call","params":{"name":"addPet","arguments":{}}}"#;
        assert_eq!(read(escaped).unwrap().called.as_deref(), Some("addPet"), "escapes in the method");
        assert_eq!(read(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap().called, None);
        let response = br#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#;
        assert_eq!(read(response).unwrap(), Envelope::default(), "a client's response");
        let notification = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"addPet"}}"#;
        let read_notification = read(notification).unwrap();
        assert_eq!(read_notification.called.as_deref(), Some("addPet"));
        assert_eq!(read_notification.tools, None, "a notification is answered by no one");
    }

    #[test]
    fn keeps_tools_requests_whole() {
        let call = br#"{"params":{"arguments":{"petId":1},"name":"getPetById"},"method":"tools/call","id":"c","jsonrpc":"2.0"}"#;
        let tools = read(call).unwrap().tools.unwrap();
        assert_eq!((&tools.id, tools.call), (&json!("c"), true));
        let Params::Call(params) = &tools.params else { panic!("read as rmcp's type: {:?}", tools.params) };
        assert_eq!(
            serde_json::to_value(params).unwrap(),
            json!({"name": "getPetById", "arguments": {"petId": 1}})
        );
        assert_eq!((tools.name(), tools.arguments()), (Some("getPetById"), json!({"petId": 1}).as_object()));
        let list = read(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).unwrap().tools.unwrap();
        assert!(!list.call && list.params == Params::Sent(Map::new()) && !list.versioned());
        let versioned = br#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert!(read(versioned).unwrap().tools.unwrap().versioned());
        assert_eq!(read(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap().tools, None);
    }

    #[test]
    fn refuses_what_is_not_one_json_rpc_message() {
        let code = |body: &[u8]| read(body).err().map(|it| it.code);
        assert_eq!(code(b"not json"), Some(PARSE_ERROR));
        assert_eq!(code(br#"{"jsonrpc":"2.0","#), Some(PARSE_ERROR));
        assert_eq!(code(b"[1, 2"), Some(PARSE_ERROR));
        assert_eq!(code(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), Some(INVALID_REQUEST));
        assert_eq!(code(br#"{"id":1,"method":"ping"}"#), Some(INVALID_REQUEST));
        assert_eq!(code(br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), Some(INVALID_REQUEST));
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), Some(INVALID_REQUEST));
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), Some(INVALID_REQUEST));
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#), Some(INVALID_REQUEST));
        assert_eq!(code(b"7"), Some(INVALID_REQUEST));
        let array_arguments =
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a","arguments":[1]}}"#;
        let refused = read(array_arguments).unwrap_err();
        assert_eq!((refused.code, refused.id), (INVALID_PARAMS, Some(json!(3))));
        let no_name = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":7}}"#;
        assert_eq!(code(no_name), Some(INVALID_PARAMS));
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[]}"#),
            Some(INVALID_PARAMS)
        );
    }
}
