"""``fleet server`` and the admin commands (``fleet token``, ``fleet user``).

Admin commands talk to a running control plane over its REST API.  By default
they read the endpoint, CA and admin token from the data directory, so on the
server host ``fleet token create --pool db`` just works.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
from pathlib import Path
from typing import Any

__all__ = ["admin_main", "server_main"]

DEFAULT_DATA_DIR = Path(os.environ.get("FLEET_DATA_DIR", "./fleet-data"))


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 2h or 90s")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _san(text: str) -> str:
    from .server_cert import check_san

    try:
        return check_san(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def server_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fleet server", description="Run the control plane.")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port")
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="plain HTTP, only behind a TLS-terminating proxy you control",
    )
    parser.add_argument(
        "--agent-port",
        type=int,
        default=None,
        help="the agents' channel port (default: the one recorded in the data dir, "
        "else --port + 1, else a free one)",
    )
    parser.add_argument(
        "--san",
        action="append",
        type=_san,
        default=None,
        metavar="NAME",
        help="a DNS name or IP address agents dial, for the server's certificate "
        "(repeatable; remembered in the data dir; localhost, 127.0.0.1, ::1 and --host "
        "are always included)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="serve this PEM certificate chain (your PKI's) instead of the fleet CA's own",
    )
    parser.add_argument(
        "--tls-key", type=Path, default=None, metavar="FILE", help="the key of --tls-cert"
    )
    parser.add_argument("--heartbeat-interval", type=_duration, default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting of controlplane/config.py, e.g. --set skew_warn_ms=500",
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    import dataclasses

    from .config import Settings
    from .server import serve

    overrides: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            parser.error(f"--set {item!r}: known settings are {', '.join(fields)}")
        kind = type(getattr(Settings(), name))
        try:
            overrides[name] = kind(value)
        except ValueError:
            parser.error(f"--set {item!r}: {value!r} is not a {kind.__name__}")
    if args.heartbeat_interval:
        overrides["heartbeat_interval_s"] = args.heartbeat_interval
    settings = Settings(**overrides)
    try:
        serve(
            args.data_dir,
            args.host,
            args.port,
            not args.no_tls,
            settings,
            args.log_level,
            agent_port=args.agent_port,
            sans=args.san,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
    except OSError as exc:
        print(f"fleet server: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--server", help="endpoint; default: DATA_DIR/endpoint")
    parser.add_argument("--token-file", type=Path, help="default: DATA_DIR/admin.token")
    parser.add_argument("--ca-file", type=Path, help="default: DATA_DIR/ca.pem")


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import httpx

    data_dir: Path = args.data_dir
    server = args.server or _read(data_dir / "endpoint", "the server's endpoint")
    token = os.environ.get("FLEET_TOKEN") or _read(
        args.token_file or data_dir / "admin.token", "an admin API token"
    )
    ca = args.ca_file or data_dir / "ca.pem"
    verify: Any = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
    try:
        with httpx.Client(base_url=server, verify=verify, timeout=30.0) as client:
            response = client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach {server}: {exc}; is 'fleet server' running?") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise SystemExit(f"refused ({response.status_code}): {detail}")
    return response.json()


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        raise SystemExit(
            f"cannot read {what} from {path}; pass --data-dir, --server or --token-file"
        ) from None


def admin_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fleet", description="Administer a control plane.")
    sub = parser.add_subparsers(dest="noun", required=True)

    token = sub.add_parser("token", help="enrollment tokens").add_subparsers(
        dest="verb", required=True
    )
    create = token.add_parser("create", help="create an enrollment token (shown once)")
    _client_args(create)
    create.add_argument("--pool", required=True)
    create.add_argument("--ttl", type=_duration, default=1800.0, help="e.g. 30m (default)")
    create.add_argument("--uses", type=int, default=1)
    create.add_argument("--label", action="append", default=[], help="k=v, repeatable")
    create.add_argument("--json", action="store_true")

    user = sub.add_parser("user", help="operators' API tokens").add_subparsers(
        dest="verb", required=True
    )
    ucreate = user.add_parser("create", help="create an operator and print its token once")
    _client_args(ucreate)
    ucreate.add_argument("name")
    ucreate.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")

    args = parser.parse_args(argv)
    if args.noun == "token":
        labels = {}
        for item in args.label:
            key, sep, value = item.partition("=")
            if not sep or not key:
                parser.error(f"--label {item!r} must look like key=value")
            labels[key] = value
        out = _call(
            args,
            "POST",
            "/v1/tokens",
            {"pool": args.pool, "ttl_s": args.ttl, "uses": args.uses, "labels": labels},
        )
        if args.json:
            print(json.dumps(out))
        else:
            print(
                f"Enrollment token for pool {out['pool']} ({out['uses']} use(s), "
                f"expires in {args.ttl / 60:.0f} min). Shown once:\n\n  {out['token']}\n\n"
                f"Endpoint: {out['endpoint']}\nCA pin:   {out['ca_pin']}\n\n"
                "On the agent host, put the token in a file readable only by the agent, then:\n"
                f"  fleet agent enroll --server {out['endpoint']} --ca-pin {out['ca_pin']} "
                "--token-file TOKEN_FILE --state-dir /var/lib/fleet-agent"
            )
        return 0
    out = _call(args, "POST", "/v1/users", {"name": args.name, "role": args.role})
    print(f"User {out['name']} ({out['role']}). API token, shown once:\n\n  {out['token']}")
    return 0
