"""The long-lived compose stack (attach mode only: ``pytest suites/ --stack compose``).

What the reference project got wrong with its compose stack, checked on the running one: the passwords the
containers start with are the ones Vault holds (so a restart cannot drift), the private files are private
on the host and in the containers, everything is published on 127.0.0.1 only, and a restart of every
container comes back healthy with Vault's credentials and certificates (destructive)."""

from __future__ import annotations

import base64
import time

import pytest

from harness.plugin import service_params
from harness.stacks.attach import probe, published
from harness.stacks.compose import COMPOSE_SERVICES, file_name, project_containers, read_secret
from harness.stacks.compose_lifecycle import status
from harness.trust.certs import OWNERS, served, targets
from stack import registry
from stack.waiting import poll

pytestmark = pytest.mark.compose_stack
#: every service of the compose stack with a password login is covered without an edit here: its driver names
#: the file that carries the password and the server's own refusal of a wrong one
PASSWORDS = [spec.name for spec in registry.specs() if spec.compose_services
             and spec.driver.compose_password_file is not None and spec.driver.password_refusal is not None]


@pytest.fixture(autouse=True)
def _attach_only(harness_stack):
    if harness_stack.settings.stack != "compose":
        pytest.skip(reason="checks the compose stack: run with --stack compose after `python -m harness compose up`")


def _in_container(container, path):
    result = container.exec_run(["sh", "-c", f"base64 < {path} && stat -c '%a %U' {path}"])
    assert result.exit_code == 0, f"{container.name}: reading {path} failed: {result.output[-200:]!r}"
    *body, meta = result.output.decode().strip().splitlines()
    return base64.b64decode("".join(body)).decode(), meta


@pytest.mark.parametrize("name", service_params(PASSWORDS))
def test_started_with_the_password_vault_holds(name, harness_stack, vault_service, request):
    endpoint = request.getfixturevalue(f"{name}_service")  # built from Vault's KV, read with the AppRole
    spec = registry.get(name)
    driver = spec.driver
    path = driver.compose_password_file
    on_host = (harness_stack.layout.service_dir(name) / file_name(path)).read_text()
    for container in harness_stack.containers(name):
        installed, meta = _in_container(container, path)
        same = installed == on_host  # compared as a bool: a failure must not print the password
        assert same, f"{container.name}: {path} differs from certs/compose/{name}"
        assert meta == f"600 {OWNERS[name]}", f"{container.name}: {path} is {meta}"
    # The file on the host is what the driver renders from the KV document Vault holds now (its own AppRole).
    secret = read_secret(vault_service.url, name, harness_stack.vault_bootstrap.approles[name])
    options = {key: getattr(harness_stack.settings, key) for key in spec.settings}
    holds_vaults = driver.compose_files(secret, options)[path].decode() == on_host
    assert holds_vaults, f"{name}: certs/compose holds another password than Vault"
    assert probe(name, endpoint) is True
    refusal = driver.password_refusal  # the server's own authentication error: a dead server does not pass
    with pytest.raises(refusal.error, match=refusal.match) as refused, \
            driver.session(endpoint, password=str(secret["password"]) + "x"):
        pass
    assert not isinstance(refused.value, refusal.not_as), type(refused.value)


def test_material_is_private_on_the_host(harness_stack):
    root = harness_stack.layout.material_dir
    assert root.stat().st_mode & 0o777 == 0o700
    checked = 0
    for directory in root.iterdir():
        if not directory.is_dir():
            continue
        assert directory.stat().st_mode & 0o777 == 0o700, directory
        for path in directory.iterdir():
            mode = path.stat().st_mode & 0o777
            if path.name in ("install.list", "serial"):
                assert mode == 0o644, path
            else:
                assert mode == 0o600, f"{path} is {oct(mode)}"
                checked += 1
    assert checked >= 15, f"only {checked} private files found under {root}"


def test_every_port_is_on_loopback_and_every_container_healthy(harness_stack):
    rows = status(harness_stack.settings)
    expected = {c for name in harness_stack.state.services for c in COMPOSE_SERVICES[name]}
    assert {r["service"] for r in rows} >= expected
    for row in rows:
        assert row["state"] == "running (healthy)", row
        for binding in row["ports"].split(", "):
            assert binding.startswith("127.0.0.1:"), f"{row['service']} publishes {binding}"


@pytest.mark.destructive
def test_restart_of_every_container_keeps_credentials_and_certificates(harness_stack, vault_service):
    names = [s for s in harness_stack.state.services if s != "vault"]
    before = {name: harness_stack.endpoint(name) for name in names}
    containers = [c for name in names for c in harness_stack.containers(name)]
    started = time.monotonic()
    for container in containers:
        container.restart(timeout=20)
    for name in names:
        poll(lambda name=name: probe(name, harness_stack.endpoint(name)), timeout=180, accept=bool,
             what=f"{name} to accept Vault's credentials after a restart",
             hint="a refused login means the container started with credentials that are not Vault's")
        driver = registry.get(name).driver
        if driver.has("compose_ready"):  # a cluster: the nodes find each other again at their fixed addresses
            svc = published(name, harness_stack.layout, project_containers(harness_stack.client,
                            harness_stack.layout.project), {}, "")
            assert driver.compose_ready(svc, harness_stack.endpoint(name), 180, print) is False
        after = harness_stack.endpoint(name)
        kept = after.password == before[name].password  # a bool, so a failure does not print passwords
        assert kept, f"{name}: the password changed across the restart"
        for target in targets({name: after}):
            assert served(target).matches, f"{target.alias} serves another certificate after the restart"
    print(f"restart of {len(containers)} containers back with Vault's credentials in {time.monotonic() - started:.1f}s")
