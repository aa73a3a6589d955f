//! The JSON-RPC envelope of an MCP POST, read once at the edge: what routing to a session and the
//! step-up scope check need. rmcp reads the whole message afterwards; arguments are skipped here.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, PartialEq)]
pub(super) struct Envelope {
    /// The JSON-RPC id of an `initialize` request.
    pub initialize: Option<Value>,
    /// The tools that `tools/call` requests name (a batch may hold several).
    pub called: Vec<String>,
}

#[derive(Deserialize)]
struct Message {
    method: Option<String>,
    id: Option<Value>,
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    name: Option<String>,
}

/// What `body` says; nothing for a body that is not JSON-RPC (rmcp judges it).
pub(super) fn read(body: &[u8]) -> Envelope {
    let called = |message: &Message| {
        (message.method.as_deref() == Some("tools/call"))
            .then(|| message.params.as_ref()?.name.clone())
            .flatten()
    };
    // A batch is told by its first character, so that a message is parsed once, straight into
    // the fields read here.
    if body.iter().find(|it| !it.is_ascii_whitespace()) == Some(&b'[') {
        let Ok(messages) = serde_json::from_slice::<Vec<Message>>(body) else { return Envelope::default() };
        return Envelope { initialize: None, called: messages.iter().filter_map(called).collect() };
    }
    let Ok(message) = serde_json::from_slice::<Message>(body) else { return Envelope::default() };
    Envelope {
        called: called(&message).into_iter().collect(),
        initialize: (message.method.as_deref() == Some("initialize")).then_some(message.id).flatten(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_initialize_requests_only() {
        let initialize = br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#;
        assert_eq!(read(initialize).initialize, Some(json!(7)));
        assert_eq!(read(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).initialize, None);
        assert_eq!(read(br#"{"jsonrpc":"2.0","method":"initialize"}"#).initialize, None, "a notification");
        assert_eq!(read(br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"}]"#).initialize, None);
        assert_eq!(read(b"not json"), Envelope::default());
    }

    #[test]
    fn finds_the_called_tools_only_in_tool_calls() {
        let call =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"addPet","arguments":{"a":[1]}}}"#;
        assert_eq!(read(call).called, ["addPet"]);
        assert!(read(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).called.is_empty());
        assert!(read(br#"{"method":"tools/call","params":{"name":7}}"#).called.is_empty());
        let batch = br#"[{"method":"tools/call","params":{"name":"a"}},{"method":"ping"},
                        {"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(read(batch).called, ["a", "b"]);
    }
}
