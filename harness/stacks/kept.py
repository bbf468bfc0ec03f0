"""A stack left running by ``python -m harness up``, found again through its state file and container labels.

``up`` writes ``<state>/runs/<run id>/stack.json`` (endpoints and report, 0600) and labels every container with
its run id; :class:`KeptStack` reads both back and is a :class:`~harness.stacks.running.RunningStack`, so ``certs`` and
``backup`` work on it as on any other stack. What changes while it runs (a rotated certificate's serial, a
changed password, Vault's tokens after a restore) is written back to the state file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docker import DockerClient
from docker.models.containers import Container

from harness.stacks.running import Endpoint, RunningStack, containers_logs, recorded_version
from harness.trust.bootstrap import BootstrapResult
from harness.trust.pki import CaChain
from stack import registry
from stack.base import LABEL_RUN_ID, LABEL_SERVICE, TlsMaterial
from stack.errors import ConfigError, ServiceStartError
from stack.files import write_file


def endpoint_from_json(service: str, data: Mapping[str, Any]) -> Endpoint:
    """Rebuild a service endpoint from the JSON in a stack state file (its module's ``endpoint_from_json``)."""
    return registry.get(service).driver.endpoint_from_json(data)


@dataclass
class KeptStack:
    """A stack kept running by ``up``: its state file, the endpoints saved there, its containers by label."""

    state_file: Path
    data: dict[str, Any]
    client: DockerClient
    ready_timeout: float = 60.0
    _endpoints: dict[str, Endpoint] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._endpoints = {name: endpoint_from_json(name, ep) for name, ep in self.data["endpoints"].items()}

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def state_dir(self) -> Path:
        return self.state_file.parent

    @property
    def vault_bootstrap(self) -> BootstrapResult | None:
        path = self.state_dir / "vault-bootstrap.json"
        return BootstrapResult.load(path) if path.is_file() else None

    @property
    def ca(self) -> CaChain | None:
        pki = self.state_dir / "pki"
        if not (pki / "root-ca.pem").is_file():
            return None
        return CaChain(root=(pki / "root-ca.pem").read_text(), intermediate=(pki / "intermediate-ca.pem").read_text(),
                       directory=pki)

    def running(self) -> list[str]:
        return list(self._endpoints)

    def unavailable_reason(self, name: str) -> str | None:
        record = self.data.get("report", {}).get("services", {}).get(name) or {}
        return str(record.get("error")) if record.get("status") == "unavailable" else None

    def endpoint(self, name: str) -> Endpoint:
        if name not in self._endpoints:
            raise ServiceStartError(f"{name} is not running in run {self.run_id}")
        return self._endpoints[name]

    def containers(self, name: str) -> list[Container]:
        found = self.client.containers.list(filters={"label": [f"{LABEL_RUN_ID}={self.run_id}",
                                                               f"{LABEL_SERVICE}={name}"]})
        return sorted(found, key=lambda c: str(c.name))

    def logs(self, name: str, tail: int = 200) -> str:
        return containers_logs(self.containers(name), tail)

    def expected_version(self, name: str) -> str | None:
        record = self.data.get("report", {}).get("services", {}).get(name) or {}
        return recorded_version(name, record, "image_source", "expected_version")

    # ------------------------------------------------------------------------------------ changes

    def record_tls(self, name: str, tls: TlsMaterial) -> None:
        ep = self.endpoint(name)
        self._endpoints[name] = replace(ep, tls=replace(ep.tls, serial=tls.serial))
        self.save()

    def record_password(self, name: str, new: str) -> None:
        self._endpoints[name] = replace(self.endpoint(name), password=new)
        self.save()

    def adopt_vault(self, init: dict[str, Any], bootstrap: dict[str, Any]) -> None:
        write_file(self.state_dir / "vault-init.json", json.dumps(init))
        write_file(self.state_dir / "vault-bootstrap.json", json.dumps(bootstrap, indent=2))
        self._endpoints["vault"] = replace(self._endpoints["vault"], token=bootstrap["admin_token"])
        self.save()

    def save(self) -> None:
        """Write the current endpoints back to the state file (0600)."""
        self.data["endpoints"] = {name: asdict(ep) for name, ep in self._endpoints.items()
                                  if is_dataclass(ep) and not isinstance(ep, type)}
        write_file(self.state_file, json.dumps(self.data, indent=2, default=str))


def find_kept_stack(state_root: Path, client: DockerClient, ready_timeout: float = 60.0) -> KeptStack:
    """The newest ``up`` stack whose containers still exist."""
    live = {c.labels.get(LABEL_RUN_ID, "") for c in client.containers.list(filters={"label": LABEL_RUN_ID})}
    for path in sorted((state_root / "runs").glob("*/stack.json"), reverse=True):
        data = json.loads(path.read_text())
        if data.get("run_id") in live:
            return KeptStack(path, data, client, ready_timeout)
    raise ConfigError(f"no running stack started by `python -m harness up` (looked in {state_root / 'runs'}); "
                      "start one with: python -m harness up")

if TYPE_CHECKING:  # mypy proves here that a kept stack implements the protocol directly
    def _is_a_running_stack(stack: KeptStack) -> RunningStack:
        return stack
