"""The ``fleet`` command: one entry point, each subcommand in its own package.

Imports are lazy so that ``fleet agent`` loads neither the server nor the dashboard.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: fleet COMMAND [ARGS]

commands:
  server   run the control plane
  agent    enroll, run or install an agent (fleet agent enroll|run|install-service --help)
  tui      the dashboard
  demo     control plane + agents + simulated fleet + dashboard, one command
  token    create enrollment tokens (admin)
  user     create operators' API tokens (admin)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    _require_extra_for(command)
    if command == "server":
        from controlplane.cli import server_main

        return server_main(rest)
    if command in ("token", "user"):
        from controlplane.cli import admin_main

        return admin_main(args)
    if command == "agent":
        from agent.cli import main as agent_main

        return agent_main(rest)
    if command == "tui":
        from fleet_tui.cli import main as tui_main

        return tui_main(rest)
    if command == "demo":
        from fleet.demo import main as demo_main

        return demo_main(rest)
    print(f"fleet: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _require_extra_for(command: str) -> None:
    """Stop with the ``pip install`` line if this install lacks what ``command`` imports."""
    from fleet.extras import (
        ADMIN_MODULES,
        ALL_MODULES,
        SERVER_MODULES,
        TUI_MODULES,
        require_extra,
    )

    if command == "server":
        require_extra("server", SERVER_MODULES, command="fleet server")
    elif command == "tui":
        require_extra("tui", TUI_MODULES, command="fleet tui")
    elif command == "demo":
        require_extra("all", ALL_MODULES, command="fleet demo")
    elif command in ("token", "user"):
        require_extra("tui", ADMIN_MODULES, command=f"fleet {command}")


if __name__ == "__main__":
    raise SystemExit(main())
