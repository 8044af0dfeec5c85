"""The per-Larry final report: its schema, an atomic writer and a validating loader.

Each Larry's coordinator writes ``/coordination/reports/{larry}-final.json`` after its
Phase 4 validation (seed 001 "Final Validation"); ``larry converge`` reads them all.
Schema version 1::

    {"schema": 1, "stack": "dev", "larry": "larry-01", "phase": "Infrastructure & ...",
     "status": "completed" | "failed",
     "planned_seconds": 1500.0,          # deadlineMinutes * 60 / speed
     "speed": 600.0,
     "started_at": ISO-8601, "completed_at": ISO-8601, "duration_seconds": 2.1,
     "tasks": [{"id", "title", "worker", "status": "completed" | "failed" | "pending",
                "fence": int, "tokens": int, "attempts": int, "depends_on": [task id],
                "started_at": ISO-8601 | null, "completed_at": ISO-8601 | null,
                "findings": FINDINGS, "detail": str (optional: why it failed / is pending)}],
     "tokens": {"limit", "reserved", "committed", "emergency_drawn"},   # the ledger's figures
     "accounts": [{"account", "kind": "larry" | "personal" | "pool" | "worker",
                   "limit", "granted", "released", "reserved", "committed": int}],
     "masters": [{"name", "reported_by": "master" | "coordinator", "agent": str,
                  "planned", "reviewed", "completed", "failed": int, "tasks": [task id],
                  "decisions": [{"escalation", "task", "decision": "retry" | "reserve" | "human", "detail"}],
                  "personal": {"limit", "committed"}, "pool": {"limit", "granted", "committed", "released"}}],
     "findings": FINDINGS,               # == aggregate_findings(task findings)
     "validation": [{"check": str, "passed": bool, "detail": str}],
     "workers": {name: {"node": str, "status": str, "restarts": int}},
     "requeued_tasks": [task id],
     "alerts": [{"event": str, "from": str, "detail": str}]}

    FINDINGS = {"cves": {"critical", "high", "medium", "low": int},
                "prs_created": int, "assets_discovered": int, "coverage_delta": number}

``tokens.committed`` is everything the Larry committed, including what it drew from the
emergency reserve (``emergency_drawn`` says how much of it that was). ``accounts`` are the
ledger's figures of every account of the Larry's budget, the Larry's own first: ``granted``
is what was lent or approved beyond the plan's limit, ``released`` what a finished pool
handed back (:mod:`runtime.coordination.ledger`). Timestamps are
ISO 8601 with a time zone; written in :mod:`runtime.support.timestamps`' form
(``2026-11-30T14:13:55.123Z``), read by its parser. Unknown fields are rejected so a typo
cannot silently drop data.

Every problem becomes one :class:`ReportError` line naming the file and what was
expected, e.g. ``reports/larry-02-final.json: tasks[3].tokens: expected a non-negative
integer, got string "12"``.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from plan.model import LARRY_ACCOUNT_KINDS
from plan.statuses import PhaseStatus, TaskStatus
from runtime.agent.protocol import SEVERITIES
from runtime.support import timestamps
from runtime.support.files import write_atomic

SCHEMA_VERSION = 1
#: A report's phase ended one way or the other; its tasks ended or never ran.
REPORT_STATUSES = (PhaseStatus.COMPLETED, PhaseStatus.FAILED)
TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.PENDING)
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class ReportError(Exception):
    """A missing, unreadable or malformed per-Larry report: one line, no traceback wanted."""


def report_path(directory: str | Path, larry: str) -> Path:
    """Where ``larry``'s final report lives inside the reports ``directory``."""
    return Path(directory) / f"{larry}-final.json"


def write_larry_report(directory: str | Path, report: dict[str, Any]) -> Path:
    """Validate ``report`` and write it atomically as ``{directory}/{larry}-final.json``."""
    larry = report.get("larry") if isinstance(report, Mapping) else None
    named = isinstance(larry, str) and _LABEL.fullmatch(larry)
    validate_report(report, str(report_path(directory, larry) if named else directory))
    path = report_path(directory, report["larry"])
    try:
        write_atomic(path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise ReportError(f"{path}: cannot write the report ({exc.strerror or exc})") from None
    return path


def load_larry_report(path: str | Path) -> dict[str, Any]:
    """Read and validate one final report; ReportError naming ``path`` if anything is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: report file not found (each Larry's coordinator writes "
                          "it after its Phase 4 validation)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read the report ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        report = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    validate_report(report, str(path))
    return report


def validate_report(report: Any, source: str) -> None:
    """Raise ReportError ``{source}: {field}: ...`` for the first schema problem found."""
    try:
        if not isinstance(report, dict):
            raise _expected("report", "a JSON object", report)
        _REPORT(report, "")
        total = aggregate_findings(task["findings"] for task in report["tasks"])
        if not _same_findings(report["findings"], total):
            raise _Invalid(f"findings: expected the sum of the tasks' findings {json.dumps(total)}, "
                           f"got {json.dumps(report['findings'])}")
    except _Invalid as problem:
        raise ReportError(f"{source}: {problem}") from None


def aggregate_findings(findings: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum task findings (CVE counts by severity, PRs, assets, coverage delta)."""
    items = list(findings)
    return {
        "cves": {s: sum(f["cves"][s] for f in items) for s in SEVERITIES},
        "prs_created": sum(f["prs_created"] for f in items),
        "assets_discovered": sum(f["assets_discovered"] for f in items),
        "coverage_delta": math.fsum(f["coverage_delta"] for f in items),
    }


def _same_findings(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return (a["cves"] == b["cves"] and a["prs_created"] == b["prs_created"]
            and a["assets_discovered"] == b["assets_discovered"]
            and math.isclose(a["coverage_delta"], b["coverage_delta"], rel_tol=1e-9, abs_tol=1e-9))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# --------------------------------------------------------------------------- schema checks

_MISSING = object()


class _Invalid(Exception):
    """One schema problem, as ``{field path}: {what is wrong}``."""


def _expected(where: str, expected: str, value: Any = _MISSING) -> _Invalid:
    if value is _MISSING:
        return _Invalid(f"{where}: required field is missing (expected {expected})")
    return _Invalid(f"{where}: expected {expected}, got {_json_describe(value)}")


_JSON_KINDS = ((bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "an array"),
               (dict, "an object"))


def _json_describe(value: Any) -> str:
    """Name a decoded JSON value by its JSON type; scalars as spelled in JSON, shortened."""
    if value is None:
        return "null"
    kind = next(name for types, name in _JSON_KINDS if isinstance(value, types))
    return kind if isinstance(value, (list, dict)) else f"{kind} {json.dumps(value)[:40]}"


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


class _Check:
    """Checks one JSON value at a field path; ``expected`` says what it accepts."""

    def __init__(self, expected: str, ok: Callable[[Any], bool] = lambda v: True):
        self.expected = expected
        self.ok = ok

    def __call__(self, value: Any, where: str) -> None:
        if not self.ok(value):
            raise _expected(where, self.expected, value)
        self.inner(value, where)

    def inner(self, value: Any, where: str) -> None:
        """Checks of the parts, for containers."""


class _Optional(_Check):
    def __init__(self, check: _Check):
        super().__init__(f"{check.expected} or null")
        self.check = check

    def inner(self, value: Any, where: str) -> None:
        if value is not None:
            self.check(value, where)


class _List(_Check):
    def __init__(self, item: _Check):
        super().__init__(f"an array of {item.expected}", lambda v: isinstance(v, list))
        self.item = item

    def inner(self, value: Any, where: str) -> None:
        for index, element in enumerate(value):
            self.item(element, _join(where, index))


class _Map(_Check):
    def __init__(self, item: _Check):
        super().__init__("an object", lambda v: isinstance(v, dict))
        self.item = item

    def inner(self, value: Any, where: str) -> None:
        for key, element in value.items():
            self.item(element, _join(where, key))


class _Record(_Check):
    def __init__(self, fields: Mapping[str, _Check], optional: Iterable[str] = ()):
        super().__init__("an object", lambda v: isinstance(v, dict))
        self.fields = fields
        self.optional = frozenset(optional)

    def inner(self, value: Any, where: str) -> None:
        for key, check in self.fields.items():
            if key in value:
                check(value[key], _join(where, key))
            elif key not in self.optional:
                raise _expected(_join(where, key), check.expected)
        unknown = sorted(set(value) - set(self.fields), key=str)
        if unknown:
            raise _Invalid(f"{_join(where, unknown[0])}: unknown field "
                           f"(expected only {', '.join(self.fields)})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        timestamps.parse(value)
    except ValueError:
        return False
    return True


def _one_of(values: tuple[str, ...]) -> _Check:
    return _Check(" or ".join(repr(str(v)) for v in values), lambda v: v in values)


_COUNT = _Check("a non-negative integer", lambda v: _is_int(v) and v >= 0)
_SECONDS = _Check("a non-negative number", lambda v: _is_number(v) and v >= 0)
_POSITIVE = _Check("a positive number", lambda v: _is_number(v) and v > 0)
_NUMBER = _Check("a finite number", _is_number)
_TEXT = _Check("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
_STRING = _Check("a string", lambda v: isinstance(v, str))
_FLAG = _Check("true or false", lambda v: isinstance(v, bool))
_ID = _Check("a lowercase DNS label (the Larry id)", lambda v: isinstance(v, str) and bool(_LABEL.fullmatch(v)))
_TIMESTAMP = _Check("an ISO 8601 timestamp with a time zone", _is_timestamp)

#: What a report shows of each account of the Larry's budget.
ACCOUNT_FIGURES = ("limit", "granted", "released", "reserved", "committed")

_FINDINGS = _Record({
    "cves": _Record({s: _COUNT for s in SEVERITIES}),
    "prs_created": _COUNT,
    "assets_discovered": _COUNT,
    "coverage_delta": _NUMBER,
})
_TASK = _Record({
    "id": _TEXT, "title": _TEXT, "worker": _TEXT, "status": _one_of(TASK_STATUSES),
    "fence": _COUNT, "tokens": _COUNT, "attempts": _COUNT, "depends_on": _List(_TEXT),
    "started_at": _Optional(_TIMESTAMP), "completed_at": _Optional(_TIMESTAMP),
    "findings": _FINDINGS, "detail": _STRING,
}, optional=("detail",))
_REPORT = _Record({
    "schema": _Check(f"schema version {SCHEMA_VERSION}", lambda v: _is_int(v) and v == SCHEMA_VERSION),
    "stack": _TEXT, "larry": _ID, "phase": _TEXT, "status": _one_of(REPORT_STATUSES),
    "planned_seconds": _POSITIVE, "speed": _POSITIVE,
    "started_at": _TIMESTAMP, "completed_at": _TIMESTAMP, "duration_seconds": _SECONDS,
    "tasks": _List(_TASK),
    "tokens": _Record({k: _COUNT for k in ("limit", "reserved", "committed", "emergency_drawn")}),
    "accounts": _List(_Record({"account": _TEXT, "kind": _one_of(LARRY_ACCOUNT_KINDS),
                               **{k: _COUNT for k in ACCOUNT_FIGURES}})),
    "masters": _List(_Record({
        "name": _TEXT, "reported_by": _one_of(("master", "coordinator")), "agent": _TEXT,
        "planned": _COUNT, "reviewed": _COUNT, "completed": _COUNT, "failed": _COUNT, "tasks": _List(_TEXT),
        "decisions": _List(_Record({"escalation": _TEXT, "task": _TEXT,
                                    "decision": _one_of(("retry", "reserve", "human")), "detail": _STRING})),
        "personal": _Record({k: _COUNT for k in ("limit", "committed")}),
        "pool": _Record({k: _COUNT for k in ("limit", "granted", "committed", "released")})})),
    "findings": _FINDINGS,
    "validation": _List(_Record({"check": _TEXT, "passed": _FLAG, "detail": _STRING})),
    "workers": _Map(_Record({"node": _TEXT, "status": _TEXT, "restarts": _COUNT})),
    "requeued_tasks": _List(_TEXT),
    "alerts": _List(_Record({"event": _TEXT, "from": _TEXT, "detail": _STRING})),
})
