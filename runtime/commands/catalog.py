"""`larry catalog`: the Catalog API of seed 004 (`serve`) and the replay of workers' buffers (`replay`).

::

    larry catalog serve [--host 0.0.0.0] [--port 3000] [--baseline FILE] [--redis-url URL] [--key-prefix P]
    larry catalog replay [--coordination-dir D] [--url URL]

``serve`` runs one replica (:mod:`runtime.catalog.server`) on the stack's Redis (``--redis-url``
or the environment, Sentinel through ``$LARRY_REDIS_SENTINELS``, as every process of a run)
under the run's key prefix. With ``--baseline`` it first adds the file's assets the catalog
lacks (:mod:`runtime.catalog.baseline`): a bad file ends the command with one line and
nothing written. `larry run` starts one replica beside the run's processes when the stack
enables ``larry:catalog`` (:func:`local_catalog`) and gives the workers its URL in
``$LARRY_CATALOG_URL``. ``replay`` sends every worker outbox under ``{coordination-dir}/results``
to the catalog (``--url``, default ``$LARRY_CATALOG_URL``) and says what is left.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from plan import environment as envvar
from plan.exits import ExitCode
from plan.model import Catalog, Channels
from runtime.cli import UsageError, add_coordination_dir, add_key_prefix, add_redis_arguments, open_redis
from runtime.support.ports import free_port

EXAMPLES = """\
examples:
  larry catalog serve --port 3000 --baseline catalog-baseline.yaml
  LARRY_CATALOG_URL=http://127.0.0.1:3000/graphql larry catalog replay --coordination-dir .larry-runs/<run>
"""

#: The catalog's keys depend only on the key prefix, not on a plan's channel names.
_NO_PLAN = SimpleNamespace(channels=Channels())


def configure_parser(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the GraphQL API at /graphql")
    add_redis_arguments(serve)
    add_key_prefix(serve)
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000, seed 004's)")
    serve.add_argument("--baseline", type=Path, help="YAML {assets: [...]} the catalog holds before a run")
    replay = actions.add_parser("replay", help="send the assets workers buffered while the catalog was down")
    add_coordination_dir(replay)
    replay.add_argument("--url", default=os.environ.get(envvar.CATALOG_URL),
                        help="the catalog's /graphql URL (default $LARRY_CATALOG_URL)")


def local_catalog(catalog: Catalog, project_dir: Path) -> tuple[str, list[str]]:
    """For `larry run`: (the URL its workers report to, the `larry` arguments of one replica on
    a free loopback port, seeded with the stack's baseline file relative to the project)."""
    port = free_port()
    argv = ["catalog", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if catalog.baseline:
        argv += ["--baseline", str((Path(project_dir) / catalog.baseline).resolve())]
    return f"http://127.0.0.1:{port}/graphql", argv


def main(args) -> int:
    return serve(args) if args.action == "serve" else replay(args)


def serve(args) -> int:
    from runtime.catalog.baseline import BaselineError, load_baseline, read_baseline
    from runtime.catalog.server import serve as run_server
    from runtime.catalog.store import CatalogStore

    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: expected a port number (1-65535)")
    try:
        baseline = read_baseline(args.baseline) if args.baseline else []
    except BaselineError as error:
        raise UsageError(str(error)) from None
    r, ks = open_redis(args, _NO_PLAN)
    store = CatalogStore(r, ks)
    if baseline:
        added = load_baseline(store, baseline)
        print(f"catalog: baseline {args.baseline}: {added} of {len(baseline)} assets added "
              f"({store.count()} in the catalog)", flush=True)
    run_server(store, args.host, args.port)
    return ExitCode.OK


def replay(args) -> int:
    from runtime.catalog.client import CatalogClient
    from runtime.catalog.outbox import CatalogOutbox

    if not args.url:
        raise UsageError(f"no catalog: pass --url or set {envvar.CATALOG_URL}")
    client = CatalogClient(args.url)
    left = 0
    for path in sorted((Path(args.coordination_dir) / "results").glob("*/catalog-outbox-*.jsonl")):
        outbox = CatalogOutbox(path, client)
        before = outbox.pending()
        outbox.flush()
        remaining = outbox.pending()
        left += remaining
        print(f"{path}: {before - remaining} batch(es) sent, {remaining} left", flush=True)
    return ExitCode.OK if left == 0 else ExitCode.FAILED
