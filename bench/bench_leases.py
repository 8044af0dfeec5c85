"""Lease benchmark: prints figures and ratios, asserts nothing.

One run, one freshly started loopback redis-server, every contender measured on it:

* ``runtime.coordination.leases``: LeaseManager acquire + release, with what the protocol
  requires: dependency and terminal-status checks, a fencing token, ``task:status``
  (in_progress, then pending) and the ``task_claimed`` and ``task_released`` events;
* ``redis-py Lock``: SET NX PX, then the owner-checked delete script (a plain client, as a
  redis-py user has it);
* ``python-redis-lock``: its Lock on the same plain client.

Throughput and latency at 1 and 16 clients, each client a separate process (fork) with its
own connection: every contender runs ``--seconds`` per slice on all clients at once, slices
interleaved (A B C, A B C, ...) so drift (CPU frequency, other work on the machine) hits them
alike. Printed: acquire+release pairs/s (median of the slices), p50 and p99 of a pair's
latency (every pair of every slice), and the ratio of pairs/s to redis-py Lock's.

Then where the time goes, one client: the server's time per pair by command (INFO
commandstats, reset before each contender; the time of a script or function includes the
commands it calls, listed under it, and what is left is the script engine itself), the
server's CPU per pair (INFO cpu: commands plus reading and answering the client), and the
client's CPU per pair.

Usage: python bench/bench_leases.py [--seconds S] [--slices N] [--clients 1,16] [--pairs N]
Bounded: 16 client processes at most by default; (clients settings) x 3 x slices x seconds,
plus a few seconds of set-up and the --pairs accounting runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
import redis_lock  # noqa: E402

from bench.bench_coordination import ms, percentile  # noqa: E402
from runtime.coordination.connection import RedisSettings, connect  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from runtime.coordination.leases import LeaseManager  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

OURS, REDIS_PY, PRL = "runtime.coordination.leases", "redis-py Lock", "python-redis-lock"
#: The commands each contender's client sends per pair (python-redis-lock GETs the owner before
#: its SET); every other call in commandstats ran inside a script or function.
TOP_LEVEL = {OURS: {"fcall": 2}, REDIS_PY: {"set": 1, "evalsha": 1}, PRL: {"get": 1, "set": 1, "evalsha": 1}}
#: The top-level commands that run Lua: their time includes the commands they call.
SCRIPTED = {"fcall", "evalsha"}


def contenders(url: str, prefix: str) -> dict:
    """name -> pair(task): one acquire + release, asserting each succeeded."""
    manager = LeaseManager(connect(RedisSettings(url=url)), Keyspace(prefix=prefix), "larry-01", ttl_ms=30_000)
    plain = redis.Redis.from_url(url)

    def ours(task):
        lease = manager.acquire(task).lease
        assert manager.release(lease) == "released"

    def redis_py(task):
        lock = plain.lock(f"{prefix}rp:{task}", timeout=30)
        assert lock.acquire(blocking=False)
        lock.release()

    def python_redis_lock(task):
        lock = redis_lock.Lock(plain, f"{prefix}prl:{task}", expire=30)
        assert lock.acquire(blocking=False)
        lock.release()

    return {OURS: ours, REDIS_PY: redis_py, PRL: python_redis_lock}


def client(conn, url: str, index: int) -> None:
    """One client process: runs the slice it is sent, answers with every pair's latency."""
    pairs = contenders(url, f"bench:{index}:")
    for name, pair in pairs.items():
        for i in range(50):  # connections opened, scripts and functions loaded
            pair(f"warm-{i}")
    conn.send("ready")
    while (order := conn.recv()) is not None:
        name, label, start_at, seconds = order
        pair, latencies, i = pairs[name], [], 0
        time.sleep(max(0.0, start_at - time.monotonic()))
        end = start_at + seconds
        while (begin := time.monotonic()) < end:
            pair(f"{label}-{i}")
            latencies.append(time.monotonic() - begin)
            i += 1
        conn.send(latencies)


def throughput(url: str, clients: int, slices: int, seconds: float) -> dict:
    """name -> {ops, p50, p99} with ``clients`` processes running each contender at once."""
    fork = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for index in range(clients):
        ours, theirs = fork.Pipe()
        proc = fork.Process(target=client, args=(theirs, url, index), daemon=True)
        proc.start()
        pipes.append(ours)
        procs.append(proc)
    try:
        for pipe in pipes:
            if not pipe.poll(120):
                raise RuntimeError("a client process did not warm up within 120 s")
            pipe.recv()
        ops = {name: [] for name in (OURS, REDIS_PY, PRL)}
        latencies = {name: [] for name in ops}
        for s in range(slices):
            for name in ops:
                start_at = time.monotonic() + 0.1
                for pipe in pipes:
                    pipe.send((name, f"{clients}-{s}", start_at, seconds))
                done = 0
                for pipe in pipes:
                    if not pipe.poll(seconds + 120):
                        raise RuntimeError(f"a client process did not finish its {name} slice within {seconds + 120} s")
                    part = pipe.recv()
                    done += len(part)
                    latencies[name].extend(part)
                ops[name].append(done / seconds)
        return {name: {"ops": statistics.median(ops[name]), "p50": percentile(latencies[name], 0.5),
                       "p99": percentile(latencies[name], 0.99)} for name in ops}
    finally:
        for pipe in pipes:
            try:
                pipe.send(None)
            except OSError:  # that client died already; its error is what propagates
                pass
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def accounting(url: str, pairs: int) -> dict:
    """name -> where one pair's time goes: commandstats per command, server and client CPU."""
    admin = redis.Redis.from_url(url, decode_responses=True)
    found = {}
    for name, pair in contenders(url, "bench:account:").items():
        for i in range(50):
            pair(f"warm-{i}")
        admin.config_resetstat()
        cpu = admin.info("cpu")
        client_cpu = time.process_time()
        for i in range(pairs):
            pair(f"account-{i}")
        client_cpu = time.process_time() - client_cpu
        after = admin.info("cpu")
        stats = admin.info("commandstats")
        commands = {key.removeprefix("cmdstat_"): (value["calls"] / pairs, value["usec"] / pairs)
                    for key, value in stats.items() if "config" not in key and "info" not in key}
        server_cpu = sum(after[k] - cpu[k] for k in ("used_cpu_user_main_thread", "used_cpu_sys_main_thread"))
        found[name] = {"commands": commands, "server_cpu": server_cpu / pairs * 1e6,
                       "client_cpu": client_cpu / pairs * 1e6}
    return found


def print_accounting(found: dict, pairs: int) -> None:
    print(f"\nwhere one pair's time goes, one client, {pairs} pairs per contender")
    print(f"{'contender / command':<34}{'calls/pair':>11}{'us/pair':>10}")
    for name, f in found.items():
        top, inner = {}, {}
        for command, (calls, usec) in f["commands"].items():
            sent = min(TOP_LEVEL[name].get(command, 0), calls)
            if sent:  # a command both sent and called inside: its time shared by count
                top[command] = (sent, usec * sent / calls)
            if calls > sent:
                inner[command] = (calls - sent, usec * (calls - sent) / calls)
        print(f"{name}  ({sum(calls for calls, _ in top.values()):.0f} round trips per pair)")
        for command, (calls, usec) in sorted(top.items(), key=lambda kv: -kv[1][1]):
            print(f"  {command.upper():<32}{calls:>11.2f}{usec:>10.1f}")
        for command, (calls, usec) in sorted(inner.items(), key=lambda kv: -kv[1][1]):
            print(f"    inside: {command.upper():<24}{calls:>11.2f}{usec:>10.1f}")
        scripted = sum(usec for command, (_, usec) in top.items() if command in SCRIPTED)
        engine = scripted - sum(usec for _, usec in inner.values())
        lua_calls = sum(calls for command, (calls, _) in top.items() if command in SCRIPTED) \
            + sum(calls for calls, _ in inner.values())
        print(f"    {'script engine (the rest)':<30}{'':>11}{engine:>10.1f}"
              f"   = {engine / lua_calls:.1f} us per script call or redis.call ({lua_calls:.0f} per pair)")
        print(f"  {'server CPU (commands + I/O)':<32}{'':>11}{f['server_cpu']:>10.1f}")
        print(f"  {'client CPU':<32}{'':>11}{f['client_cpu']:>10.1f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one slice")
    parser.add_argument("--slices", type=int, default=5, help="slices per contender and client count")
    parser.add_argument("--clients", default="1,16", help="client process counts, comma-separated")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per contender in the accounting run")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            version = server.client().info("server")["redis_version"]
            runs = {clients: throughput(server.url, clients, args.slices, args.seconds) for clients in counts}
            found = accounting(server.url, args.pairs)
        finally:
            server.stop()

    print(f"lease acquire+release on one loopback redis-server {version}: {args.slices} slices of "
          f"{args.seconds:g} s per contender, clients are processes")
    print(f"{'clients':>7}  {'contender':<30}{'pairs/s':>10}{'p50':>12}{'p99':>12}{'vs redis-py Lock':>18}")
    for clients, results in runs.items():
        base = results[REDIS_PY]["ops"]
        for name, f in results.items():
            print(f"{clients:>7}  {name:<30}{f['ops']:>10.0f}{ms(f['p50']):>12}{ms(f['p99']):>12}"
                  f"{f['ops'] / base:>17.2f}x")
    print("(the runtime's pair also checks dependencies and status, issues a fencing token, writes the task's"
          " status twice and appends two events to the stream)")
    print_accounting(found, args.pairs)


if __name__ == "__main__":
    main()
