"""The ``fleet`` command: one argparse tree for every part.

``fleet server`` runs the control plane, ``fleet agent`` the agent, ``fleet tui``
the dashboard, ``fleet demo`` all of them; the nouns (``fleet agents``, ``users``,
``tokens``, ``pools``, ``connections``, ``alerts``, ``audit``, ``rollouts``) administer a running
control plane over its REST API (``fleet/ctl/``).

Building the tree imports only the standard library and each part's small CLI
module; the part itself (uvicorn, Textual, httpx, ...) is imported when its
command runs, so ``fleet agent`` loads neither the server nor the dashboard.
"""

from __future__ import annotations

import sys

from . import __version__
from .cliparse import FleetParser
from .ctl.errors import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
)

__all__ = ["build_parser", "main"]

EPILOG = f"""\
the control plane to administer comes from, first to last: --server, --ca-file and
--token-file; FLEET_SERVER, FLEET_CA_FILE, FLEET_TOKEN_FILE (or FLEET_TOKEN); the
profile written by 'fleet login' ($XDG_CONFIG_HOME/fleet/config.toml); on the
server host, --data-dir (DIR/endpoint, DIR/admin.token, DIR/ca.pem).

exit codes of the admin commands:
  {EXIT_OK}  done
  {EXIT_ERROR}  failed: refused by the server, unreachable, or cancelled
  {EXIT_USAGE}  bad usage, nothing configured, or confirmation needed (--yes)
  {EXIT_NOT_FOUND}  not found (404)
  {EXIT_CONFLICT}  conflict (409): exists already, or not possible now
  {EXIT_AUTH}  unauthenticated or forbidden (401, 403): log in, or ask an admin
('fleet agent' has exit codes of its own: fleet agent --help.)

docs/cli.md describes every command."""


def build_parser() -> FleetParser:
    """The whole ``fleet`` command line; each leaf sets ``run(args) -> int``."""
    from agent.cli import EXIT_CODES_HELP, add_agent_commands, run_agent
    from controlplane.cli import add_server_arguments, run_server
    from fleet_tui.cli import DESCRIPTION as TUI_DESCRIPTION
    from fleet_tui.cli import add_tui_arguments, run_tui

    from . import ctl
    from .demo import add_demo_arguments, run_demo

    parser = FleetParser(
        prog="fleet",
        description="Fleet health: an outbound-only agent, its control plane, a "
        "dashboard, and the commands to administer them.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"fleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser(
        "server", help="run the control plane", description="Run the control plane."
    )
    add_server_arguments(server)
    server.set_defaults(run=run_server)

    agent = sub.add_parser(
        "agent",
        help="enroll or run an agent on this host",
        description="The fleet agent: enroll once, then run.",
        epilog=EXIT_CODES_HELP,
    )
    agent.add_argument("--version", action="version", version=f"fleet agent {__version__}")
    add_agent_commands(agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND"))
    agent.set_defaults(run=run_agent)

    tui = sub.add_parser("tui", help="the dashboard", description=TUI_DESCRIPTION)
    add_tui_arguments(tui)
    tui.set_defaults(run=run_tui)

    demo = sub.add_parser(
        "demo",
        help="control plane + agents + simulated fleet + dashboard, one command",
        description="The whole system on a temporary data directory, in one command.",
    )
    add_demo_arguments(demo)
    demo.set_defaults(run=run_demo)

    ctl.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fleet ARGV`` and return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    # Before parsing, so that a command this install cannot run says what to
    # install whatever its arguments (its parser may not even be complete here).
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command is not None:
        _require_extra_for(command)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except CtlError as exc:
        print(f"{getattr(args, 'prog', 'fleet')}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_ERROR
    return code


ADMIN_COMMANDS = frozenset(
    {"login", "logout", "whoami", "agents", "users", "user", "tokens", "token", "pools"}
    | {"connections", "alerts", "audit", "silences", "silence", "maintenance"}
    | {"rollouts", "rollout"}
    | {"releases", "release"}
    | {"remediation", "remediations"}
)
"""The commands of :mod:`fleet.ctl`, which need httpx."""


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
    elif command in ADMIN_COMMANDS:
        # The admin commands speak to the API with httpx.
        require_extra("tui", ADMIN_MODULES, command=f"fleet {command}")


if __name__ == "__main__":
    raise SystemExit(main())
