"""The line protocol between `larry worker` and the payload (the agent) it runs.

The worker starts the payload once per task with this environment:

==========================  ===========================================================
``LARRY_ID``                the Larry the worker belongs to
``LARRY_WORKER_ID``         the worker's name
``LARRY_TASK_ID``           the task being run; ``LARRY_TASK_TITLE`` its title
``LARRY_TASK_WORKER``       the worker the plan lists the task under (another one of the
                            master's, when the worker took it from its master's queue)
``LARRY_TASK_MINUTES``      the time the plan gives this task (minutes, unscaled)
``LARRY_TOKEN_BUDGET``      tokens the payload may still spend on this task
``LARRY_FENCE``             the lease's fencing token (pass it on to anything you write)
``LARRY_RESULTS_DIR``       a directory for the payload's own output files
``LARRY_PROMPT_FILE``       the task as an agent reads it (Markdown: title, phase, budget,
                            what the tasks it depends on found)
``LARRY_PROTOCOL_FILE``     a file the payload may append protocol lines to instead
==========================  ===========================================================

The payload reports by printing lines ``@larry <json object>`` on stdout (or appending them
to ``LARRY_PROTOCOL_FILE``). Every other line is ordinary log output. Fields, all optional:

``tokens``    integer, 0 to :data:`plan.model.MAX_TOKENS` (10**12), tokens used *since the previous
              report* (the worker charges the ledger)
``findings``  an object of the fields below, merged into the task's findings (counts are summed)
``progress``  0-100, the task's progress
``message``   a short status text
``assets``    a list of at most 1,000 assets found, for the catalog (below)
``cve``       one CVE found, in seed 001's shape (below); one of CVSS >= :data:`CRITICAL_CVSS`
              raises seed 001's ``critical_cve`` alert
``escalation`` a decision the agent leaves to an operator (seed 004's ESCALATION, below)

Findings (every field optional; no other field is accepted)::

    {"cves": {"critical": N, "high": N, "medium": N, "low": N},   # CVEs found, by severity
     "prs_created": N,                                            # pull requests opened
     "assets_discovered": N,                                      # assets catalogued
     "coverage_delta": X}                                         # test coverage change, points

where ``N`` is an integer 0 to :data:`MAX_COUNT` and ``X`` a number -100 to 100.

Assets (:func:`runtime.catalog.assets.parse_asset`)::

    {"name": "cortex-api", "type": "DEPLOYMENT", "source": "k3s-cluster",   # required
     "namespace": "cortex",                                               # "" when none holds it
     "health": "HEALTHY",            # HEALTHY, DEGRADED, UNHEALTHY or UNKNOWN (default)
     "metadata": {...},              # a JSON object of at most 16 KiB
     "lineage": ["<id>", {"type": "CONTAINER_IMAGE", "name": "ghcr.io/x/api:1.2"}],   # ids or natural keys
     "tags": ["team=cortex"]}

``type`` is one of :data:`runtime.catalog.assets.ASSET_TYPES`. An asset is named by source,
type, namespace and name: reporting it again updates it, never duplicates it. The worker
writes them to the catalog as discovered by itself (a ``discoveredBy`` in the line is
ignored), through a buffer on the volume while the catalog is down
(:mod:`runtime.catalog.outbox`).

A CVE (seed 001 appendix A example 3; ``cve_id`` and ``cvss`` required)::

    {"cve_id": "CVE-2025-12345", "cvss": 9.8, "affected_service": "postgresql",
     "namespace": "database", "recommendation": "Immediate patching required",
     "workers": ["db-worker-01"], "larrys": ["larry-01"]}      # whom a critical one pauses

A critical one (CVSS 9.0 or more) is raised as an alert on the alerts channel,
``{"from": "<larry>/<worker>", "event": "critical_cve", "severity": "critical", "data": {<the
cve>}, "task_id": ...}``: its coordinators pause the workers it names (``workers``, or every
worker of ``larrys``; :mod:`runtime.reporting.history`) until a ``critical_cve_resolved``.
Counting it among the findings is the ``cves`` finding's job. At-least-once: a task run
again reports (and raises) it again.

An escalation (``issue`` and ``severity`` required)::

    {"issue": "the fix needs a schema migration", "severity": "high",
     "recommendation": "approve a maintenance window"}

is raised as an open escalation (:mod:`runtime.coordination.escalations`) on the alerts channel,
``escalation_raised`` with the task, the worker's account and the seed's ``options``, for
``larry approve`` / ``larry deny``; the task goes on meanwhile (nothing waits on its answer but
the operator). One per line; a task run again raises it again.

Example::

    @larry {"tokens": 1200, "progress": 40, "message": "scanned 3 of 7 namespaces"}
    @larry {"findings": {"cves": {"critical": 1, "high": 2}, "prs_created": 1}}
    @larry {"assets": [{"name": "k3s-worker01", "type": "NODE", "source": "k3s-cluster", "health": "HEALTHY"}]}

A malformed protocol line (not JSON, a field of the wrong type or out of its bounds, an
unknown finding) is rejected as a whole: counted and skipped, nothing of it charged or
merged; it never stops the worker. The worker stops the payload (SIGTERM, then SIGKILL) when
its lease is lost, the deadline passes or the reported tokens exceed the budget.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from plan.model import MAX_TOKENS
from runtime.catalog.assets import Asset, AssetError, parse_batch
from runtime.catalog.assets import short as _short

PREFIX = "@larry "
#: The largest count a finding may carry.
MAX_COUNT = 10**9
SEVERITIES = ("critical", "high", "medium", "low")
COUNTS = ("prs_created", "assets_discovered")
COVERAGE = "coverage_delta"
#: A CVE at or above this CVSS score is critical (seed 001: "critical_cve", CVSS 9.8).
CRITICAL_CVSS = 9.0
#: A field of an object a report carries: what it must be, and the check.
_Field = tuple[str, Callable[[Any], bool]]


def _text(limit: int) -> _Field:
    return f"a string of 1-{limit} characters", lambda v: isinstance(v, str) and 0 < len(v) <= limit


_NAMES: _Field = ("a list of at most 100 names", lambda v: isinstance(v, list) and len(v) <= 100
                  and all(isinstance(n, str) and 0 < len(n) <= 100 for n in v))
_CVE_FIELDS: dict[str, _Field] = {
    "cve_id": _text(200), "cvss": ("a number 0-10", lambda v: _is_number(v) and 0 <= v <= 10),
    "affected_service": _text(200), "namespace": _text(200), "recommendation": _text(200),
    "workers": _NAMES, "larrys": _NAMES}
_ESCALATION_FIELDS: dict[str, _Field] = {
    "issue": _text(500), "severity": (f"one of {', '.join(SEVERITIES)}", lambda v: v in SEVERITIES),
    "recommendation": _text(500)}


@dataclass(frozen=True)
class PayloadReport:
    tokens: int = 0
    findings: dict[str, Any] = field(default_factory=dict)
    progress: int | None = None
    message: str | None = None
    assets: tuple[Asset, ...] = ()
    cve: dict[str, Any] | None = None
    escalation: dict[str, str] | None = None

    @property
    def critical_cve(self) -> bool:
        return self.cve is not None and self.cve["cvss"] >= CRITICAL_CVSS


class ProtocolError(ValueError):
    """A line that starts with the protocol prefix but is not a valid report."""


def is_protocol_line(line: str) -> bool:
    return line.startswith(PREFIX)


def _is_int(value: Any, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_line(line: str) -> PayloadReport:
    """Parse one ``@larry {...}`` line; raises ProtocolError saying what is wrong."""
    try:
        data = json.loads(line[len(PREFIX):])
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(f"not JSON after {PREFIX.strip()!r}: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a JSON object")
    tokens = data.get("tokens", 0)
    if not _is_int(tokens, MAX_TOKENS):
        raise ProtocolError(f"'tokens' must be a non-negative integer of at most {MAX_TOKENS:,}, "
                            f"got {_short(tokens)}")
    findings = validate_findings(data.get("findings", {}))
    progress = data.get("progress")
    if progress is not None and not (_is_number(progress) and 0 <= progress <= 100):
        raise ProtocolError(f"'progress' must be a number 0-100, got {_short(progress)}")
    message = data.get("message")
    if message is not None and not isinstance(message, str):
        raise ProtocolError("'message' must be a string")
    try:
        assets = tuple(parse_batch(data["assets"], "assets")) if "assets" in data else ()
    except AssetError as error:
        raise ProtocolError(str(error)) from None
    cve = validate_cve(data["cve"]) if "cve" in data else None
    escalation = validate_escalation(data["escalation"]) if "escalation" in data else None
    return PayloadReport(tokens, findings, None if progress is None else int(progress), message, assets, cve,
                         escalation)


def validate_escalation(escalation: Any) -> dict[str, str]:
    """``escalation`` if it has the documented shape; ProtocolError naming the first problem."""
    return _validate_object("escalation", escalation, _ESCALATION_FIELDS, ("issue", "severity"))


def validate_cve(cve: Any) -> dict[str, Any]:
    """``cve`` if it has the documented shape; ProtocolError naming the first problem."""
    return _validate_object("cve", cve, _CVE_FIELDS, ("cve_id", "cvss"))


def _validate_object(name: str, value: Any, fields: dict[str, _Field], required: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"'{name}' must be an object, got {_short(value)}")
    for key, item in value.items():
        if key not in fields:
            raise ProtocolError(f"unknown {name} field {key!r} (expected {', '.join(fields)})")
        what, valid = fields[key]
        if not valid(item):
            raise ProtocolError(f"'{name}.{key}' must be {what}, got {_short(item)}")
    for key in required:
        if key not in value:
            raise ProtocolError(f"'{name}.{key}' is required")
    return value


def validate_findings(findings: Any) -> dict[str, Any]:
    """``findings`` if it has the documented shape; ProtocolError naming the first problem."""
    if not isinstance(findings, dict):
        raise ProtocolError("'findings' must be an object")
    for key, value in findings.items():
        where = f"'findings.{key}'"
        if key == "cves":
            if not isinstance(value, dict):
                raise ProtocolError(f"{where} must be an object of counts by severity, got {_short(value)}")
            for severity, count in value.items():
                if severity not in SEVERITIES:
                    raise ProtocolError(f"{where}: unknown severity {severity!r} (expected {', '.join(SEVERITIES)})")
                if not _is_int(count, MAX_COUNT):
                    raise ProtocolError(f"'findings.cves.{severity}' must be an integer 0-{MAX_COUNT:,}, "
                                        f"got {_short(count)}")
        elif key in COUNTS:
            if not _is_int(value, MAX_COUNT):
                raise ProtocolError(f"{where} must be an integer 0-{MAX_COUNT:,}, got {_short(value)}")
        elif key == COVERAGE:
            if not (_is_number(value) and -100 <= value <= 100):
                raise ProtocolError(f"{where} must be a number -100 to 100, got {_short(value)}")
        else:
            raise ProtocolError(f"unknown finding {key!r} (expected cves, {', '.join(COUNTS)}, {COVERAGE})")
    return findings


def normalise_findings(raw: Any) -> dict[str, Any]:
    """Findings in the full shape, zeros for what is missing: what readers show and reports
    hold. Anything not of the documented shape counts as nothing, so a reader never fails
    on findings written by another version."""
    raw = raw if isinstance(raw, dict) else {}
    cves = raw.get("cves") if isinstance(raw.get("cves"), dict) else {}
    delta = raw.get(COVERAGE)
    return {"cves": {s: count_of(cves.get(s)) for s in SEVERITIES},
            **{key: count_of(raw.get(key)) for key in COUNTS},
            COVERAGE: float(delta) if _is_number(delta) else 0.0}


def count_of(value: Any) -> int:
    """``value`` as a non-negative count; 0 for anything that is not one."""
    return int(value) if _is_number(value) and value >= 0 else 0


def format_line(report: PayloadReport) -> str:
    """The line a payload prints for ``report`` (used by the simulated payload)."""
    data: dict[str, Any] = {}
    if report.tokens:
        data["tokens"] = report.tokens
    if report.findings:
        data["findings"] = report.findings
    if report.progress is not None:
        data["progress"] = report.progress
    if report.message is not None:
        data["message"] = report.message
    if report.assets:
        data["assets"] = [json.loads(asset.content()) for asset in report.assets]
    if report.cve is not None:
        data["cve"] = report.cve
    if report.escalation is not None:
        data["escalation"] = report.escalation
    return PREFIX + json.dumps(data, separators=(",", ":"))


def merge_findings(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Add ``new`` into ``into``: numbers are summed, nested objects merged, the rest replaced."""
    for key, value in new.items():
        current = into.get(key)
        if isinstance(value, dict):
            into[key] = merge_findings(dict(current) if isinstance(current, dict) else {}, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(current, (int, float)):
            into[key] = current + value
        else:
            into[key] = value
    return into
