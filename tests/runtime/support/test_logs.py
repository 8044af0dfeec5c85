"""Logging configured once by the CLI: one line format, level from the flag or the environment."""
import logging
import re

import pytest

from runtime.cli import build_parser
from runtime.support import logs

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARNING \d+ larry\.test: disk (\d+)% full$")


def test_the_level_comes_from_the_flag_then_the_environment_then_info():
    assert logs.level_from("debug", {"LARRY_LOG_LEVEL": "ERROR"}) == "DEBUG"
    assert logs.level_from(None, {"LARRY_LOG_LEVEL": "error"}) == "ERROR"
    assert logs.level_from(None, {}) == "INFO"
    with pytest.raises(ValueError, match="LARRY_LOG_LEVEL='loud': expected one of DEBUG, INFO, WARNING, ERROR"):
        logs.level_from(None, {"LARRY_LOG_LEVEL": "loud"})


def test_configure_writes_one_line_per_record_to_the_current_stderr(capsys):
    root = logging.getLogger()
    before = root.level
    try:
        logs.configure("WARNING")
        logs.configure("WARNING")  # again: still one handler, not two
        logging.getLogger("larry.test").info("not shown")
        logging.getLogger("larry.test").warning("disk %d%% full", 93)
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and LINE.match(lines[0]), lines
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logs._Stderr)]:
            root.removeHandler(handler)
        root.setLevel(before)


def test_the_cli_takes_verbose_and_log_level():
    assert build_parser().parse_args(["-v", "status"]).log_level == "DEBUG"
    assert build_parser().parse_args(["--log-level", "warning", "status"]).log_level == "WARNING"
    assert build_parser().parse_args(["status"]).log_level is None
    assert build_parser().parse_args(["status", "-v"]).log_level == "DEBUG"
    assert build_parser().parse_args(["--log-level", "error", "status"]).log_level == "ERROR"
