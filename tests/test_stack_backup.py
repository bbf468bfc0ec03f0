"""Files with passwords that backups and restores write into containers (MySQL's client.cnf, the MongoDB tools'
config) are gone when the step ends -- also when the tool fails. A fake container records files and commands
(no Docker)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.backup import orchestration as bs
from harness.backup.archive import BackupError
from stack.mongodb import MONGO_CONFIG
from stack.mysql import MYSQL_OPTIONS

ROOT_PASSWORD = "root-pw-for-the-fake"  # a fake's value, checked to stay out of argv
APP_PASSWORD = "app-pw-for-the-fake"
PASSWD = b"root:x:0:0::/root:/bin/sh\nmysql:x:999:999::/:/bin/false\nmongodb:x:998:998::/:/bin/false\n"


@dataclass
class _Result:
    exit_code: int
    output: tuple[bytes, bytes]


@dataclass
class FakeContainer:
    """Files written by put_archive, removed by ``rm -f``; ``fails`` names the tool that exits 1."""

    fails: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    present_during_tool: list[set[str]] = field(default_factory=list)

    def get_archive(self, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        assert path == "/etc/passwd"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("passwd")
            info.size = len(PASSWD)
            tar.addfile(info, io.BytesIO(PASSWD))
        return iter([buf.getvalue()]), {}

    def put_archive(self, path: str, data: bytes) -> bool:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None and member.mode == 0o600
                    self.files[path.rstrip("/") + "/" + member.name] = handle.read()
        return True

    def exec_run(self, cmd: list[str], user: str = "", demux: bool = False) -> _Result:
        self.commands.append(list(cmd))
        if cmd[:2] == ["rm", "-f"]:
            for target in cmd[2:]:
                self.files.pop(target, None)
            return _Result(0, (b"", b""))
        if cmd[0] == "sh" and "command -v" in cmd[2]:
            return _Result(0, (b"/usr/bin/" + cmd[2].split()[2].encode() + b"\n", b""))
        tool = Path(cmd[-1] if cmd[0] == "sh" else cmd[0]).name
        self.present_during_tool.append(set(self.files))
        if tool == self.fails:
            return _Result(1, (b"", b"ERROR 1045: Access denied"))
        return _Result(0, (b"-- dump\n", b""))


class FakeTarget:
    def __init__(self, container: FakeContainer) -> None:
        self.container = container
        self.state_dir = Path("/nonexistent")

    def endpoint(self, name: str) -> Any:
        return SimpleNamespace(root_password=ROOT_PASSWORD, password=APP_PASSWORD, user="app", database="devstack")

    def containers(self, name: str) -> list[Any]:
        return [self.container]

    def running(self) -> list[str]:
        return ["mysql", "mongodb"]


SECRET_FILES = {"mysql": MYSQL_OPTIONS, "mongodb": MONGO_CONFIG}
STEPS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    # step -> (service, failing tool, call): through the orchestrator, which finds each service's ops in its SPEC
    "mysql backup": ("mysql", "mariadb-dump", lambda t: bs.capture_service(t, "mysql")),
    "mysql restore": ("mysql", "mariadb",
                      lambda t: bs.restore_service(t, "mysql", {"mysql/devstack.sql": b"-- dump\n"})),
    "mongodb backup": ("mongodb", "mongodump", lambda t: bs.capture_service(t, "mongodb")),
    "mongodb restore": ("mongodb", "mongorestore",
                        lambda t: bs.restore_service(t, "mongodb", {"mongodb/devstack.archive.gz": b"\x1f\x8b"})),
}


@pytest.mark.parametrize("fail", [False, True], ids=["success", "tool-fails"])
@pytest.mark.parametrize("step", STEPS)
def test_password_file_removed_after_the_step(step: str, fail: bool) -> None:
    service, tool, call = STEPS[step]
    container = FakeContainer(fails=tool if fail else None)
    if fail:
        with pytest.raises(BackupError, match=f"{tool} exited 1"):
            call(FakeTarget(container))
    else:
        call(FakeTarget(container))
    # The file was there while the tool ran (so the check below looks at the right path) ...
    assert container.present_during_tool and SECRET_FILES[service] in container.present_during_tool[-1]
    # ... and nothing the step wrote is left: not the password file, not a dump to restore.
    assert sorted(container.files) == []  # paths only: the contents hold (fake) passwords
    assert ["rm", "-f", SECRET_FILES[service]] == container.commands[-1][:3]
    argv = " ".join(" ".join(c) for c in container.commands)
    assert ROOT_PASSWORD not in argv and APP_PASSWORD not in argv
