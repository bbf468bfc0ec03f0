"""CLI behaviour that needs no Docker: bad input and a missing engine give one clear line, no traceback.

The checks call ``harness.cli.main`` in this process (argparse's usage errors end it with ``SystemExit(2)``, as
they end ``python -m harness``); one of them starts the real command, ``python -m harness``, once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.cli import main


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``python -m harness ARGS`` through cli.main in this process: its exit status and what it wrote to stderr
    (tracebacks included: an uncaught exception fails the test with its own)."""
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def test_unknown_service_lists_valid_values(capsys):
    code, err = _cli(capsys, "up", "--services", "postgres,oracle")
    assert code == 2
    assert "unknown service 'oracle'; valid services: vault, postgres, mysql, mongodb, redis, rabbitmq" in \
        " ".join(err.split())
    assert "Traceback" not in err


def test_unknown_command_is_a_usage_error(capsys):
    code, err = _cli(capsys, "explode")
    assert code == 2
    assert "invalid choice: 'explode'" in err


def test_no_engine_is_one_clear_line(tmp_path):
    # The real command in a process of its own, once for the CLI: that `python -m harness` starts and that an
    # expected failure ends it with one line on stderr and exit status 1, no traceback, is the point here.
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    proc = subprocess.run([sys.executable, "-m", "harness", "status"], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert f"no Docker engine answers at unix://{tmp_path}/no.sock" in text
    assert "scripts/setup.sh" in text


def test_bad_setting_is_one_clear_line(capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_IMAGES", "newest")
    code, err = _cli(capsys, "status")
    assert code == 1
    assert "images must be one of auto, official, debian" in " ".join(err.split())
