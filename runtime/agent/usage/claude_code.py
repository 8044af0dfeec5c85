"""Claude Code's ``--output-format stream-json --verbose`` output, metered (checked on 2.1.332).
Run it with ``--include-partial-messages`` too, for charges that are complete as each message
ends (below).

Tokens: the four kinds map one to one — ``input_tokens`` (fresh input), ``output_tokens``,
``cache_read_input_tokens``, ``cache_creation_input_tokens`` (cache writes); the API reports
them disjoint, so the ledger's total is their sum.

Live charges. Each ``assistant`` event carries its message's usage as known when the message
*started* (input and cache counts final, ``output_tokens: 1``), and a message with several
content blocks is printed once per block with the same ``message.id``. So the first event of
a message id charges that start-of-message usage, once (key: session and message id); later
events of the same id charge nothing. Assistant events with zero usage (the ``<synthetic>``
message the CLI prints for an API error) charge nothing. Without partial messages, a
message's output beyond its first token is therefore booked only at ``finish``; a run stopped
before its result line keeps its messages' start usage only.

With ``--include-partial-messages`` the CLI also prints the API's stream as ``stream_event``
lines: ``message_start`` (the message id and start usage: charged under the same key as the
assistant event, which then charges nothing) and ``message_delta`` (the message's final,
cumulative usage: what it adds to the start usage is charged at once). The booked total then
lags the provider's by at most the message being streamed, and a stream cut after its
``message_start`` is charged as it happens. Stream events are tracked per stream
(``parent_tool_use_id``), so a subagent's stream does not mix with the main one.

The final ``result`` event is the authority: its ``modelUsage`` (per model, summed) when it has
any, else its ``usage``. ``modelUsage`` is preferred because it spans every model the run used
and because a run stopped by ``--max-budget-usd`` reports ``usage`` all zeros while
``modelUsage`` holds what was spent; when both are present they agree on the recorded runs.
The authority also counts requests whose stream was cut (their start usage), which no
assistant event shows: ``finish`` charges the difference to the live charges.

Failure is judged by ``is_error`` (with ``terminal_reason``, ``api_error_status`` and the
result text, or the ``errors`` a limit leaves, as the reason), not by ``subtype``: a
persistent API error ends with ``subtype: "success"``, ``is_error: true``,
``terminal_reason: "api_error"``. A run that exits non-zero, or prints no ``result`` at all
(killed, crashed: SIGTERM makes the CLI exit 143 without one), failed too.

Not guaranteed: the CLI's ``total_cost_usd`` is its own price table's figure (an unknown model
is priced like the default); it is reported, not checked.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from runtime.agent.usage import Malformed, Outcome, Tokens, UsageAdapter, count, json_object

#: ``type`` values of stream-json lines that carry no usage and are skipped silently.
NO_USAGE = {"system", "user", "rate_limit_event"}

# (kind in Tokens, field in result.usage / assistant usage, field in modelUsage.<model>)
FIELDS = (("input", "input_tokens", "inputTokens"),
          ("output", "output_tokens", "outputTokens"),
          ("cache_read", "cache_read_input_tokens", "cacheReadInputTokens"),
          ("cache_write", "cache_creation_input_tokens", "cacheCreationInputTokens"))


def _tokens(usage: Any, where: str, column: int) -> Tokens:
    """Tokens from ``usage``'s fields (``column`` of FIELDS: 1 for snake_case, 2 for modelUsage's camelCase);
    a missing field counts 0."""
    usage = json_object(usage, where)
    return Tokens(**{f[0]: count(usage.get(f[column], 0), f"{where}.{f[column]}") for f in FIELDS})


def _message_id(message: dict, where: str) -> str:
    msg_id = message.get("id")
    if not isinstance(msg_id, str) or not msg_id:
        raise Malformed(f"{where} must be a non-empty string")
    return msg_id


class ClaudeCode(UsageAdapter):
    @classmethod
    def limited(cls, command: list[str], *, max_turns: int | None, max_retries: int | None) -> list[str]:
        """Retries through ``CLAUDE_CODE_MAX_RETRIES`` (``env`` in front of the command, whatever
        runs it), turns with ``--max-turns`` after the command's own arguments: a profile's
        command must end with Claude Code's arguments (not a shell script's) for it to apply.
        A run that reaches the limit ends with ``error_max_turns`` (terminal reason ``max_turns``): a
        failed run."""
        if max_turns is not None:
            command = [*command, "--max-turns", str(max_turns)]
        if max_retries is not None:
            command = ["env", f"CLAUDE_CODE_MAX_RETRIES={max_retries}", *command]
        return command

    def __init__(self) -> None:
        super().__init__()
        self._session: str | None = None
        self._fallback = uuid.uuid4().hex  # keys of a run whose output names no session
        self._result: dict | None = None
        self._authority: Tokens | None = None
        self._last_text = ""
        #: stream (parent_tool_use_id) -> (id of its message being streamed, tokens charged for
        #: it so far, message_delta events seen)
        self._streaming: dict[str, tuple[str, Tokens, int]] = {}

    def _key(self, what: str) -> str:
        return f"claude-code:{self._session}:{what}"

    def feed(self, line: str) -> list:
        return self._read(line, "a stream-json line", self._event)

    def _event(self, event: dict) -> list:
        kind = event.get("type")
        if not isinstance(kind, str):
            raise Malformed("a stream-json line's type must be a string")
        if kind == "assistant":
            message = json_object(event.get("message"), "assistant.message")
            msg_id = _message_id(message, "assistant.message.id")
            tokens = _tokens(message.get("usage"), "assistant.message.usage", 1)
            content = message.get("content")
            texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"] \
                if isinstance(content, list) else []
            self._session_of(event)
            if texts and isinstance(texts[-1], str):
                self._last_text = texts[-1]
            return self._charge(self._key(msg_id), tokens)
        if kind == "stream_event":
            return self._stream_event(event)
        if kind == "result":
            self._result_event(event)
        elif kind not in NO_USAGE:
            self.unknown += 1
        self._session_of(event)
        return []

    def _stream_event(self, event: dict) -> list:
        inner = json_object(event.get("event"), "stream_event.event")
        what, stream = inner.get("type"), str(event.get("parent_tool_use_id"))
        if what == "message_start":
            message = json_object(inner.get("message"), "stream_event.event.message")
            msg_id = _message_id(message, "stream_event.event.message.id")
            tokens = _tokens(message.get("usage"), "stream_event.event.message.usage", 1)
            self._session_of(event)
            self._streaming[stream] = (msg_id, tokens, 0)
            return self._charge(self._key(msg_id), tokens)
        if what == "message_delta":
            final = _tokens(inner.get("usage"), "stream_event.event.usage", 1)
            if stream not in self._streaming:
                raise Malformed("stream_event message_delta without a message_start before it")
            msg_id, charged, deltas = self._streaming[stream]
            # Cumulative: charge only what it adds, kind by kind, to what this message was charged.
            grown = Tokens(*(max(0, f - c) for f, c in zip(final.as_dict().values(), charged.as_dict().values())))
            self._streaming[stream] = (msg_id, charged + grown, deltas + 1)
            self._session_of(event)
            return self._charge(self._key(f"{msg_id}:delta{deltas + 1}"), grown)
        return []

    def _session_of(self, event: dict) -> None:
        """Fix the run's session (its keys' scope) at the first well-formed line, once: keys
        that changed mid-run could charge one message twice."""
        if self._session is None:
            session = event.get("session_id")
            self._session = session if isinstance(session, str) and session else self._fallback

    def _result_event(self, event: dict) -> None:
        """Keep the result and its authoritative usage, both validated before either is kept."""
        if not isinstance(event.get("is_error"), bool):
            raise Malformed("result.is_error must be true or false")
        per_model = json_object(event.get("modelUsage", {}), "result.modelUsage")
        models = [_tokens(u, f"result.modelUsage.{name}", 2) for name, u in per_model.items()]
        usage = _tokens(event.get("usage", {}), "result.usage", 1)
        self._result, self._authority = event, sum(models, Tokens()) if models else usage

    def finish(self, exit_code: int) -> Outcome:
        counters = {"malformed": self.malformed, "unknown": self.unknown}
        result = self._result
        if result is None:
            how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited {exit_code}"
            return Outcome(None, True, f"claude {how} without a result line", self._last_text, self.charged,
                           None, **counters)
        charge, excess = self._reconcile(self._key("result"), self._authority)
        text = result.get("result") if isinstance(result.get("result"), str) else self._last_text
        cost = result.get("total_cost_usd")
        cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0 else None
        return Outcome(charge, *self._failure(result, exit_code, text), text, self._authority, cost,
                       excess, **counters)

    @staticmethod
    def _failure(result: dict, exit_code: int, text: str) -> tuple[bool, str]:
        if result["is_error"]:
            reason = str(result.get("terminal_reason") or result.get("subtype") or "error")
            status = result.get("api_error_status")
            if status is not None:
                reason += f" (API status {status})"
            # The error's words: the result text, or (a limit reached) the result's errors.
            errors = result.get("errors")
            said = text if isinstance(result.get("result"), str) else \
                "; ".join(e for e in errors if isinstance(e, str)) if isinstance(errors, list) else ""
            first = said.strip().splitlines()[0] if said.strip() else ""
            return True, f"{reason}: {first}" if first else reason
        if exit_code != 0:
            return True, f"claude exited {exit_code} after a result that reports no error"
        return False, ""
