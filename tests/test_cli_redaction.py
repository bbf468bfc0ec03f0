"""`python -m harness up` prints a failed service's error and log tail: the run's secrets must be masked there."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from harness import cli
from harness.reports import redact
from harness.settings import load_settings
from harness.stacks import engine

SECRET = "pw-Qh7uT2mZk9xLr4Vb"  # a fake password of the shape the harness generates (length >= 8)


class _FailingStack:
    def __init__(self, settings: Any, keep: bool, log: Any) -> None:
        self.run_id = "run-test"
        self.client = None
        self.report = type("R", (), {"services": {}})()
        self.errors = {"postgres": RuntimeError(f"login refused for password {SECRET}")}

    def resolve(self, services: list[str]) -> None:
        return None

    def start(self, services: list[str]) -> None:
        return None

    def logs(self, name: str, tail: int) -> str:
        return f"FATAL: password authentication failed (tried {SECRET})"


@pytest.fixture
def registered_secret():
    redact.register(SECRET)
    yield
    redact.forget()


def test_up_failure_masks_secrets_in_error_and_logs(monkeypatch, capsys, registered_secret):
    removed: list[str] = []
    monkeypatch.setattr(engine, "Stack", _FailingStack)
    monkeypatch.setattr(engine, "remove_run", lambda client, run_id: removed.append(run_id))
    monkeypatch.setattr(cli, "_print_images", lambda services: None)
    code = cli.cmd_up(argparse.Namespace(services=["postgres"], timings=False, json=False), load_settings())
    out = capsys.readouterr().err  # the CLI talks on stderr
    assert code == 1
    assert removed == ["run-test"]
    leaked = SECRET in out  # a bool: the assertion message must not carry the secret itself
    assert not leaked, "the failed service's error or log tail printed the registered password"
    assert "login refused for password ***" in out
    assert "password authentication failed (tried ***)" in out
