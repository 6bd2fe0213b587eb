"""``fleet agent doctor``: walk the troubleshooting table on the agent's host.

Steps, in order (docs/troubleshooting.md explains each)::

    files    state dir 0700, key.pem 0600 and the agent's, config not world-writable
    config   the configuration parses as `fleet agent run` reads it
    dns      the server's name resolves (skipped for an IP literal)
    tcp      the API and channel ports connect, directly or through the proxy
    proxy    (with a proxy) it is reachable and allows CONNECT
    tls      chain from the enrolled CA (or extra_ca_file), name, dates
    pin      the control plane's CA is the one the agent enrolled with
    cert     the agent's certificate: dates, renewal on time
    upgrade  the websocket upgrade succeeds and the server says hello
    auth     the control plane accepts the agent's identity
    clock    the clock is within 1 s of the control plane's
    probe    (with --probe) a connectivity check under the agent's policy

A step that cannot run because an earlier one failed is skipped, saying which.
Nothing heavy is imported here: ``cryptography`` only inside the functions that
need it, never httpx or pydantic.
"""

from __future__ import annotations

from ._probe import parse_target
from ._report import Check, Report, Status, render_json, render_text
from ._run import DoctorOptions, run_doctor

__all__ = [
    "Check",
    "DoctorOptions",
    "Report",
    "Status",
    "parse_target",
    "render_json",
    "render_text",
    "run_doctor",
]
