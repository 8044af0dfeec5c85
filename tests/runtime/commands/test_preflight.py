"""`larry preflight` against a real redis-server (and a real Sentinel cluster)."""
from __future__ import annotations

import http.server
import threading
import time

from plan.model import meta_account
from runtime.cli import main as larry
from runtime.commands.preflight import check_catalog_baseline, check_prometheus
from runtime.coordination.ledger import Ledger
from tests.runtime.commands.run_state import DEV, ROOT, build_run, output, run_args
from tests.support.redis_servers import free_port


def test_preflight_passes_for_a_consistent_ledger(r, ks, settings, capsys):
    assert larry(["preflight", *run_args(settings, ks)]) == 0
    out = output(capsys)
    assert "✔ Redis reachable ok" in out and "✘" not in out
    assert "no Sentinel configured" in out and "no run ledger in Redis yet" in out
    assert "plan allocates 478,000 of 478,000" in out
    build_run(r, ks)
    ledger = Ledger.for_plan(r, ks, DEV)
    ledger.record("big", "larry-03", 205_000)  # crosses 90 %: draws a slice of the reserve
    assert ledger.figures("larry-03")["granted"] == 10_000
    assert larry(["preflight", *run_args(settings, ks)]) == 0
    assert (f"✔ ledger matches plan ok {len(ledger.accounts)} account limits equal the plan's; "
            "reserve lent 10,000 of 25,000") in output(capsys)


def test_preflight_fails_when_the_ledger_differs_from_the_plan(r, ks, settings, capsys):
    build_run(r, ks)
    r.hset(ks.token_account("larry-02"), "limit", 90_000)
    r.hset(ks.token_account(meta_account("reserve")), "lent", 25_001)
    assert larry(["preflight", *run_args(settings, ks)]) == 1
    out = output(capsys)
    assert "larry-02: ledger limit 90,000 != plan 81,000" in out
    assert "the reserve lent 25,001 of 25,000" in out


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




def test_prometheus_and_catalog_checks_say_what_answered():
    """Seed 004 Phase 0's checks: Prometheus's /-/ready and the catalog's baseline query."""
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/-/ready" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert check_prometheus(url).outcome == "ok"
        unready = check_prometheus(url + "/sub")
        assert (unready.outcome, unready.detail) == ("failed", f"{url}/sub/-/ready: HTTP 503")
    finally:
        server.shutdown()
        server.server_close()
    assert check_prometheus(None).outcome == "skipped"
    down = f"http://127.0.0.1:{free_port()}/graphql"
    check, counts = check_catalog_baseline(down)
    assert (check.outcome, counts) == ("failed", None) and down in check.detail
    assert check_catalog_baseline(None)[0].outcome == "skipped"
