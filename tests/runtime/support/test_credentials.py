"""Credentials: masked in messages, moved from URLs to the environment, hidden from ps."""
import subprocess
import sys

from runtime.support.credentials import hide_from_ps, mask, mask_url, take_password
from tests.support.project import ROOT


def test_mask_url_hides_only_the_password():
    assert mask_url("redis://:s3cret@db:6379/0") == "redis://:***@db:6379/0"
    assert mask_url("redis://user:s3cret@db:6379/0") == "redis://user:***@db:6379/0"
    assert mask_url("redis://db:6379/0") == "redis://db:6379/0"
    assert mask_url(None) is None


def test_mask_replaces_every_secret_in_a_text():
    assert mask("AUTH s3cret failed for s3cret", ["s3cret", None, ""]) == "AUTH *** failed for ***"


def test_take_password_moves_it_to_the_environment():
    env = {"LARRY_REDIS_URL": "redis://:p%40ss@db:6379/0"}
    assert take_password("redis://:p%40ss@db:6379/0", env) == "redis://db:6379/0"
    assert env == {"LARRY_REDIS_URL": "redis://db:6379/0", "LARRY_REDIS_PASSWORD": "p@ss"}


def test_take_password_keeps_a_password_already_in_the_environment():
    env = {"LARRY_REDIS_PASSWORD": "from-env"}
    assert take_password("redis://user:in-url@db/0", env) == "redis://user@db/0"
    assert env["LARRY_REDIS_PASSWORD"] == "from-env"
    assert take_password("redis://db/0", env) == "redis://db/0"


CHILD = """
import sys
from runtime.support.credentials import hide_from_ps
print(hide_from_ps(sys.argv[-1].split('@')[0].rpartition(':')[2]), flush=True)
sys.stdin.readline()
"""


def test_hide_from_ps_overwrites_the_command_line_ps_reads():
    child = subprocess.Popen([sys.executable, "-c", CHILD, "--redis-url", "redis://:pw-9f2c1e@db:6379/0"], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "True"
        with open(f"/proc/{child.pid}/cmdline", "rb") as cmdline:
            shown = cmdline.read()
        assert b"pw-9f2c1e" not in shown and b"redis://:*********@db:6379/0" in shown
    finally:
        child.communicate("\n", timeout=10)
    assert hide_from_ps("not-on-this-command-line-7b1d") is False
