"""``fleet agent enroll|run|doctor|install-service`` (also ``python -m agent``).

Exit codes:

* 0: stopped on request (SIGTERM, SIGINT) or enrolled;
* 1: failed (enrollment refused, server unreachable, a doctor check failed, ...);
* 2: bad usage, configuration or state directory;
* 3: the control plane revoked this agent: do not restart it;
* 4: the certificate expired: enroll again.

``agent run`` is a supervisor (:mod:`agent.supervisor`) that runs the agent as its
child; the child (``FLEET_AGENT_SUPERVISED=1``) also exits 75 to be restarted,
which the supervisor does and never passes on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from agent.errors import AgentError, CertificateExpired, ConfigError, Revoked, StateError
from fleet import __version__
from fleet.cliparse import FleetParser, duration, name_of

__all__ = [
    "EXIT_CERT_EXPIRED",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_REVOKED",
    "EXIT_USAGE",
    "add_agent_commands",
    "main",
    "run_agent",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REVOKED = 3
EXIT_CERT_EXPIRED = 4

EXIT_CODES_HELP = """\
exit codes:
  0  stopped on request (SIGTERM, SIGINT) or enrolled
  1  failed (enrollment refused, server unreachable, ...)
  2  bad usage, configuration or state directory
  3  the control plane revoked this agent: do not restart it
  4  the certificate expired: enroll again"""


def add_agent_commands(sub: argparse._SubParsersAction[FleetParser]) -> None:
    """Add ``enroll`` and ``run`` to ``sub``, the subcommands of a ``fleet agent`` parser.

    Run the parsed arguments with :func:`run_agent`.
    """
    enroll = sub.add_parser(
        "enroll",
        help="enroll this host with a control plane",
        description="Check the control plane's CA against the pin, then trade the "
        "enrollment token (from --token-file or FLEET_ENROLL_TOKEN) for a certificate.",
    )
    enroll.add_argument("--server", required=True, help="control plane URL, https://HOST:PORT")
    enroll.add_argument("--ca-pin", required=True, help="sha256:... printed with the token")
    enroll.add_argument(
        "--token-file",
        type=Path,
        help="file holding the enrollment token (default: FLEET_ENROLL_TOKEN)",
    )
    enroll.add_argument("--state-dir", type=Path, required=True, help="where identity is kept")
    enroll.add_argument("--name", type=name_of("agent"), help="agent name (default: host name)")
    enroll.add_argument("--force", action="store_true", help="replace an existing identity")
    enroll.add_argument(
        "--ca-file",
        type=Path,
        help="the server presents a certificate from your PKI: verify it with this CA "
        "bundle (default: the pinned CA, else the system trust store); the control "
        "plane's own CA is still checked against --ca-pin",
    )
    enroll.add_argument(
        "--extra-ca-file",
        type=Path,
        help="extra PEM CA bundle to trust for TLS, for an SSL-inspecting proxy your security "
        "team allows (default: none)",
    )
    enroll.add_argument(
        "--if-needed",
        action="store_true",
        help="do nothing if STATE_DIR already holds an identity (for service units)",
    )
    enroll.set_defaults(agent_action=_enroll)

    run = sub.add_parser(
        "run",
        help="keep the channel to the control plane open",
        description="Settings come from --config (default STATE_DIR/agent.toml if it "
        "exists), then FLEET_AGENT_* variables, then these flags. Each flag's default is "
        "the config's value (docs/agent.md lists them).",
    )
    _add_run_arguments(run)
    run.set_defaults(agent_action=_run)

    service = sub.add_parser(
        "install-service",
        help="write the systemd unit, its settings and the enrollment credential",
        description="Write UNIT_DIR/fleet-agent.service (running this install's fleet), "
        "CONFIG_DIR/agent.env (server and CA pin) and CONFIG_DIR/enroll-token (0600, "
        "handed to the service with LoadCredential=, never in the unit, the environment "
        "or a command line). Run as root; --dry-run shows it all and writes nothing.",
    )
    service.add_argument(
        "--user", default="fleet-agent", help="the existing user to run as (default: %(default)s)"
    )
    service.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/fleet-agent"),
        help="the agent's state, under /var/lib, made by systemd (default: %(default)s)",
    )
    service.add_argument(
        "--config-dir",
        type=Path,
        default=Path("/etc/fleet-agent"),
        help="for agent.env, enroll-token and agent.toml (default: %(default)s)",
    )
    service.add_argument(
        "--unit-dir",
        type=Path,
        default=Path("/etc/systemd/system"),
        help="where the unit goes (default: %(default)s)",
    )
    service.add_argument(
        "--server",
        help="control plane URL, https://HOST:PORT (default: keep the one in CONFIG_DIR/agent.env)",
    )
    service.add_argument(
        "--ca-pin", help="sha256:... printed with the token (default: keep the one in agent.env)"
    )
    service.add_argument(
        "--token-file",
        type=Path,
        help="file holding the enrollment token, copied 0600 "
        "(default: keep CONFIG_DIR/enroll-token)",
    )
    service.add_argument(
        "--dry-run", action="store_true", help="print what would be written; touch nothing"
    )
    service.set_defaults(agent_action=_install_service)
    _doctor_parser(sub)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``agent run`` (also rebuilt into the supervised child's command line)."""
    parser.add_argument("--state-dir", type=Path, required=True, help="where identity is kept")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML configuration file (default: FLEET_AGENT_CONFIG, else STATE_DIR/agent.toml)",
    )
    parser.add_argument("--server", help="control plane URL (default: the enrolled one)")
    parser.add_argument(
        "--extra-ca-file", help="extra PEM CA bundle, for SSL-inspecting networks (default: none)"
    )
    parser.add_argument("--proxy", help="proxy URL (default: HTTPS_PROXY/NO_PROXY)")
    parser.add_argument(
        "--samples",
        dest="samples",
        action="store_const",
        const=True,
        help="report CPU and memory (the default)",
    )
    parser.add_argument(
        "--no-samples",
        dest="samples",
        action="store_const",
        const=False,
        help="do not report CPU and memory",
    )
    parser.add_argument(
        "--max-concurrency", type=int, help="commands run at once (default: config, else 2)"
    )
    parser.add_argument(
        "--max-queue", type=int, help="commands waiting at most (default: config, else 16)"
    )
    parser.add_argument(
        "--command-timeout",
        dest="command_timeout_s",
        type=duration,
        metavar="DURATION",
        help="longest a command may run, e.g. 60s (default: config, else 60s)",
    )
    parser.add_argument(
        "--allow-host",
        dest="allow_hosts",
        action="append",
        metavar="GLOB",
        help="host glob this agent may probe; repeatable (default: config, else none)",
    )
    parser.add_argument(
        "--allow-cidr",
        dest="allow_cidrs",
        action="append",
        metavar="CIDR",
        help="network this agent may probe; repeatable (default: config, else none)",
    )
    parser.add_argument(
        "--allow-port",
        dest="allow_ports",
        action="append",
        metavar="PORT[-PORT]",
        help="port or range this agent may probe; repeatable (default: config, else none)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: config, else info)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the config and exit")


def _parser() -> argparse.ArgumentParser:
    parser = FleetParser(
        prog="fleet agent",
        description="The fleet agent: enroll once, then run.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"fleet agent {__version__}")
    add_agent_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def _doctor_parser(sub: argparse._SubParsersAction[FleetParser]) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this host's path to the control plane, step by step",
        description="Walk the troubleshooting table (docs/troubleshooting.md): file modes, "
        "config, DNS, TCP (through the proxy), TLS and the CA pin, the certificate, "
        "the websocket upgrade, authentication, clock skew and, with --probe, a probe "
        "under the agent's policy. Exit 0 when every check passes, 1 when one fails, 2 when "
        "the state dir holds no readable agent.json.",
    )
    doctor.add_argument("--state-dir", type=Path, required=True, help="the agent's state dir")
    doctor.add_argument(
        "--config", type=Path, help="TOML configuration file (default: as `run` finds it)"
    )
    doctor.add_argument(
        "--probe",
        metavar="HOST:PORT",
        help="also probe HOST:PORT under the agent's own policy (default: no probe)",
    )
    auth = doctor.add_mutually_exclusive_group()
    auth.add_argument(
        "--auth",
        dest="authenticate",
        action="store_const",
        const=True,
        help="authenticate on the channel even if `fleet agent run` of this state dir runs "
        "here (it takes the channel over and shows offline until it reconnects); by "
        "default doctor then reads the running agent's log instead",
    )
    auth.add_argument(
        "--no-auth",
        dest="authenticate",
        action="store_const",
        const=False,
        help="do not authenticate on the channel",
    )
    doctor.add_argument(
        "--timeout",
        type=duration,
        default="5s",
        metavar="DURATION",
        help="limit on each network step, e.g. 5s or 500ms",
    )
    doctor.add_argument("--output", choices=["text", "json"], default="text", help="output format")
    doctor.set_defaults(agent_action=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from agent.doctor import DoctorOptions, parse_target, render_json, render_text, run_doctor

    try:
        probe = parse_target(args.probe) if args.probe else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not 0 < args.timeout <= 60:
        raise ConfigError("--timeout must lie between 0 and 60s")
    report = run_doctor(
        DoctorOptions(
            state_dir=args.state_dir,
            env=os.environ,
            config_file=args.config,
            probe=probe,
            authenticate=args.authenticate,
            timeout_s=args.timeout,
        )
    )
    if args.output == "json":
        sys.stdout.write(render_json(report))
    else:
        sys.stdout.write(render_text(report, env=os.environ, tty=sys.stdout.isatty()))
    return EXIT_OK if report.passed else EXIT_ERROR


def _enroll(args: argparse.Namespace) -> int:
    from agent.enroll import EnrollRequest, agent_name, enroll, read_token

    if args.if_needed and (args.state_dir / "agent.json").exists():
        print(f"{args.state_dir} already holds an enrolled agent; nothing to do")
        return EXIT_OK
    # Before anything else: the host name may not be a valid agent name.
    name = agent_name(args.name)
    token = read_token(args.token_file, os.environ)
    identity = enroll(
        EnrollRequest(
            server=args.server,
            ca_pin=args.ca_pin,
            token=token,
            state_dir=args.state_dir,
            name=name,
            force=args.force,
            ca_file=args.ca_file,
            extra_ca_file=args.extra_ca_file,
        )
    )
    trust = {
        "pinned": "the pinned fleet CA",
        "ca-file": f"{args.ca_file} (kept as {identity.server_ca_path})",
        "system": "the system trust store",
    }[identity.tls_trust]
    extra = " --extra-ca-file FILE" if args.extra_ca_file else ""
    print(
        f"enrolled {identity.name} as {identity.agent_id} in pool {identity.pool}.\n"
        f"the server's TLS is verified with {trust}.\n"
        f"start it with: fleet agent run --state-dir {identity.state_dir}{extra}"
    )
    return EXIT_OK


def _install_service(args: argparse.Namespace) -> int:
    from agent.service import ServiceOptions, apply, describe, plan_install

    plan = plan_install(
        ServiceOptions(
            user=args.user,
            state_dir=args.state_dir,
            config_dir=args.config_dir,
            unit_dir=args.unit_dir,
            server=args.server,
            ca_pin=args.ca_pin,
            token_file=args.token_file,
        )
    )
    if args.dry_run:
        print(describe(plan), end="")
    else:
        print("\n".join(apply(plan)))
    return EXIT_OK


def child_argv(args: argparse.Namespace) -> list[str]:
    """The ``agent run`` flags that give ``args`` again: the supervised child's.

    Rebuilt from the parser's own actions, so a new flag is passed on without a
    list to keep.  The state directory is made absolute.
    """
    parser = argparse.ArgumentParser(add_help=False)
    _add_run_arguments(parser)
    out: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest == "print_config" or value is None:
            continue
        flag = action.option_strings[0]
        if action.nargs == 0:
            if value == action.const:
                out.append(flag)
        elif isinstance(value, list):
            for item in value:
                out += [flag, str(item)]
        elif action.type is duration:
            out += [flag, f"{value}s"]
        elif action.dest == "state_dir":
            out += [flag, str(Path(value).absolute())]
        else:
            out += [flag, str(value)]
    return out


def _run(args: argparse.Namespace) -> int:
    import json

    from agent.versions import EXIT_RESTART, SUPERVISED_ENV

    if os.environ.get(SUPERVISED_ENV) != "1" and not args.print_config:
        from agent.supervisor import exec_supervisor

        exec_supervisor(child_argv(args))  # never returns

    import asyncio

    from agent.config import load_config
    from agent.logs import LogBook, restrict_umask
    from agent.state import load_identity

    restrict_umask()
    config_file = args.config
    if config_file is None and "FLEET_AGENT_CONFIG" in os.environ:
        config_file = Path(os.environ["FLEET_AGENT_CONFIG"])
    if config_file is None and (args.state_dir / "agent.toml").is_file():
        config_file = args.state_dir / "agent.toml"
    flags = {
        name: getattr(args, name)
        for name in (
            "server",
            "extra_ca_file",
            "proxy",
            "samples",
            "max_concurrency",
            "max_queue",
            "command_timeout_s",
            "allow_hosts",
            "allow_cidrs",
            "allow_ports",
            "log_level",
        )
    }
    config = load_config(file=config_file, env=os.environ, flags=flags)
    if args.print_config:
        print(json.dumps({"config": config.report(), "hash": config.hash()}, indent=2))
        return EXIT_OK
    identity = load_identity(args.state_dir)

    from agent.channel import Agent

    logbook = LogBook(
        identity.log_dir,
        max_bytes=config.log_max_bytes,
        backups=config.log_backups,
        ring_lines=config.log_ring_lines,
    )
    logger = logbook.install(config.log_level)
    if config.sources:
        logger.info("settings from %s; hash %s", ", ".join(config.sources), config.hash())
    agent = Agent(identity, config, logbook)
    try:
        asyncio.run(agent.run())
    except Revoked:
        return EXIT_REVOKED
    except CertificateExpired:
        return EXIT_CERT_EXPIRED
    finally:
        logbook.close()
    return EXIT_RESTART if agent.restarting else EXIT_OK


def main(argv: list[str]) -> int:
    """Run ``fleet agent ARGV`` (also ``python -m agent``) and return the exit code."""
    return run_agent(_parser().parse_args(argv))


def run_agent(args: argparse.Namespace) -> int:
    """Run the ``fleet agent`` command parsed by :func:`add_agent_commands`."""
    try:
        action: Callable[[argparse.Namespace], int] = args.agent_action
        return action(args)
    except (ConfigError, StateError) as exc:
        print(f"fleet agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AgentError as exc:
        print(f"fleet agent: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_OK
