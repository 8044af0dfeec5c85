"""A stand-in model server for tests: a real HTTP server on loopback that answers an agent CLI
the way a provider's API would, from a script the test writes.

The test starts it (``with ModelServer(provider, replies) as server``), points the agent at
``server.url`` and, afterwards, reads what happened:

``server.requests``   every request received, in order: method, path, headers, JSON body, and
                      which scripted reply answered it (None for a request no script covered)
``server.served``     the usage the server reported to the client, summed over every answer
                      (the figure a metering test compares its ledger with)

Each model request takes the next :class:`Reply` of the script: blocks of text and tool calls
with the usage to report, an HTTP error status (with ``retry-after``), or a stream cut after
some events. Once the script is used up, ``then`` answers every further request (a persistent
error, say); without ``then`` such a request gets a 500 and is recorded as unscripted.

The wire format is the provider's (a module beside this one: ``anthropic``); this module is
provider-neutral: the server, the script, the recording, the usage arithmetic, SSE framing.

Guaranteed: the server listens on 127.0.0.1 only, on a port the kernel chose free; every
request is recorded before it is answered; ``served`` counts, for a cut stream, only what the
events actually sent reported. Not guaranteed: that a client saw what was sent (a cut write
can be lost in the socket), or any validation of the request beyond being JSON.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Protocol


@dataclass(frozen=True)
class Usage:
    """Tokens one answer reported: fresh input, output, cache reads and cache writes (disjoint)."""
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input + other.input, self.output + other.output,
                     self.cache_read + other.cache_read, self.cache_write + other.cache_write)

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``status`` other than 200 answers with the provider's error body;
    ``cut_after`` drops the connection after that many stream events."""
    blocks: tuple[Text | ToolCall, ...] = ()
    usage: Usage = Usage()
    status: int = 200
    retry_after: float | None = None
    cut_after: int | None = None

    @classmethod
    def text(cls, text: str, usage: Usage) -> "Reply":
        return cls(blocks=(Text(text),), usage=usage)

    @classmethod
    def tool(cls, name: str, arguments: dict[str, Any], usage: Usage) -> "Reply":
        return cls(blocks=(ToolCall(name, arguments),), usage=usage)

    @classmethod
    def error(cls, status: int, retry_after: float | None = None) -> "Reply":
        return cls(status=status, retry_after=retry_after)


@dataclass(frozen=True)
class Event:
    """One server-sent event. ``name`` None frames ``data:`` alone; ``usage`` is the cumulative
    usage the client knows for this answer once it has this event (None: unchanged)."""
    name: str | None
    data: dict | str
    usage: Usage | None = None


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    reply: int | None = None  # index into the script; None: unscripted; -1: the ``then`` reply
    status: int | None = None
    served: Usage = field(default_factory=Usage)


class Provider(Protocol):
    """A provider's wire format. ``n`` numbers the answers (for message ids)."""

    def is_model_request(self, method: str, path: str) -> bool: ...

    def is_streaming(self, body: Any) -> bool: ...

    def stream(self, body: Any, reply: Reply, n: int) -> Iterator[Event]: ...

    def message(self, body: Any, reply: Reply, n: int) -> dict: ...

    def error(self, status: int, message: str) -> dict: ...


class ModelServer:
    def __init__(self, provider: Provider, replies: list[Reply], *, then: Reply | None = None):
        self.provider, self.replies, self.then = provider, list(replies), then
        self.requests: list[Request] = []
        self._lock = threading.Condition()
        self._next = 0
        self._answering = 0  # requests being answered now; stop() waits for them
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval: stop() returns within it instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), name="model-server",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def served(self) -> Usage:
        with self._lock:
            return sum((r.served for r in self.requests), Usage())

    @property
    def unscripted(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.reply is None]

    def start(self) -> "ModelServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving once every answer under way is complete, so that what the test reads
        afterwards is final (an idle kept-alive connection is not waited for)."""
        self._httpd.shutdown()
        with self._lock:
            if not self._lock.wait_for(lambda: self._answering == 0, timeout=10):
                raise AssertionError("timed out after 10 s waiting for the stand-in model server "
                                     f"to finish answering {self._answering} request(s)")
        self._httpd.server_close()
        self._thread.join(10)

    @contextmanager
    def _answer(self):
        with self._lock:
            self._answering += 1
        try:
            yield
        finally:
            with self._lock:
                self._answering -= 1
                self._lock.notify_all()

    def __enter__(self) -> "ModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _take(self, request: Request) -> tuple[Reply | None, int]:
        """Record ``request`` and pick its reply; returns (reply, answer number)."""
        with self._lock:
            self.requests.append(request)
            n = len(self.requests)
            if not self.provider.is_model_request(request.method, request.path):
                return None, n
            if self._next < len(self.replies):
                request.reply, self._next = self._next, self._next + 1
                return self.replies[request.reply], n
            if self.then is not None:
                request.reply = -1
                return self.then, n
            return None, n


def _handler_for(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    provider = server.provider

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # the test reads server.requests instead
            pass

        def _serve(self) -> None:
            with server._answer():
                self._answer()

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply, n = server._take(request)
            if reply is None:
                scripted = provider.is_model_request(self.command, self.path)
                status = 500 if scripted else 404
                why = "stand-in script exhausted" if scripted else f"stand-in does not serve {self.path}"
                self._json(request, status, provider.error(status, why))
            elif reply.status != 200:
                headers = {} if reply.retry_after is None else {"retry-after": f"{reply.retry_after:g}"}
                self._json(request, reply.status, provider.error(reply.status, "scripted error"), headers)
            elif provider.is_streaming(body):
                self._stream(request, provider.stream(body, reply, n), reply.cut_after)
            else:
                request.served = reply.usage
                self._json(request, 200, provider.message(body, reply, n))

        do_POST = do_GET = _serve

        def _json(self, request: Request, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            request.status = status
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_standin_{len(server.requests)}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, request: Request, events: Iterator[Event], cut_after: int | None) -> None:
            request.status = 200
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            for sent, event in enumerate(events):
                if cut_after is not None and sent >= cut_after:
                    # Drop the connection mid-stream: the client sees a stream without its end.
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                data = event.data if isinstance(event.data, str) else json.dumps(event.data)
                frame = (f"event: {event.name}\n" if event.name else "") + f"data: {data}\n\n"
                self.wfile.write(frame.encode())
                self.wfile.flush()
                if event.usage is not None:
                    request.served = event.usage

    return Handler
