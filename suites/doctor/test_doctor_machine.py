"""``python -m harness doctor`` for real against this machine's engine: healthy, engine stopped (DOCKER_HOST at
a dead socket), an image missing, a stale container left by a killed run. The fakes of each broken thing, with
the exact fix lines, are in ``tests/test_doctor.py``.

Marked ``machine`` (no service marker: the nightly full-stack job runs them, no per-service group does) and
``own_stack``: the stale-container test leaves a container of its own that the healthy-machine test would
rightly flag, so under ``-n`` the module runs on one worker, one test after another (and never in attach mode,
where the compose stack is what doctor would be judging).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from harness.doctor import ENGINE_FIX, FAIL, OK, STALE_FIX
from stack.base import LABEL_KEEP, LABEL_OWNER_HOST, LABEL_OWNER_PID, LABEL_RUN_ID
from stack.images import BASE_IMAGE_LOCAL, BASE_IMAGE_OFFICIAL
from stack.registry import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [pytest.mark.own_stack, pytest.mark.machine]

def _engine() -> Any:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


ENGINE = _engine()
needs_engine = pytest.mark.skipif(ENGINE is None, reason="no Docker engine answers (DOCKER_HOST or "
                                  "/var/run/docker.sock): the real doctor runs need one")


def run_doctor(tmp_path: Path, **env: str) -> tuple[int, dict[str, Any], str]:
    """`python -m harness doctor --json` as a user runs it, with its private state in tmp_path."""
    environ = {**os.environ, "HARNESS_STATE_DIR": str(tmp_path / "state"), **env}
    proc = subprocess.run([sys.executable, "-m", "harness", "doctor", "--json"], capture_output=True, text=True,
                          timeout=300, check=False, cwd=ROOT, env=environ)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:  # say what the doctor printed instead (seen once in a full -n 2 run: empty)
        pytest.fail(f"doctor --json exited {proc.returncode} without JSON; stdout {proc.stdout[-500:]!r}, "
                    f"stderr {proc.stderr[-1500:]!r}")
    return proc.returncode, data, proc.stderr


def lines(data: dict[str, Any], status: str | None = None) -> dict[str, dict[str, str]]:
    return {c["check"]: c for c in data["checks"] if status is None or c["status"] == status}


@needs_engine
def test_healthy_machine_passes(tmp_path):
    code, data, stderr = run_doctor(tmp_path)
    assert lines(data, FAIL) == {}, "this machine is not healthy: see the FAIL lines"
    assert code == 0 and data["ok"] is True, stderr
    checks = lines(data)
    assert checks["docker engine"]["status"] == OK and "storage" in checks["docker engine"]["detail"]
    assert checks["compose"]["status"] == OK
    assert {f"image {name}" for name in CATALOGUE} <= set(checks)
    assert checks[".venv"]["status"] == OK


@needs_engine
def test_stopped_engine_fails_with_the_fix(tmp_path):
    code, data, _ = run_doctor(tmp_path, DOCKER_HOST=f"unix://{tmp_path}/dead.sock")
    assert code == 1 and data["ok"] is False
    engine = lines(data)["docker engine"]
    assert engine["status"] == FAIL and f"unix://{tmp_path}/dead.sock" in engine["detail"]
    assert engine["fix"] == ENGINE_FIX
    assert [c["check"] for c in data["checks"] if c["status"] == FAIL] == ["docker engine"]
    assert lines(data, "skip").keys() >= {"images", "leftovers of killed runs"}


@needs_engine
def test_missing_image_fails_with_the_fix(tmp_path):
    missing = f"devstack-harness/doctor-missing:{secrets.token_hex(4)}"
    code, data, _ = run_doctor(tmp_path, HARNESS_IMAGE_POSTGRES=missing)
    assert code == 1
    postgres = lines(data)["image postgres"]
    assert (postgres["status"], postgres["detail"]) == (FAIL, f"{missing} (from HARNESS_IMAGE_POSTGRES) is not present")
    assert postgres["fix"] == "load it (`docker load`) or unset HARNESS_IMAGE_POSTGRES"


@needs_engine
def test_stale_container_fails_with_the_fix(tmp_path):
    """A container labelled as the harness labels its own, whose owner process is gone: what a killed run leaves."""
    image = next(ref for ref in (BASE_IMAGE_OFFICIAL, BASE_IMAGE_LOCAL) if _present(ref))
    finished = subprocess.Popen(["true"])  # its pid is the owner that was killed: no such process any more
    finished.wait()
    run_id = f"20000101T000000-{secrets.token_hex(3)}"
    labels = {LABEL_RUN_ID: run_id, LABEL_OWNER_PID: str(finished.pid), LABEL_OWNER_HOST: socket.gethostname(),
              LABEL_KEEP: "false"}
    name = f"dsh-doctor-test-{run_id[-6:]}"
    container = ENGINE.containers.create(image, ["true"], name=name, labels=labels)
    try:
        code, data, _ = run_doctor(tmp_path)
        leftovers = lines(data)["leftovers of killed runs"]
        assert code == 1
        assert leftovers["status"] == FAIL and "stale container(s) (" in leftovers["detail"]
        assert name in leftovers["detail"]
        assert leftovers["fix"] == STALE_FIX
        container.reload()  # the doctor only looks: the container is still there
    finally:
        container.remove(force=True)


def _present(ref: str) -> bool:
    try:
        ENGINE.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True
