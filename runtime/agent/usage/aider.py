"""aider's usage, metered from its ``--analytics-log`` file (checked on aider-chat 0.86.2).

aider prints its usage only as prose ("Tokens: 1.2k sent, 17 received. Cost: ..."); the
figures are in the analytics log, one JSON object per line ``{"event", "properties",
"user_id", "time"}``, appended as they happen (``--no-analytics`` still writes it). The
adapter is given the log's path and tails it: :meth:`Aider.poll` reads the complete lines the
log gained since the last call (the worker calls it every so often while aider runs) and
:meth:`Aider.finish` reads what is left, a last line without its newline included. Content
already in the file when the adapter is made is not this run's and is skipped: give each run
a fresh path.

Tokens: each ``message_send`` event's ``prompt_tokens`` is input and ``completion_tokens``
output. aider ignores cached tokens, so a provider's cache reads are inside
``prompt_tokens`` and booked as input. With ``--no-stream`` these are the server's figures;
streaming makes them aider's own estimates. One charge per event (key: the run and the
event's number), when the event is read; there is nothing later to reconcile to.

Cost: the sum of the events' ``cost`` (aider's own price table; 0 for a model it has no
price for unless ``--model-metadata-file`` gives one).

Failure: a non-zero exit; or no ``message_send`` event at all — after a persistent API error
aider gives up and exits 0, and the missing event is the only sign (a
``message_send_exception`` event's text, when there is one, is the reason).

Stdout (fed line by line) only gives the final text: what aider printed after its start-up
banner, without its "Tokens: ..." report lines.

Not guaranteed: that the text is only the model's answer (aider prints its edits' and
warnings' lines among it); events of other names carry no usage and are skipped uncounted.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any, Mapping

from runtime.agent.usage import Charge, Malformed, Outcome, Tokens, UsageAdapter, count, json_object

#: Where aider's start-up banner begins; it ends at the next blank line.
BANNER = "Aider v"
REPORT = "Tokens: "


class LogTail:
    """The lines a file gains, read from where the previous call stopped; a line is returned
    once it is complete (or, at the end, as it is)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = self.path.stat().st_size if self.path.exists() else 0
        self._partial = b""

    def lines(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:  # aider has not written its first event yet
            data = b""
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        if final and self._partial:
            complete.append(self._partial)
            self._partial = b""
        return [line.decode(errors="replace") for line in complete]


class Aider(UsageAdapter):
    tails_a_file = True

    @classmethod
    def for_run(cls, command: list[str], *, prices: Mapping[str, Any], scratch: Path) -> tuple["Aider", list[str]]:
        """aider reports its usage only in its analytics log: the command writes one to ``scratch``."""
        return cls(scratch), [*command, "--analytics-log", str(scratch)]

    def __init__(self, log: Path | str) -> None:
        super().__init__()
        self._tail = LogTail(Path(log))
        self._run = uuid.uuid4().hex  # aider's user_id is per HOME, not per run
        self._messages = 0
        self._cost = 0.0
        self._exception = ""
        self._stdout: list[str] = []
        self._banner = "before"  # before, in, after

    def feed(self, line: str) -> list[Charge]:
        """A line aider printed: kept for the final text, never charged."""
        if self._banner == "before" and line.startswith(BANNER):
            self._banner = "in"
        elif self._banner == "in" and not line.strip():
            self._banner = "after"
        elif self._banner == "after" and not line.startswith(REPORT):
            self._stdout.append(line)
        return []

    def poll(self) -> list[Charge]:
        """The charges of the events the log gained. Safe beside ``feed`` in another thread
        (they share no state); not beside another ``poll`` or ``finish``."""
        return [charge for line in self._tail.lines() for charge in self._line(line)]

    def _line(self, line: str) -> list[Charge]:
        return self._read(line, "an analytics log line", self._event)

    def _event(self, event: dict) -> list[Charge]:
        name = event.get("event")
        if not isinstance(name, str):
            raise Malformed("an analytics log line's event must be a string")
        if name == "message_send":
            properties = json_object(event.get("properties"), "message_send.properties")
            tokens = Tokens(input=count(properties.get("prompt_tokens"), "message_send.properties.prompt_tokens"),
                            output=count(properties.get("completion_tokens"),
                                         "message_send.properties.completion_tokens"))
            cost = properties.get("cost", 0)
            if not isinstance(cost, (int, float)) or isinstance(cost, bool) or not math.isfinite(cost) or cost < 0:
                raise Malformed(f"message_send.properties.cost must be a non-negative number, got {cost!r:.40}")
            self._messages += 1
            self._cost += cost
            return self._charge(f"aider:{self._run}:message:{self._messages}", tokens)
        if name == "message_send_exception":
            self._exception = str(json_object(event.get("properties"), "message_send_exception.properties")
                                  .get("exception", ""))
        return []

    def finish(self, exit_code: int) -> Outcome:
        before = self.charged
        for line in self._tail.lines(final=True):
            self._line(line)
        # What only the last read found, as one charge: the per-event charges above were
        # registered (so none is booked twice) but not handed out one by one.
        late = Tokens(*(a - b for a, b in zip(self.charged.as_dict().values(), before.as_dict().values())))
        charge = Charge(f"aider:{self._run}:at-exit", late) if late.total else None
        text = "\n".join(self._stdout).strip()
        return Outcome(charge, *self._failure(exit_code), text, self.charged,
                       self._cost if self._messages else None, malformed=self.malformed, unknown=self.unknown)

    def _failure(self, exit_code: int) -> tuple[bool, str]:
        if exit_code:
            how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited {exit_code}"
            return True, f"aider {how}"
        if not self._messages:
            why = f": {self._exception}" if self._exception else " (its model requests failed?)"
            return True, f"aider exited 0 without a message_send event in its analytics log{why}"
        return False, ""
