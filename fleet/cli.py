"""The ``fleet`` command: one entry point, each subcommand in its own package.

Imports are lazy so that ``fleet agent`` loads neither the server nor the dashboard.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: fleet COMMAND [ARGS]

commands:
  server   run the control plane
  agent    enroll or run an agent (fleet agent enroll|run --help)
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


if __name__ == "__main__":
    raise SystemExit(main())
