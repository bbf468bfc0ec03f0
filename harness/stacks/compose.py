"""The long-lived compose stack: ``python -m harness compose up|down|status``.

Compose alone cannot start this stack in the right order: Vault has to be initialised, unsealed and
bootstrapped (PKI, AppRoles, KV credentials) before any other service exists, and every service needs its
Vault-issued certificate, its credentials and its config files before its container is created. ``up`` does
that ordering and then hands over to compose:

1. start ``vault`` (on a throw-away placeholder certificate the first time) and wait for its API;
2. first run: init, unseal, bootstrap; later runs: unseal with the kept keys, renew the admin token, mint
   fresh AppRole secret-ids (so a stack that lives for weeks keeps working);
3. per service, with its own AppRole: read its credentials from KV and issue a certificate (kept while it has
   more than a third of its lifetime left), and write them with the server's config files (the same ones
   the ``stack`` modules give the test stacks) to ``certs/compose/<service>/`` (0600, git-ignored);
4. ``compose up -d`` the rest; create the Redis cluster on the first run; wait until every service is
   healthy *and* accepts a login from the host with the credentials Vault holds.

Credentials never drift from the data volumes: they are generated once, kept in Vault (whose raft data is a
volume too) and written again from Vault on every ``up``; a password rotated through the harness is written
back to ``certs/compose/`` at once. If Vault's volume is new but a service volume is not (its password came
from an earlier Vault), ``up`` stops and says so instead of starting a service nobody can log in to.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from docker import DockerClient
from docker.models.containers import Container

from harness.images import ImageResolver
from harness.settings import Settings
from harness.trust.bootstrap import BootstrapResult, approle_login, bootstrap, fetch_material
from harness.trust.pki import CaChain, ServiceMaterial, export_ca
from stack import registry
from stack import vault as vault_api
from stack.base import TLS_CERT, TLS_KEY, TlsMaterial, put_private_files
from stack.errors import ComposeError, ImageMissing
from stack.files import write_file
from stack.selfsigned import self_signed
from stack.vault import VAULT_PORT, VaultInit

Log = Callable[[str], None]

#: compose services of each harness service (each module's ``SPEC.compose_services``)
COMPOSE_SERVICES: Mapping[str, tuple[str, ...]] = registry.view(lambda spec: spec.compose_services)
#: the names each service's certificate carries in the compose stack: its compose services (the containers'
#: host names on the compose network)
COMPOSE_ALIASES: Mapping[str, tuple[str, ...]] = COMPOSE_SERVICES
ADMIN_TOKEN_PERIOD = "768h"  # renewed at every `compose up`; a month of idleness ends it
LABEL_PROJECT = "com.docker.compose.project"
LABEL_COMPOSE_SERVICE = "com.docker.compose.service"


@dataclass(frozen=True)
class ComposeLayout:
    """Where the compose stack's pieces live."""

    compose_file: Path
    project: str
    subnet_prefix: str
    state_dir: Path  # Vault keys, bootstrap record, exported CA, stack state (0700)
    material_dir: Path  # certs/compose: what the containers mount (0700, files 0600)

    @classmethod
    def from_settings(cls, settings: Settings) -> ComposeLayout:
        file = settings.compose_file.resolve()
        return cls(compose_file=file, project=settings.compose_project, subnet_prefix=settings.compose_subnet_prefix,
                   state_dir=(settings.state_dir / "compose").resolve(),
                   material_dir=file.parent.parent / "certs" / "compose")

    @property
    def state_file(self) -> Path:
        return self.state_dir / "compose.json"

    @property
    def env_file(self) -> Path:
        return self.compose_file.parent / ".env"

    def service_dir(self, service: str) -> Path:
        return self.material_dir / service

    def volume(self, name: str) -> str:
        return f"{self.project}_{name}"


# ------------------------------------------------------------------------------------ pure pieces


def compose_drift(compose_services: Iterable[str]) -> list[str]:
    """What differs between the registry and a compose file's services: each registered service's compose
    services missing from the file, and compose services no registered service declares (empty: no drift)."""
    present = set(compose_services)
    declared = {cname: name for name, cnames in COMPOSE_SERVICES.items() for cname in cnames}
    problems = [f"{name}: compose service {cname!r} is not in the compose file"
                for cname, name in declared.items() if cname not in present]
    problems += [f"compose service {cname!r} belongs to no registered service"
                 for cname in sorted(present - set(declared))]
    return problems


def file_name(dest: str) -> str:
    """The flat name under certs/compose/<service>/ of a file installed at ``dest`` in the container."""
    return dest.removeprefix("/run/harness/").lstrip("/").replace("/", "-")


def service_files(service: str, secret: Mapping[str, Any], tls: TlsMaterial, settings: Settings) -> dict[str, bytes]:
    """Everything a service's container needs, as ``destination -> content``: TLS files plus the same
    password and config files the ``stack`` module gives a test stack (dual mode; its ``compose_files``)."""
    spec = registry.get(service)
    files = {path: content for path, (content, _) in spec.tls_files(tls).items()}
    options = {key: getattr(settings, key) for key in spec.settings}
    files.update(spec.driver.compose_files(secret, options))
    return files


def install_list(files: Mapping[str, bytes]) -> str:
    """``<name> <destination>`` per line, read by compose/install-files.sh."""
    return "".join(f"{file_name(dest)} {dest}\n" for dest in sorted(files))


def compose_env(layout: ComposeLayout, images: Mapping[str, str],
                secrets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The variables docker-compose.yml interpolates: project, subnet, images, user and database names."""
    env = {"COMPOSE_PROJECT_NAME": layout.project, "DSH_SUBNET_PREFIX": layout.subnet_prefix}
    env.update({f"DSH_IMAGE_{name.upper()}": ref for name, ref in sorted(images.items())})
    for spec in registry.specs():
        secret = secrets.get(spec.name)
        if secret:  # the services whose compose entry reads names from Vault's KV say which (compose_env)
            env.update(spec.driver.compose_env(secret))
    return env


def needs_new_leaf(cert_pem: str | None, intermediate_pem: str, now: dt.datetime, renew_fraction: float = 1 / 3) -> str:
    """Why a kept leaf must be replaced ('' when it can stay): missing, not from this intermediate, or less
    than ``renew_fraction`` of its lifetime left."""
    if not cert_pem:
        return "no certificate yet"
    leaf = x509.load_pem_x509_certificate(cert_pem.encode())
    intermediate = x509.load_pem_x509_certificate(intermediate_pem.encode())
    try:
        leaf.verify_directly_issued_by(intermediate)
    except (ValueError, TypeError, InvalidSignature):
        return "issued by another CA"
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if leaf.not_valid_after_utc - now < lifetime * renew_fraction:
        return f"expires {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    return ""


def find_compose(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> list[str]:
    """``docker compose`` (v2) when the plugin answers, else ``docker-compose`` (1.29)."""
    tried = []
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            tried.append(f"{' '.join(command)}: not on PATH")
            continue
        try:
            result = run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            tried.append(f"{' '.join(command)}: {exc}")
            continue
        if result.returncode == 0:
            return command
        tried.append(f"{' '.join(command)} version: exit {result.returncode} {result.stderr.strip()[:120]}")
    raise ComposeError("no compose found (" + "; ".join(tried) + "); install Debian's docker-compose "
                       "(`bash scripts/setup.sh` does) or the docker compose v2 plugin")


# ------------------------------------------------------------------------------------ docker side


class Compose:
    """Runs compose commands for the project, with the interpolation variables in the environment."""

    def __init__(self, layout: ComposeLayout, command: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.layout = layout
        self.command = list(command)
        self.env = dict(env or {})

    def run(self, *args: str, profiles: Sequence[str] = (), timeout: float = 900) -> str:
        argv = [*self.command, "-p", self.layout.project, "-f", str(self.layout.compose_file),
                *[x for p in profiles for x in ("--profile", p)], *args]
        try:
            result = subprocess.run(argv, env={**os.environ, **self.env}, capture_output=True, text=True,
                                    timeout=timeout, cwd=self.layout.compose_file.parent, check=False)
        except subprocess.TimeoutExpired:
            raise ComposeError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s") from None
        if result.returncode != 0:
            raise ComposeError(f"`{' '.join(argv)}` exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-1500:]}")
        return result.stdout


def project_containers(client: DockerClient, project: str) -> dict[str, Container]:
    """compose service name -> container, for every container of the project (running or not)."""
    found: dict[str, Container] = {}
    for container in client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project}"}):
        found[container.labels.get(LABEL_COMPOSE_SERVICE, container.name)] = container
    return found


def host_port(container: Container, port: int) -> int:
    """The 127.0.0.1 port a container port is published on (the container must be running)."""
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{port}/tcp") or []
    for binding in bindings:
        if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
            return int(binding["HostPort"])
    raise ComposeError(f"{container.name}: port {port} is not published on 127.0.0.1 (is the container running?)")


def network_ip(container: Container) -> str:
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    for net in networks.values():
        if net.get("IPAddress"):
            return str(net["IPAddress"])
    raise ComposeError(f"{container.name} has no network address (is it running?)")


def health_of(container: Container) -> str:
    container.reload()
    state = container.attrs.get("State", {})
    return str((state.get("Health") or {}).get("Status") or state.get("Status") or "unknown")


def existing_volumes(client: DockerClient, layout: ComposeLayout) -> set[str]:
    return {v.name for v in client.volumes.list(filters={"label": f"{LABEL_PROJECT}={layout.project}"})}


# ------------------------------------------------------------------------------------ Vault


def read_secret(vault_url: str, service: str, creds: Mapping[str, str]) -> dict[str, Any]:
    """The service's KV document, read with its own AppRole (what the service itself may read)."""
    client = approle_login(vault_url, creds["role_id"], creds["secret_id"])
    data: dict[str, Any] = client.secrets.kv.v2.read_secret_version(
        path=service, mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    return data


@dataclass
class ComposeVault:
    """Vault as ``up`` left it: URL, bootstrap record, CA."""

    url: str
    bootstrap: BootstrapResult
    ca: CaChain
    initialised_now: bool
    timings: dict[str, float]


def prepare_vault(layout: ComposeLayout, settings: Settings, url: str, other_volumes: set[str],
                  log: Log) -> ComposeVault:
    """Init + bootstrap a new Vault, or unseal a kept one and refresh its admin token and secret-ids."""
    init_file = layout.state_dir / "vault-init.json"
    record = layout.state_dir / "vault-bootstrap.json"
    timings: dict[str, float] = {}
    health = vault_api.health(url)
    if not health.get("initialized"):
        if other_volumes:
            raise ComposeError(
                f"Vault's volume {layout.volume('vault-data')} is new, but {', '.join(sorted(other_volumes))} "
                "hold data created with credentials from an earlier Vault, which this one does not have. Remove "
                "the old volumes with `python -m harness compose down --volumes` (their data is lost) and run "
                "`compose up` again")
        t0 = time.monotonic()
        init = vault_api.initialize(url, settings.vault_key_shares, settings.vault_key_threshold, init_file)
        vault_api.unseal(url, init, settings.ready_timeout)
        timings["init and unseal"] = round(time.monotonic() - t0, 3)
        root = hvac.Client(url=url, token=init.root_token, timeout=30)
        boot = bootstrap(root, services=list(registry.names()), internal_url=f"http://vault:{VAULT_PORT}",
                         pki=settings.pki(), approle=settings.approle(), aliases=COMPOSE_ALIASES,
                         admin_period=ADMIN_TOKEN_PERIOD)
        boot.save(record)
        timings.update({f"bootstrap {k}": v for k, v in boot.timings.items()})
        log(f"vault: initialised and bootstrapped in {time.monotonic() - t0:.1f}s (keys in {init_file}, 0600)")
        return ComposeVault(url, boot, _export_ca(url, layout), True, timings)
    if not init_file.is_file() or not record.is_file():
        raise ComposeError(
            f"Vault's volume {layout.volume('vault-data')} is initialised, but its unseal keys or bootstrap record "
            f"({init_file}, {record}) are gone, so it cannot be unsealed or used. If they are lost for good, start "
            "over with `python -m harness compose down --volumes` (all data of the stack is lost)")
    if health.get("sealed"):
        t0 = time.monotonic()
        vault_api.unseal(url, VaultInit.load(init_file), settings.ready_timeout)
        timings["unseal"] = round(time.monotonic() - t0, 3)
        log(f"vault: unsealed with the kept keys in {timings['unseal']:.1f}s")
    boot = BootstrapResult.load(record)
    admin = hvac.Client(url=url, token=boot.admin_token, timeout=10)
    try:
        admin.auth.token.renew_self()
    except hvac.exceptions.VaultError as exc:
        raise ComposeError(f"the harness-admin token could not be renewed ({exc}); it expires when not renewed "
                           f"for {ADMIN_TOKEN_PERIOD}. Start over with `python -m harness compose down --volumes`"
                           ) from None
    _refresh_secret_ids(admin, boot)
    boot.save(record)
    return ComposeVault(url, boot, _export_ca(url, layout), False, timings)


def _export_ca(url: str, layout: ComposeLayout) -> CaChain:
    """The CA chain, for the suites (state dir) and for humans and clients (certs/compose/)."""
    export_ca(url, layout.material_dir)
    return export_ca(url, layout.state_dir / "pki")


def _refresh_secret_ids(admin: hvac.Client, boot: BootstrapResult) -> None:
    """A new secret-id per AppRole (they expire after approle_secret_id_ttl), the old one destroyed."""
    for service, creds in boot.approles.items():
        fresh = admin.auth.approle.generate_secret_id(role_name=service)["data"]["secret_id"]
        with contextlib.suppress(hvac.exceptions.InvalidRequest):  # already expired: nothing to destroy
            admin.auth.approle.destroy_secret_id(role_name=service, secret_id=creds["secret_id"])
        boot.approles[service] = {**creds, "secret_id": str(fresh)}


# ------------------------------------------------------------------------------------ material


def kept_tls(layout: ComposeLayout, service: str, ca: CaChain) -> TlsMaterial | None:
    """The certificate ``up`` wrote earlier for a service, if there is one."""
    directory = layout.service_dir(service)
    cert, key, serial = (directory / file_name(TLS_CERT), directory / file_name(TLS_KEY), directory / "serial")
    if not (cert.is_file() and key.is_file() and serial.is_file()):
        return None
    return TlsMaterial(certificate=cert.read_text(), private_key=key.read_text(), ca_chain=ca.chain, root_ca=ca.root,
                       serial=serial.read_text().strip())


def issue_tls(vault: ComposeVault, service: str) -> TlsMaterial:
    """A new leaf issued with the service's own AppRole."""
    material: ServiceMaterial = fetch_material(vault.url, service, vault.bootstrap.approles[service],
                                               vault.bootstrap.names[service])
    return material.tls(vault.ca)


def write_material(layout: ComposeLayout, service: str, files: Mapping[str, bytes], serial: str) -> None:
    """certs/compose/<service>/: the files (0600), install.list and the serial of the certificate."""
    directory = _write_files(layout, service, files)
    write_file(directory / "serial", serial + "\n", 0o644)
    # The exported copy the suites' PKI checks read, as for a test stack's run directory.
    pem = layout.state_dir / "pki" / service
    write_file(pem / "cert.pem", files[TLS_CERT].decode(), 0o644)
    write_file(pem / "key.pem", files[TLS_KEY].decode(), 0o600)
    write_file(pem / "serial", serial + "\n", 0o644)


def write_placeholder(layout: ComposeLayout) -> None:
    """Vault's HTTPS listener needs a certificate before Vault's PKI exists: a self-signed placeholder."""
    cert, key = self_signed("vault-placeholder.invalid")
    tls = TlsMaterial(certificate=cert, private_key=key, ca_chain=cert, root_ca=cert, serial="placeholder")
    _write_files(layout, "vault", {p: c for p, (c, _) in tls.files("vault").items()})


def _write_files(layout: ComposeLayout, service: str, files: Mapping[str, bytes]) -> Path:
    """The files (0600) and their install.list in certs/compose/<service>/ (0700); returns the directory."""
    directory = layout.service_dir(service)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(layout.material_dir, 0o700)
    for dest, content in files.items():
        write_file(directory / file_name(dest), content, 0o600)
    write_file(directory / "install.list", install_list(files), 0o644)
    return directory


def install_live(container: Container, service: str, files: Mapping[str, bytes]) -> None:
    """Put the files into a running container as install-files.sh would (0600, owned by the service user)."""
    owner = registry.get(service).owner
    put_private_files(container, {dest: (content, owner) for dest, content in files.items()},
                      what=f"{service} ({container.name})")


# ------------------------------------------------------------------------------------ state


@dataclass
class ComposeState:
    """What ``up`` recorded (compose.json): images, what is not part of the stack and why, timings."""

    project: str
    compose_command: list[str]
    images: dict[str, dict[str, Any]]
    unavailable: dict[str, str]
    services: list[str]
    time_to_ready_s: dict[str, float]
    total_start_s: float
    vault_timings: dict[str, float]
    vault_initialised_now: bool
    updated: str

    def save(self, path: Path) -> None:
        write_file(path, json.dumps(self.__dict__, indent=2), 0o600)

    @classmethod
    def load(cls, path: Path) -> ComposeState:
        if not path.is_file():
            raise ComposeError(f"no compose stack state at {path}: start the stack with `python -m harness compose up`")
        return cls(**json.loads(path.read_text()))


def resolve_images(client: DockerClient, settings: Settings) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    resolver = ImageResolver(client, settings)
    images: dict[str, dict[str, Any]] = {}
    unavailable: dict[str, str] = {}
    for name in registry.names():
        if not registry.get(name).compose_services:  # e.g. a service registered from outside the package
            unavailable[name] = "its ServiceSpec declares no compose_services (it has no entry in the compose file)"
            continue
        image = resolver.resolve(name)
        if not image.available:
            if not registry.get(name).image_optional:
                raise ImageMissing(image.reason)
            unavailable[name] = image.reason
            continue
        images[name] = {"ref": image.ref, "id": image.image_id, "source": image.source, "reason": image.reason,
                        "version": image.version}
    return images, unavailable
