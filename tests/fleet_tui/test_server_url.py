"""A wrong --server says what is wrong and what to do, instead of "connecting…".

Against a real control plane on loopback (TLS) and a port nothing listens on.
"""

from __future__ import annotations

import socket

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.client import ConnectionState
from fleet_tui.widgets.banner import LinkBanner

from .test_live import until

pytestmark = pytest.mark.timeout(60)


def app_for(url: str, cp=None, tmp_path=None) -> FleetApp:
    return FleetApp(
        server_url=url,
        token=cp.admin_token if cp else "flta_x",
        ca_file=cp.ca_file if cp else None,
        tick=0.2,
        logs_dir=tmp_path / "logs" if tmp_path else None,
        backoff_cap=0.5,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_http_to_the_tls_server_is_refused_naming_the_https_url(control_plane, tmp_path):
    plain = control_plane.url.replace("https://", "http://", 1)
    app = app_for(plain, control_plane, tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.link.state is ConnectionState.REFUSED, what="refused")
        assert f"speaks TLS, not plain HTTP: pass --server {control_plane.url}" in app.link.detail
        banner = app.screen.query_one(LinkBanner)
        await until(pilot, lambda: "speaks TLS" in banner.text, what="banner")
        assert app.sub_title.startswith("refused")


async def test_a_port_nothing_listens_on_says_so_rather_than_connecting(tmp_path):
    app = app_for(f"https://127.0.0.1:{free_port()}", tmp_path=tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        banner = app.screen.query_one(LinkBanner)
        await until(pilot, lambda: "cannot connect" in banner.text, what="banner")
        assert "connection refused: nothing listens on that port" in banner.text
        assert "is the control plane running" in banner.text


async def test_a_url_without_scheme_is_refused_with_the_fix_not_a_dashboard_error(tmp_path):
    app = app_for("127.0.0.1:8443", tmp_path=tmp_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.link.state is ConnectionState.REFUSED, what="refused")
        assert "write https://127.0.0.1:8443" in app.link.detail
        assert "dashboard error" not in app.link.detail
