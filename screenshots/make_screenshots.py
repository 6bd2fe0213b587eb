"""Make the README's screenshots (SVG) from the real dashboard.

    .venv/bin/python screenshots/make_screenshots.py [--demo] [--out screenshots]

With ``--demo`` the dashboard connects to a real ``fleet demo`` back end (control
plane, real agents, simulated fleet), so the pictures show live demo data.
Without it the data is ``fleet_tui.sample``: the same variety (a stale agent, a
skewed clock, a certificate about to expire, a version off its pin, a deep queue,
an unroutable connection) at a fixed time, so the pictures are reproducible.
Either way the app, its screens and its rendering are the real ones. With
``--demo`` (what ``make screenshots`` runs) the probe is a real one, typed into the
probe modal: agent local-1 opens a TLS handshake with the control plane's own
port, so the timings and the peer certificate are measured, not made up. Without
it the probe result is a fixed one. The rollouts view shows the demo's own rollout
(its release to pool edge) with ``--demo`` and the sample's rollouts without; the
remediation inbox is shot from the sample either way: the demo sets no remediation
policy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.pilot import Pilot

from fleet.protocol import ProbeResult
from fleet_tui.app import FleetApp
from fleet_tui.model import FleetModel
from fleet_tui.sample import NOW, sample_holds, sample_snapshot
from fleet_tui.screens.probe import ProbeResultModal

Step = Callable[[FleetApp, Pilot[int]], Awaitable[None]]


DEMO: dict[str, str] = {}
"""url, ca_file and token of the running demo, when --demo is given."""


def _app(wall: bool = False, sample: bool = False) -> FleetApp:
    if DEMO and not sample:
        return FleetApp(
            server_url=DEMO["url"],
            token=DEMO["token"],
            ca_file=DEMO["ca_file"],
            wall=wall,
            page_s=3600,
        )
    app = FleetApp(model=FleetModel(clock=lambda: NOW), wall=wall, page_s=3600)
    app.feed(sample_snapshot(60, upgrades=sample))
    return app


async def shoot(
    out: Path,
    name: str,
    size: tuple[int, int],
    keys: list[str] = (),  # type: ignore[assignment]
    wall: bool = False,
    then: Step | None = None,
    title: str = "fleet",
    sample: bool = False,
) -> Path:
    """Shoot ``name``.svg; ``sample``: from the sample with its rollouts and
    remediations, even with --demo."""
    app = _app(wall, sample)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        for _ in range(100):  # with --demo: until the snapshot is in
            if app.model.has_snapshot:
                break
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        if keys:
            await pilot.press(*keys)
        if then is not None:
            await then(app, pilot)
        await pilot.pause(0.3)
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
    print(f"wrote {path}")
    return path


async def _probe(app: FleetApp, pilot: Pilot[int]) -> None:
    if DEMO:
        await _real_probe(app, pilot)
        return
    result = ProbeResult(
        host="orders.db.internal",
        port=5432,
        tls=True,
        ok=True,
        resolved=["10.20.0.15"],
        dns_ms=1.8,
        connect_ms=2.4,
        tls_ms=11.6,
        peer_cert_subject="CN=orders.db.internal",
    )
    app.push_screen(ProbeResultModal("build-eu-0005", result))


async def _settle(app: FleetApp, pilot: Pilot[int]) -> None:
    await pilot.pause(2.0)  # the detail's REST calls (events, config) come back


async def _real_probe(app: FleetApp, pilot: Pilot[int]) -> None:
    """Type a probe into the modal, as a user would, and wait for its result."""
    port = urlsplit(DEMO["url"]).port
    await pilot.press("slash", *"local-1", "enter")
    await pilot.pause(0.5)
    await pilot.press("p", *"127.0.0.1", "tab", *str(port), "tab", "space")
    await pilot.pause(0.3)
    await pilot.press("shift+tab", "enter")  # Enter in the port field submits
    for _ in range(100):
        if isinstance(app.screen, ProbeResultModal):
            return
        await pilot.pause(0.1)
    raise SystemExit(f"the demo's probe never came back; the screen is {app.screen}")


async def _holds(app: FleetApp, pilot: Pilot[int]) -> None:
    """The held-back view: with --demo, a silence, an agent's window and a pool's
    planned one made through the dashboard's own client first."""
    if DEMO:
        assert app.rest is not None
        agent = next(a for a in app.model.agents.values() if a.name == "local-2")
        await app.rest.silence({"pool": "etl"}, 7200, "etl backlog: the nightly reload")
        await app.rest.maintenance("agent", agent.id, 2400, "kernel update")
        await app.rest.maintenance(
            "pool", "db-west", 3600, "switch swap in rack 4", starts_at=time.time() + 1800
        )
    else:
        app.model.holds = sample_holds(NOW)
    await pilot.press("h")
    await pilot.pause(1.0)  # the view's first fetch


async def main(out: Path) -> None:
    await shoot(out, "fleet", (160, 50))
    if DEMO:  # a real agent whose config drifted from its pin: the diff shows
        await shoot(
            out, "detail", (160, 50), keys=["slash", *"local-3", "enter", "enter"], then=_settle
        )
    else:
        await shoot(out, "detail", (160, 50), keys=["down", "down", "enter"])
    await shoot(out, "probe-result", (120, 36), then=_probe)
    await shoot(out, "wall", (160, 50), wall=True)
    await shoot(out, "connections", (120, 30), keys=["c"])
    # Monochrome at 80x24: NO_COLOR is read when the app is created.
    os.environ["NO_COLOR"] = "1"
    try:
        await shoot(out, "fleet-80x24-mono", (80, 24))
    finally:
        del os.environ["NO_COLOR"]
    await shoot(out, "rollouts", (120, 36), keys=["R", "down"], sample=not DEMO)
    await shoot(out, "inbox", (100, 24), keys=["I"], sample=True)
    # Last: with --demo its silence and windows would show in the pictures above.
    await shoot(out, "holds", (100, 24), then=_holds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--demo", action="store_true", help="use a live `fleet demo` back end")
    args = parser.parse_args()
    target = args.out
    target.mkdir(parents=True, exist_ok=True)
    if not args.demo:
        asyncio.run(main(target))
    else:
        import time

        from fleet.demo import running_demo

        with running_demo() as demo:
            DEMO.update(
                url=demo.url,
                ca_file=str(demo.ca_file),
                token=demo.token_file.read_text().strip(),
            )
            time.sleep(30)  # let heartbeats, samples and alerts accumulate
            asyncio.run(main(target))
