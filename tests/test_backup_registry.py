"""Backup orchestration comes from the registry: a service added through ``stack.registry.register`` alone is
backed up with the operations its SPEC declares, skipped and reported when it declares no backup capability,
and refused by name when it claims ``backup=True`` without operations (no Docker: fake services and target)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fake_service import fake_spec

from harness.backup import orchestration as bs
from harness.backup.archive import BackupError, list_backups, read_artifacts
from stack import registry
from stack.backup_ops import BackupOps, BackupSource, Captured, StepFailed
from stack.service import MissingCapability, ServiceSpec

RESTORED: list[tuple[str, dict[str, bytes]]] = []


def _capture(src: BackupSource) -> list[Captured]:
    return [Captured("withops", "withops/data.json", b'{"rows": 3}', 0.0, {"tool": "fake"})]


def _restore(src: BackupSource, files: Mapping[str, bytes]) -> None:
    RESTORED.append((src.endpoint.name, dict(files)))


def _failing_capture(src: BackupSource) -> list[Captured]:
    raise StepFailed("fake-dump exited 2: disk full")


def _spec(name: str, backup: bool, ops: BackupOps | None) -> ServiceSpec:
    return fake_spec(name, backup=backup, backup_ops=ops)


SPECS = {
    "withops": _spec("withops", True, BackupOps(_capture, _restore, lambda ep: "1.2.3")),
    "noops": _spec("noops", True, None),  # claims backup, declares no operations
    "nobackup": _spec("nobackup", False, None),  # declares no backup capability
    "failing": _spec("failing", True, BackupOps(_failing_capture, _restore, lambda ep: "1")),
}


@pytest.fixture(autouse=True)
def fake_services() -> Iterator[None]:
    """The fake services registered as a user would: a module with a SPEC, through the registry alone."""
    for name, spec in SPECS.items():
        module = types.ModuleType(f"fake_backup_{name}")
        module.SPEC = spec  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        registry.register(module.__name__, name)
    RESTORED.clear()
    yield
    for name in SPECS:
        registry.unregister(name)
        sys.modules.pop(f"fake_backup_{name}", None)


class FakeTarget:
    def __init__(self, running: list[str], state_dir: Path) -> None:
        self._running = running
        self.state_dir = state_dir
        self.looked_up: list[str] = []

    def endpoint(self, name: str) -> Any:
        self.looked_up.append(name)
        return SimpleNamespace(name=name)

    def containers(self, name: str) -> list[Any]:
        return []

    def running(self) -> list[str]:
        return list(self._running)


def test_service_with_backup_ops_is_backed_up_and_restored_through_its_spec(tmp_path: Path) -> None:
    target = FakeTarget(["withops"], tmp_path)
    manifest = bs.create(target, tmp_path / "backups", None, None)
    assert manifest.services == ["withops"] and manifest.versions == {"withops": "1.2.3"}
    assert [a.name for a in manifest.artifacts] == ["withops/data.json"]
    timings = bs.restore(target, tmp_path / "backups", manifest.id, None, None, allow_unauthenticated=True)
    assert list(timings) == ["withops"]
    assert RESTORED == [("withops", {"withops/data.json": b'{"rows": 3}'})]


def test_backup_true_without_ops_is_refused_by_name(tmp_path: Path) -> None:
    target = FakeTarget(["withops", "noops"], tmp_path)
    with pytest.raises(MissingCapability) as refused:
        bs.create(target, tmp_path / "backups", None, None)
    assert (refused.value.service, refused.value.capability) == ("noops", "backup_ops")
    assert isinstance(refused.value, BackupError)  # the CLI prints it as an error line
    assert str(refused.value) == ("service 'noops' has no 'backup_ops' capability; to add it: give its ServiceSpec "
                                  "backup_ops=BackupOps(capture, restore, version, ...) (stack.backup_ops)")
    # Refused before anything was captured or written.
    assert target.looked_up == [] and list_backups(tmp_path / "backups") == []


def test_backup_false_is_skipped_and_reported(tmp_path: Path) -> None:
    target = FakeTarget(["nobackup", "withops"], tmp_path)
    lines: list[str] = []
    manifest = bs.create(target, tmp_path / "backups", None, None, log=lines.append)
    assert manifest.services == ["withops"]
    assert lines == ["nobackup: not backed up: no backup capability"]
    assert "nobackup" not in target.looked_up


def test_services_option_naming_a_service_without_backup_is_refused(tmp_path: Path) -> None:
    target = FakeTarget(["nobackup", "withops"], tmp_path)
    with pytest.raises(MissingCapability) as refused:
        bs.create(target, tmp_path / "backups", ["withops", "nobackup"], None)
    assert (refused.value.service, refused.value.capability) == ("nobackup", "backup")
    assert target.looked_up == []


def test_restore_of_a_service_without_ops_touches_nothing(tmp_path: Path) -> None:
    """A backup holding a service that (now) declares no backup operations restores nothing at all."""
    root = tmp_path / "backups"
    manifest = bs.create(FakeTarget(["withops"], tmp_path), root, None, None)
    artifacts = read_artifacts(root, manifest.id, None, allow_unauthenticated=True)
    (art, data), = artifacts.values()
    artifacts["noops/x"] = (type(art)(**{**art.__dict__, "service": "noops", "name": "noops/x"}), data)
    with pytest.raises(MissingCapability, match="'noops' has no 'backup_ops' capability; to add it: give "):
        bs.restore_verified(FakeTarget(["withops", "noops"], tmp_path), artifacts, None)
    assert RESTORED == []


def test_a_failed_step_is_a_backup_error_naming_the_tool(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"^fake-dump exited 2: disk full$"):
        bs.create(FakeTarget(["failing"], tmp_path), tmp_path / "backups", None, None)


def test_cli_backup_create_prints_the_skipped_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(cli, "_kept_stack", lambda settings: FakeTarget(["withops", "nobackup"], tmp_path))
    assert cli.main(["backup", "create"]) == 0
    err = capsys.readouterr().err
    assert "nobackup: not backed up: no backup capability" in err and "1 of 1 artifacts stored" in err


def test_cli_backup_create_refuses_backup_true_without_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(cli, "_kept_stack", lambda settings: FakeTarget(["withops", "noops"], tmp_path))
    assert cli.main(["backup", "create"]) == 1
    assert "error: service 'noops' has no 'backup_ops' capability; to add it: " in capsys.readouterr().err


def test_every_registered_backup_service_declares_its_ops() -> None:
    """The built-in services: each one with ``backup=True`` declares ``backup_ops`` (Vault is the harness's)."""
    for name in ("withops", "noops", "nobackup", "failing"):
        registry.unregister(name)
    lacking = [s.name for s in registry.specs() if s.backup and s.backup_ops is None and s.name != bs.VAULT]
    assert lacking == []
    assert registry.with_capability("backup")[0] == bs.VAULT  # the root of trust is restored first
