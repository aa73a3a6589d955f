-- wrk script: tools/call getPetById within one MCP session (its id in MCP_SESSION), as the SDKs,
-- MCP Inspector and VS Code call after `initialize`; answers come as SSE.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.headers["mcp-protocol-version"] = "2025-11-25"
wrk.headers["mcp-session-id"] = os.getenv("MCP_SESSION")
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"getPetById","arguments":{"petId":7}}}'
