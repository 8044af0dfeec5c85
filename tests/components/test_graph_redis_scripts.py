"""The Redis start scripts exactly as the scripts ConfigMap ships them, run with /bin/sh against
fake redis-cli / redis-server / hostname commands: which server is primary on first start,
after a failover and after all sentinels restarted, and where the password goes."""
import hashlib
import json
import os
import shutil
import stat
import subprocess

import pytest

from components import redis_ha
from plan.labels import SCRIPTS_DIGEST
from tests.components.pulumi_graph import CM, MOCK_PASSWORD, STS, run_program, stack_values

DOMAIN = "redis-cluster-headless.redis-ha.svc.cluster.local"
FAKE_CLI = r"""#!/bin/sh
echo "$*" >> "$FAKE_LOG"
[ "$REDISCLI_AUTH" = "$EXPECTED_AUTH" ] || { echo "no auth" >&2; exit 9; }
host=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h) host="$2"; shift 2 ;;
        -p) shift 2 ;;
        --raw) shift ;;
        *) break ;;
    esac
done
case "$*" in
    "sentinel get-master-addr-by-name "*)
        [ -n "$FAKE_SENTINEL_ANSWER" ] || exit 1
        printf '%s\n6379\n' "$FAKE_SENTINEL_ANSWER" ;;
    "info replication")
        [ "$host" = "$FAKE_PRIMARY" ] || exit 1
        printf '# Replication\r\nrole:master\r\n' ;;
esac
"""


def executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def run_script(tmp_path, dev):
    """Run one of the shipped scripts as pod ``hostname``; returns (config written, cli calls)."""
    (scripts_cm,) = [c for c in dev.of("kubernetes:core/v1:ConfigMap") if c.metadata["name"] == "redis-cluster-scripts"]
    scripts, bin_dir, run_dir = tmp_path / "scripts", tmp_path / "bin", tmp_path / "run"
    for directory in (scripts, bin_dir, run_dir):
        directory.mkdir()
    for name, text in scripts_cm.manifest["data"].items():
        (scripts / name).write_text(text)
    executable(bin_dir / "redis-cli", FAKE_CLI)
    for server in ("redis-server", "redis-sentinel"):
        executable(bin_dir / server, '#!/bin/sh\ncat "$1"\n')

    def run(script, hostname, sentinel_answer="", primary=""):
        executable(bin_dir / "hostname", f"#!/bin/sh\necho {hostname}\n")
        log = tmp_path / "cli.log"
        log.write_text("")
        env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SCRIPTS_DIR": str(scripts), "RUN_DIR": str(run_dir),
               "DATA_DIR": str(run_dir),
               "REDIS_PORT": "6379", "REDIS_STATEFULSET": "redis-cluster", "REDIS_REPLICAS": "3",
               "HEADLESS_DOMAIN": DOMAIN, "SENTINEL_HOST": "redis-cluster-sentinel", "SENTINEL_PORT": "26379",
               "MASTER_NAME": "larry", "QUORUM": "2", "DOWN_AFTER_MS": "5000", "FAILOVER_TIMEOUT_MS": "60000",
               "REDIS_PASSWORD": MOCK_PASSWORD, "REDISCLI_AUTH": MOCK_PASSWORD, "EXPECTED_AUTH": MOCK_PASSWORD,
               "FAKE_LOG": str(log), "FAKE_SENTINEL_ANSWER": sentinel_answer, "FAKE_PRIMARY": primary}
        done = subprocess.run(["sh", str(scripts / script)], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines(), log.read_text()

    return run


def test_scripts_parse():
    from components.redis_ha import SCRIPTS
    for script in SCRIPTS.glob("*.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)


def test_first_server_bootstraps_as_primary(run_script):
    conf, calls = run_script("redis.sh", "redis-cluster-0")
    assert not [line for line in conf if line.startswith("replicaof")]
    assert f'requirepass "{MOCK_PASSWORD}"' in conf and f'masterauth "{MOCK_PASSWORD}"' in conf
    assert f"replica-announce-ip redis-cluster-0.{DOMAIN}" in conf
    assert "appendonly yes" in conf
    assert MOCK_PASSWORD not in calls  # authentication went through REDISCLI_AUTH


def test_other_servers_replicate_the_first_on_bootstrap(run_script):
    conf, _ = run_script("redis.sh", "redis-cluster-1")
    assert f"replicaof redis-cluster-0.{DOMAIN} 6379" in conf


def test_after_a_failover_the_old_primary_rejoins_as_replica(run_script):
    conf, _ = run_script("redis.sh", "redis-cluster-0", sentinel_answer=f"redis-cluster-2.{DOMAIN}")
    assert f"replicaof redis-cluster-2.{DOMAIN} 6379" in conf


def test_sentinels_restarted_together_find_the_running_primary(run_script):
    conf, calls = run_script("sentinel.sh", "redis-cluster-sentinel-0", primary=f"redis-cluster-1.{DOMAIN}")
    assert f"sentinel monitor larry redis-cluster-1.{DOMAIN} 6379 2" in conf
    assert "sentinel down-after-milliseconds larry 5000" in conf
    assert "sentinel failover-timeout larry 60000" in conf
    assert f'requirepass "{MOCK_PASSWORD}"' in conf
    assert "sentinel get-master-addr-by-name larry" in calls and MOCK_PASSWORD not in calls


def test_sentinels_wait_a_second_longer_each_by_ordinal(run_script, tmp_path):
    # Losing the primary at one instant, they do not all stand for leader in one epoch.
    waits = []
    for n in range(3):
        (tmp_path / "run" / "sentinel.conf").unlink(missing_ok=True)  # each sentinel's first start
        conf, _ = run_script("sentinel.sh", f"redis-cluster-sentinel-{n}", primary=f"redis-cluster-0.{DOMAIN}")
        waits += [line for line in conf if line.startswith("sentinel down-after-milliseconds")]
    assert waits == [f"sentinel down-after-milliseconds larry {ms}" for ms in (5000, 6000, 7000)]


def test_a_restarted_sentinel_keeps_the_primary_it_knew_and_takes_the_new_password(run_script, tmp_path):
    # First start: every pod was down, server 1 answers as primary.
    run_script("sentinel.sh", "redis-cluster-sentinel-0", primary=f"redis-cluster-1.{DOMAIN}")
    conf = tmp_path / "run" / "sentinel.conf"
    # What Sentinel itself writes after a failover to server 2.
    conf.write_text(conf.read_text().replace(f"redis-cluster-1.{DOMAIN}", f"redis-cluster-2.{DOMAIN}")
                    + "sentinel config-epoch larry 3\n")
    # Every pod restarts at once: server 0 happens to answer first as a (stale) primary.
    lines, calls = run_script("sentinel.sh", "redis-cluster-sentinel-0", primary=f"redis-cluster-0.{DOMAIN}")
    assert f"sentinel monitor larry redis-cluster-2.{DOMAIN} 6379 2" in lines
    assert "sentinel config-epoch larry 3" in lines
    assert "sentinel get-master-addr-by-name larry" not in calls, "the kept config decides, not a probe"
    for directive in ("requirepass ", "sentinel sentinel-pass ", "sentinel auth-pass larry "):
        assert sum(line.startswith(directive) for line in lines) == 1, directive


def test_the_stateful_sets_carry_the_digest_of_the_scripts_they_read(graph):
    scripts = [cm for cm in graph.of(CM) if cm.metadata["name"].endswith("-scripts")]
    assert len(scripts) == 1
    digest = hashlib.sha256(json.dumps(scripts[0].manifest["data"], sort_keys=True).encode()).hexdigest()
    stateful_sets = graph.of(STS)
    assert len(stateful_sets) == 2
    for sts in stateful_sets:
        assert sts.manifest["spec"]["template"]["metadata"]["annotations"][SCRIPTS_DIGEST] == digest


def test_a_changed_script_changes_the_digest(tmp_path, monkeypatch):
    def digest_of_program() -> str:
        graph = run_program("dev", stack_values("dev"))
        return graph.of(STS)[0].manifest["spec"]["template"]["metadata"]["annotations"][SCRIPTS_DIGEST]

    before = digest_of_program()
    scripts = tmp_path / "scripts"
    shutil.copytree(redis_ha.SCRIPTS, scripts)
    with (scripts / "sentinel.sh").open("a") as f:
        f.write("# changed\n")
    monkeypatch.setattr(redis_ha, "SCRIPTS", scripts)
    assert digest_of_program() != before
