"""`larry preflight` against a real redis-server (and a real Sentinel cluster)."""
from __future__ import annotations

import time

from runtime.cli import main as larry
from runtime.coordination.ledger import Ledger
from tests.runtime.commands.run_state import ROOT, build_run, output, run_args
from tests.support.redis_servers import free_port


def test_preflight_passes_for_a_consistent_ledger(r, ks, settings, capsys):
    assert larry(["preflight", *run_args(settings, ks)]) == 0
    out = output(capsys)
    assert "✔ Redis reachable ok" in out and "✘" not in out
    assert "no Sentinel configured" in out and "no run ledger in Redis yet" in out
    assert "plan allocates 478,000 of 478,000" in out
    build_run(r, ks)
    Ledger(r, ks, "larry-03").record("big", 205_000)  # crosses 90 %: draws the reserve pool
    assert r.get(ks.tokens("larry-03", "emergency")) == "25000"
    assert larry(["preflight", *run_args(settings, ks)]) == 0
    assert "✔ ledger matches plan ok limits equal the plan's; reserve pool 0 + drawn 25,000" in output(capsys)


def test_preflight_fails_when_the_ledger_differs_from_the_plan(r, ks, settings, capsys):
    build_run(r, ks)
    Ledger(r, ks, "larry-02").set_limit(90_000, overwrite=True)
    r.incrby(ks.token_pool, 1)
    assert larry(["preflight", *run_args(settings, ks)]) == 1
    out = output(capsys)
    assert "larry-02: ledger limit 90,000 != plan 81,000" in out
    assert "reserve pool 25,001 + drawn 0 != plan 25,000" in out


def test_preflight_fails_on_an_over_budget_plan(r, ks, settings, capsys):
    # seed 004's figures do not add up (Pulumi.cortex.yaml says so); preflight must say it too
    args = ["preflight", "--stack", "cortex", "--project-dir", str(ROOT), "--redis-url", settings.url,
            "--key-prefix", ks.prefix]
    assert larry(args) == 1
    out = output(capsys)
    assert "✘ system budget failed plan allocates 365,000 of 295,000" in out


def test_preflight_fails_when_redis_is_unreachable(capsys, monkeypatch):
    monkeypatch.setenv("LARRY_REDIS_RETRY_FOR", "0.3")
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert larry(["preflight", "--stack", "dev", "--project-dir", str(ROOT), "--redis-url", url]) == 1
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert "✘ Redis reachable failed" in out and "ledger matches plan skipped Redis unreachable" in out
    assert "Traceback" not in captured.err


def test_preflight_checks_sentinel_quorum(sentinel_cluster, ks, capsys, monkeypatch):
    monkeypatch.setenv("LARRY_REDIS_SENTINELS", ",".join(f"{h}:{p}" for h, p in sentinel_cluster.sentinel_addresses))
    monkeypatch.delenv("LARRY_REDIS_URL", raising=False)
    args = ["preflight", "--stack", "dev", "--project-dir", str(ROOT), "--key-prefix", ks.prefix]
    assert larry(args) == 0
    out = output(capsys)
    assert "✔ Sentinel quorum ok" in out and "OK 3 usable Sentinels" in out
    for sentinel in sentinel_cluster.sentinels[1:]:
        sentinel.kill()
    # the survivor counts the others out once they are down for down-after-milliseconds (1 s)
    deadline = time.monotonic() + 10
    while larry(args) == 0 and time.monotonic() < deadline:
        capsys.readouterr()
        time.sleep(0.2)
    out = output(capsys)
    assert "✘ Sentinel quorum failed" in out and "NOQUORUM 1 usable Sentinels" in out


