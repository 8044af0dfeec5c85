"""The Anthropic Messages API's wire format for the stand-in model server.

``POST /v1/messages`` (any query, e.g. Claude Code's ``?beta=true``). A streaming request is
answered as the real API streams it::

    message_start        the message with id, model, empty content and the usage known at the
                         start: input and cache tokens, ``output_tokens: 1``, ``stop_reason: null``
    ping
    content_block_start  per block: ``text`` (empty) or ``tool_use`` (id, name, ``input: {}``)
    content_block_delta  ``text_delta`` or ``input_json_delta`` (the arguments as JSON text)
    content_block_stop
    message_delta        ``stop_reason`` (``tool_use`` when the reply calls a tool, else
                         ``end_turn``) and the final, cumulative usage
    message_stop

A non-streaming request gets the whole message as JSON. Errors carry the API's error body
``{"type": "error", "error": {"type": ..., "message": ...}}`` with the type the API uses for
that status (429 ``rate_limit_error``, 529 ``overloaded_error``, ...).

Not modelled: thinking blocks, server tools, several ``message_delta`` events, an ``error``
event inside a stream (errors come as an HTTP status before the stream), token counting.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from tests.support.model_server import Event, Reply, Text, Usage

MODEL = "claude-sonnet-4-5-20250929"  # answered when a request names no model

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 529: "overloaded_error"}


def wire_usage(usage: Usage, output: int | None = None) -> dict[str, int]:
    return {"input_tokens": usage.input, "cache_creation_input_tokens": usage.cache_write,
            "cache_read_input_tokens": usage.cache_read,
            "output_tokens": usage.output if output is None else output}


def message_id(n: int) -> str:
    return f"msg_standin{n:06d}"


def _content(reply: Reply, n: int) -> list[dict[str, Any]]:
    return [{"type": "text", "text": block.text} if isinstance(block, Text) else
            {"type": "tool_use", "id": f"toolu_standin{n:04d}{i:02d}", "name": block.name, "input": block.arguments}
            for i, block in enumerate(reply.blocks)]


def _stop_reason(reply: Reply) -> str:
    return "end_turn" if all(isinstance(b, Text) for b in reply.blocks) else "tool_use"


class Anthropic:
    def is_model_request(self, method: str, path: str) -> bool:
        return method == "POST" and path.split("?")[0] == "/v1/messages"

    def is_streaming(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("stream") is True

    def _model(self, body: Any) -> str:
        return body.get("model") or MODEL if isinstance(body, dict) else MODEL

    def message(self, body: Any, reply: Reply, n: int) -> dict:
        return {"id": message_id(n), "type": "message", "role": "assistant", "model": self._model(body),
                "content": _content(reply, n), "stop_reason": _stop_reason(reply), "stop_sequence": None,
                "usage": wire_usage(reply.usage)}

    def stream(self, body: Any, reply: Reply, n: int) -> Iterator[Event]:
        # The real API reports output_tokens 1 at the start (at least one token will come).
        started = Usage(reply.usage.input, min(1, reply.usage.output), reply.usage.cache_read, reply.usage.cache_write)
        start = {**self.message(body, reply, n), "content": [], "stop_reason": None,
                 "usage": wire_usage(started)}
        yield Event("message_start", {"type": "message_start", "message": start}, started)
        yield Event("ping", {"type": "ping"})
        for index, block in enumerate(_content(reply, n)):
            opened = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
            yield Event("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
            delta = ({"type": "text_delta", "text": block["text"]} if block["type"] == "text" else
                     {"type": "input_json_delta", "partial_json": json.dumps(block["input"])})
            yield Event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            yield Event("content_block_stop", {"type": "content_block_stop", "index": index})
        yield Event("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                                      "usage": wire_usage(reply.usage)}, reply.usage)
        yield Event("message_stop", {"type": "message_stop"})

    def error(self, status: int, message: str) -> dict:
        kind = ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": f"{message} ({status})"}}
