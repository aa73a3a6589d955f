-- wrk script: tools/call getPetById (or the call MCP_CALL names, as in call.lua) in MCP
-- sessions, as the SDKs, MCP Inspector and VS Code call after `initialize`. MCP_SESSIONS holds
-- one session id per connection (space-separated); the requests take them in turn, so each
-- connection's calls spread over the sessions as the clients' would. MCP_TOKEN, when set, is
-- sent as the bearer token.
local sessions = {}
for id in string.gmatch(os.getenv("MCP_SESSIONS") or "", "%S+") do sessions[#sessions + 1] = id end
local token = os.getenv("MCP_TOKEN")
local call = os.getenv("MCP_CALL") or '{"name":"getPetById","arguments":{"petId":7}}'
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' .. call .. '}'
local n = 0
request = function()
  n = n % #sessions + 1
  local headers = {
    ["content-type"] = "application/json",
    ["accept"] = "application/json, text/event-stream",
    ["mcp-protocol-version"] = "2025-11-25",
    ["mcp-session-id"] = sessions[n],
  }
  if token then headers["authorization"] = "Bearer " .. token end
  return wrk.format("POST", nil, headers, body)
end
