"""`larry cleanup`: remove a finished run's keys from Redis, after it was archived.

It removes the run's keys (:meth:`runtime.coordination.keys.Keyspace.run_patterns`: the
seed's ``phase:*``, ``task:*``, ``worker:*`` plus ``metrics:*``, ``tokens:*``, ``barrier:*``
and the event stream) with SCAN and UNLINK, never KEYS or FLUSHALL. It refuses (exit 2)
unless every phase has ended and an archive under ``--coordination-dir/archives`` was
written after the last phase ended (``larry converge`` writes it), or ``--force``.
``--dry-run`` counts what would go. Not guaranteed: keys a process of the run writes while
cleanup scans (stop the run first).
"""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis

from plan.model import StackConfig
from plan.statuses import TERMINAL
from runtime.cli import UsageError, add_coordination_dir, add_run_arguments, open_run
from runtime.coordination.keys import Keyspace
from runtime.coordination.phases import PhaseTracker
from runtime.support.timestamps import format_time, parse_optional

#: Slack between the Redis primary's clock (phase end) and the file system's (archive mtime).
CLOCK_SLACK = timedelta(seconds=5)
UNLINK_BATCH = 500

EXAMPLES = """\
examples:
  larry cleanup --stack dev --coordination-dir .larry-runs/dev-20261130-141355-12345 --dry-run
  larry cleanup --plan /etc/larry/plan.yaml --coordination-dir /coordination
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_coordination_dir(parser)
    parser.add_argument("--dry-run", action="store_true", help="count the keys that would be removed, remove none")
    parser.add_argument("--force", action="store_true", help="remove the keys even if the run was not archived")


def main(args: argparse.Namespace) -> int:
    cfg, r, ks = open_run(args)
    if not args.force:
        refusal = cleanup_refusal(r, ks, cfg, Path(args.coordination_dir) / "archives")
        if refusal:
            raise UsageError(f"refusing: {refusal}; pass --force to remove the keys anyway")
    counts = remove_run_keys(r, ks, dry_run=args.dry_run)
    total = sum(counts.values())
    detail = ", ".join(f"{pattern} {n}" for pattern, n in counts.items() if n)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {total} key{'s' if total != 1 else ''}" + (f" ({detail})" if detail else ""))
    return 0


def cleanup_refusal(r: redis.Redis, ks: Keyspace, cfg: StackConfig, archives: Path) -> str | None:
    """Why the run's keys must stay (not finished, not archived since it finished), or None."""
    # Every Larry's phase, from a slice too (it holds its own Larry, and every id).
    phases = [PhaseTracker(r, ks, larry_id).snapshot() for larry_id in cfg.larry_ids]
    running = [f"{p['larry']} is {p['status']}" for p in phases if p["status"] not in TERMINAL]
    if running and any(p["started_at"] for p in phases):
        return "the run has not finished (" + ", ".join(running) + ")"
    ended = max((t for t in (parse_optional(p["completed_at"]) for p in phases) if t), default=None)
    found = sorted(archives.glob("*.tar.gz")) if archives.is_dir() else []
    if not found:
        return f"no archive under {archives} (run `larry converge` first)"
    newest = max(datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) for path in found)
    if ended and newest < ended - CLOCK_SLACK:
        return (f"the newest archive under {archives} ({format_time(newest)}) is older than "
                f"the run's end ({format_time(ended)})")
    return None


def remove_run_keys(r: redis.Redis, ks: Keyspace, *, dry_run: bool = False) -> dict[str, int]:
    """SCAN each of the run's patterns and UNLINK what matches; returns keys removed per pattern."""
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for pattern in ks.run_patterns():
        keys = sorted(set(r.scan_iter(match=pattern, count=1000)) - seen)
        seen.update(keys)
        if dry_run:
            counts[pattern] = len(keys)
            continue
        removed = 0
        for start in range(0, len(keys), UNLINK_BATCH):
            removed += r.unlink(*keys[start:start + UNLINK_BATCH])
        counts[pattern] = removed
    return counts
