"""The atomic writer: old file or new one, never a part, nothing left behind on failure."""
import os
import stat

import pytest

from runtime.support.files import atomic_file, write_atomic


def test_write_creates_parents_and_replaces_the_content(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    write_atomic(path, "one")
    write_atomic(path, b"two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["report.json"], "no temp file left"


def test_mode_defaults_to_world_readable_and_secrets_get_0600(tmp_path):
    write_atomic(tmp_path / "public", "x")
    write_atomic(tmp_path / "secret", "x", mode=0o600)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_a_failure_midway_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.md"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.md"]


def test_readers_never_see_a_partial_file(tmp_path):
    path = tmp_path / "results.json"
    write_atomic(path, "old")
    with atomic_file(path) as handle:
        handle.write(b"new")
        assert path.read_text() == "old", "the target changed before the block ended"
    assert path.read_text() == "new"
