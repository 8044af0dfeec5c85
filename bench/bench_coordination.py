"""Coordination benchmark: prints figures and ratios, asserts nothing.

One run, one freshly started loopback redis-server: barrier release latency of
runtime.barrier (XREAD BLOCK wake-up, waiter in another process) vs the seed's 5-second
GET poll. Leases have their own benchmark, bench/bench_leases.py.

Usage: python bench/bench_coordination.py [--barrier-rounds N] [--seed-poll-rounds N]
Target (issue 5): barrier p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from runtime.coordination.barrier import Barrier  # noqa: E402
from runtime.coordination.connection import RedisSettings, connect  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def barrier_waiter(url, prefix, rounds, conn):
    r = connect(RedisSettings(url=url))
    ks = Keyspace(prefix=prefix)
    conn.send("ready")
    for i in range(rounds):
        Barrier(r, ks, f"round-{i}", ["larry-01", "larry-02", "larry-03"]).wait(timeout=30)
        conn.send(time.monotonic())


def bench_barrier(server, rounds):
    r = connect(RedisSettings(url=server.url))
    ks = Keyspace(prefix="bench-barrier:")
    parent, child = multiprocessing.get_context("fork").Pipe()
    waiter = multiprocessing.get_context("fork").Process(target=barrier_waiter,
                                                         args=(server.url, ks.prefix, rounds, child))
    waiter.start()
    parent.recv()
    latencies = []
    for i in range(rounds):
        barrier = Barrier(r, ks, f"round-{i}", ["larry-01", "larry-02", "larry-03"])
        barrier.arrive("larry-01")
        barrier.arrive("larry-02")
        time.sleep(0.01)  # let the waiter block in XREAD
        last = time.monotonic()
        barrier.arrive("larry-03")
        latencies.append(parent.recv() - last)
    waiter.join()
    return latencies


def seed_wait_for_all_larrys(r, prefix, larry_ids, timeout=600):
    """The seed's barrier, verbatim apart from the key prefix and a text-mode client."""
    start_time = time.time()
    while time.time() - start_time < timeout:
        statuses = {larry_id: r.get(f"{prefix}phase:{larry_id}:status") for larry_id in larry_ids}
        if all(status == "completed" for status in statuses.values()):
            return True
        time.sleep(5)
    return False


def seed_poll_waiter(url, prefix, rounds, conn):
    r = redis.Redis.from_url(url, decode_responses=True)
    conn.send("ready")
    for i in range(rounds):
        seed_wait_for_all_larrys(r, f"{prefix}{i}:", ["larry-01", "larry-02", "larry-03"])
        conn.send(time.monotonic())


def bench_seed_poll(server, rounds):
    """Measured seed-poll latency: the last Larry completes at a random point of the 5 s sleep."""
    import random
    r = redis.Redis.from_url(server.url, decode_responses=True)
    prefix = "bench-seed:"
    parent, child = multiprocessing.get_context("fork").Pipe()
    waiter = multiprocessing.get_context("fork").Process(target=seed_poll_waiter,
                                                         args=(server.url, prefix, rounds, child))
    waiter.start()
    parent.recv()
    latencies = []
    for i in range(rounds):
        for larry in ("larry-01", "larry-02"):
            r.set(f"{prefix}{i}:phase:{larry}:status", "completed")
        time.sleep(random.uniform(0.1, 5.0))
        last = time.monotonic()
        r.set(f"{prefix}{i}:phase:larry-03:status", "completed")
        latencies.append(parent.recv() - last)
    waiter.join()
    return latencies


def ms(seconds):
    return f"{seconds * 1000:8.3f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--barrier-rounds", type=int, default=200)
    parser.add_argument("--seed-poll-rounds", type=int, default=3, help="each costs up to 5 s")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            barrier = bench_barrier(server, args.barrier_rounds)
            seed = bench_seed_poll(server, args.seed_poll_rounds) if args.seed_poll_rounds else []
        finally:
            server.stop()

    p50, p99 = percentile(barrier, 0.5), percentile(barrier, 0.99)
    print(f"barrier release latency (last arrival -> waiter in another process returns), {len(barrier)} rounds")
    print(f"runtime.barrier      p50 {ms(p50)}   p99 {ms(p99)}   max {ms(max(barrier))}   target p99 < 20 ms:"
          f" {'met' if p99 < 0.020 else 'MISSED'}")
    # With a 5 s sleep, the last arrival lands uniformly within the sleep: expected p50 2.5 s, p99 4.95 s.
    print(f"seed 5 s poll        expected p50 {ms(2.5)}   p99 {ms(4.95)}", end="")
    if seed:
        print(f"   measured ({len(seed)} rounds): " + ", ".join(ms(s).strip() for s in seed))
    else:
        print()
    print(f"ratio seed/runtime   p50 {2.5 / p50:,.0f}x   p99 {4.95 / p99:,.0f}x faster release")


if __name__ == "__main__":
    main()
