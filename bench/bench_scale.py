"""Fleet-size benchmark of `larry run`: prints figures and ratios, asserts nothing.

Runs `larry run` (local supervisor, real processes, loopback only) of generated plans of 16,
160 and 2,000 workers at one fixed speed, each against a freshly started redis-server of its
own, and prints per size:

* coordination share: the Redis calls' time (``runtime.support.callstats``; blocking stream
  reads excluded) over the wall time of every worker loop, and of every coordinator;
* coordinator CPU per heartbeat: the coordinators' CPU seconds (``/proc``) over their
  heartbeats (run wall time / the heartbeat interval, per coordinator);
* Redis memory per task: ``used_memory`` after the run less before, over the plan's tasks
  (every key the run wrote, the event streams included);
* events: on every stream, on the run's, and how many a coordinator reads (the run's stream and
  its Larry's);
* peak RSS (``VmHWM``, sampled every second) of each kind of process: the supervisor, a
  coordinator, a worker process, a worker host, converge, redis-server;

then the per-worker figures and their ratios from 160 to 2,000 workers (linear cost: within
20 %). The plans are ``tests.support.fleet.simulated_fleet`` (three chained tasks per worker,
20 workers per Larry; 16 workers: one Larry of 16; no masters, no agent profiles): every
worker plays the simulated payload, so at 160 and 2,000 workers `larry run`
hosts them 20 to a process (`larry worker-host`) and the 16-worker plan runs one process per
worker. Each run is bounded by its plan's execution window (and this script's --timeout).

Then, on one more fresh server: a barrier's release latency with 2,000 participants arriving
from 16 client processes while 16 others wait (as coordinators do: arriving nothing
themselves), from the last arrival to each waiter's return, p50/p99 over --barrier-rounds. The ledger's charge p50/p99 with 32 clients is
bench/bench_ledger.py's.

Figures on a loaded machine move a lot between runs; the ratios within one run are what to
read.

Usage: python bench/bench_scale.py [--sizes 16,160,2000] [--speed 5] [--barrier-rounds 10] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plan.environment import CALL_STATS_DIR, REDIS_PASSWORD  # noqa: E402
from plan.loader import load_stack  # noqa: E402
from runtime.commands.run import larry_command  # noqa: E402
from runtime.coordination.barrier import Barrier  # noqa: E402
from runtime.coordination.connection import RedisSettings, connect  # noqa: E402
from runtime.coordination.keys import Keyspace  # noqa: E402
from runtime.support.timing import Timing  # noqa: E402
from tests.support.fleet import STACK, simulated_fleet, write_project  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

#: workers -> (Larrys, workers per Larry)
SHAPES = {16: (1, 16), 160: (8, 20), 640: (32, 20), 2000: (100, 20)}
KINDS = ("supervisor", "coordinator", "worker-host", "worker", "converge", "redis-server")


def proc_figures(pid: int) -> tuple[int, float] | None:
    """(peak RSS in KiB, CPU seconds) of a live process, else None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    if hwm is None:
        return None  # a zombie: its memory figures are gone
    ticks = os.sysconf("SC_CLK_TCK")
    return hwm, (int(fields[11]) + int(fields[12])) / ticks


class Sampler:
    """Every second: each live process of the run (its pids/ files, the supervisor, Redis) ->
    its last (peak RSS, CPU seconds)."""

    def __init__(self, run_dir: Path, fixed: dict[int, str]):
        self.run_dir, self.fixed = run_dir, fixed
        self.last: dict[int, tuple[str, int, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        pids = dict(self.fixed)
        for path in (self.run_dir / "pids").glob("*.pid"):
            try:
                pids[int(path.read_text())] = path.stem
            except (OSError, ValueError):
                continue
        for pid, name in pids.items():
            figures = proc_figures(pid)
            if figures:
                self.last[pid] = (name, *figures)


def kind_of(name: str) -> str:
    return next(k for k in KINDS if name.startswith(k))


def run_size(workers: int, speed: float, timeout: float, scratch: Path) -> dict:
    larrys, per_larry = SHAPES[workers]
    project = write_project(scratch / f"project-{workers}", simulated_fleet(larrys, per_larry))
    server = RedisServer(scratch / f"redis-{workers}", password="bench").start()
    try:
        before = int(server.client().info("memory")["used_memory"])
        run_dir, stats = scratch / f"run-{workers}", scratch / f"stats-{workers}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")} | {
            CALL_STATS_DIR: str(stats), REDIS_PASSWORD: "bench"}
        started = time.monotonic()
        supervisor = subprocess.Popen(
            [*larry_command(), "run", "--stack", STACK, "--speed", f"{speed:g}", "--project-dir", str(project),
             "--coordination-dir", str(run_dir), "--redis-url", server.url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = Sampler(run_dir, {supervisor.pid: "supervisor", server.proc.pid: "redis-server"})
        sampler.thread.start()
        try:
            output, _ = supervisor.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            supervisor.terminate()
            output, _ = supervisor.communicate()
            sys.exit(f"{workers} workers: larry run exceeded --timeout {timeout:g}s:\n{output[-3000:]}")
        finally:
            sampler.stop.set()
            sampler.thread.join()
        wall = time.monotonic() - started
        client = server.client()
        used = int(client.info("memory")["used_memory"]) - before
        cfg = load_stack(STACK, project)
        ks = Keyspace.for_plan(cfg.channels, cfg.key_prefix)
        run_stream = client.xlen(ks.stream)
        per_larry = [client.xlen(ks.larry_stream(larry.id)) for larry in cfg.larrys]
        kinds = Counter(fields.get("event_type") for _, fields in client.xrange(ks.stream))
    finally:
        server.stop()
    if supervisor.returncode != 0:
        print(f"  note: {workers} workers: larry run exited {supervisor.returncode}; last lines:\n"
              + "\n".join(output.splitlines()[-8:]))
    calls = [json.loads(p.read_text()) for p in sorted(stats.glob("*.json"))]
    by_kind: dict[str, list] = defaultdict(list)
    names: dict[str, set] = defaultdict(set)  # a restarted process has the same name, a new pid
    for pid, (name, hwm, cpu) in sampler.last.items():
        by_kind[kind_of(name)].append((hwm, cpu))
        names[kind_of(name)].add(name)
    hosts = [c for c in calls if c["process"].startswith("worker-host")]
    own = [c for c in calls if kind_of(c["process"]) == "worker"]
    coordinators = [c for c in calls if c["process"].startswith("coordinator")]
    hosted_loops = workers - len(own)
    loop_wall = sum(c["wall_seconds"] for c in own) + sum(
        c["wall_seconds"] * hosted_loops / len(hosts) for c in hosts)
    worker_calls = sum(c["call_seconds"] for c in own + hosts)
    heartbeat = Timing(speed).heartbeat
    coordinator_cpu = sum(cpu for _, cpu in by_kind["coordinator"])
    beats = sum(c["wall_seconds"] for c in coordinators) / heartbeat
    return {
        "workers": workers, "larrys": larrys, "tasks": workers * 3, "wall": wall, "exit": supervisor.returncode,
        "worker_share": worker_calls / loop_wall if loop_wall else 0.0,
        "coordinator_share": sum(c["call_seconds"] for c in coordinators)
        / max(1e-9, sum(c["wall_seconds"] for c in coordinators)),
        "cpu_per_heartbeat_ms": 1000 * coordinator_cpu / max(1.0, beats),
        "coordinator_cpu": coordinator_cpu,
        "redis_bytes_per_task": used / (workers * 3),
        "events": run_stream + sum(per_larry), "run_stream_events": run_stream,
        "run_stream_kinds": kinds.most_common(6),
        "events_per_coordinator": run_stream + sum(per_larry) / max(1, len(per_larry)),
        "rss_mib": {kind: max(h for h, _ in figures) / 1024 for kind, figures in by_kind.items()},
        "processes": {kind: len(names[kind]) for kind in by_kind},
        "starts": {kind: len(figures) for kind, figures in by_kind.items()},
        "cpu": {kind: sum(c for _, c in figures) for kind, figures in by_kind.items()},
    }


def barrier_arriver(url: str, ids: list[str], everyone: list[str], rounds: int, conn) -> None:
    """Arrives ``ids`` at each round's barrier, then says when its last arrival returned."""
    r = connect(RedisSettings(url=url, password="bench"))
    ks = Keyspace(prefix="bench-scale:")
    for i in range(rounds):
        barrier = Barrier(r, ks, f"round-{i}", everyone)
        conn.recv()  # go
        for participant in ids:
            barrier.arrive(participant)
        conn.send(time.monotonic())


def barrier_waiter(url: str, everyone: list[str], rounds: int, conn) -> None:
    """Waits at each round's barrier, as a coordinator does (arriving nothing itself)."""
    r = connect(RedisSettings(url=url, password="bench"))
    ks = Keyspace(prefix="bench-scale:")
    for i in range(rounds):
        conn.recv()  # go
        Barrier(r, ks, f"round-{i}", everyone).wait(timeout=300)
        conn.send(time.monotonic())


def bench_barrier(scratch: Path, participants: int, clients: int, rounds: int) -> dict:
    """``participants`` arriving from ``clients`` processes while ``clients`` others wait: the
    release latency from the last arrival to each waiter's return, and the arrival rate."""
    server = RedisServer(scratch / "redis-barrier", password="bench").start()
    context = multiprocessing.get_context("fork")
    everyone = [f"larry-{i:04d}" for i in range(participants)]
    arrivers, waiters, procs = [], [], []
    try:
        for c in range(clients):
            for pipes, target, args in ((arrivers, barrier_arriver, (everyone[c::clients], everyone)),
                                        (waiters, barrier_waiter, (everyone,))):
                parent, child = context.Pipe()
                procs.append(context.Process(target=target, args=(server.url, *args, rounds, child)))
                procs[-1].start()
                pipes.append(parent)
        latencies, spans = [], []
        for _ in range(rounds):
            for parent in waiters:
                parent.send("go")
            time.sleep(0.5)  # the waiters are blocked in XREAD before the first arrival
            started = time.monotonic()
            for parent in arrivers:
                parent.send("go")
            last = max(parent.recv() for parent in arrivers)
            latencies += [parent.recv() - last for parent in waiters]
            spans.append(last - started)
        for proc in procs:
            proc.join(30)
    finally:
        server.stop()
    ordered = sorted(latencies)
    return {"p50": ordered[len(ordered) // 2], "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "samples": len(ordered), "arrivals_per_s": participants / (sum(spans) / len(spans))}


def per_worker(figures: dict) -> dict:
    return {"worker RSS KiB (all processes / workers)": sum(
                figures["rss_mib"][k] * figures["processes"][k] for k in figures["rss_mib"]) * 1024 / figures["workers"],
            "coordinator CPU ms per worker": 1000 * figures["coordinator_cpu"] / figures["workers"],
            "Redis bytes per task": figures["redis_bytes_per_task"],
            "coordinator CPU ms per heartbeat per worker of its Larry": figures["cpu_per_heartbeat_ms"]
            / (figures["workers"] / figures["larrys"]),
            "all CPU s per worker": sum(figures["cpu"].values()) / figures["workers"],
            "events a coordinator reads per worker of its Larry": figures["events_per_coordinator"]
            / (figures["workers"] / figures["larrys"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,160,2000")
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds each run may take (default 900)")
    parser.add_argument("--barrier-rounds", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="keep the runs' directories (logs, reports) here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(s not in SHAPES for s in sizes):
        sys.exit(f"--sizes: expected some of {', '.join(map(str, SHAPES))}")
    with tempfile.TemporaryDirectory(prefix="larry-bench-scale.") as temporary:
        scratch = args.keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        results = {}
        for size in sizes:
            figures = results[size] = run_size(size, args.speed, args.timeout, scratch)
            print(f"\n{size} workers ({figures['larrys']} Larrys, {figures['tasks']} tasks), speed x{args.speed:g}: "
                  f"wall {figures['wall']:.1f}s, exit {figures['exit']}")
            print(f"  coordination share: worker loops {100 * figures['worker_share']:.2f} % (in a host: with "
                  f"the waits for its interpreter lock), coordinators {100 * figures['coordinator_share']:.2f} %")
            print(f"  coordinator CPU per heartbeat: {figures['cpu_per_heartbeat_ms']:.2f} ms "
                  f"(heartbeat every {Timing(args.speed).heartbeat:g}s)")
            print(f"  Redis memory per task: {figures['redis_bytes_per_task'] / 1024:.1f} KiB; "
                  f"{figures['events']} events, {figures['run_stream_events']} of them on the run's stream; a "
                  f"coordinator reads {figures['events_per_coordinator']:.0f} (the run's and its Larry's)")
            print("  the run's stream, most frequent: "
                  + ", ".join(f"{kind} {n}" for kind, n in figures["run_stream_kinds"]))
            for kind in KINDS:
                if kind in figures["rss_mib"]:
                    restarts = figures["starts"][kind] - figures["processes"][kind]
                    print(f"  {kind:>13}: {figures['processes'][kind]:>4} processes ({restarts} restarts), peak RSS "
                          f"{figures['rss_mib'][kind]:7.1f} MiB, CPU {figures['cpu'][kind]:7.1f}s")
        largest = max(results)
        if 160 in results and largest > 160:
            small, large = per_worker(results[160]), per_worker(results[largest])
            print(f"\nper worker, 160 -> {largest:,} workers (linear: ratio within 0.8-1.2)")
            for name in small:
                ratio = large[name] / small[name] if small[name] else float("nan")
                print(f"  {name:>58}: {small[name]:10.2f} -> {large[name]:10.2f}  ratio {ratio:.2f}")
        barrier = bench_barrier(scratch, 2000, 16, args.barrier_rounds)
        print(f"\nbarrier, 2,000 participants arriving from 16 processes ({barrier['arrivals_per_s']:.0f} arrivals/s), "
              f"16 waiting: "
              f"release p50 {barrier['p50'] * 1000:.2f} ms, p99 {barrier['p99'] * 1000:.2f} ms "
              f"({barrier['samples']} waiters released); ledger charge p99 at 32 clients: bench/bench_ledger.py")


if __name__ == "__main__":
    main()
