"""Load generator for controlplane_load.py: N simulated agents in one process.

argv: URL CA_FILE ADMIN_TOKEN_FILE N [SOURCES [PREFIX]].  N < 0: do not enroll (for the bare
server, which checks nothing); identities are made up locally.  SOURCES: loopback
addresses to dial from, comma-separated, agents spread round robin (one address has
about 28,000 ephemeral ports toward one port).  Prints ``enrolled N`` when every
agent has its identity. PREFIX (default ``bench``) names the agents ``PREFIX-00001``...,
so that several generators enroll distinct names.
"""

from __future__ import annotations

import asyncio
import random
import resource
import ssl
import sys
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.simagent import Identity, SimAgent, enroll


async def main() -> None:
    import asyncio.sslproto

    asyncio.sslproto.SSLProtocol.max_size = 32 * 1024  # as the control plane does
    url, ca, token_file, n = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ws_url = url.replace("https://", "wss://")
    prefix = sys.argv[6] if len(sys.argv) > 6 else "bench"
    identities: list[Identity] = []
    if n > 0:
        ctx = ssl.create_default_context(cafile=str(ca))
        headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        async with httpx.AsyncClient(base_url=url, verify=ctx, headers=headers, timeout=60) as api:
            tok = (await api.post("/v1/tokens", json={"pool": "bench", "uses": n})).json()["token"]
            sem = asyncio.Semaphore(8)

            async def one(i: int) -> Identity:
                async with sem:
                    return await enroll(api, tok, f"{prefix}-{i:05d}")

            identities = list(await asyncio.gather(*(one(i) for i in range(n))))
    else:
        for i in range(-n):
            key = ec.generate_private_key(ec.SECP256R1())
            identities.append(Identity(f"ag_{i}", f"bench-{i}", "bench", key, "x", "", 0.0))
    print(f"enrolled {len(identities)}", flush=True)
    sources = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []
    tls = ssl.create_default_context(cafile=str(ca))
    tasks = []
    for i, ident in enumerate(identities):
        source = (sources[i % len(sources)], 0) if sources else None
        agent = SimAgent(identity=ident, ws_url=ws_url, ca_file=ca, local_addr=source, tls=tls)
        tasks.append(asyncio.create_task(agent.run()))
        await asyncio.sleep(random.uniform(0, 0.002))
    await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
