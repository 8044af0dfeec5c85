"""A real catalog replica for tests: `larry catalog serve` as its own process on a loopback
port, and GraphQL clients over HTTP (httpx) and WebSocket (websockets, graphql-transport-ws)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from websockets.sync.client import connect as ws_connect

from plan import environment as envvar
from runtime.support.ports import free_port
from tests.support.project import ROOT
from tests.support.waiting import wait_for

#: `larry` from this tree (``-m runtime.cli`` would load runtime.cli twice: as __main__ and as
#: the module the commands import, so their UsageError would not be the one main() catches).
LARRY = [sys.executable, "-c", "import sys; from runtime.cli import main; sys.exit(main())"]


class CatalogProcess:
    def __init__(self, workdir: Path, name: str, redis_env: dict[str, str], prefix: str,
                 baseline: Path | None = None, port: int | None = None):
        self.workdir, self.name, self.prefix, self.baseline = Path(workdir), name, prefix, baseline
        self.redis_env = redis_env
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self, timeout: float = 30) -> "CatalogProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_REDIS")}
        env.update(self.redis_env)
        argv = [*LARRY, "catalog", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--key-prefix", self.prefix]
        if self.baseline:
            argv += ["--baseline", str(self.baseline)]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        wait_for(lambda: self._ready(), f"catalog replica {self.name} to answer /readyz on port {self.port} "
                                         f"(log: {self.log})", timeout)
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"catalog replica {self.name} exited {self.proc.returncode}: {self.log.read_text()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def gql(self, query: str, variables: dict | None = None) -> dict:
        """The whole answer (data and errors) of one POST."""
        reply = httpx.post(self.url, json={"query": query, "variables": variables or {}}, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def data(self, query: str, variables: dict | None = None) -> dict:
        answer = self.gql(query, variables)
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def subscribers(self) -> int:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        line = next(line for line in text.splitlines() if line.startswith("cortex_catalog_subscribers "))
        return int(float(line.split()[1]))


class Subscriber:
    """One graphql-transport-ws connection with one subscription."""

    def __init__(self, replica: CatalogProcess, query: str, variables: dict | None = None):
        self.replica = replica
        before = replica.subscribers()
        self.ws = ws_connect(replica.url.replace("http://", "ws://"), subprotocols=["graphql-transport-ws"],
                             open_timeout=10, legacy=True)
        self.ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(self.ws.recv(timeout=10))["type"] == "connection_ack"
        self.ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query,
                                                                            "variables": variables or {}}}))
        # The server has registered it once the replica counts it: a write after this is seen.
        wait_for(lambda: replica.subscribers() > before, f"the subscription to open on {replica.name}", 10)

    def next(self, timeout: float = 10) -> dict:
        """The next result's data; fails naming what was awaited."""
        try:
            message = json.loads(self.ws.recv(timeout=timeout))
        except TimeoutError:
            raise AssertionError(f"no subscription result from {self.replica.name} within {timeout} s") from None
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        return message["payload"]["data"]

    def close(self) -> None:
        self.ws.close()


def redis_env(url: str) -> dict[str, str]:
    return {envvar.REDIS_URL: url, envvar.REDIS_RETRY_FOR: "30"}
