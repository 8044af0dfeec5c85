"""Ledger benchmark: prints figures and ratios, asserts nothing.

One run, freshly started loopback servers, both contenders measured on the same primary at 1,
8 and 32 client processes. The servers, by option:

* (none): one redis-server;
* ``--wait``: the same plus one replica, every write confirmed with ``WAIT 1``;
* ``--sentinel``: a primary and one replica monitored by three redis-sentinel processes
  (quorum 2), the clients connecting through Sentinel as the runtime does (``RedisSettings``
  with ``sentinels``: each connection asks Sentinel for the primary), every write confirmed
  with ``WAIT 1``: the production deployment.

The contenders:

* ``ledger record``: one charge on a worker's account, booked in one Lua script on every level
  of its path (worker, master pool, Larry, system) with its op id recorded;
* ``INCRBY``: a single counter, the least a token meter can do.

The ratio of their throughputs is the cost of the hierarchy. Limits are far above what the run
spends, so every charge is booked (no overrun, no reserve draw): the steady-state cost.

Usage: python bench/bench_ledger.py [--ops N] [--clients 1,8,32] [--wait | --sentinel]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plan.model import Account  # noqa: E402
from runtime.coordination.connection import Durability, RedisSettings, connect  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from runtime.coordination.ledger import Ledger  # noqa: E402
from tests.support.redis_servers import RedisServer, SentinelCluster  # noqa: E402

BIG = 10**12
ACCOUNTS = {a.name: a for a in (
    Account("system", "system", BIG, None),
    Account("meta-coordinator/reserve", "reserve", 0, "system"),
    Account("L", "larry", BIG, "system"),
    Account("L/m/pool", "pool", BIG, "L"),
    *(Account(f"L/w{i}", "worker", BIG, "L/m/pool") for i in range(32)),
)}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def client(settings, prefix, contender, index, ops, replicas, start, out):
    r = connect(settings)
    durability = Durability(replicas=replicas)
    if contender == "ledger record":
        ledger = Ledger(r, Keyspace(prefix=prefix), ACCOUNTS, durability=durability)
        account, run = f"L/w{index}", uuid.uuid4().hex[:8]

        def op(i):
            ledger.record(f"{run}:{index}:{i}", account, 1)
    else:
        key = f"{prefix}counter"

        def op(i):
            if not replicas:
                return r.incrby(key, 1)
            pipe = r.pipeline(transaction=False)  # WAIT counts the writes of its own connection
            pipe.incrby(key, 1)
            pipe.wait(replicas, durability.timeout_ms)
            pipe.execute()
    for i in range(20):  # warm up the connection and the script cache
        op(-1 - i)
    start.wait()
    latencies = []
    for i in range(ops):
        t = time.perf_counter()
        op(i)
        latencies.append(time.perf_counter() - t)
    out.put(latencies)


def measure(settings, contender, clients, total_ops, replicas):
    ctx = multiprocessing.get_context("fork")
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    if contender == "ledger record":
        Ledger(connect(settings), Keyspace(prefix=prefix), ACCOUNTS).open()
    start, out = ctx.Barrier(clients + 1), ctx.Queue()
    per_client = max(1, total_ops // clients)
    procs = [ctx.Process(target=client, args=(settings, prefix, contender, i, per_client, replicas, start, out))
             for i in range(clients)]
    for p in procs:
        p.start()
    start.wait()
    began = time.perf_counter()
    latencies = [lat for _ in procs for lat in out.get(timeout=300)]
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join(30)
    return {"ops": len(latencies) / elapsed, "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)}


@contextmanager
def servers(workdir: Path, wait: bool, sentinel: bool):
    """The servers the options ask for: (how clients reach the primary, a description)."""
    if sentinel:
        with SentinelCluster(workdir) as cluster:
            primary = cluster.master_port()
            yield (RedisSettings(sentinels=cluster.sentinel_addresses, master_name=cluster.master_name),
                   f"loopback primary (port {primary}, as Sentinel names it) + 1 replica, monitored by 3 "
                   f"redis-sentinel (quorum 2), clients connecting through Sentinel, WAIT 1 after every write")
        return
    primary = RedisServer(workdir, "primary").start()
    try:
        replica = RedisServer(workdir, "replica", replica_of=primary.port).start() if wait else None
        try:
            yield (RedisSettings(url=primary.url),
                   "loopback redis-server" + (" + 1 replica, WAIT 1 after every write" if wait else ""))
        finally:
            if replica:
                replica.stop()
    finally:
        primary.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=8000, help="operations per contender and client count")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client process counts")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--wait", action="store_true", help="one replica; every write confirmed with WAIT 1")
    modes.add_argument("--sentinel", action="store_true",
                       help="a Sentinel-monitored primary and one replica, clients through Sentinel, WAIT 1")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]
    replicas = 1 if args.wait or args.sentinel else 0

    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp), args.wait, args.sentinel) as (settings, where):
        rows = [(n, {c: measure(settings, c, n, args.ops, replicas) for c in ("ledger record", "INCRBY")})
                for n in counts]

    print(f"token ledger vs INCRBY, {args.ops} operations per row, {where}")
    print("ledger record = one Lua script booking on worker, master pool, Larry and system, op id recorded")
    print(f"{'clients':>8}{'contender':>16}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'INCRBY/ledger':>15}")
    for n, figures in rows:
        ledger, incr = figures["ledger record"], figures["INCRBY"]
        for name, f in figures.items():
            ratio = f"{incr['ops'] / ledger['ops']:.2f}x" if name == "ledger record" else ""
            print(f"{n:>8}{name:>16}{f['ops']:>10.0f}{f['p50'] * 1000:>10.3f}{f['p99'] * 1000:>10.3f}{ratio:>15}")


if __name__ == "__main__":
    main()
