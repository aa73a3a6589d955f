#!/usr/bin/env python3
"""A backend of the forwarding benchmark as an API written in Python might be: one process,
asyncio, HTTP/1.1 keep-alive, answering `GET /api/v3/pet/{id}` with the pet as JSON. Unlike
nginx it spends CPU per request on the two cores mcpgate shares: WORK_US more microseconds of it
per request stand for a web framework's own, which makes it about as fast as the Python backend
that set the per-call targets (14,000 requests/s at 64 connections). Usage: backend.py PORT [WORK_US]"""

import asyncio
import json
import sys
import time

PET = {
    "name": "doggie",
    "category": {"id": 1, "name": "Dogs"},
    "photoUrls": ["https://example.com/d.png"],
    "tags": [{"id": 1, "name": "good"}],
    "status": "available",
}


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        # Requests without a body (the benchmark's GETs): each ends at its blank line.
        self.pending += data
        while (end := self.pending.find(b"\r\n\r\n")) >= 0:
            head, self.pending = self.pending[:end], self.pending[end + 4 :]
            self.transport.write(answer(head))


def answer(head):
    """The pet the path names, as an API would make it: routed, built and serialized."""
    target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
    if not target.startswith("/api/v3/pet/"):
        return b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
    until = time.perf_counter() + WORK
    while time.perf_counter() < until:
        pass
    pet = dict(PET, id=int(target.rsplit("/", 1)[1].split("?")[0]))
    body = json.dumps(pet, separators=(",", ":")).encode()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    return head + body


async def main(port):
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


WORK = (int(sys.argv[2]) if len(sys.argv) > 2 else 0) / 1e6
asyncio.run(main(int(sys.argv[1])))
