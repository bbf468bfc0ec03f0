"""Vault's PKI as the harness holds it: the CA chain, what a service is issued, and both exported to files (private
where they hold keys)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from stack.base import TlsMaterial
from stack.errors import VaultError
from stack.files import write_file


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


@dataclass(frozen=True)
class ServiceMaterial:
    """What a service gets from Vault before its container is created, fetched with its own AppRole."""

    service: str
    secret: Mapping[str, Any]
    certificate: str
    private_key: str
    issuing_ca: str
    ca_chain: tuple[str, ...]
    serial: str
    token_policies: tuple[str, ...]

    @property
    def password(self) -> str:
        return str(self.secret["password"])

    @property
    def fullchain(self) -> str:
        """Leaf then intermediate: what a server presents so clients trusting only the root can verify it."""
        return self.certificate.rstrip("\n") + "\n" + self.issuing_ca

    def tls(self, ca: CaChain) -> TlsMaterial:
        """The certificate as the files a server reads, with the stack's CA chain (the one way the harness builds
        TLS material)."""
        return TlsMaterial(certificate=self.fullchain, private_key=self.private_key, ca_chain=ca.chain,
                           root_ca=ca.root, serial=self.serial)



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
