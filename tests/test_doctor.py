"""``python -m harness doctor`` (harness/doctor.py): every check against a fake of the broken thing, asserting the
exact fix line. The runs against this machine's engine (healthy, engine stopped, image missing, stale container)
are in ``suites/doctor/test_doctor_machine.py``: this layer needs no Docker.
"""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import docker.errors
from cryptography import x509

from harness import doctor
from harness.doctor import (
    FAIL,
    INFO,
    OK,
    VENV_FIX,
    cert_checks,
    check_compose,
    check_compose_vault,
    check_engine,
    check_images,
    check_ports,
    check_stacks,
    check_stale,
    check_venv,
    finished_runs,
)
from harness.images import LABEL_CONTEXT_DIGEST, context_digest
from harness.settings import load_settings
from harness.trust.certs import status
from stack.base import LABEL_KEEP, LABEL_RUN_ID, TlsInfo
from stack.errors import DockerUnavailable
from stack.images import BASE_IMAGE_LOCAL
from stack.registry import CATALOGUE
from stack.selfsigned import self_signed
from stack.tlsprobe import int_to_serial

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------- fakes


class FakeImages:
    def __init__(self, images: dict[str, dict[str, str]]) -> None:
        self.images = images  # ref -> labels

    def get(self, ref: str) -> Any:
        if ref not in self.images:
            raise docker.errors.ImageNotFound(ref)
        return SimpleNamespace(id=f"sha256:{abs(hash(ref)):x}", labels=self.images[ref])


class FakeList:
    def __init__(self, objects: list[Any]) -> None:
        self.objects = objects

    def list(self, all: bool = False, filters: dict[str, Any] | None = None, ignore_removed: bool = False) -> list[Any]:
        wanted = (filters or {}).get("label", "")
        key, _, value = wanted.partition("=")
        return [o for o in self.objects if key in o.labels and (not value or o.labels[key] == value)]


def fake_container(name: str, labels: dict[str, str], status: str = "running", health: str | None = None,
                   ports: dict[str, Any] | None = None) -> Any:
    state: dict[str, Any] = {"Status": status}
    if health:
        state["Health"] = {"Status": health}
    return SimpleNamespace(name=name, labels=labels, status=status,
                           attrs={"Config": {"Labels": labels}, "State": state,
                                  "NetworkSettings": {"Ports": ports or {}}})


def fake_client(images: dict[str, dict[str, str]] | None = None, containers: list[Any] | None = None,
                networks: list[Any] | None = None) -> Any:
    return SimpleNamespace(images=FakeImages(images or {}), containers=FakeList(containers or []),
                           networks=FakeList(networks or []))


def settings(**env: str) -> Any:
    return load_settings({f"HARNESS_{k.upper()}": v for k, v in env.items()}, cwd=ROOT)


# ------------------------------------------------------------------------------------- engine (fakes)


def test_engine_not_answering_fails_with_the_fix():
    def connect() -> Any:
        raise DockerUnavailable("no Docker engine answers at unix:///nowhere (Connection refused); start one: ...")

    check, client = check_engine(connect)
    assert client is None
    assert (check.status, check.detail) == (FAIL, "not reachable: no Docker engine answers at unix:///nowhere "
                                                  "(Connection refused)")
    assert check.fix == ("start the engine: as root run `bash scripts/setup.sh` (installs Debian's docker.io and "
                         "starts dockerd), or point DOCKER_HOST at a running engine")


def test_engine_with_too_little_disk_fails(tmp_path):
    client = SimpleNamespace(version=lambda: {"Version": "20.10", "ApiVersion": "1.41"},
                             info=lambda: {"Driver": "overlay2", "CgroupVersion": "2", "CgroupDriver": "systemd",
                                           "DockerRootDir": str(tmp_path)})
    check, _ = check_engine(lambda: client, min_free_gb=1e9)
    assert check.status == FAIL and check.detail.startswith("20.10 (API 1.41), storage overlay2, cgroup v2 systemd, ")
    assert check.fix.startswith(f"free disk space under {tmp_path}: at least 1000000000 GB")
    check, _ = check_engine(lambda: client, min_free_gb=0)
    assert check.status == OK


# ------------------------------------------------------------------------------------- images (fakes)


def _current_postgres(base: str = BASE_IMAGE_LOCAL) -> dict[str, dict[str, str]]:
    spec = CATALOGUE["postgres"]
    images = FakeImages({base: {}})
    digest = context_digest(spec.context_dir, images.get(base).id, {"BASE": base})
    return {base: {}, spec.debian: {LABEL_CONTEXT_DIGEST: digest}}


def _postgres_check(present: dict[str, dict[str, str]], **env: str) -> Any:
    chosen = {"postgres": CATALOGUE["postgres"]}
    (check,) = check_images(fake_client(present), settings(**env), chosen, registry=lambda ref: False)
    return check


def test_image_built_from_the_current_context_passes():
    check = _postgres_check(_current_postgres(), images="debian")
    assert check.status == OK and "build hash current" in check.detail
    assert "official postgres:15.10: not pullable (no registry answers)" in check.detail


def test_missing_image_fails_with_the_build_command():
    check = _postgres_check({BASE_IMAGE_LOCAL: {}}, images="debian")
    assert check.status == FAIL
    assert check.detail == (f"{CATALOGUE['postgres'].debian} is not built (official postgres:15.10: not pullable "
                            "(no registry answers))")
    assert check.fix == "run `python -m harness images build --service postgres`"


def test_stale_image_fails_with_the_build_command():
    images = _current_postgres()
    images[CATALOGUE["postgres"].debian] = {LABEL_CONTEXT_DIGEST: "built-from-an-older-context"}
    check = _postgres_check(images, images="debian")
    assert check.status == FAIL and check.detail.endswith("is stale: its build context changed since it was built")
    assert check.fix == "run `python -m harness images build --service postgres`"


def test_missing_override_fails_with_its_variable():
    check = _postgres_check(_current_postgres(), images="debian", image_postgres="example/absent:1")
    assert (check.status, check.fix) == (FAIL, "load it (`docker load`) or unset HARNESS_IMAGE_POSTGRES")


def test_official_set_without_registry_fails_and_optional_service_is_info():
    chosen = {"postgres": CATALOGUE["postgres"], "mongodb": CATALOGUE["mongodb"]}
    checks = check_images(fake_client({}), settings(images="official"), chosen, registry=lambda ref: False)
    assert [c.status for c in checks] == [FAIL, INFO]
    assert checks[0].fix == ("load it (`docker load`), or build the Debian set: "
                             "`python -m harness images build --set debian --service postgres`")
    checks = check_images(fake_client({}), settings(images="official"), chosen, registry=lambda ref: True)
    assert [c.status for c in checks] == [OK, OK]


# ---------------------------------------------------------------------------- ports and stacks (fakes)


def test_busy_port_fails_unless_the_compose_stack_holds_it(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        compose = tmp_path / "docker-compose.yml"
        compose.write_text(f'    ports:\n      - "127.0.0.1:${{DSH_PORT_THING:-{port}}}:5432"\n')
        check = check_ports(compose, {}, [])
        assert (check.status, check.detail) == (FAIL, f"in use by something else on 127.0.0.1: {port} (DSH_PORT_THING)")
        assert check.fix == (f"stop what listens there (`ss -ltnp 'sport = :{port}'`), or give the compose stack "
                             "other ports: DSH_PORT_THING=<free port> in the environment of `python -m harness "
                             "compose up`")
        assert check_ports(compose, {}, [port]).status == OK  # published by the compose stack itself
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            free = spare.getsockname()[1]
        assert check_ports(compose, {"DSH_PORT_THING": str(free)}, []).status == OK


def test_every_port_of_the_compose_file_is_read():
    ports = doctor.compose_ports(ROOT / "compose" / "docker-compose.yml", {"DSH_PORT_VAULT": "18200"})
    assert ("DSH_PORT_VAULT", 18200) in ports and ("DSH_PORT_POSTGRES", 5432) in ports
    assert len(ports) == len({v for v, _ in ports}) >= 10


def test_kept_stack_with_a_stopped_container_fails():
    kept = {LABEL_RUN_ID: "20260101T000000-aaaaaa", LABEL_KEEP: "true"}
    client = fake_client(containers=[fake_container("dsh-aaaaaa-vault", kept),
                                     fake_container("dsh-aaaaaa-postgres", kept, status="exited")])
    (check,) = check_stacks(client, "devstack-harness")
    assert (check.check, check.status) == ("kept stack 20260101T000000-aaaaaa", FAIL)
    assert check.detail == "2 container(s): dsh-aaaaaa-postgres exited"
    assert check.fix == "run `python -m harness down` and `python -m harness up` again"


def test_unhealthy_compose_container_fails():
    project = {"com.docker.compose.project": "devstack-harness", "com.docker.compose.service": "postgres"}
    client = fake_client(containers=[fake_container("devstack-harness-postgres-1", project, health="unhealthy")])
    (check,) = check_stacks(client, "devstack-harness")
    assert (check.status, check.fix) == (FAIL, "run `python -m harness compose up` (it brings the stack back)")
    assert check.detail == "1 container(s): postgres running (unhealthy)"


def test_sealed_compose_vault_fails():
    vault = fake_container("v", {}, ports={"8200/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18200"}]})

    def sealed(url: str, timeout: float) -> Any:
        assert url == "http://127.0.0.1:18200/v1/sys/seal-status"
        return SimpleNamespace(json=lambda: {"sealed": True})

    check = check_compose_vault({"vault": vault}, get=sealed)
    assert (check.status, check.detail) == (FAIL, "sealed (http://127.0.0.1:18200)")
    assert check.fix == "run `python -m harness compose up` (it unseals Vault with the keys in .harness/compose)"
    unsealed = SimpleNamespace(json=lambda: {"sealed": False})
    check = check_compose_vault({"vault": vault}, get=lambda url, timeout: unsealed)
    assert check.status == OK
    assert check_compose_vault({}).status == INFO


# ---------------------------------------------------------------------------------- compose (fakes)


def _fake_compose(bin_dir: Path, script: str) -> None:
    """A ``docker-compose`` on a PATH that holds nothing else (no ``docker``: the v2 plugin is not found)."""
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "docker-compose"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_broken_compose_fails_with_what_it_said(tmp_path, monkeypatch):
    said = "ImportError: cannot import name 'Mapping' from 'collections'"  # docker-compose 1.25 on Python 3.10
    _fake_compose(tmp_path / "bin", f'echo "{said}" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    check = check_compose()
    assert (check.check, check.status) == ("compose", FAIL)
    assert check.detail == ("no compose found (docker compose: not on PATH; docker-compose version: exit 1 "
                            "ImportError: cannot import name 'Mapping' from 'collections'); install Debian's "
                            "docker-compose (`bash scripts/setup.sh` does) or the docker compose v2 plugin")
    assert check.fix == ("install Debian's docker-compose (`bash scripts/setup.sh` does) or the docker compose v2 "
                         "plugin")


def test_working_compose_passes_with_its_version(tmp_path, monkeypatch):
    _fake_compose(tmp_path / "bin", 'case "$*" in "version --short") echo 1.29.2;; *) echo "docker-compose version '
                                    '1.29.2";; esac\n')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    check = check_compose()
    assert (check.status, check.detail) == (OK, "docker-compose (v1) 1.29.2")


# ------------------------------------------------------------------------------ certificates (fakes)

ROTATE_FIX = "run `python -m harness certs rotate`"


@contextmanager
def tls_listener(cert_pem: str, key_pem: str, tmp_path: Path) -> Iterator[int]:
    """A TLS listener on 127.0.0.1 presenting ``cert_pem``, serving connections until the block ends."""
    (tmp_path / "served.pem").write_text(cert_pem)
    (tmp_path / "served.key").write_text(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "served.pem", tmp_path / "served.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        listener.close()


def _served_rows(tmp_path: Path, days: int, vault_issued: str | None = None) -> tuple[list[Any], str]:
    """What ``certs status`` reads off a listener serving a certificate valid for ``days`` (the listener's CA file
    is the certificate itself), expecting Vault's serial to be ``vault_issued`` (default: the served one)."""
    cert_pem, key_pem = self_signed("localhost", days=days)
    (tmp_path / "ca.pem").write_text(cert_pem)
    served = int_to_serial(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number)
    with tls_listener(cert_pem, key_pem, tmp_path) as port:
        endpoint = SimpleNamespace(alias="dsh-abc123-postgres",
                                   tls=TlsInfo(port, "tls", vault_issued or served, str(tmp_path / "ca.pem"), False))
        return status({"postgres": endpoint}), served


def test_certificate_about_to_expire_fails_with_rotate(tmp_path):
    rows, serial = _served_rows(tmp_path, days=1)
    (check,) = cert_checks("run-1", rows, 2.0, ROTATE_FIX)
    assert check.check == f"certificate dsh-abc123-postgres :{rows[0].target.port} (run-1)"
    assert (check.status, check.detail, check.fix) == (
        FAIL, f"1.0 days left, serial {serial}, TLSv1.3 (minimum 2)", ROTATE_FIX)


def test_certificate_vault_did_not_issue_fails_with_rotate(tmp_path):
    other = int_to_serial(x509.random_serial_number())
    rows, serial = _served_rows(tmp_path, days=30, vault_issued=other)
    (check,) = cert_checks("run-1", rows, 2.0, ROTATE_FIX)
    assert (check.status, check.detail, check.fix) == (
        FAIL, f"30.0 days left, serial {serial}, TLSv1.3, not the certificate Vault issued", ROTATE_FIX)


def test_certificate_vault_issued_with_days_left_passes(tmp_path):
    rows, serial = _served_rows(tmp_path, days=30)
    (check,) = cert_checks("run-1", rows, 2.0, ROTATE_FIX)
    assert (check.status, check.detail) == (OK, f"30.0 days left, serial {serial}, TLSv1.3")


def test_unreachable_listener_fails_with_the_error(tmp_path):
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    (tmp_path / "ca.pem").write_text(self_signed("localhost")[0])
    endpoint = SimpleNamespace(alias="dsh-abc123-postgres",
                               tls=TlsInfo(port, "tls", "0a:0b", str(tmp_path / "ca.pem"), False))
    (check,) = cert_checks("run-1", status({"postgres": endpoint}), 2.0, ROTATE_FIX)
    assert (check.check, check.status, check.fix) == (f"certificate postgres :{port} (run-1)", FAIL, ROTATE_FIX)
    assert check.detail == "ConnectionRefusedError: [Errno 111] Connection refused"


# ---------------------------------------------------------------------------------- leftovers (fakes)


def test_stale_container_and_old_run_state_fail_with_down_stale(tmp_path):
    runs = tmp_path / "runs"
    for i in range(5):
        (runs / f"2026010{i + 1}T000000-00000{i}").mkdir(parents=True)
    (runs / "not-a-run").mkdir()
    labels = {LABEL_RUN_ID: "20260101T000000-dead00"}
    client = fake_client(containers=[fake_container("dsh-dead00-vault", labels, status="exited")],
                         networks=[fake_container("net", labels)])
    check = check_stale(client, runs, 3, set(), stale=lambda obj: True, alive=lambda d: False)
    assert check.status == FAIL
    assert check.detail == (f"1 stale container(s) (dsh-dead00-vault); 1 stale network(s); 2 finished run(s) of "
                            f"private state beyond the newest 3 in {runs}")
    assert check.fix == "run `python -m harness down --stale` (it also removes the stacks kept by `up`)"
    clean = check_stale(fake_client(), runs, 5, set(), stale=lambda obj: True, alive=lambda d: False)
    assert clean.status == OK


def test_run_state_with_containers_or_a_live_owner_is_not_a_leftover(tmp_path):
    runs = tmp_path / "runs"
    names = [f"2026010{i + 1}T000000-00000{i}" for i in range(3)]
    for name in names:
        (runs / name).mkdir(parents=True)
    assert finished_runs(runs, {names[0]}, 0, alive=lambda d: d.name == names[1]) == [names[2]]


# ---------------------------------------------------------------------------------------- .venv (fakes)


def _venv(tmp_path: Path, packages: dict[str, str]) -> Path:
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    site = venv / "lib" / "python3.11" / "site-packages"
    for name, version in packages.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return venv


def test_venv_with_an_old_and_a_missing_package_fails(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["foo-lib>=2", "bar"]\n'
                         '[project.optional-dependencies]\ndev = ["Baz_Tool>=1.0"]\n')
    check = check_venv(_venv(tmp_path, {"foo_lib": "1.4", "baz-tool": "1.2"}), pyproject)
    assert (check.status, check.detail) == (FAIL, "foo-lib 1.4 (wants >=2); bar missing (wants any)")
    assert check.fix == VENV_FIX == "run `.venv/bin/pip install -e '.[dev]'` (or `bash scripts/setup.sh`)"
    ok = check_venv(_venv(tmp_path / "ok", {"foo_lib": "2.0", "bar": "0.1", "baz-tool": "1.2"}), pyproject)
    assert ok.status == OK


def test_no_venv_fails_with_setup(tmp_path):
    check = check_venv(tmp_path / ".venv", ROOT / "pyproject.toml")
    assert (check.status, check.fix) == (FAIL, "run `bash scripts/setup.sh` (it creates .venv)")
