"""Real redis-server / redis-sentinel processes on free loopback ports, for tests and benchmarks.

Each process gets its own directory, binds 127.0.0.1 only, persists nothing,
and disables FLUSHALL/FLUSHDB/KEYS like production does, so code that relies on
them fails here too. Everything is killed on stop().
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from runtime.support.ports import free_port
from tests.support.waiting import WaitTimeout, wait_for

SETUP_HINT = "run `make setup`"


class MissingBinary(RuntimeError):
    pass


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingBinary(f"{name} not found: {SETUP_HINT}")
    return path


def _wait(predicate, timeout: float, what: str):
    return wait_for(predicate, what, timeout, ignore=(redis.exceptions.RedisError, OSError))


class _Process:
    binary = "redis-server"

    def __init__(self, workdir: Path, name: str):
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def config(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 10.0) -> "_Process":
        exe = require_binary(self.binary)
        self.port = self.port or free_port()
        conf = self.dir / f"{self.name}.conf"
        conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", "protected-mode no", f"dir {self.dir}",
            f"logfile {self.dir / 'log.txt'}", "daemonize no", *self.config(),
        ]) + "\n")
        self.proc = subprocess.Popen([exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: self._alive() and self.client().ping(), timeout, f"{self.name} on port {self.port}")
        except WaitTimeout:
            self.stop()
            raise RuntimeError(f"{self.name} did not start; log:\n{self.log_tail()}") from None
        return self

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited; log:\n{self.log_tail()}")
        return True

    def log_tail(self, lines: int = 20) -> str:
        log = self.dir / "log.txt"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else "(no log)"

    password: str | None = None

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.port, password=self.password, socket_timeout=5,
                           decode_responses=True, **kwargs)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """kill -9 (a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    stop = kill

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


class RedisServer(_Process):
    def __init__(self, workdir: Path, name: str = "redis", replica_of: int | None = None,
                 password: str | None = None):
        super().__init__(workdir, name)
        self.replica_of, self.password = replica_of, password

    def config(self) -> list[str]:
        lines = ['save ""', "appendonly no", "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
                 'rename-command FLUSHALL ""', 'rename-command FLUSHDB ""', 'rename-command KEYS ""']
        if self.replica_of:
            lines.append(f"replicaof 127.0.0.1 {self.replica_of}")
        if self.password:
            lines.append(f"requirepass {self.password}")
        return lines


#: failover-timeout of the test sentinels (ms): a failed election is retried after twice this.
FAILOVER_TIMEOUT_MS = 10_000

#: How long Sentinel may take, by its own fixed timings (sentinel.c, Redis 7.0), to promote a
#: replica or to turn an old primary that is still up into a replica (seconds). It reconfigures an
#: instance reporting role:master only 8 s after that report, and only when an INFO reply arrives
#: (every 10 s from a replica of a healthy primary): about 10 s on an idle machine. Any 2 s stall
#: of its 100 ms timer (a busy machine, a slow fsync of the config file it rewrites at every
#: failover step, SIGSTOP) puts it in TILT mode, in which it acts on nothing for 30 s; a failed
#: election is retried after 2 x failover-timeout. Worst case: 30 + 20 + 10 + 8 + 10 s.
SENTINEL_SETTLES_WITHIN = 30 + 2 * FAILOVER_TIMEOUT_MS / 1000 + 10 + 8 + 10


class SentinelProcess(_Process):
    binary = "redis-sentinel"

    def __init__(self, workdir: Path, name: str, master_name: str, master_port: int, down_after_ms: int):
        super().__init__(workdir, name)
        self.master_name, self.master_port, self.down_after_ms = master_name, master_port, down_after_ms

    def config(self) -> list[str]:
        m = self.master_name
        return [f"sentinel monitor {m} 127.0.0.1 {self.master_port} 2",
                f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
                f"sentinel failover-timeout {m} {FAILOVER_TIMEOUT_MS}", f"sentinel parallel-syncs {m} 1"]


class SentinelCluster:
    """A primary, a replica and three sentinels (quorum 2)."""

    def __init__(self, workdir: Path, master_name: str = "larry", down_after_ms: int = 1000):
        self.workdir, self.master_name, self.down_after_ms = Path(workdir), master_name, down_after_ms
        self.primary = RedisServer(self.workdir, "primary")
        self.replica: RedisServer | None = None
        self.sentinels: list[SentinelProcess] = []

    def start(self) -> "SentinelCluster":
        try:
            self.primary.start()
            self.replica = RedisServer(self.workdir, "replica", replica_of=self.primary.port).start()
            self._wait_in_sync(self.primary, self.replica, 20, "the replica's first sync")
            self.sentinels = [SentinelProcess(self.workdir, f"sentinel{i}", self.master_name, self.primary.port,
                                              self.down_after_ms).start() for i in range(3)]
            for s in self.sentinels:
                _wait(lambda s=s: len(s.client().sentinel_sentinels(self.master_name)) == 2
                      and len(s.client().sentinel_slaves(self.master_name)) == 1, 30,
                      f"{s.name} to discover the other sentinels and the replica")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple(("127.0.0.1", s.port) for s in self.sentinels)

    def master_port(self) -> int:
        return int(self.sentinels[0].client().sentinel_get_master_addr_by_name(self.master_name)[1])

    def servers(self) -> list[RedisServer]:
        return [s for s in (self.primary, self.replica) if s is not None]

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers() if s.port == port)

    def _agreed_primary(self) -> int | None:
        """The primary every sentinel names, once they all name the same one."""
        ports = {int(s.client().sentinel_get_master_addr_by_name(self.master_name)[1]) for s in self.sentinels}
        return ports.pop() if len(ports) == 1 else None

    def _wait_for_new_primary(self, old: int, what: str) -> RedisServer:
        port = _wait(lambda: (p := self._agreed_primary()) not in (None, old) and p, SENTINEL_SETTLES_WITHIN,
                     f"all three sentinels to name a new primary ({what})")
        return self.server_on(port)

    @staticmethod
    def _wait_in_sync(primary: RedisServer, replica: RedisServer, timeout: float, what: str) -> None:
        _wait(lambda: replica.client().info("replication").get("master_port") == primary.port
              and replica.client().info("replication").get("master_link_status") == "up"
              and primary.client().info("replication").get("connected_slaves", 0) >= 1,
              timeout, f"{what}: {replica.name} (port {replica.port}) replicating from {primary.name} "
                       f"(port {primary.port})")

    def failover(self) -> RedisServer:
        """SENTINEL FAILOVER; returns the new primary once the old one, still up, replicates from it.

        Sentinel itself reconfigures the old primary, on its own schedule (see
        :data:`SENTINEL_SETTLES_WITHIN`): durable writes pause until then.
        """
        old = self.server_on(self.master_port())
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", self.master_name)
        new = self._wait_for_new_primary(old.port, "SENTINEL FAILOVER")
        self._wait_in_sync(new, old, SENTINEL_SETTLES_WITHIN, "Sentinel to turn the old primary into a replica")
        return new

    def crash_primary(self, replica_lag: float = 0.0) -> RedisServer:
        """kill -9 the primary; once every sentinel names the promoted replica, restart the old
        one the way a Redis pod starts (components/redis/redis.sh): empty, as after a crash
        without persistence, and as a replica of the primary Sentinel names.

        Restarting it as a primary instead would leave an empty primary on the old address
        until Sentinel reconfigures it (10 s, 40 s and more on a busy machine): a window no
        pod of this project opens, in which a client or sentinel still on the old address
        pairs with the empty server.

        ``replica_lag``: cut replication that long before the crash, so the primary dies
        holding acknowledged writes the replica never received. (Freezing the replica would
        not do: the kernel buffers the stream and it catches up.) The cut: a password the
        replica does not know, then drop its link; connections already open keep working.
        """
        old = self.server_on(self.master_port())
        if replica_lag:
            admin = old.client()
            admin.config_set("requirepass", "replication-cut")
            admin.client_kill_filter(_type="replica")
            time.sleep(replica_lag)  # the lag itself is what is simulated: nothing to wait for
        old.kill()
        new = self._wait_for_new_primary(old.port, "after kill -9 of the primary")
        old.replica_of = new.port
        old.start()
        self._wait_in_sync(new, old, 30, "the restarted primary's sync")
        return new

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers()]:
            process.kill()

    def __enter__(self) -> "SentinelCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
