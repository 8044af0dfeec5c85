"""scripts/images.sh: the images a real node runs, built here without any registry — each a
docker-archive tagged as the stacks name it, and each image run to show it works (buildah's
chroot isolation: the image's own filesystem, user and entrypoint)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile

import pytest

from plan.model import DEFAULT_RUNTIME_IMAGE
from tests.support.project import ROOT

SCRIPT = ROOT / "scripts" / "images.sh"
CACHE = os.environ.get("LARRY_IMAGES_CACHE", os.path.expanduser("~/.cache/larry-images"))


def buildah(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["buildah", "--root", f"{CACHE}/storage", "--runroot", f"{CACHE}/runroot",
                           "--storage-driver", "vfs", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    done = subprocess.run(["bash", str(SCRIPT), "list"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"scripts/images.sh list: {done.stderr.strip()} (make test runs `scripts/images.sh ensure`)")
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


@pytest.fixture(scope="module")
def run_in(images):
    """run_in(reference, *argv, user=None): argv in a container of the image (one per image)."""
    containers: dict[str, str] = {}

    def run(reference: str, *argv: str, user: str | None = None) -> subprocess.CompletedProcess:
        if reference not in containers:
            made = buildah("from", "--pull-never", f"docker-archive:{images[reference]}")
            assert made.returncode == 0, made.stderr
            containers[reference] = made.stdout.strip().splitlines()[-1]
        return buildah("run", "--isolation", "chroot", *(["--user", user] if user else []),
                       containers[reference], "--", *argv)

    yield run
    for container in containers.values():
        buildah("rm", container)


def test_every_image_is_a_docker_archive_tagged_as_the_stacks_name_it(images):
    assert set(images) == {"localhost/larry-python:3.11-bookworm", DEFAULT_RUNTIME_IMAGE,
                           "localhost/larry-redis:7-bookworm", "localhost/larry-pause:1"}
    for reference, archive in images.items():
        with tarfile.open(archive) as tar:
            (manifest,) = json.load(tar.extractfile("manifest.json"))
        # What `ctr images import` names the image, and so what a pod's `image:` must say.
        assert manifest["RepoTags"] == [reference]


def test_the_runtime_image_from_the_dockerfile_runs_larry_as_its_user(run_in):
    done = run_in(DEFAULT_RUNTIME_IMAGE, "larry", "--help", user="10001:10001")
    assert done.returncode == 0, done.stderr
    for command in ("coordinator", "worker", "converge"):
        assert command in done.stdout
    # Only the runtime and the plan contract: the Pulumi program and its SDKs stay out.
    probe = run_in(DEFAULT_RUNTIME_IMAGE, "python", "-c",
                   "import importlib.util as u; print(u.find_spec('pulumi'), u.find_spec('components'))")
    assert probe.returncode == 0 and probe.stdout.split() == ["None", "None"], probe.stdout + probe.stderr


def test_the_redis_image_has_debians_server_sentinel_and_cli(run_in):
    for tool in ("redis-server", "redis-sentinel", "redis-cli"):
        done = run_in("localhost/larry-redis:7-bookworm", tool, "--version")
        assert done.returncode == 0 and re.search(r"\b7\.\d+\.\d+", done.stdout), (tool, done.stdout, done.stderr)
