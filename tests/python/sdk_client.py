# A real MCP client built on the official Python SDK (PyPI `mcp`), run by tests/clients.rs against
# mcpgate.
#
#   python sdk_client.py [--mode=MODE] [--token-file=PATH] URL [TOOL [ARGUMENTS_JSON]]
#
# Connects over Streamable HTTP, lists the tools (following `nextCursor` until the last page),
# calls TOOL (if given) with the JSON arguments, and prints one JSON object on stdout:
#   {"server": {...}, "protocolVersion": "...", "pages": n, "tools": [names],
#    "result": CallToolResult (only when TOOL is given)}
# MODE is the SDK's `Client(mode=...)`: "legacy" (the default here) is the `initialize` handshake,
# after which every request carries the session's `Mcp-Session-Id`; "auto" (the SDK's own default)
# first asks `server/discover` and, when the server answers, speaks 2026-07-28 without a session.
# PATH holds a bearer token, sent with every request (read from a file: a command line is seen by
# every process of the machine).
# The SDK checks every message against its pydantic models, and `structuredContent` against the
# called tool's `outputSchema` (jsonschema), so a non-conforming answer fails here.
# Exit status: 0 on success, 1 on any protocol, transport or usage error (message on stderr),
# 2 when the call's result has `isError: true` (the summary is still printed).

import json
import sys

import anyio
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def main(argv):
    mode, headers = "legacy", {}
    while argv and argv[0].startswith("--"):
        option = argv.pop(0)
        if option.startswith("--mode="):
            mode = option.removeprefix("--mode=")
        elif option.startswith("--token-file="):
            with open(option.removeprefix("--token-file=")) as file:
                headers["Authorization"] = f"Bearer {file.read().strip()}"
        else:
            raise ValueError(f"unknown option {option}")
    if not 1 <= len(argv) <= 3:
        raise ValueError("usage: sdk_client.py [--mode=MODE] [--token-file=PATH] URL [TOOL [ARGUMENTS_JSON]]")
    url = argv[0]
    tool = argv[1] if len(argv) > 1 else None
    arguments = json.loads(argv[2] if len(argv) > 2 else "{}")
    async with create_mcp_http_client(headers=headers) as http:
        return await session(Client(streamable_http_client(url, http_client=http), mode=mode), tool, arguments)


async def session(client, tool, arguments):
    async with client:
        tools, pages, cursor = [], 0, None
        while True:
            page = await client.list_tools(cursor=cursor)
            pages += 1
            tools += [it.name for it in page.tools]
            cursor = page.next_cursor
            if cursor is None:
                break
            if pages > 10_000:
                raise RuntimeError("tools/list never stops paginating")
        summary = {
            "server": dump(client.server_info),
            "protocolVersion": client.protocol_version,
            "pages": pages,
            "tools": tools,
        }
        if tool is not None:
            summary["result"] = dump(await client.call_tool(tool, arguments))
        print(json.dumps(summary))
        return 2 if summary.get("result", {}).get("isError") else 0


def causes(err):
    """The errors inside the task groups' exception groups that the SDK's tasks raise through."""
    if isinstance(err, BaseExceptionGroup):
        for it in err.exceptions:
            yield from causes(it)
    else:
        yield err


if __name__ == "__main__":
    try:
        sys.exit(anyio.run(main, sys.argv[1:]))
    except Exception as err:  # noqa: BLE001 - every failure is reported alike
        for it in causes(err):
            code = f" {it.code}" if isinstance(it, MCPError) else ""
            print(f"sdk_client: {type(it).__name__}{code}: {it}", file=sys.stderr)
        sys.exit(1)
