"""Codex's ``codex exec --json`` output (JSONL on stdout), metered (checked on 0.171.0).

Tokens: each ``turn.completed`` carries ``usage.{input_tokens, cached_input_tokens,
cache_write_input_tokens, output_tokens, reasoning_output_tokens}`` summed over the turn's
model requests. As in the Responses API, ``cached_input_tokens`` is *part of*
``input_tokens``, and so is ``cache_write_input_tokens``, which is taken the same way; so the
disjoint kinds are fresh input = ``input_tokens - cached_input_tokens -
cache_write_input_tokens``, cache reads = ``cached_input_tokens``, cache writes =
``cache_write_input_tokens``, output = ``output_tokens`` (which includes
``reasoning_output_tokens``, not added again). The ledger's total is therefore
``input_tokens + output_tokens``. A usage whose parts exceed ``input_tokens`` is malformed.

Live charges: one per ``turn.completed``, when it is printed (key: the thread id from
``thread.started`` and the turn's number). There is no later authority to reconcile to, so
``finish`` charges nothing.

Cost: Codex prints none. It is priced here from the profile's per-model prices (US dollars per
million tokens of each kind) for the model the profile runs; without a price for that model
the cost is None (unknown), never a guess.

Failure: ``turn.failed`` (its ``error.message`` is the reason), an ``error`` event that no
``turn.completed`` follows (Codex prints ``error`` events for retries it then recovers from,
e.g. "Reconnecting... 1/2 (... 429 ...)" before a completed turn), a run with no completed
turn, or a non-zero exit.

Not guaranteed: the reading of ``cache_write_input_tokens`` and ``reasoning_output_tokens``
is not checked against recorded runs (the Responses API reports no cache writes, and the
stand-in no reasoning); that the model named to the adapter is the one Codex used.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Mapping, Protocol

from runtime.agent.usage import Charge, Malformed, Outcome, Tokens, UsageAdapter, count, json_object

#: ``type`` values that carry neither usage nor an outcome, skipped silently.
NO_USAGE = {"turn.started", "item.started", "item.updated"}


class Price(Protocol):
    """US dollars per million tokens of one model (the profile's ``prices`` entry)."""
    input: float
    output: float
    cache_read: float
    cache_write: float


def turn_tokens(usage: Any) -> Tokens:
    """The disjoint kinds of a ``turn.completed`` usage (module docstring)."""
    usage = json_object(usage, "turn.completed.usage")
    total = count(usage.get("input_tokens"), "turn.completed.usage.input_tokens")
    cached = count(usage.get("cached_input_tokens", 0), "turn.completed.usage.cached_input_tokens")
    written = count(usage.get("cache_write_input_tokens", 0), "turn.completed.usage.cache_write_input_tokens")
    output = count(usage.get("output_tokens"), "turn.completed.usage.output_tokens")
    count(usage.get("reasoning_output_tokens", 0), "turn.completed.usage.reasoning_output_tokens")
    if cached + written > total:
        raise Malformed(f"turn.completed.usage: cached ({cached}) and cache-write ({written}) input tokens "
                        f"exceed input_tokens ({total})")
    return Tokens(input=total - cached - written, output=output, cache_read=cached, cache_write=written)


def price(tokens: Tokens, model_price: Price) -> float:
    return (tokens.input * model_price.input + tokens.output * model_price.output
            + tokens.cache_read * model_price.cache_read + tokens.cache_write * model_price.cache_write) / 1e6


class Codex(UsageAdapter):
    def __init__(self, model: str | None = None, prices: Mapping[str, Price] | None = None) -> None:
        super().__init__()
        self._price = (prices or {}).get(model) if model else None
        self._thread = uuid.uuid4().hex  # the key scope until (unless) thread.started names the thread
        self._named = False
        self._turns = 0
        self._failed: str | None = None   # turn.failed's message
        self._error: str | None = None    # the last error event since the last completed turn
        self._text = ""

    @classmethod
    def for_run(cls, command: list[str], *, prices: Mapping[str, Price], scratch: Path) -> tuple["Codex", list[str]]:
        """Codex reports no cost: it is priced from ``prices`` for the model the command names
        (``-m``/``--model``; the last one given wins, as in Codex)."""
        flags = [i for i, arg in enumerate(command[:-1]) if arg in ("-m", "--model")]
        return cls(command[flags[-1] + 1] if flags else None, prices), command

    def feed(self, line: str) -> list[Charge]:
        return self._read(line, "a codex --json line", self._event)

    def _event(self, event: dict) -> list[Charge]:
        kind = event.get("type")
        if not isinstance(kind, str):
            raise Malformed("a codex --json line's type must be a string")
        if kind == "thread.started":
            thread = event.get("thread_id")
            if not isinstance(thread, str) or not thread:
                raise Malformed("thread.started.thread_id must be a non-empty string")
            # Only the first: keys that changed mid-run could charge one turn twice.
            if not self._named:
                self._thread, self._named = thread, True
        elif kind == "turn.completed":
            tokens = turn_tokens(event.get("usage"))
            self._turns += 1
            self._error = None
            return self._charge(f"codex:{self._thread}:turn:{self._turns}", tokens)
        elif kind == "item.completed":
            item = json_object(event.get("item"), "item.completed.item")
            if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                self._text = item["text"]
        elif kind == "turn.failed":
            self._failed = _message(json_object(event.get("error"), "turn.failed.error"), "turn.failed.error")
        elif kind == "error":
            self._error = _message(event, "error")
        elif kind not in NO_USAGE:
            self.unknown += 1
        return []

    def finish(self, exit_code: int) -> Outcome:
        usage = self.charged
        cost = price(usage, self._price) if self._price is not None else None
        reason = self._failure(exit_code)
        text = self._text or (self._failed or self._error or "")
        return Outcome(None, bool(reason), reason, text, usage, cost, malformed=self.malformed, unknown=self.unknown)

    def _failure(self, exit_code: int) -> str:
        if self._failed is not None:
            return f"turn failed: {self._failed}"
        if self._error is not None:
            return f"error after the last completed turn: {self._error}"
        how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited {exit_code}"
        if not self._turns:
            return f"codex {how} without completing a turn"
        return f"codex {how} after its turn completed" if exit_code else ""


def _message(event: dict, where: str) -> str:
    message = event.get("message")
    if not isinstance(message, str):
        raise Malformed(f"{where}.message must be a string")
    return message
