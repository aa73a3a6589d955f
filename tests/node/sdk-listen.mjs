// A real MCP client built on the official TypeScript SDK that waits for the tool list to change,
// run by tests/sessions.rs against mcpgate.
//
//   node sdk-listen.mjs URL TRIGGER_URL [--replicas]
//
// Connects over Streamable HTTP (the SDK initializes, keeps the session id mcpgate gives and opens
// the GET stream), lists the tools, POSTs to TRIGGER_URL (where the test replaces the server's
// catalog), waits up to 30 s for `notifications/tools/list_changed`, lists the tools again, ends
// the session (DELETE) and prints one JSON object on stdout:
//   {"sessionId": "...", "protocolVersion": "...", "capabilities": {...}, "before": [names],
//    "notifications": n, "after": [names], "lists": n, "terminated": true}
// With --replicas (several mcpgate processes behind one address), the notification comes from the
// replica holding the GET stream once it serves the change, and the next list may reach a replica
// a moment behind it: the tools are listed again, for up to 10 s, until they differ from the first
// list ("lists" says how many lists that took).
// Exit status: 0 on success, 1 on any protocol, transport or usage error or when no notification
// came (message on stderr).

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const WAIT_MS = 30_000;

async function listNames(client) {
  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    names.push(...page.tools.map((it) => it.name));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return names;
}

function same(a, b) {
  return a.length === b.length && a.every((it, n) => it === b[n]);
}

async function main(argv) {
  const [url, triggerUrl, mode] = argv;
  if (!url || !triggerUrl) {
    throw new Error("usage: sdk-listen.mjs URL TRIGGER_URL");
  }
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: "mcpgate-sdk-listen", version: "1.0.0" });
  let notifications = 0;
  let notified;
  const changed = new Promise((resolve) => {
    notified = resolve;
  });
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    notifications += 1;
    notified();
  });
  await client.connect(transport);
  try {
    const summary = {
      sessionId: transport.sessionId ?? null,
      protocolVersion: transport.protocolVersion,
      capabilities: client.getServerCapabilities(),
      before: await listNames(client),
    };
    const trigger = await fetch(triggerUrl, { method: "POST" });
    if (!trigger.ok) {
      throw new Error(`the trigger answered ${trigger.status}: ${await trigger.text()}`);
    }
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no notifications/tools/list_changed within ${WAIT_MS} ms`)),
        WAIT_MS,
      );
    });
    try {
      await Promise.race([changed, timeout]);
    } finally {
      clearTimeout(timer);
    }
    summary.notifications = notifications;
    summary.after = await listNames(client);
    summary.lists = 1;
    const until = Date.now() + 10_000;
    while (mode === "--replicas" && same(summary.after, summary.before) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      summary.after = await listNames(client);
      summary.lists += 1;
    }
    await transport.terminateSession();
    summary.terminated = transport.sessionId === undefined;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  } finally {
    await client.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`sdk-listen: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
