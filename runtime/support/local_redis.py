"""The private redis-server of `larry run` when no Redis is given: loopback only, a random
password, nothing persisted, gone with the run."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from plan import environment as envvar
from runtime.agent.payload import die_with_parent
from runtime.cli import UsageError
from runtime.support.files import write_atomic
from runtime.support.ports import free_port


class LocalRedis:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def env_file(self) -> Path:
        """``set -a; . <this>`` lets other commands (larry dashboard, status) reach this server."""
        return self.dir / "env"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """This process's environment pointed at this server (the password in its variable only)."""
        return {**os.environ, envvar.REDIS_URL: self.url, envvar.REDIS_PASSWORD: self.password, **(extra or {})}

    def write_env(self, extra: dict[str, str] | None = None) -> None:
        """The env file: this server's URL and password, plus ``extra`` (the run's speed and key
        prefix, say), so other commands see the run as its processes do. Readable by its owner only."""
        lines = {envvar.REDIS_URL: self.url, envvar.REDIS_PASSWORD: self.password, **(extra or {})}
        write_atomic(self.env_file, "".join(f"{name}={value}\n" for name, value in lines.items()), mode=0o600)

    def start(self, timeout: float = 15.0) -> "LocalRedis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise UsageError("redis-server not found: run `make setup`, or pass --redis-url")
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # another process may take the free port before redis-server binds it
            if self._try_start(binary, timeout):
                return self
        raise UsageError(f"the private redis-server did not start; see {self.dir / 'redis.log'}")

    def _try_start(self, binary: str, timeout: float) -> bool:
        self.port = free_port()
        conf = self.dir / "redis.conf"
        write_atomic(conf, mode=0o600, data="\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"requirepass {self.password}", f"dir {self.dir}",
            f"logfile {self.dir / 'redis.log'}", 'save ""', "appendonly no"]) + "\n")
        self.proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=die_with_parent)
        client = redis.Redis("127.0.0.1", self.port, password=self.password, socket_timeout=1)
        until = time.monotonic() + timeout
        while time.monotonic() < until and self.proc.poll() is None:
            try:
                if client.ping():
                    self.write_env()
                    return True
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
