"""``compose up``, ``compose down`` and ``compose status``: the ordering compose cannot do (see
harness.stacks.compose)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from harness.settings import Settings
from harness.stacks.attach import build_endpoint, published, wait_ready
from harness.stacks.compose import (
    COMPOSE_SERVICES,
    Compose,
    ComposeLayout,
    ComposeState,
    compose_env,
    existing_volumes,
    find_compose,
    host_port,
    issue_tls,
    kept_tls,
    needs_new_leaf,
    prepare_vault,
    project_containers,
    read_secret,
    resolve_images,
    service_files,
    write_material,
    write_placeholder,
)
from harness.stacks.docker_env import docker_client
from harness.stacks.running import Endpoint
from harness.trust.certs import install_tls, reload_tls
from stack import registry
from stack import vault as vault_api
from stack.base import TlsMaterial
from stack.errors import ComposeError
from stack.files import write_file
from stack.vault import VAULT_PORT
from stack.waiting import poll

Log = Callable[[str], None]


def up(settings: Settings, log: Log) -> ComposeState:
    """Start (or bring back) the compose stack and wait until every service accepts a login."""
    layout = ComposeLayout.from_settings(settings)
    if not layout.compose_file.is_file():
        raise ComposeError(f"compose file {layout.compose_file} not found (setting compose_file)")
    client = docker_client()
    command = find_compose()
    images, unavailable = resolve_images(client, settings)
    for name, reason in unavailable.items():
        log(f"{name}: left out of the compose stack: {reason}")
    if settings.tls_strict:
        log("note: tls_strict applies to the test stacks; the compose stack runs TLS dual mode")
    for directory in (layout.state_dir, layout.material_dir):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
    running = [s for s in registry.names() if s not in unavailable]
    profiles = _profiles(running)
    refs = {name: str(image["ref"]) for name, image in images.items()}
    compose = Compose(layout, command, compose_env(layout, refs, {}))
    before = {name: c.attrs.get("State", {}).get("StartedAt") for name, c in
              project_containers(client, layout.project).items() if c.status == "running"}
    volumes = existing_volumes(client, layout)
    log(f"compose: {' '.join(command)}, project {layout.project}, file {layout.compose_file}")

    # 1-2: Vault first, alone.
    t0 = time.monotonic()
    if not (layout.service_dir("vault") / "install.list").is_file():
        write_placeholder(layout)
    compose.run("up", "-d", "--no-deps", "vault")
    vault_container = project_containers(client, layout.project)["vault"]
    vault_container.reload()
    url = f"http://127.0.0.1:{host_port(vault_container, VAULT_PORT)}"
    poll(lambda: vault_api.listener_answers(url),
         what="Vault's API (compose service vault) to answer /v1/sys/health", timeout=settings.ready_timeout,
         accept=bool, hint=f"read `docker logs {vault_container.name}`")
    others = {layout.volume(f"{c}-data") for s in running if s != "vault" for c in COMPOSE_SERVICES[s]} & volumes
    vault = prepare_vault(layout, settings, url, others, log)

    # 3: every service's credentials, certificate and config files, from Vault with its own AppRole.
    secrets: dict[str, dict[str, Any]] = {}
    renewed: dict[str, TlsMaterial] = {}
    now = datetime.now(UTC)
    for name in running:
        secret = read_secret(vault.url, name, vault.bootstrap.approles[name]) if name != "vault" else {}
        secrets[name] = secret
        kept = kept_tls(layout, name, vault.ca)
        why = needs_new_leaf(kept.certificate if kept else None, vault.ca.intermediate, now)
        tls = issue_tls(vault, name) if why or kept is None else kept
        write_material(layout, name, service_files(name, secret, tls, settings), tls.serial)
        if why:
            renewed[name] = tls
            log(f"{name}: certificate {tls.serial} issued with its AppRole ({why})")
    if "vault" in renewed:  # Vault's HTTPS listener: from the placeholder (or an old leaf) to the new leaf, live
        install_tls("vault", renewed["vault"], [vault_container])
        endpoint = build_endpoint("vault", layout, {"vault": vault_container}, {}, vault.bootstrap.admin_token)
        reload_tls("vault", endpoint, vault_container, settings.ready_timeout)
    ready: dict[str, float] = {"vault": round(time.monotonic() - t0, 3)}
    log(f"vault: ready in {ready['vault']:.1f}s")

    # 4: the rest, through compose; then wait for health and a real login from the host.
    compose.env = compose_env(layout, refs, secrets)
    write_file(layout.env_file, "# written by `python -m harness compose up`; plain docker-compose commands in this "
               "directory read it\n" + "".join(f"{k}={v}\n" for k, v in sorted(compose.env.items())), 0o644)
    t_up = time.monotonic()
    compose.run("up", "-d", profiles=profiles)
    containers = project_containers(client, layout.project)

    def endpoint_of(name: str) -> Endpoint:
        return build_endpoint(name, layout, project_containers(client, layout.project), secrets.get(name, {}),
                              vault.bootstrap.admin_token)

    def bring_up(name: str) -> float:
        wait_ready(name, layout, client, lambda: endpoint_of(name), settings.ready_timeout, log)
        spec = registry.get(name)
        if spec.driver.has("compose_ready"):  # what the service needs once its containers are healthy (a cluster)
            svc = published(name, layout, project_containers(client, layout.project), secrets.get(name, {}),
                            vault.bootstrap.admin_token)
            spec.driver.compose_ready(svc, endpoint_of(name), settings.ready_timeout, log)
        return round(time.monotonic() - t_up, 3)

    rest = [s for s in running if s != "vault"]
    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        futures = {name: pool.submit(bring_up, name) for name in rest}
        errors = []
        for name, future in futures.items():
            try:
                ready[name] = future.result()
                log(f"{name}: ready in {ready[name]:.1f}s")
            except Exception as exc:  # collected: every service's problem is reported, then up fails
                errors.append(f"{name}: {exc}")
    if errors:
        raise ComposeError("the compose stack did not come up:\n  " + "\n  ".join(errors))

    # A certificate renewed for a container that kept running (not recreated by compose): install it live.
    for name, tls in renewed.items():
        if name == "vault":
            continue
        stale = [containers[c] for c in COMPOSE_SERVICES[name]
                 if before.get(c) and before.get(c) == _started_at(containers[c])]
        if stale:
            install_tls(name, tls, stale)
            log(f"{name}: {reload_tls(name, endpoint_of(name), stale[0], settings.ready_timeout)}")

    state = ComposeState(project=layout.project, compose_command=command, images=images, unavailable=unavailable,
                         services=running, time_to_ready_s=ready, total_start_s=round(time.monotonic() - t0, 3),
                         vault_timings=vault.timings, vault_initialised_now=vault.initialised_now,
                         updated=datetime.now(UTC).isoformat(timespec="seconds"))
    state.save(layout.state_file)
    return state


def _profiles(services: Iterable[str]) -> list[str]:
    """Compose profiles to enable: a service whose image may be missing is behind a profile named after it
    (compose/docker-compose.yml), enabled when it is part of the stack."""
    return [name for name in services if registry.get(name).image_optional]


def _started_at(container: Any) -> str | None:
    container.reload()
    started: str | None = container.attrs.get("State", {}).get("StartedAt")
    return started


def down(settings: Settings, *, volumes: bool, log: Log) -> None:
    """Remove the containers and network; with ``volumes`` also the data, Vault's keys and certs/compose."""
    layout = ComposeLayout.from_settings(settings)
    compose = Compose(layout, find_compose(), {"DSH_SUBNET_PREFIX": layout.subnet_prefix,
                                               "COMPOSE_PROJECT_NAME": layout.project})
    compose.run("down", *(["--volumes"] if volumes else []), profiles=_profiles(registry.names()))
    if volumes:
        # Vault's keys and the issued material belong to the data just removed; kept, they would only mislead.
        for directory in (layout.state_dir, layout.material_dir):
            shutil.rmtree(directory, ignore_errors=True)
        layout.env_file.unlink(missing_ok=True)
        log("removed containers, network, volumes, Vault's keys and certs/compose")
    else:
        log("removed containers and network; volumes, Vault's keys and certs/compose are kept for the next `up`")


def status(settings: Settings) -> list[dict[str, str]]:
    """One row per compose container: service, state/health, published ports, image."""
    layout = ComposeLayout.from_settings(settings)
    rows = []
    for cname, container in sorted(project_containers(docker_client(), layout.project).items()):
        container.reload()
        state = container.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status", "")
        ports = sorted({f"{b['HostIp']}:{b['HostPort']}->{p.split('/')[0]}"
                        for p, bs in (container.attrs["NetworkSettings"].get("Ports") or {}).items() for b in bs or []})
        rows.append({"service": cname, "state": state.get("Status", "?") + (f" ({health})" if health else ""),
                     "ports": ", ".join(ports), "image": str(container.attrs["Config"].get("Image", ""))})
    return rows
