-- wrk script: tools/call getPetById as a client of protocol 2026-07-28 sends it: no session, the
-- version and capabilities in `_meta`, and the Mcp-Method and Mcp-Name headers. MCP_TOKEN, when
-- set, is sent as the bearer token.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.headers["mcp-protocol-version"] = "2026-07-28"
wrk.headers["mcp-method"] = "tools/call"
wrk.headers["mcp-name"] = "getPetById"
local token = os.getenv("MCP_TOKEN")
if token then wrk.headers["authorization"] = "Bearer " .. token end
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"getPetById","arguments":{"petId":7},'
  .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
