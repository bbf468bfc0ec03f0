"""Pruning of the runs' private state (``<state_dir>/runs/<run-id>/``), on temp directories (no Docker)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import harness.stacks.docker_env
from harness.cli import main
from harness.settings import load_settings
from harness.stacks.runstate import OWNER_FILE, owner_alive, prune_run_state, prune_runs, write_owner
from stack.base import LABEL_RUN_ID
from stack.errors import ConfigError


def _ids(count: int, day: str = "20250101") -> list[str]:
    return [f"{day}T1200{i:02d}-{i:06x}" for i in range(count)]


def _make(runs: Path, run_ids: list[str]) -> None:
    for run_id in run_ids:
        (runs / run_id / "pki").mkdir(parents=True)
        (runs / run_id / "vault-init.json").write_text('{"keys": ["k"], "root_token": "t"}')


def _left(runs: Path) -> list[str]:
    return sorted(p.name for p in runs.iterdir())


def _nobody(_: Path) -> bool:
    return False


def test_keeps_the_newest_finished_runs(tmp_path):
    ids = _ids(6)
    _make(tmp_path, ids)
    result = prune_runs(tmp_path, 3, live=(), alive=_nobody)
    assert result.removed == ids[:3] and result.kept == ids[3:] and result.protected == []
    assert _left(tmp_path) == ids[3:]


def test_keep_zero_removes_every_finished_run(tmp_path):
    _make(tmp_path, _ids(2))
    assert prune_runs(tmp_path, 0, live=(), alive=_nobody).kept == []
    assert _left(tmp_path) == []


def test_runs_with_containers_are_protected_and_not_counted(tmp_path):
    ids = _ids(5)
    _make(tmp_path, ids)
    live = {ids[0], ids[4]}  # the oldest: a kept `up` stack; the newest: a session still running
    result = prune_runs(tmp_path, 1, live=live, alive=_nobody)
    assert result.protected == [ids[0], ids[4]] and result.kept == [ids[3]] and result.removed == ids[1:3]
    assert _left(tmp_path) == [ids[0], ids[3], ids[4]]


def test_a_live_owner_protects_unless_its_run_is_finished(tmp_path):
    ids = _ids(3)
    _make(tmp_path, ids)
    for run_id in ids:
        write_owner(tmp_path / run_id, keep=False)  # this process: alive
    result = prune_runs(tmp_path, 0, live=(), finished={ids[1]})
    assert result.protected == [ids[0], ids[2]] and result.removed == [ids[1]]


def test_other_directories_and_files_are_left_alone(tmp_path):
    _make(tmp_path, _ids(1))
    (tmp_path / "notes").mkdir()
    (tmp_path / "20250101T120000-zzzzzz").mkdir()  # not a run id
    (tmp_path / "20250101T120001-000001.json").write_text("{}")
    (tmp_path / "20250101T120002-000002").symlink_to(tmp_path / "notes")
    prune_runs(tmp_path, 0, live=(), alive=_nobody)
    assert _left(tmp_path) == ["20250101T120000-zzzzzz", "20250101T120001-000001.json",
                               "20250101T120002-000002", "notes"]
    assert (tmp_path / "notes").is_dir()


def test_no_runs_directory_is_nothing_to_do(tmp_path):
    result = prune_runs(tmp_path / "absent", 3, live=())
    assert (result.removed, result.kept, result.protected) == ([], [], [])


def test_negative_keep_is_refused(tmp_path):
    with pytest.raises(ValueError, match="keep must be >= 0, not -1"):
        prune_runs(tmp_path, -1, live=())


def test_a_directory_that_cannot_be_removed_is_reported(tmp_path, monkeypatch):
    ids = _ids(2)
    _make(tmp_path, ids)

    def refuse(path, *args, **kwargs):
        if Path(path).name == ids[0]:
            raise PermissionError(13, "Permission denied")
        real_rmtree(path, *args, **kwargs)

    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", refuse)
    result = prune_runs(tmp_path, 0, live=(), alive=_nobody)
    assert result.removed == [ids[1]] and result.failed == {ids[0]: "PermissionError: Permission denied"}
    assert _left(tmp_path) == [ids[0]]


# ------------------------------------------------------------------------------------------- owners


def test_owner_file_is_private_and_names_this_process(tmp_path):
    write_owner(tmp_path, keep=True)
    path = tmp_path / OWNER_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"pid": os.getpid(), "host": socket.gethostname(), "keep": True}
    assert owner_alive(tmp_path) is True


def test_a_dead_owner_is_not_alive(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True, timeout=60)
    (tmp_path / OWNER_FILE).write_text(json.dumps({"pid": int(proc.stdout), "host": socket.gethostname()}))
    assert owner_alive(tmp_path) is False


@pytest.mark.parametrize(("content", "alive"), [
    (None, False),                                            # no owner record (a run from before owners)
    ("{not json", False),
    (json.dumps({"pid": "x", "host": "h"}), False),
    (json.dumps({"pid": 1, "host": "some-other-machine"}), True),  # not ours to judge
])
def test_owner_records_that_do_not_prove_a_dead_owner(tmp_path, content, alive):
    if content is not None:
        (tmp_path / OWNER_FILE).write_text(content)
    assert owner_alive(tmp_path) is alive


# --------------------------------------------------------------------------------- engine and `down`


class _Labelled:
    """A container (labels under Config) or a network (labels at the top), as docker-py's attrs hold them."""

    def __init__(self, run_id: str, network: bool = False) -> None:
        labels = {"Labels": {LABEL_RUN_ID: run_id}}
        self.attrs = labels if network else {"Config": labels}


class _Listing:
    def __init__(self, items: list[_Labelled], error: Exception | None = None) -> None:
        self.items, self.error = items, error

    def list(self, filters: dict[str, str], **_: object) -> list[_Labelled]:
        if self.error is not None:
            raise self.error
        return [] if "=" in filters["label"] else list(self.items)  # no run is labelled keep=true or by id here


class FakeClient:
    """Docker client stand-in: containers and networks labelled with run ids (nothing is removed)."""

    def __init__(self, containers: list[str] = (), networks: list[str] = (), error: Exception | None = None):
        self.containers = _Listing([_Labelled(i) for i in containers], error)
        self.networks = _Listing([_Labelled(i, network=True) for i in networks], error)


def test_prune_run_state_asks_the_engine_which_runs_are_live(tmp_path):
    ids = _ids(4)
    _make(tmp_path / "runs", ids)
    result = prune_run_state(FakeClient(containers=[ids[0]], networks=[ids[1]]), tmp_path, 0)
    assert result is not None and result.protected == ids[:2] and result.removed == ids[2:]


def test_stacks_ended_earlier_by_this_process_count_as_finished(tmp_path):
    """A session ends its stacks one by one; its pid (their owner) is alive all along. The last prune must
    still see the ones ended before as finished, so only ``keep`` of them stay."""
    ids = _ids(3, day="20250202")
    _make(tmp_path / "runs", ids)
    for run_id in ids:
        write_owner(tmp_path / "runs" / run_id, keep=False)
    for ended, run_id in enumerate(ids, start=1):
        client = FakeClient(containers=ids[ended:])  # this one's containers are gone now
        result = prune_run_state(client, tmp_path, 1, finished={run_id})
        assert result is not None and result.protected == ids[ended:]
    assert result.kept == [ids[-1]] and _left(tmp_path / "runs") == [ids[-1]]


def test_no_answer_from_the_engine_removes_nothing(tmp_path):
    _make(tmp_path / "runs", _ids(2))
    assert prune_run_state(FakeClient(error=ConnectionError("engine gone")), tmp_path, 0) is None
    assert len(_left(tmp_path / "runs")) == 2


def test_down_prunes_finished_runs_and_keeps_the_setting(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("HARNESS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HARNESS_KEEP_RUN_STATE", "2")
    ids = _ids(5)
    _make(tmp_path / ".harness" / "runs", ids)
    monkeypatch.setattr(harness.stacks.docker_env, "docker_client", lambda: FakeClient(containers=[ids[0]]))
    assert main(["down"]) == 0
    assert _left(tmp_path / ".harness" / "runs") == [ids[0], ids[3], ids[4]]
    err = capsys.readouterr().err
    assert "removed 2 finished run(s), kept the newest 2 (HARNESS_KEEP_RUN_STATE=2) and 1 with containers" in err


def test_keep_run_state_setting(tmp_path):
    assert load_settings({}, cwd=tmp_path).keep_run_state == 3
    assert load_settings({"HARNESS_KEEP_RUN_STATE": "0"}, cwd=tmp_path).keep_run_state == 0
    with pytest.raises(ConfigError, match="keep_run_state must be >= 0"):
        load_settings({"HARNESS_KEEP_RUN_STATE": "-1"}, cwd=tmp_path)
