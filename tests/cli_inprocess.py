"""``python -m harness ARGS`` through ``cli.main`` in the self-test's own process (tests/test_cli.py starts the real
command once): the drills' CLI self-tests share it (``tests/`` is on ``sys.path``, see pyproject's pythonpath)."""

from __future__ import annotations

import pytest

from harness.cli import main as cli_main


def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of the CLI with no engine to reach."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    capsys.readouterr()
    try:
        code = cli_main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    printed = capsys.readouterr()
    return code, printed.out, printed.err
