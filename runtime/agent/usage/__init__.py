"""Usage adapters: meter an agent CLI from its own machine-readable output, without its help.

One adapter object per agent run. The worker hands it every line the agent prints::

    adapter = make_adapter("claude-code")   # by the profile's ``usage`` name (ADAPTERS)
    for line in output:
        for charge in adapter.feed(line):   # book now: the agent spent this
            ledger.charge(charge.key, charge.tokens.total)
        if adapter.rejected:                # the line was malformed: say why, once
            log(adapter.rejected)
    outcome = adapter.finish(exit_code)     # once the agent has exited
    if outcome.charge:                      # the difference to the CLI's authoritative total
        ledger.charge(outcome.charge.key, outcome.charge.tokens.total)

The ledger's token
    Every token the provider processed for the run counts once: fresh input, cache writes,
    cache reads and output — the four disjoint kinds of :class:`Tokens`, whose ``total`` is
    what the ledger books. Cache reads are billed at a fraction of the input price, but they
    are tokens the model read on the run's behalf, and counting every kind makes a token
    budget mean the same for every adapter and provider; what they cost in money is
    ``Outcome.cost_usd``, reported beside. Each adapter documents how its CLI's fields map
    onto the four kinds (a CLI whose cached input is part of its input count must not
    count it twice).

Guaranteed, for every adapter:

* a charge is never booked twice: each carries an idempotency ``key``, unique within the
  run and across runs (it names the CLI's session or run), and ``feed`` returns a charge for
  a key once;
* nothing is charged that was not spent: ``feed`` charges only usage the CLI reported, and
  the reconciling ``Outcome.charge`` is never negative — if the live charges already exceed
  the CLI's final total, the excess is reported (``Outcome.excess``), not refunded;
* a malformed line (not JSON, the wrong shape, a count that is not a non-negative integer)
  is counted and skipped as a whole, never a traceback and never charged; a well-formed line
  of a kind the adapter does not know is counted apart and skipped.

Not guaranteed: that the CLI's own figures are right (the adapter books what the CLI says the
provider reported), or that a run killed before its final summary is reconciled (its live
charges stand; ``finish`` then reports the run as failed).

Most CLIs print their usage on stdout. One that writes it to a file of its own instead
(aider's ``--analytics-log``) is tailed by its adapter: the worker calls ``poll()`` every so
often while the agent runs (and ``finish`` reads what is left), so its charges arrive as the
file grows, at most one poll period late.

===============  ===========================================================================
``claude_code``  Claude Code ``-p --output-format stream-json --verbose`` (best with
                 ``--include-partial-messages``)
``codex``        Codex ``exec --json``
``aider``        aider's ``--analytics-log`` file (stdout only for its text)
===============  ===========================================================================
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from plan.model import MAX_TOKENS, AgentProfile, expand_command


@dataclass(frozen=True)
class Tokens:
    """Tokens by kind; the kinds are disjoint (see "The ledger's token" above)."""
    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: "Tokens") -> "Tokens":
        return Tokens(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def total(self) -> int:
        """What the ledger books: every kind, once."""
        return sum(self.as_dict().values())


@dataclass(frozen=True)
class Charge:
    """Tokens to book now; ``key`` makes booking it twice a no-op."""
    key: str
    tokens: Tokens


@dataclass(frozen=True)
class Outcome:
    """How an agent run ended, from its own output.

    ``charge``     the reconciling charge to book now (None when the live charges already
                   match the authority, or there is no authority)
    ``failed``     whether the run failed; ``reason`` says why ("" when it did not)
    ``text``       the agent's final text (its answer, or its error message)
    ``usage``      the run's usage by kind: the CLI's final total, or the live charges' sum
                   when there is none; what the ledger holds for the run once ``charge`` is booked
                   (plus ``excess``)
    ``cost_usd``   the run's cost as the CLI computed it (None: the CLI reports none)
    ``excess``     tokens charged live beyond the CLI's final total (kept, never refunded)
    ``malformed``  lines skipped as malformed; ``unknown`` well-formed lines of unknown kind
    """
    charge: Charge | None
    failed: bool
    reason: str
    text: str
    usage: Tokens
    cost_usd: float | None
    excess: int = 0
    malformed: int = 0
    unknown: int = 0


#: How often the worker polls an adapter that tails a file (the most its charges lag).
POLL_SECONDS = 0.2


class Malformed(ValueError):
    """A line of the agent's output that is not what its CLI's format promises."""


def count(value: Any, where: str) -> int:
    """``value`` if it is a token count (an integer 0 to MAX_TOKENS); :class:`Malformed` naming ``where``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    raise Malformed(f"{where} must be an integer 0-{MAX_TOKENS:,}, got {value!r:.40}")


def json_object(value: Any, where: str) -> dict:
    """``value`` if it is a JSON object; :class:`Malformed` naming ``where``."""
    if not isinstance(value, dict):
        raise Malformed(f"{where} must be an object")
    return value


class UsageAdapter(ABC):
    """Reads one agent run's output; see the module docstring for the contract. After each
    ``feed``, ``rejected`` says why that line was skipped as malformed (None: it was not), for
    the worker's log."""

    def __init__(self) -> None:
        self.malformed = 0
        self.unknown = 0
        self.rejected: str | None = None
        self.charged = Tokens()  # the sum of the charges returned so far
        self._keys: set[str] = set()

    @abstractmethod
    def feed(self, line: str) -> list[Charge]:
        """The charges ``line`` makes due now (usually none)."""

    def _read(self, line: str, what: str, handle: Callable[[dict], list[Charge]]) -> list[Charge]:
        """``handle(event)`` for ``line`` parsed as a JSON object (``what`` names such a line);
        a blank line is nothing, a malformed one (``handle`` raising :class:`Malformed`
        included) is counted, said in ``rejected`` and skipped, charging nothing."""
        self.rejected = None
        if not line.strip():
            return []
        try:
            return handle(json_object(json.loads(line), what))
        except (ValueError, RecursionError) as error:  # JSONDecodeError and Malformed are ValueErrors
            self.malformed += 1
            self.rejected = str(error) if isinstance(error, Malformed) else "not JSON"
            return []

    #: Whether the adapter tails a file of the agent's beside stdout: the worker then calls
    #: ``poll`` every :data:`POLL_SECONDS` while the agent runs.
    tails_a_file = False

    @classmethod
    def for_run(cls, command: list[str], *, prices: Mapping[str, Any], scratch: Path
                ) -> tuple["UsageAdapter", list[str]]:
        """A fresh adapter for one run of ``command`` and the command as it must then run, for
        a CLI that needs something of the run (its model's price, a file to write its usage
        to): ``prices`` are the profile's per-model prices, ``scratch`` a fresh file the
        adapter may have the agent write. Most need neither."""
        return cls(), command

    @classmethod
    def limited(cls, command: list[str], *, max_turns: int | None, max_retries: int | None) -> list[str]:
        """``command`` with a profile's ``maxTurns`` and ``maxRetries`` handed to the CLI the ways
        it takes them (None: not set). The default is for a CLI that takes neither from its
        command line: it runs as given. Codex caps retries only per model provider in its
        ``config.toml`` (``request_max_retries``, ``stream_max_retries``; the provider is not
        known from the command) and has no turn limit; aider retries until its back-off passes 60 s
        and answers one ``--message`` per run: neither can be capped by larry."""
        return command

    def poll(self) -> list[Charge]:
        """The charges a file the adapter tails beside stdout makes due now; the worker calls it
        periodically while the agent runs. Adapters that read stdout alone charge nothing here."""
        return []

    @abstractmethod
    def finish(self, exit_code: int) -> Outcome:
        """The run's outcome once the agent exited with ``exit_code`` (negative: killed by a signal)."""

    def _charge(self, key: str, tokens: Tokens) -> list[Charge]:
        """A charge for ``key`` unless one was made or there is nothing to charge."""
        if key in self._keys or not tokens.total:
            return []
        self._keys.add(key)
        self.charged += tokens
        return [Charge(key, tokens)]

    def _reconcile(self, key: str, authority: Tokens) -> tuple[Charge | None, int]:
        """The charge that brings the booked total up to ``authority``'s, and the excess when the
        live charges were already above it."""
        difference = authority.total - self.charged.total
        if difference <= 0:
            return None, -difference
        # Kind by kind what the authority has beyond the live charges; a kind charged live above
        # the authority's figure lowers the others, so that the booked total is the authority's.
        extra = [max(0, a - c) for a, c in zip(authority.as_dict().values(), self.charged.as_dict().values())]
        surplus = sum(extra) - difference
        for i, value in enumerate(extra):
            cut = min(value, surplus)
            extra[i], surplus = value - cut, surplus - cut
        charges = self._charge(key, Tokens(*extra))
        return (charges[0] if charges else None), 0


#: ``usage`` name -> "module:class" of its adapter (imported when asked for).
ADAPTERS = {
    "claude-code": "runtime.agent.usage.claude_code:ClaudeCode",
    "codex": "runtime.agent.usage.codex:Codex",
    "aider": "runtime.agent.usage.aider:Aider",
}


def adapter_class(name: str) -> type[UsageAdapter]:
    """The adapter class of usage ``name``; ValueError with one line naming the known adapters."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown usage adapter {name!r} (expected one of: {', '.join(sorted(ADAPTERS))})")
    module, cls = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def profile_command(profile: AgentProfile, usage: str, values: Mapping[str, str]) -> list[str]:
    """A profile's command for one run: its placeholders expanded (``values``: every
    COMMAND_PLACEHOLDERS), its limits handed to the CLI by the adapter ``usage`` names."""
    command = expand_command(profile.command, values)
    if usage not in ADAPTERS:  # the @larry protocol: a payload of larry's own kind, no CLI to cap
        return command
    return adapter_class(usage).limited(command, max_turns=profile.max_turns, max_retries=profile.max_retries)


def make_adapter(name: str, **options: Any) -> UsageAdapter:
    """A fresh adapter for one run, given the ``options`` its class takes (Codex: ``model`` and
    ``prices``; aider: ``log``, the path of its analytics log)."""
    return adapter_class(name)(**options)
