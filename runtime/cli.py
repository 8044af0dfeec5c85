"""The `larry` command: what the coordinator and worker containers run, and the operator's tools.

Every subcommand reads the same plan: the stack config document the components render into
the Larry's ConfigMap (``--plan /etc/larry/plan.yaml``) or a stack file of the project
(``--stack dev``). A user mistake (bad plan, unknown Larry, unreachable Redis where it is
required) ends with one line on stderr and exit status 2, never a traceback. Logging is
configured here, once per process (:mod:`runtime.support.logs`).

Redis credentials: a password goes in ``$LARRY_REDIS_PASSWORD`` (and
``$LARRY_REDIS_SENTINEL_PASSWORD`` for Sentinel), never on a command line, where ``ps``
shows it to every user of the machine. A password inside ``--redis-url`` is accepted, never
printed (every message masks it) and handed to child processes through the environment only.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from plan import environment as envvar
from plan.exits import ExitCode
from plan.loader import ConfigError, load_plan_path, load_stack
from plan.model import StackConfig
from runtime.support import logs
from runtime.support.credentials import take_password

#: subcommand -> (module, help); each module has ``configure_parser(parser)``, ``main(args)``
#: and may have ``EXAMPLES`` (the help's epilog). Modules are imported only when used, so the
#: worker container does not pay for rich or boto3.
COMMANDS = {
    "worker": ("runtime.commands.worker", "run one worker: claim its tasks by lease and run the payload"),
    "worker-host": ("runtime.commands.worker_host", "run many of a Larry's workers in one process (larry run at fleet size)"),
    "coordinator": ("runtime.commands.coordinator", "run one Larry's coordinator"),
    "master": ("runtime.commands.master", "run one master: plan, decide escalations, review, report"),
    "converge": ("runtime.commands.converge", "aggregate the Larry reports into the summary and archive the run"),
    "run": ("runtime.commands.run", "run a stack's whole plan on this machine"),
    "simulate": ("runtime.commands.simulate", "the built-in simulated payload (used after `larry worker ... --`)"),
    "dashboard": ("runtime.commands.dashboard", "live terminal dashboard"),
    "status": ("runtime.commands.status", "phase, task and ledger state of a run"),
    "preflight": ("runtime.commands.preflight", "check Redis, sentinel quorum and the plan's budgets"),
    "cleanup": ("runtime.commands.cleanup", "remove a finished run's keys from Redis (after archiving)"),
    "escalations": ("runtime.commands.escalations", "the run's escalations to a human and their outcome"),
    "approve": ("runtime.commands.approve", "approve an escalation: grant tokens, resume the paused worker"),
    "deny": ("runtime.commands.deny", "deny an escalation: the paused worker fails its task with the reason"),
    "catalog": ("runtime.commands.catalog", "the asset catalog's GraphQL API (serve) and the replay of workers' buffers"),
    "rollback": ("runtime.commands.rollback", "run a Larry's rollback steps (seed 001 appendix B) as tasks"),
    "inventory": ("runtime.commands.inventory", "walk the cluster through the Kubernetes API and report its assets"),
}

#: The help's epilog of commands whose module has no EXAMPLES of its own (the worker's and
#: coordinator's modules belong to the pods).
EPILOGS = {
    "worker": """\
The payload (the agent) is every argument after `--`; without one the worker runs the
built-in `larry simulate`. The payload's protocol: runtime/agent/protocol.py.

examples:
  larry worker --plan /etc/larry/plan.yaml --larry larry-02 --worker scan-worker-01 -- my-agent --model m
  larry worker --stack dev --larry larry-01 --worker cleanup-worker --speed 60 -- larry simulate
""",
    "coordinator": """\
examples:
  larry coordinator --plan /etc/larry/plan.yaml --larry larry-02
  larry coordinator --stack dev --larry larry-01 --speed 60 --port 9100
""",
}

#: How long an operator's command keeps retrying an unreachable Redis before saying so.
OPERATOR_RETRY_SECONDS = 3.0


class UsageError(Exception):
    """A mistake of the person or manifest invoking larry: printed as one line, exit 2."""


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--plan", type=Path, default=os.environ.get(envvar.PLAN),
                        help="a plan document rendered by the components (a Larry's slice, or a directory of "
                             "every slice: the whole plan) or a stack file (default $LARRY_PLAN)")
    source.add_argument("--stack", help="a stack of this project, read from Pulumi.<stack>.yaml")
    parser.add_argument("--project-dir", type=Path, default=Path(os.environ.get(envvar.PROJECT_DIR, ".")),
                        help="where Pulumi.<stack>.yaml lives (with --stack)")


def add_redis_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=os.environ.get(envvar.REDIS_URL),
                        help="redis://host:port/db (default $LARRY_REDIS_URL; Sentinel via $LARRY_REDIS_SENTINELS); "
                             "the password goes in $LARRY_REDIS_PASSWORD, not on the command line")


def add_coordination_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coordination-dir", type=Path,
                        default=Path(os.environ.get(envvar.COORDINATION_DIR, "/coordination")),
                        help="the shared coordination volume (default $LARRY_COORDINATION_DIR or /coordination)")


def add_key_prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-prefix", default=os.environ.get(envvar.KEY_PREFIX, ""),
                        help="prefix of every key and channel of the run (default $LARRY_KEY_PREFIX, empty)")


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_speed_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--speed", type=positive_number, default=positive_number(os.environ.get(envvar.SPEED, "1")),
                        help="how many times faster than the plan's minutes deadlines run (default $LARRY_SPEED or 1)")


def open_redis(args: argparse.Namespace, cfg: StackConfig, env=None):
    """(client, Keyspace) for a process of the run: --redis-url or the environment ``env``
    (default os.environ; Sentinel via $LARRY_REDIS_SENTINELS), the plan's channel names,
    --key-prefix. A Redis that does not answer within the connection's retry window is a
    UsageError."""
    import redis

    from runtime.coordination.connection import AuthenticationFailed, RedisSettings, connect
    from runtime.coordination.keys import Keyspace
    from runtime.support.credentials import mask, mask_url

    env = {**(os.environ if env is None else env), **({envvar.REDIS_URL: args.redis_url} if args.redis_url else {})}
    settings = RedisSettings.from_env(env)
    secrets = (settings.password, settings.sentinel_password)
    try:
        ks = Keyspace.for_plan(cfg.channels, getattr(args, "key_prefix", "") or "")
        client = connect(settings)
        client.ping()
    except ValueError as exc:
        raise UsageError(mask(str(exc), secrets)) from None
    except AuthenticationFailed as exc:
        raise UsageError(mask(f"{settings.target}: {exc}", secrets)) from None
    except redis.exceptions.RedisError as exc:
        target = mask_url(settings.url) if not settings.sentinels else f"Sentinel master {settings.master_name!r}"
        raise UsageError(mask(f"cannot reach Redis at {target} ({exc})", secrets)) from None
    return client, ks


def larry_of(cfg: StackConfig, larry_id: str | None):
    """The plan's Larry ``larry_id`` (UsageError naming the choices if there is none)."""
    for larry in cfg.larrys:
        if larry.id == larry_id:
            return larry
    raise UsageError(f"{cfg.source}: no Larry {larry_id!r} in the plan "
                     f"(expected one of {', '.join(larry.id for larry in cfg.larrys)})")


def member_of(cfg: StackConfig, larry, kind: str, name: str | None):
    """``larry``'s worker or master (``kind``) named ``name`` (UsageError naming the choices if there is none)."""
    members = larry.workers if kind == "worker" else larry.masters
    for member in members:
        if member.name == name:
            return member
    raise UsageError(f"{cfg.source}: {larry.id} has no {kind} {name!r} "
                     f"(expected one of {', '.join(m.name for m in members) or 'none'})")


def add_process_arguments(parser: argparse.ArgumentParser, coordination_dir: bool = True) -> None:
    """What every process of a run takes: plan, Redis, key prefix, speed (and the volume)."""
    add_plan_arguments(parser)
    add_redis_arguments(parser)
    add_key_prefix(parser)
    add_speed_argument(parser)
    if coordination_dir:
        add_coordination_dir(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The plan, Redis and key prefix: what every operator command reading a run needs."""
    add_plan_arguments(parser)
    add_redis_arguments(parser)
    add_key_prefix(parser)


def impatient_env(retry_for: float) -> dict[str, str]:
    """The environment with Redis retries cut to ``retry_for`` s: an operator wants an answer,
    not the runtime's 30 s ride through a failover."""
    try:
        current = float(os.environ.get(envvar.REDIS_RETRY_FOR) or retry_for)
    except ValueError:
        current = retry_for
    return {**os.environ, envvar.REDIS_RETRY_FOR: str(min(current, retry_for))}


def open_run(args: argparse.Namespace, retry_for: float = OPERATOR_RETRY_SECONDS):
    """(plan, a client that has answered a PING (else UsageError), Keyspace) for an operator's command."""
    cfg = load_plan(args)
    client, ks = open_redis(args, cfg, impatient_env(retry_for))
    return cfg, client, ks


def interrupt_on_sigterm(*, claim_ctrl_c: bool = False) -> None:
    """Treat SIGTERM (pod deletion, the local supervisor stopping a process) like Ctrl+C, so
    the process's ``finally`` blocks stop payloads and release leases on the way out.

    ``claim_ctrl_c`` is for a full-screen command, whose only way out is Ctrl+C: it takes
    SIGINT back even when started with SIGINT ignored (a script's background job, ``nohup``),
    where it would otherwise hold the terminal until killed."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    if claim_ctrl_c:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def hold(once: bool) -> int:
    """The end of a Deployment's process whose work is done: keep running until SIGTERM, as its
    pod must (exiting would only get it restarted); ``once``: exit 0 at once."""
    if once:
        return ExitCode.OK
    import threading
    try:
        threading.Event().wait()
    except KeyboardInterrupt:  # SIGTERM
        pass
    return ExitCode.OK


def load_plan(args: argparse.Namespace) -> StackConfig:
    """The StackConfig named by --plan or --stack."""
    if getattr(args, "stack", None):
        return load_stack(args.stack, args.project_dir)
    if not getattr(args, "plan", None):
        raise UsageError("no plan: pass --plan FILE (or set LARRY_PLAN) or --stack NAME")
    # The same reading as a stack file's: unreadable, non-UTF-8 or malformed is one line. A
    # Larry's pods get its slice; a directory of every slice is the whole plan.
    return load_plan_path(args.plan)


def add_log_arguments(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="store_const", const="DEBUG", dest="log_level", default=default,
                        help="log everything (same as --log-level DEBUG)")
    parser.add_argument("--log-level", metavar="LEVEL", choices=logs.LEVELS, type=str.upper, default=default,
                        help=f"{', '.join(logs.LEVELS)} (default ${envvar.LOG_LEVEL} or {logs.DEFAULT_LEVEL})")


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """All subcommands; only ``selected``'s module is imported to add its own options."""
    parser = argparse.ArgumentParser(prog="larry", description=__doc__.splitlines()[0])
    add_log_arguments(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, text) in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text, epilog=EPILOGS.get(name),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        # also after the command (`larry run -v`); SUPPRESS keeps a level given before it
        add_log_arguments(sub, argparse.SUPPRESS)
        sub.set_defaults(_module=module, payload=[])
        if name == selected:
            loaded = importlib.import_module(module)
            loaded.configure_parser(sub)
            sub.epilog = getattr(loaded, "EXAMPLES", None) or sub.epilog
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The payload's own arguments follow `--` and are not ours to parse.
    payload: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, payload = argv[:split], argv[split + 1:]
    selected = next((arg for arg in argv if not arg.startswith("-") and arg in COMMANDS), None)
    try:
        level = logs.level_from(None)
    except ValueError as exc:
        level = logs.DEFAULT_LEVEL
        logging.getLogger(__name__).warning("%s; logging at %s", exc, level)
    args = build_parser(selected).parse_args(argv)
    logs.configure(args.log_level or level)
    if getattr(args, "redis_url", None):
        args.redis_url = take_password(args.redis_url)
    args.payload = payload
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except (UsageError, ConfigError) as exc:
        print(f"larry {args.command}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
