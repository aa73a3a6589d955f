// A real MCP client built on the official TypeScript SDK, run by tests/clients.rs against mcpgate.
//
//   node sdk-client.mjs URL [TOOL [ARGUMENTS_JSON]]
//
// Connects over Streamable HTTP, lists the tools (following `nextCursor` until the last page),
// calls TOOL (if given) with the JSON arguments, and prints one JSON object on stdout:
//   {"server": {...}, "protocolVersion": "...", "capabilities": {...}, "pages": n,
//    "tools": [names], "result": CallToolResult (only when TOOL is given)}
// The SDK checks every message against the MCP schema, compiles each `outputSchema` (Ajv) as it
// lists, and checks `structuredContent` against the called tool's, so a non-conforming answer
// fails here.
// Exit status: 0 on success, 1 on any protocol, transport or usage error (message on stderr),
// 2 when the call's result has `isError: true` (the summary is still printed).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

async function main(argv) {
  const [url, tool, rawArguments = "{}"] = argv;
  if (!url) {
    throw new Error("usage: sdk-client.mjs URL [TOOL [ARGUMENTS_JSON]]");
  }
  const args = JSON.parse(rawArguments);
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "mcpgate-sdk-client", version: "1.0.0" });
  await client.connect(transport);
  try {
    const tools = [];
    // The cursor each page was listed with, and the page of each tool.
    const pageCursors = [];
    const pageOf = new Map();
    let cursor;
    do {
      const page = await client.listTools(cursor === undefined ? {} : { cursor });
      pageCursors.push(cursor);
      for (const it of page.tools) {
        pageOf.set(it.name, pageCursors.length - 1);
      }
      tools.push(...page.tools);
      cursor = page.nextCursor;
      if (pageCursors.length > 10_000) {
        throw new Error("tools/list never stops paginating");
      }
    } while (cursor !== undefined);
    const pages = pageCursors.length;
    const summary = {
      server: client.getServerVersion(),
      protocolVersion: transport.protocolVersion,
      capabilities: client.getServerCapabilities(),
      pages,
      tools: tools.map((it) => it.name),
    };
    if (tool === undefined) {
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      return 0;
    }
    // The SDK keeps output validators only for the last page listed, so list the called tool's
    // page again if it was an earlier one.
    const toolPage = pageOf.get(tool);
    if (toolPage !== undefined && toolPage !== pages - 1) {
      const again = pageCursors[toolPage];
      await client.listTools(again === undefined ? {} : { cursor: again });
    }
    summary.result = await client.callTool({ name: tool, arguments: args });
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return summary.result.isError ? 2 : 0;
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sdk-client: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
