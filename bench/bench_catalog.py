"""Catalog benchmark: prints figures, asserts nothing.

One `larry catalog serve` replica on loopback over a fresh redis-server, filled with the
simulated cluster's kind of assets (direct Lua upserts, 1,000 per script):

* **Queries**: p50 and p99 latency (ms) of ``assets``, ``search`` and ``stats`` over HTTP at
  each ``--sizes`` count, and of the store call alone (Redis and decoding, no GraphQL/HTTP),
  so what the GraphQL layer costs is visible. Seed 004 claims "<1ms query time".
* **Writes**: ``addAsset`` mutations per second from ``--writers`` concurrent clients (seed
  004's 16 workers), each asset new.
* **Subscriptions**: from sending an ``addAsset`` to its ``assetAdded`` arriving on a
  WebSocket subscriber of the same replica: p50 and p99 (ms).

Usage: python bench/bench_catalog.py [--sizes 1000,100000] [--samples 50] [--writers 16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.catalog.assets import Asset  # noqa: E402
from runtime.catalog.store import CatalogStore  # noqa: E402
from runtime.coordination.connection import RedisSettings, connect  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from tests.runtime.catalog.service import CatalogProcess, Subscriber, redis_env  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

QUERIES = {
    "assets": "{ assets { id name type } }",
    "search": '{ search(query: "cortex api") { id name } }',
    "stats": "{ stats { assets { total } } }",
}
ADD = "mutation($input: AddAssetInput!) { addAsset(input: $input) { id } }"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):8.2f} ms   p99 {p99:8.2f} ms   (n={len(ordered)})"


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def fill(store: CatalogStore, start: int, count: int) -> None:
    for offset in range(start, start + count, 1000):
        batch = [Asset(f"cortex-api-{i}", "POD" if i % 3 else "DEPLOYMENT", "k3s-cluster", f"ns-{i % 7}",
                       {"index": i}, "HEALTHY", (), (f"team-{i % 5}",))
                 for i in range(offset, min(offset + 1000, start + count))]
        store.upsert(batch, "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000", help="asset counts to measure at, comma-separated")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--writes", type=int, default=50, help="mutations per writer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        replica = CatalogProcess(Path(tmp), "catalog", redis_env(server.url), "bench:")
        try:
            replica.start()
            store = CatalogStore(connect(RedisSettings(url=server.url)), Keyspace(prefix="bench:"))
            http = httpx.Client(timeout=600)
            held = 0
            for size in (int(s) for s in args.sizes.split(",")):
                fill(store, held, size - held)
                held = size
                print(f"\n{size:,} assets")
                for name, query in QUERIES.items():
                    over_http = [timed(lambda: http.post(replica.url, json={"query": query}).raise_for_status())
                                 for _ in range(args.samples)]
                    direct = {"assets": store.assets, "search": lambda: store.search("cortex api"),
                              "stats": store.stats}[name]
                    in_store = [timed(direct) for _ in range(args.samples)]
                    print(f"  {name:7} GraphQL/HTTP {percentiles(over_http)}")
                    print(f"  {'':7} store alone  {percentiles(in_store)}")

            def writer(n: int) -> None:
                client = httpx.Client(timeout=60)
                for i in range(args.writes):
                    client.post(replica.url, json={"query": ADD, "variables": {"input": {
                        "name": f"w{n}-{i}", "type": "POD", "source": "bench", "discoveredBy": f"writer-{n}"}}}
                                ).raise_for_status()
            threads = [threading.Thread(target=writer, args=(n,)) for n in range(args.writers)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            print(f"\nwrites: {args.writers * args.writes:,} addAsset from {args.writers} writers in {elapsed:.2f} s: "
                  f"{args.writers * args.writes / elapsed:,.0f} per second")

            subscriber = Subscriber(replica, "subscription { assetAdded { id } }")
            delays = []
            for i in range(args.samples):
                started = time.perf_counter()
                http.post(replica.url, json={"query": ADD, "variables": {"input": {
                    "name": f"sub-{i}", "type": "POD", "source": "bench", "discoveredBy": "bench"}}}).raise_for_status()
                subscriber.next(timeout=30)
                delays.append((time.perf_counter() - started) * 1000)
            subscriber.close()
            print(f"subscription delivery (mutation sent -> assetAdded received): {percentiles(delays)}")
        finally:
            replica.stop()
            server.stop()


if __name__ == "__main__":
    main()
