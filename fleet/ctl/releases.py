"""``fleet releases add|list|rm``: agent releases the control plane keeps and signs.

A release is this project's own wheel (``pip wheel --no-deps .`` from a checkout
whose version was set); the control plane checks it, keeps it under its SHA-256
and signs it with its release key, which agents verify before they run it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from ..units import check_version, format_size
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .output import Column, ago, emit, print_table

__all__ = ["register", "version_arg"]

COLUMNS: list[Column] = [
    ("VERSION", lambda r: r["version"]),
    ("SIZE", lambda r: format_size(r["size"])),
    ("SHA256", lambda r: r["sha256"][:12]),
    ("ADDED", lambda r: ago(r["added_at"])),
    ("BY", lambda r: r["added_by"]),
    ("FILE", lambda r: r["filename"]),
]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def version_arg(text: str) -> str:
    """An argparse ``type``: a release version (the server's rule)."""
    try:
        return check_version(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


version_arg.__name__ = "version"


def _shown_name(file: Path) -> str:
    """The file's name as the server accepts it (shown in listings only)."""
    return (_UNSAFE.sub("_", file.name).lstrip("._+-") or "release.whl")[:200]


def _add(args: argparse.Namespace, api: ApiClient) -> int:
    file: Path = args.file
    out: dict[str, Any] = api.upload(
        "PUT",
        path("/v1/releases/{}", args.version),
        file,
        params={"filename": _shown_name(file)},
    )

    def human() -> None:
        print(
            f"release {out['version']} stored ({format_size(out['size'])}, added by "
            f"{out['added_by']})\n"
            f"  sha256:    {out['sha256']}\n"
            f"  signature: {out['signature'][:16]}... (the release key's; agents check it)\n"
            f"Upgrade an agent with: fleet agents upgrade AGENT --version {out['version']}"
        )

    emit(out, args.output, human)
    return 0


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    releases: list[dict[str, Any]] = api.call("GET", "/v1/releases")
    emit(releases, args.output, lambda: print_table(releases, COLUMNS, "no releases"))
    return 0


def _rm(args: argparse.Namespace, api: ApiClient) -> int:
    confirm(args, f"remove release {args.version}: agents can no longer download it")
    out = api.call("DELETE", path("/v1/releases/{}", args.version))
    emit(
        out,
        args.output,
        lambda: print(f"removed release {args.version}; agents running it keep running it"),
    )
    return 0


def register(sub: Subparsers) -> None:
    """Add ``fleet releases`` (alias ``release``) and its verbs."""
    noun = sub.add_parser(
        "releases",
        aliases=["release"],
        help="agent releases: add, list, remove",
        description="Agent releases (this project's wheels), kept by the control plane "
        "under their SHA-256 and signed with its release key.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    add = verb(
        verbs,
        "add",
        _add,
        "upload a release wheel (admin); prints its sha256 and signature",
    )
    add.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        help="the wheel, built with 'pip wheel --no-deps .' from a checkout set to VERSION",
    )
    add.add_argument(
        "--version",
        required=True,
        type=version_arg,
        metavar="VERSION",
        help="the version the wheel says it is (its METADATA must agree)",
    )
    verb(
        verbs,
        "list",
        _list,
        "list stored releases, newest first: size, sha256, added",
        aliases=("ls",),
    )
    rm = verb(
        verbs,
        "rm",
        _rm,
        "remove a release (admin); refused while a rollout targets it",
        destructive=True,
        aliases=("delete",),
    )
    rm.add_argument("version", metavar="VERSION", type=version_arg, help="the release's version")
