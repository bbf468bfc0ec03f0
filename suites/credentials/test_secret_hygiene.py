"""Secret hygiene: no password, root token or unseal key appears in a container's argv, environment,
process list or logs. Each service is its own case so ``-m postgres`` checks only PostgreSQL's containers."""

from __future__ import annotations

import pytest

from harness.plugin import service_params
from stack.vault import VaultInit

pytestmark = pytest.mark.credentials


def _secrets(name, endpoint, stack):
    found = {"vault root token": VaultInit.load(stack.state_dir / "vault-init.json").root_token}
    for i, key in enumerate(VaultInit.load(stack.state_dir / "vault-init.json").keys):
        found[f"unseal key {i}"] = key
    if name == "mysql":
        found["mysql root password"] = endpoint.root_password
    if name != "vault":
        found[f"{name} password"] = endpoint.password
    return found


def _process_argv(container):
    """Every process's argv inside the container, read from /proc (no ps needed in the image)."""
    script = 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done'
    code, output = container.exec_run(["sh", "-c", script])
    assert code == 0, output
    text = output.decode(errors="replace")
    assert text.strip(), "no process argv could be read"
    return text


@pytest.mark.parametrize("name", service_params())
def test_no_secret_in_argv_env_processes_or_logs(name, harness_stack, request):
    endpoint = request.getfixturevalue(f"{name}_service")
    secrets = _secrets(name, endpoint, harness_stack)
    short = [label for label, value in secrets.items() if len(value) < 16]
    assert short == [], f"secrets must be long random strings: {short}"
    client = harness_stack.client
    ids = harness_stack.require(name).container_ids()
    assert ids, f"{name} has no containers"
    for cid in ids:
        container = client.containers.get(cid)
        attrs = container.attrs
        places = {
            "argv": " ".join([attrs.get("Path", ""), *(attrs.get("Args") or [])]),
            "Config.Cmd": " ".join(attrs["Config"].get("Cmd") or []),
            "Config.Env": "\n".join(attrs["Config"].get("Env") or []),
            "processes": _process_argv(container),
            "logs": container.logs(stdout=True, stderr=True).decode(errors="replace"),
        }
        for place, text in places.items():
            assert text is not None
            for label, value in secrets.items():
                leaked = value in text  # a bool first: a failing assertion must not print the secret or the text
                assert not leaked, f"{label} appears in {container.name} {place}"
