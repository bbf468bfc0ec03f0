"""Exporting Vault's CA chain and issued certificates to files (private where they hold keys)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from stack.errors import VaultError
from stack.files import write_file

if TYPE_CHECKING:
    from harness.vault_bootstrap import ServiceMaterial


@dataclass(frozen=True)
class CaChain:
    """The root and intermediate CA certificates (PEM) and where they were written."""

    root: str
    intermediate: str
    directory: Path

    @property
    def chain(self) -> str:
        """Intermediate then root: what a client needs when it trusts neither."""
        return self.intermediate.rstrip("\n") + "\n" + self.root.rstrip("\n") + "\n"


def export_ca(vault_url: str, directory: Path) -> CaChain:
    """Read the CA certificates from Vault's unauthenticated PEM endpoints and write them to ``directory``:
    ``root-ca.pem``, ``intermediate-ca.pem`` and ``ca-chain.pem`` (intermediate + root)."""
    pems = {}
    for mount in ("pki", "pki_int"):
        resp = requests.get(f"{vault_url}/v1/{mount}/ca/pem", timeout=10)
        if resp.status_code != 200 or "BEGIN CERTIFICATE" not in resp.text:
            raise VaultError(f"reading {mount}/ca/pem from Vault answered {resp.status_code}: {resp.text[:200]}")
        pems[mount] = resp.text
    ca = CaChain(root=pems["pki"], intermediate=pems["pki_int"], directory=directory)
    write_file(directory / "root-ca.pem", ca.root, 0o644)
    write_file(directory / "intermediate-ca.pem", ca.intermediate, 0o644)
    write_file(directory / "ca-chain.pem", ca.chain, 0o644)
    return ca


def write_service_pem(directory: Path, material: ServiceMaterial) -> None:
    """A service's leaf (``cert.pem``, leaf + intermediate) and key (``key.pem``, 0600)."""
    write_file(directory / "cert.pem", material.fullchain, 0o644)
    write_file(directory / "key.pem", material.private_key, 0o600)
    write_file(directory / "serial", material.serial + "\n", 0o644)
