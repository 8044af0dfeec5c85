"""`larry inventory`: walk the cluster through the Kubernetes API and register what it holds
as catalog assets.

::

    larry inventory [--kubeconfig FILE] [--source NAME] [--catalog URL] [--or-simulate]

It reads every kind :mod:`runtime.inventory.reader` knows with ``--kubeconfig`` (default
``$KUBECONFIG``) or, in a pod, the pod's ServiceAccount, and turns the objects into assets
(:mod:`runtime.inventory.walk`). As a worker's payload (the ``inventory`` agent profile of the
committed stacks' catalog workers) it reports them on stdout as ``@larry {"assets": [...]}``
lines of :data:`BATCH` assets, then ``{"findings": {"assets_discovered": N}}``: the worker
writes them to the catalog through its outbox. With ``--catalog URL`` it sends them to that
catalog's ``/graphql`` itself, as discovered by ``--discovered-by``.

A kind it may not list (403) or the server does not serve is one line on stderr and skipped;
an object that makes no valid asset too. No cluster configuration, or one that cannot be
loaded, ends it with one line and status 2; an API server that cannot be reached or answers
badly, or a catalog that refuses, with one line and status 1 (a retry may help), before
anything is reported. ``--or-simulate``: with no cluster configuration at all, play the
simulated payload instead (:mod:`runtime.agent.simulated`), which is what ``larry run`` on a
machine without a cluster needs; in a pod the in-cluster config is always there, so it never
applies.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable

from plan import environment as envvar
from plan.exits import ExitCode
from runtime.agent.protocol import PayloadReport, format_line
from runtime.catalog.assets import Asset
from runtime.cli import UsageError, add_speed_argument
from runtime.inventory.walk import DEFAULT_SOURCE

#: Assets per protocol line or catalog request (the protocol allows 1,000; a smaller batch keeps
#: a line, and a request, well under a megabyte).
BATCH = 200

EXAMPLES = """\
examples:
  KUBECONFIG=~/.kube/k3s.yaml larry inventory --catalog http://127.0.0.1:3000/graphql
  larry worker --plan /etc/larry/plan.yaml --larry inventory --worker catalog-worker-01 -- larry inventory
"""


def configure_parser(parser) -> None:
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                        help="the cluster's kubeconfig (default $KUBECONFIG; in a pod: its ServiceAccount)")
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help=f"the assets' source, the cluster's name in the catalog (default {DEFAULT_SOURCE})")
    parser.add_argument("--catalog", metavar="URL",
                        help="send the assets to this catalog's /graphql instead of printing @larry lines")
    parser.add_argument("--discovered-by", default=os.environ.get(envvar.WORKER_ID) or "larry-inventory",
                        help="the discoverer the catalog records with --catalog (default $LARRY_WORKER_ID "
                             "or larry-inventory)")
    parser.add_argument("--or-simulate", action="store_true",
                        help="with no cluster configuration at all, play the simulated payload (for `larry run`)")
    add_speed_argument(parser)


def main(args) -> int:
    from runtime.inventory.reader import NoCluster, ReadError, api_client, read
    from runtime.inventory.walk import assets_of

    try:
        api = api_client(args.kubeconfig)
    except NoCluster as error:
        if args.or_simulate:
            from runtime.agent import simulated
            print("larry inventory: no cluster configured: playing the simulated payload (--or-simulate)",
                  file=sys.stderr)
            return simulated.run(os.environ, speed=args.speed)
        raise UsageError(str(error)) from None
    except ReadError as error:
        raise UsageError(str(error)) from None
    try:
        with api:
            reading = read(api)
    except ReadError as error:
        return _fail(str(error))
    for line in reading.skipped:
        print(f"larry inventory: skipped {line}", file=sys.stderr)
    assets, problems = assets_of(reading.objects, args.source)
    for line in problems:
        print(f"larry inventory: {line}", file=sys.stderr)
    if args.catalog:
        return _send(args.catalog, assets, args.discovered_by)
    for batch in batches(assets, BATCH):
        print(format_line(PayloadReport(assets=tuple(batch))), flush=True)
    kinds = len(reading.objects)
    print(format_line(PayloadReport(findings={"assets_discovered": len(assets)}, progress=100,
                                    message=f"{len(assets)} assets from {kinds} kinds"
                                            f"{f', {len(reading.skipped)} skipped' if reading.skipped else ''}")),
          flush=True)
    return ExitCode.OK


def _send(url: str, assets: list[Asset], discovered_by: str) -> int:
    from runtime.catalog.client import CatalogClient, CatalogRejected, CatalogUnavailable, asset_input

    client = CatalogClient(url)
    sent = 0
    try:
        for batch in batches(assets, BATCH):
            client.add_assets([asset_input(asset, discovered_by) for asset in batch])
            sent += len(batch)
    except (CatalogUnavailable, CatalogRejected) as error:
        return _fail(f"{error} ({sent} of {len(assets)} assets sent; sending again is safe)")
    print(f"larry inventory: {sent} assets sent to {url}", file=sys.stderr)
    return ExitCode.OK


def _fail(message: str) -> int:
    print(f"larry inventory: {message}", file=sys.stderr)
    return ExitCode.FAILED


def batches(assets: Iterable[Asset], size: int) -> Iterable[list[Asset]]:
    """``assets`` in lists of at most ``size``."""
    batch: list[Asset] = []
    for asset in assets:
        batch.append(asset)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
