"""``python -m harness doctor``: is this machine ready for the harness, and what is left running?

One :class:`Check` per line, each with the fix to apply when it fails. Every check is a small function of its
inputs (a docker client, settings, paths), so that tests feed it fakes. Nothing here changes anything: images
are never pulled (the registry is only asked whether it answers), containers never removed, no port bound longer
than the probe.

Statuses: ``ok``; ``FAIL`` (exit 1: something to fix); ``info`` (not applicable here, such as no compose stack
running, or a service whose image may be missing by design); ``skip`` (needs what an earlier check found
broken, such as the engine).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import docker.errors
import requests
from packaging.requirements import InvalidRequirement, Requirement

from harness.images import (
    LABEL_CONTEXT_DIGEST,
    base_for,
    build_args,
    context_digest,
    image_present,
    registry_answers,
)
from harness.settings import Settings
from harness.stacks.compose import find_compose, host_port, project_containers
from harness.stacks.docker_env import docker_client
from harness.stacks.engine import is_stale
from harness.stacks.runstate import RUN_ID, owner_alive
from stack.base import LABEL_KEEP, LABEL_RUN_ID
from stack.errors import ComposeError, DockerUnavailable, HarnessError
from stack.images import ImageSpec
from stack.registry import CATALOGUE
from stack.vault import VAULT_PORT

OK, FAIL, INFO, SKIP = "ok", "FAIL", "info", "skip"
MIN_FREE_DISK_GB = 5.0  # the Debian image set, a stack's volumes and a backup fit in this
ENGINE_FIX = ("start the engine: as root run `bash scripts/setup.sh` (installs Debian's docker.io and starts "
              "dockerd), or point DOCKER_HOST at a running engine")
VENV_FIX = "run `.venv/bin/pip install -e '.[dev]'` (or `bash scripts/setup.sh`)"
STALE_FIX = "run `python -m harness down --stale` (it also removes the stacks kept by `up`)"
PORT_LINE = re.compile(r"""["']?127\.0\.0\.1:\$\{(\w+):-(\d+)\}:(\d+)["']?""")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    check: str
    status: str  # ok | FAIL | info | skip
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def _labels(obj: Any) -> dict[str, str]:
    labels: dict[str, str] = obj.attrs.get("Config", {}).get("Labels") or obj.attrs.get("Labels") or {}
    return labels


# -------------------------------------------------------------------------------------------- engine


def check_engine(connect: Callable[[], Any], min_free_gb: float = MIN_FREE_DISK_GB) -> tuple[Check, Any | None]:
    """The engine answers: version, storage driver, cgroup, free disk under its root directory. Returns the check
    and the client (None when nothing answers)."""
    try:
        client = connect()
        version = client.version()
        info = client.info()
    except (DockerUnavailable, docker.errors.DockerException, OSError) as exc:
        reason = str(exc).split("; start one:", 1)[0]  # the fix is the fix column's
        return Check("docker engine", FAIL, f"not reachable: {reason}", ENGINE_FIX), None
    root = str(info.get("DockerRootDir") or "")
    detail = (f"{version.get('Version', '?')} (API {version.get('ApiVersion', '?')}), "
              f"storage {info.get('Driver', '?')}, cgroup v{info.get('CgroupVersion', '?')} "
              f"{info.get('CgroupDriver', '?')}")
    try:
        free = shutil.disk_usage(root).free / 1e9
    except OSError:  # a remote engine: its disk is not ours to measure
        return Check("docker engine", OK, f"{detail}, free disk under {root or '?'} unknown (remote engine)"), client
    detail += f", {free:.1f} GB free under {root}"
    if free < min_free_gb:
        return Check("docker engine", FAIL, detail, f"free disk space under {root}: at least {min_free_gb:.0f} GB "
                     "(`docker image ls` shows what takes it; remove what you no longer need)"), client
    return Check("docker engine", OK, detail), client


def check_compose(find: Callable[[], list[str]] = find_compose,
                  run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> Check:
    """Which compose the compose stack would use, and its version."""
    try:
        command = find()
    except ComposeError as exc:
        return Check("compose", FAIL, str(exc), "install Debian's docker-compose (`bash scripts/setup.sh` does) or the "
                     "docker compose v2 plugin")
    flavour = "docker compose v2 plugin" if command == ["docker", "compose"] else "docker-compose (v1)"
    try:
        version = run([*command, "version", "--short"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    return Check("compose", OK, f"{flavour} {version}".strip())


# -------------------------------------------------------------------------------------------- images


def _debian_current(client: Any, spec: ImageSpec) -> bool:
    """Whether the Debian-set image was built from the build context as it is now (the label ``images build``
    puts on it, :func:`harness.images.context_digest`, over the base image it would build on today)."""
    assert spec.debian is not None and spec.context_dir is not None
    base = base_for(client, spec.release)
    if base is None:
        return False
    try:
        base_id = client.images.get(base).id
        label = (client.images.get(spec.debian).labels or {}).get(LABEL_CONTEXT_DIGEST)
    except docker.errors.ImageNotFound:
        return False
    return bool(label == context_digest(spec.context_dir, base_id, build_args(spec, base)))


def check_images(client: Any, settings: Settings, catalogue: Mapping[str, ImageSpec] | None = None,
                 optional: Callable[[str], bool] | None = None,
                 registry: Callable[[str], bool] | None = None) -> list[Check]:
    """Per service: the image the image set picks (present, build hash current), and whether the official image
    is present or pullable. Never pulls. ``optional(name)``: a service whose image may be missing by design
    (its tests skip); ``registry(ref)``: whether a registry answers for ``ref`` (asked once)."""
    from stack import registry as services

    optional = optional or (lambda name: name in services.names() and services.get(name).image_optional)
    answers: dict[str, bool] = {}

    def pullable(ref: str) -> bool:
        if "answer" not in answers:
            probe = registry or (lambda r: registry_answers(client, r, settings.registry_probe_timeout))
            answers["answer"] = probe(ref)
        return answers["answer"]

    checks = []
    if catalogue is None:  # every service on the settings' release line and flavors
        catalogue = {name: settings.image_of(name) for name in CATALOGUE}
    for name, spec in catalogue.items():
        label = f"image {name}"
        override = settings.image_overrides.get(name)
        if not spec.official:
            official = f"none pinned for the {spec.release} line"
        else:
            official = "present" if image_present(client, spec.official) else (
                "pullable" if pullable(spec.official) else "not pullable (no registry answers)")
        if override:
            if image_present(client, override):
                checks.append(Check(label, OK, f"{override} (HARNESS_IMAGE_{name.upper()})"))
            else:
                checks.append(Check(label, FAIL, f"{override} (from HARNESS_IMAGE_{name.upper()}) is not present",
                                    f"load it (`docker load`) or unset HARNESS_IMAGE_{name.upper()}"))
            continue
        official_ok = bool(spec.official) and official != "not pullable (no registry answers)"
        if settings.images == "official" or spec.debian is None or (settings.images == "auto" and official_ok):
            if official_ok:
                checks.append(Check(label, OK, f"{spec.official} ({settings.images} set): official {official}"))
            elif optional(name):
                checks.append(Check(label, INFO, f"{spec.official} is not present and not pullable: its tests skip "
                                    "with the reason (no Debian build of it)"))
            else:
                checks.append(Check(label, FAIL, f"{spec.official} is not present and no registry answers",
                                    f"load it (`docker load`), or build the Debian set: "
                                    f"`python -m harness images build --set debian --service {name}`"))
            continue
        fix = f"run `python -m harness images build --service {name}`"
        if not image_present(client, spec.debian):
            checks.append(Check(label, FAIL, f"{spec.debian} is not built (official {spec.official}: {official})", fix))
        elif not _debian_current(client, spec):
            checks.append(Check(label, FAIL, f"{spec.debian} is stale: its build context changed since it was built",
                                fix))
        else:
            checks.append(Check(label, OK, f"{spec.debian} (debian set), build hash current; official "
                                f"{spec.official}: {official}"))
    return checks


# -------------------------------------------------------------------------------------- compose stack


def compose_ports(compose_file: Path, env: Mapping[str, str]) -> list[tuple[str, int]]:
    """(variable, host port) of every ``127.0.0.1:${VAR:-default}:port`` the compose file publishes; ``env``
    overrides the defaults as compose does."""
    found = []
    for variable, default, _ in PORT_LINE.findall(compose_file.read_text()):
        value = env.get(variable) or default
        found.append((variable, int(value)))
    return found


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on host:port (a bind succeeds; it is released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def check_ports(compose_file: Path, env: Mapping[str, str], compose_published: Iterable[int],
                free: Callable[[int], bool] = port_free) -> Check:
    """Every port the compose stack publishes is free, or already published by the compose stack itself."""
    if not compose_file.is_file():
        return Check("compose ports", FAIL, f"compose file {compose_file} not found", "set HARNESS_COMPOSE_FILE")
    ports = compose_ports(compose_file, env)
    ours = set(compose_published)
    busy = [(var, port) for var, port in ports if port not in ours and not free(port)]
    used = sum(1 for _, port in ports if port in ours)
    if busy:
        listed = ", ".join(f"{port} ({var})" for var, port in busy)
        return Check("compose ports", FAIL, f"in use by something else on 127.0.0.1: {listed}",
                     f"stop what listens there (`ss -ltnp 'sport = :{busy[0][1]}'`), or give the compose stack other "
                     f"ports: {busy[0][0]}=<free port> in the environment of `python -m harness compose up`")
    return Check("compose ports", OK, f"{len(ports)} port(s) on 127.0.0.1 free"
                 + (f" ({used} published by the compose stack)" if used else ""))


def published_ports(containers: Iterable[Any]) -> set[int]:
    ports: set[int] = set()
    for container in containers:
        for bindings in (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
            ports.update(int(b["HostPort"]) for b in bindings or [] if b.get("HostPort"))
    return ports


def _state(container: Any) -> str:
    state = container.attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    return f"{state.get('Status', container.status)}" + (f" ({health})" if health else "")


def _healthy(state: str) -> bool:
    return state.startswith("running") and "unhealthy" not in state and "starting" not in state


def check_stacks(client: Any, project: str) -> list[Check]:
    """Stacks left running on purpose: kept ``up``/``--keep-stack`` runs and the compose project; healthy or not."""
    checks = []
    kept: dict[str, list[Any]] = {}
    for container in client.containers.list(all=True, ignore_removed=True, filters={"label": f"{LABEL_KEEP}=true"}):
        kept.setdefault(_labels(container).get(LABEL_RUN_ID, "?"), []).append(container)
    for run_id, containers in sorted(kept.items()):
        states = {c.name: _state(c) for c in containers}
        bad = {n: s for n, s in states.items() if not _healthy(s)}
        detail = f"{len(containers)} container(s)" + (": " + ", ".join(f"{n} {s}" for n, s in sorted(bad.items()))
                                                        if bad else ", all running")
        checks.append(Check(f"kept stack {run_id}", FAIL if bad else OK, detail,
                            "run `python -m harness down` and `python -m harness up` again" if bad else ""))
    compose = project_containers(client, project)
    if compose:
        states = {n: _state(c) for n, c in compose.items()}
        bad = {n: s for n, s in states.items() if not _healthy(s)}
        detail = f"{len(compose)} container(s)" + (": " + ", ".join(f"{n} {s}" for n, s in sorted(bad.items()))
                                                     if bad else ", all running and healthy")
        checks.append(Check(f"compose stack {project}", FAIL if bad else OK, detail,
                            "run `python -m harness compose up` (it brings the stack back)" if bad else ""))
    if not checks:
        checks.append(Check("stacks", INFO, "no kept `up` stack and no compose stack running"))
    return checks


def check_compose_vault(containers: Mapping[str, Any], get: Callable[..., Any] = requests.get) -> Check:
    """The compose stack's Vault: unsealed or not (its ``sys/seal-status``)."""
    vault = containers.get("vault")
    if vault is None or vault.status != "running":
        return Check("compose vault", INFO, "no compose stack running")
    try:
        url = f"http://127.0.0.1:{host_port(vault, VAULT_PORT)}"
        sealed = get(f"{url}/v1/sys/seal-status", timeout=5).json().get("sealed")
    except (ComposeError, requests.RequestException, ValueError) as exc:
        return Check("compose vault", FAIL, f"seal status unreadable: {exc}",
                     "run `python -m harness compose up` (it brings Vault back and unseals it)")
    if sealed:
        return Check("compose vault", FAIL, f"sealed ({url})",
                     "run `python -m harness compose up` (it unseals Vault with the keys in .harness/compose)")
    return Check("compose vault", OK, f"unsealed ({url})")


# ------------------------------------------------------------------------------------------ certificates


def cert_checks(where: str, rows: Iterable[Any], min_days: float, fix: str) -> list[Check]:
    """One line per listener from :func:`harness.trust.certs.status` rows."""
    checks = []
    for row in rows:
        if isinstance(row, tuple):
            target, error = row
            checks.append(Check(f"certificate {target.service} :{target.port} ({where})", FAIL, error, fix))
            continue
        label = f"certificate {row.target.alias} :{row.target.port} ({where})"
        detail = f"{row.days_left:.1f} days left, serial {row.served_serial}, {row.version}"
        if not row.matches:
            checks.append(Check(label, FAIL, detail + ", not the certificate Vault issued", fix))
        elif row.days_left < min_days:
            checks.append(Check(label, FAIL, detail + f" (minimum {min_days:g})", fix))
        else:
            checks.append(Check(label, OK, detail))
    return checks


def check_certificates(client: Any, settings: Settings, live: set[str], compose: Mapping[str, Any]) -> list[Check]:
    """Days left of every TLS listener of the running ``up`` stacks (state under this state directory) and of the
    compose stack."""
    from harness.stacks.kept import KeptStack
    from harness.trust.certs import status

    checks: list[Check] = []
    for path in sorted((settings.state_dir / "runs").glob("*/stack.json")):
        try:
            stack = KeptStack(path, json.loads(path.read_text()), client)
            if stack.run_id not in live:
                continue
            rows = status({name: stack.endpoint(name) for name in stack.running()})
        except (OSError, ValueError, KeyError, HarnessError) as exc:
            checks.append(Check(f"certificates ({path.parent.name})", FAIL, f"unreadable state: {exc}",
                                "run `python -m harness down` and `python -m harness up` again"))
            continue
        checks += cert_checks(stack.run_id, rows, settings.tls_min_days_left,
                              "run `python -m harness certs rotate`")
    vault = compose.get("vault")
    if vault is not None and vault.status == "running":
        try:
            from harness.stacks.attach import AttachedStack

            attached = AttachedStack(settings, client=client)
            attached.start(attached.state.services)
            rows = status({n: attached.endpoint(n) for n in attached.state.services if n not in attached.errors})
        except (OSError, ValueError, KeyError, HarnessError, requests.RequestException) as exc:
            checks.append(Check("certificates (compose)", FAIL, f"cannot read: {exc}",
                                "run `python -m harness compose up`"))
        else:
            checks += cert_checks("compose", rows, settings.tls_min_days_left,
                                  "run `python -m harness certs --stack compose rotate`")
    if not checks:
        checks.append(Check("certificates", INFO, f"no running stack with state under {settings.state_dir}"))
    return checks


# ------------------------------------------------------------------------------------------ leftovers


def finished_runs(runs: Path, live: set[str], keep: int, alive: Callable[[Path], bool] = owner_alive) -> list[str]:
    """Run state directories the next prune removes: no container, no living owner, older than the newest
    ``keep`` such runs (:func:`harness.stacks.runstate.prune_runs` keeps those)."""
    if not runs.is_dir():
        return []
    done = [d.name for d in sorted(runs.iterdir()) if d.is_dir() and not d.is_symlink() and RUN_ID.fullmatch(d.name)
            and d.name not in live and not alive(d)]
    return done[:max(len(done) - keep, 0)]


def check_stale(client: Any, runs: Path, keep: int, live: set[str],
                stale: Callable[[Any], bool] = is_stale, alive: Callable[[Path], bool] = owner_alive) -> Check:
    """Containers and networks of killed runs (what ``down --stale`` removes) and private state of finished runs
    beyond the newest ``keep``."""
    containers = [c for c in client.containers.list(all=True, ignore_removed=True, filters={"label": LABEL_RUN_ID})
                  if stale(c)]
    networks = [n for n in client.networks.list(filters={"label": LABEL_RUN_ID}) if stale(n)]
    state = finished_runs(runs, live, keep, alive)
    if not (containers or networks or state):
        return Check("leftovers of killed runs", OK, "no stale container, network or run state")
    parts = []
    if containers:
        parts.append(f"{len(containers)} stale container(s) ({', '.join(sorted(c.name for c in containers))})")
    if networks:
        parts.append(f"{len(networks)} stale network(s)")
    if state:
        parts.append(f"{len(state)} finished run(s) of private state beyond the newest {keep} in {runs}")
    return Check("leftovers of killed runs", FAIL, "; ".join(parts), STALE_FIX)


# ------------------------------------------------------------------------------------------ .venv


def venv_site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    return found[-1] if found else None


def requirements(pyproject: Path, extras: Iterable[str] = ("dev",)) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    texts = list(project.get("dependencies", []))
    for extra in extras:
        texts += project.get("optional-dependencies", {}).get(extra, [])
    found = []
    for text in texts:
        try:
            found.append(Requirement(text))
        except InvalidRequirement:
            continue
    return found


def check_venv(venv: Path, pyproject: Path) -> Check:
    """The ``.venv`` exists and holds every package ``pyproject.toml`` asks for (dev tools included), at a
    version it accepts."""
    site = venv_site_packages(venv)
    if not (venv / "bin" / "python").exists() or site is None:
        return Check(".venv", FAIL, f"no virtualenv at {venv}", "run `bash scripts/setup.sh` (it creates .venv)")
    installed = {}
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"]
        if name:
            installed[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
    problems = []
    wanted = requirements(pyproject)
    for req in wanted:
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = installed.get(re.sub(r"[-_.]+", "-", req.name).lower())
        if version is None:
            problems.append(f"{req.name} missing (wants {req.specifier or 'any'})")
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name} {version} (wants {req.specifier})")
    if problems:
        return Check(".venv", FAIL, "; ".join(problems), VENV_FIX)
    return Check(".venv", OK, f"{len(wanted)} requirement(s) of {pyproject.name} met in {venv}")


# ------------------------------------------------------------------------------------------ all of it


def run_checks(settings: Settings, root: Path, connect: Callable[[], Any] = docker_client,
               env: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in the table's order; those that need the engine are skipped when it does not answer."""
    env = os.environ if env is None else env
    engine, client = check_engine(connect)
    checks = [engine, check_compose()]
    compose_file = settings.compose_file if settings.compose_file.is_absolute() else root / settings.compose_file
    if client is None:
        needs = ("images", "compose ports", "stacks", "compose vault", "certificates", "leftovers of killed runs")
        checks += [Check(name, SKIP, "needs the Docker engine") for name in needs]
    else:
        compose = project_containers(client, settings.compose_project)
        # ignore_removed: under pytest -n 2 another worker's stack can go between docker-py's list and its inspect
        # of each container (a NotFound that once left `doctor --json` without output in a full run).
        live = {_labels(c).get(LABEL_RUN_ID, "") for c in client.containers.list(all=True, ignore_removed=True,
                                                                                  filters={"label": LABEL_RUN_ID})}
        live |= {_labels(n).get(LABEL_RUN_ID, "") for n in client.networks.list(filters={"label": LABEL_RUN_ID})}
        checks += check_images(client, settings)
        checks.append(check_ports(compose_file, env, published_ports(compose.values())))
        checks += check_stacks(client, settings.compose_project)
        checks.append(check_compose_vault(compose))
        checks += check_certificates(client, settings, live, compose)
        checks.append(check_stale(client, settings.state_dir / "runs", settings.keep_run_state, live))
    checks.append(check_venv(project_venv(root), root / "pyproject.toml"))
    return checks


def project_venv(root: Path) -> Path:
    """The project's ``.venv``; where the checkout has none (a git worktree), the virtualenv running this."""
    if (root / ".venv").exists() or sys.prefix == sys.base_prefix:
        return root / ".venv"
    return Path(sys.prefix)


def to_json(checks: Iterable[Check]) -> dict[str, Any]:
    listed = [asdict(c) for c in checks]
    return {"ok": not any(c["status"] == FAIL for c in listed), "checks": listed}


__all__ = ["Check", "run_checks", "to_json"]
