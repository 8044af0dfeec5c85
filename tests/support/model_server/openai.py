"""The OpenAI APIs' wire formats for the stand-in model server: Responses and Chat Completions.

:class:`Responses` answers ``POST /v1/responses`` (Codex's ``wire_api = "responses"``). A
streaming request is answered as the real API streams it, each event framed ``event: <type>``
with a ``sequence_number``::

    response.created, response.in_progress     the response, ``status: in_progress``, no output
    per output item:
      response.output_item.added               a ``message`` (empty content) or a ``function_call``
                                               (``call_id``, ``name``, ``arguments: ""``)
      message:  response.content_part.added, response.output_text.delta, response.output_text.done,
                response.content_part.done
      function_call: response.function_call_arguments.delta, ...arguments.done
      response.output_item.done                the finished item
    response.completed                         the response with every item and its ``usage``

:class:`ChatCompletions` answers ``POST /v1/chat/completions`` (aider through litellm): the
``chat.completion`` object as JSON, or ``chat.completion.chunk`` events (``data:`` only) ending
in ``data: [DONE]``, with a usage chunk (``choices: []``) before it when the request asks for
``stream_options.include_usage``. A tool call is a ``tool_calls`` entry with ``finish_reason:
"tool_calls"``.

Usage maps onto the stand-in's disjoint kinds as the APIs define it: ``input_tokens`` /
``prompt_tokens`` *include* the cached tokens (``input_tokens_details.cached_tokens`` /
``prompt_tokens_details.cached_tokens``), so the wire input is ``Usage.input + Usage.cache_read``;
the OpenAI APIs report no cache writes (``Usage.cache_write`` must be 0). Reasoning tokens
are reported as 0 (part of the output when a real model reasons).

Errors carry the API's body ``{"error": {"message", "type", "param", "code"}}`` with the type
and code the API uses for that status.

Not modelled: reasoning items, ``response.failed`` / ``response.incomplete``, refusals,
logprobs, several choices (``n``), audio.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

from tests.support.model_server import Event, Reply, Text, Usage

MODEL = "gpt-5.5"  # answered when a request names no model

# status -> (type, code) of the API's error body
ERRORS = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
          404: ("invalid_request_error", "model_not_found"), 429: ("requests", "rate_limit_exceeded"),
          500: ("server_error", None), 502: ("server_error", None), 503: ("server_error", None)}


def _model(body: Any) -> str:
    return (body.get("model") if isinstance(body, dict) else None) or MODEL


def _checked(usage: Usage) -> Usage:
    if usage.cache_write:
        raise ValueError("the OpenAI APIs report no cache writes: Usage.cache_write must be 0")
    return usage


class _OpenAI:
    """What both APIs share: one POST path, ``stream: true`` asks for SSE, the error body."""
    path = ""

    def is_model_request(self, method: str, path: str) -> bool:
        return method == "POST" and path.split("?")[0] == self.path

    def is_streaming(self, body: Any) -> bool:
        return isinstance(body, dict) and body.get("stream") is True

    def error(self, status: int, message: str) -> dict:
        kind, code = ERRORS.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class Responses(_OpenAI):
    """``POST /v1/responses``, streaming (SSE) or not."""
    path = "/v1/responses"

    @staticmethod
    def usage(usage: Usage) -> dict:
        usage = _checked(usage)
        return {"input_tokens": usage.input + usage.cache_read,
                "input_tokens_details": {"cached_tokens": usage.cache_read},
                "output_tokens": usage.output, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.input + usage.cache_read + usage.output}

    @staticmethod
    def _items(reply: Reply, n: int) -> list[dict]:
        items = []
        for i, block in enumerate(reply.blocks):
            if isinstance(block, Text):
                items.append({"id": f"msg_standin{n:04d}{i:02d}", "type": "message", "status": "completed",
                              "role": "assistant",
                              "content": [{"type": "output_text", "text": block.text, "annotations": []}]})
            else:
                items.append({"id": f"fc_standin{n:04d}{i:02d}", "type": "function_call", "status": "completed",
                              "call_id": f"call_standin{n:04d}{i:02d}", "name": block.name,
                              "arguments": json.dumps(block.arguments)})
        return items

    def _response(self, body: Any, n: int, status: str, output: list[dict], usage: dict | None) -> dict:
        return {"id": f"resp_standin{n:06d}", "object": "response", "created_at": int(time.time()),
                "status": status, "error": None, "incomplete_details": None, "model": _model(body),
                "output": output, "parallel_tool_calls": True, "usage": usage}

    def message(self, body: Any, reply: Reply, n: int) -> dict:
        return self._response(body, n, "completed", self._items(reply, n), self.usage(reply.usage))

    def stream(self, body: Any, reply: Reply, n: int) -> Iterator[Event]:
        seq = iter(range(1 << 30))

        def event(kind: str, usage: Usage | None = None, **fields) -> Event:
            return Event(kind, {"type": kind, "sequence_number": next(seq), **fields}, usage)

        yield event("response.created", response=self._response(body, n, "in_progress", [], None))
        yield event("response.in_progress", response=self._response(body, n, "in_progress", [], None))
        items = self._items(reply, n)
        for index, item in enumerate(items):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                yield event("response.output_item.added", output_index=index,
                            item={**item, "status": "in_progress", "content": []})
                part = {"type": "output_text", "text": "", "annotations": []}
                yield event("response.content_part.added", **where, content_index=0, part=part)
                for start in range(0, len(text), 8):  # several deltas, as a model streams
                    yield event("response.output_text.delta", **where, content_index=0, delta=text[start:start + 8])
                yield event("response.output_text.done", **where, content_index=0, text=text)
                yield event("response.content_part.done", **where, content_index=0, part={**part, "text": text})
            else:
                yield event("response.output_item.added", output_index=index,
                            item={**item, "status": "in_progress", "arguments": ""})
                yield event("response.function_call_arguments.delta", **where, delta=item["arguments"])
                yield event("response.function_call_arguments.done", **where, arguments=item["arguments"])
            yield event("response.output_item.done", output_index=index, item=item)
        yield event("response.completed", reply.usage,
                    response=self._response(body, n, "completed", items, self.usage(reply.usage)))


class ChatCompletions(_OpenAI):
    """``POST /v1/chat/completions``, JSON or streaming chunks."""
    path = "/v1/chat/completions"

    @staticmethod
    def usage(usage: Usage) -> dict:
        usage = _checked(usage)
        prompt = usage.input + usage.cache_read
        return {"prompt_tokens": prompt, "completion_tokens": usage.output, "total_tokens": prompt + usage.output,
                "prompt_tokens_details": {"cached_tokens": usage.cache_read, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    @staticmethod
    def _message(reply: Reply, n: int) -> tuple[dict, str]:
        """The assistant message and its finish reason."""
        text = "".join(b.text for b in reply.blocks if isinstance(b, Text))
        calls = [{"id": f"call_standin{n:04d}{i:02d}", "type": "function",
                  "function": {"name": b.name, "arguments": json.dumps(b.arguments)}}
                 for i, b in enumerate(reply.blocks) if not isinstance(b, Text)]
        message = {"role": "assistant", "content": text or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        return message, "tool_calls" if calls else "stop"

    def _object(self, body: Any, n: int, kind: str, **fields) -> dict:
        return {"id": f"chatcmpl-standin{n:06d}", "object": kind, "created": int(time.time()),
                "model": _model(body), "system_fingerprint": "fp_standin", **fields}

    def message(self, body: Any, reply: Reply, n: int) -> dict:
        message, finish = self._message(reply, n)
        return self._object(body, n, "chat.completion", usage=self.usage(reply.usage),
                            choices=[{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}])

    def stream(self, body: Any, reply: Reply, n: int) -> Iterator[Event]:
        message, finish = self._message(reply, n)

        def chunk(delta: dict, finish_reason: str | None = None) -> Event:
            return Event(None, self._object(body, n, "chat.completion.chunk", choices=[
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]))

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        text = message["content"] or ""
        for start in range(0, len(text), 8):
            yield chunk({"content": text[start:start + 8]})
        for index, call in enumerate(message.get("tool_calls", [])):
            yield chunk({"tool_calls": [{"index": index, **call}]})
        yield chunk({}, finish)
        options = body.get("stream_options") if isinstance(body, dict) else None
        if isinstance(options, dict) and options.get("include_usage"):
            yield Event(None, self._object(body, n, "chat.completion.chunk", choices=[],
                                           usage=self.usage(reply.usage)), reply.usage)
        yield Event(None, "[DONE]")
