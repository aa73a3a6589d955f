// An MCP client on the official TypeScript SDK that declares form elicitation and answers every
// `elicitation/create` with ACTION, run by tests/confirm.rs.
//
//   node sdk-confirm-client.mjs URL TOOL ARGUMENTS_JSON ACTION
//
// ACTION is `accept`, `decline` or `cancel`. Connects over Streamable HTTP (a session, protocol
// 2025-11-25), calls TOOL with the arguments, and prints one JSON object on stdout:
//   {"result": CallToolResult, "elicitations": [params of each elicitation/create]}
// Exit status: 0 when the call got a result, 1 on any protocol, transport or usage error.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

async function main(argv) {
  const [url, tool, rawArguments, action] = argv;
  if (!url || !tool || !rawArguments || !["accept", "decline", "cancel"].includes(action)) {
    throw new Error("usage: sdk-confirm-client.mjs URL TOOL ARGUMENTS_JSON accept|decline|cancel");
  }
  const elicitations = [];
  const client = new Client(
    { name: "mcpgate-sdk-confirm-client", version: "1.0.0" },
    { capabilities: { elicitation: { form: {} } } },
  );
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    elicitations.push(request.params);
    return action === "accept" ? { action, content: {} } : { action };
  });
  const transport = new StreamableHTTPClientTransport(new URL(url));
  await client.connect(transport);
  try {
    const result = await client.callTool({ name: tool, arguments: JSON.parse(rawArguments) });
    process.stdout.write(`${JSON.stringify({ result, elicitations })}\n`);
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
