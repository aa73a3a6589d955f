-- wrk script: every request is an MCP tools/call, as an MCP client sends it without a session:
-- of getPetById, or of the call MCP_CALL names (the call's params, `{"name":…,"arguments":…}`).
-- MCP_TOKEN, when set, is sent as the bearer token.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["accept"] = "application/json, text/event-stream"
wrk.headers["mcp-protocol-version"] = "2025-11-25"
local token = os.getenv("MCP_TOKEN")
if token then wrk.headers["authorization"] = "Bearer " .. token end
local call = os.getenv("MCP_CALL") or '{"name":"getPetById","arguments":{"petId":7}}'
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' .. call .. '}'
