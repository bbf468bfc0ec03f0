"""``backup verify`` and ``backup restore`` through the CLI (``harness.cli.main`` in process), on synthetic backups
in a temp state dir (no Docker): what is authenticated and what is not, and one exact line for every refusal.

A backup is *authenticated* when its manifest's HMAC was checked under the key derived from the passphrase: an
encrypted backup verified or restored with ``--passphrase-file``. Anything else -- an unencrypted backup, or one
whose encryption block was removed -- is not: ``verify`` says so and exits 3, ``restore`` refuses, unless
``--allow-unauthenticated``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import stack_backup
from harness.backup import Captured, build_backup
from harness.cli import main

PASS = b"correct horse battery staple"
SERVICES = ["postgres", "mysql", "rabbitmq"]
LIMIT = "the SHA-256 checks detect accidental corruption only, not someone who rewrites files and manifest on purpose"


def _items() -> list[Captured]:
    return [Captured("postgres", "postgres/devstack.dump", b"PGDMP-one", 0.1),
            Captured("postgres", "postgres/globals.sql", b"--\n-- PostgreSQL database cluster dump\n--\n", 0.1),
            Captured("mysql", "mysql/devstack.sql", b"-- MariaDB dump\nCREATE TABLE accounts (id int);\n", 0.1),
            Captured("rabbitmq", "rabbitmq/definitions.json", b'{"queues": []}', 0.1)]


def _flat(text: str) -> str:
    """Output with rich's line wrapping undone (it wraps at 160 columns outside a terminal)."""
    return " ".join(text.split())


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state" / "backups"


@pytest.fixture
def passfile(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase"
    path.write_bytes(PASS)
    path.chmod(0o600)
    return path


class Target:
    """The `up` stack as a restore target: answers what a restore asks before it touches a service."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.state_dir = Path("/nonexistent")

    def endpoint(self, name: str) -> Any:
        self.calls.append(f"endpoint {name}")
        raise AssertionError("the service restores are spies: nothing needs an endpoint")

    def containers(self, name: str) -> list[Any]:
        self.calls.append(f"containers {name}")
        return []

    def running(self) -> list[str]:
        self.calls.append("running")
        return ["vault", *SERVICES]


class Restores:
    """The `up` stack (``_kept_stack``), the fresh stack (``engine.Stack``) and every per-service restore replaced
    by recorders: a refused restore leaves all three empty."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from harness import cli, engine

        self.target = Target()
        self.stacks: list[str] = []
        self.services: list[str] = []
        monkeypatch.setattr(cli, "_kept_stack", lambda settings: self.stacks.append("up stack") or self.target)
        monkeypatch.setattr(stack_backup, "restore_service", lambda t, name, files: self.services.append(name))
        stacks = self.stacks

        class NoStack:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                stacks.append("fresh stack")
                raise AssertionError("a refused restore started a stack")

        monkeypatch.setattr(engine, "Stack", NoStack)

    @property
    def untouched(self) -> bool:
        return self.stacks == [] and self.target.calls == [] and self.services == []


@pytest.fixture
def restores(monkeypatch: pytest.MonkeyPatch) -> Restores:
    return Restores(monkeypatch)


# ------------------------------------------------------------------------------------------ authentication


def test_verify_of_an_authenticated_backup_says_so_and_exits_0(root: Path, passfile: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=PASS)
    assert main(["backup", "verify", backup.id, "--passphrase-file", str(passfile)]) == 0
    shown = capsys.readouterr()
    assert _flat(shown.out).endswith("verdict: ok, authentic: HMAC-SHA256 over the manifest and backup id, under "
                                     "the passphrase's key")
    assert shown.err == ""


def test_verify_of_an_unencrypted_backup_is_not_authenticated_and_exits_3(root: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    assert main(["backup", "verify", backup.id]) == 3
    shown = capsys.readouterr()
    assert _flat(shown.out).endswith(
        f"verdict: NOT AUTHENTICATED (unencrypted backup): {LIMIT}; if this backup was made with --encrypt, verify "
        "it with --passphrase-file; to accept it unauthenticated, add --allow-unauthenticated")
    assert shown.err == ""


def test_verify_accepts_an_unauthenticated_backup_only_when_told(root: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    assert main(["backup", "verify", backup.id, "--allow-unauthenticated"]) == 0
    assert _flat(capsys.readouterr().out).endswith(
        f"verdict: ok, NOT AUTHENTICATED (accepted with --allow-unauthenticated): {LIMIT}")


def test_verify_of_an_unauthenticated_backup_with_a_problem_exits_1(root: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A problem outranks the missing authentication: exit 1 and the problem on one error line, with or without
    --allow-unauthenticated."""
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    (root / backup.id / "mysql" / "devstack.sql").unlink()
    for extra in ([], ["--allow-unauthenticated"]):
        assert main(["backup", "verify", backup.id, *extra]) == 1
        shown = capsys.readouterr()
        assert _flat(shown.err) == f"error: backup {backup.id} does not verify: mysql/devstack.sql: missing"
        assert "verdict:" not in shown.out


def test_restore_of_an_authenticated_backup_goes_ahead(root: Path, passfile: Path, restores: Restores,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The control: the recorders see a restore that is not refused."""
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=PASS)
    assert main(["backup", "restore", backup.id, "--yes", "--passphrase-file", str(passfile)]) == 0
    assert restores.services == SERVICES and restores.stacks == ["up stack"]
    assert "NOT AUTHENTICATED" not in capsys.readouterr().err


@pytest.mark.parametrize("fresh", [[], ["--fresh"]], ids=["up-stack", "fresh"])
def test_restore_refuses_an_unauthenticated_backup(root: Path, restores: Restores, fresh: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    assert main(["backup", "restore", backup.id, "--yes", *fresh]) == 1
    assert _flat(capsys.readouterr().err) == (
        f"error: backup {backup.id} is NOT AUTHENTICATED (unencrypted backup), nothing restored: {LIMIT}; if it "
        "was made with --encrypt, restore it with --passphrase-file; to restore it unauthenticated, add "
        "--allow-unauthenticated")
    assert restores.untouched


def test_restore_of_an_unauthenticated_backup_when_told(root: Path, restores: Restores,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    assert main(["backup", "restore", backup.id, "--yes", "--allow-unauthenticated"]) == 0
    assert restores.services == SERVICES
    assert _flat(capsys.readouterr().err).startswith(
        f"note: restoring backup {backup.id} NOT AUTHENTICATED (--allow-unauthenticated): {LIMIT} restored "
        f"{backup.id} in ")


def test_library_restore_refuses_an_unauthenticated_backup(root: Path, restores: Restores) -> None:
    """The same gate for the Python API the suites use: ``allow_unauthenticated=True`` is the opt-in."""
    from harness.backup import BackupError

    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    with pytest.raises(BackupError) as refused:
        stack_backup.restore(restores.target, root, backup.id, None, None)
    assert str(refused.value).startswith(f"backup {backup.id} is NOT AUTHENTICATED (unencrypted backup), nothing "
                                         "restored: ")
    assert restores.untouched
    timings = stack_backup.restore(restores.target, root, backup.id, None, None, allow_unauthenticated=True)
    assert list(timings) == SERVICES == restores.services
