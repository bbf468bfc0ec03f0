"""CLI behaviour that needs no Docker: bad input and a missing engine give one clear line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys


def _cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_unknown_service_lists_valid_values():
    proc = _cli("up", "--services", "postgres,oracle")
    assert proc.returncode == 2
    assert "unknown service 'oracle'; valid services: vault, postgres, mysql, mongodb, redis, rabbitmq" in \
        " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_unknown_command_is_a_usage_error():
    proc = _cli("explode")
    assert proc.returncode == 2
    assert "invalid choice: 'explode'" in proc.stderr


def test_no_engine_is_one_clear_line(tmp_path):
    proc = _cli("status", env_extra={"DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert f"no Docker engine answers at unix://{tmp_path}/no.sock" in text
    assert "scripts/setup.sh" in text


def test_bad_setting_is_one_clear_line():
    proc = _cli("status", env_extra={"HARNESS_IMAGES": "newest"})
    assert proc.returncode == 1
    assert "images must be one of auto, official, debian" in " ".join(proc.stderr.split())
