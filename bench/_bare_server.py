"""The floor to compare with: a bare websockets + json server over the same TLS.

It speaks just enough of the agent protocol (hello, welcome) for the simulated
agents to heartbeat, parses each heartbeat with json and counts it.
argv: CERT KEY COUNTER_FILE INTERVAL.  Prints its URL on stdout.
"""

from __future__ import annotations

import asyncio
import json
import resource
import ssl
import sys
from pathlib import Path

import websockets

connected = 0
heartbeats = 0


async def handler(ws: websockets.ServerConnection) -> None:
    global connected, heartbeats
    interval = float(sys.argv[4])
    await ws.send(
        json.dumps(
            {"type": "hello", "protocol_version": 1, "server_version": "bare", "nonce": "00"}
        )
    )
    auth = json.loads(await ws.recv())
    await ws.send(
        json.dumps(
            {"type": "welcome", "agent_id": auth["agent_id"], "heartbeat_interval_s": interval}
        )
    )
    connected += 1
    try:
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "heartbeat":
                heartbeats += 1
    finally:
        connected -= 1


async def report(path: Path) -> None:
    while True:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"connected": connected, "heartbeats": heartbeats}))
        tmp.replace(path)
        await asyncio.sleep(0.5)


async def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    async with websockets.serve(
        handler, "127.0.0.1", 0, ssl=ctx, compression=None, max_size=1 << 20
    ) as server:
        port = list(server.sockets)[0].getsockname()[1]
        print(f"https://127.0.0.1:{port}", flush=True)
        await report(Path(sys.argv[3]))


if __name__ == "__main__":
    asyncio.run(main())
