"""Vault as the root of trust: PKI, KV credentials, one policy and AppRole per service.

Runs once per stack, right after Vault is unsealed and before any other service container is created:

1. PKI: a root CA on ``pki/`` and an intermediate on ``pki_int/`` signed by it, with issuing and CRL URLs.
2. One PKI role per service allowing exactly the names its clients use (network aliases, ``localhost``,
   IP SAN 127.0.0.1), leaf TTL bounded by the role.
3. KV v2 at ``secret/<service>`` with random credentials and TLS flags as real JSON booleans.
4. One policy and one AppRole per service: read its own KV path, issue from its own PKI role, nothing else.
5. An admin token with the narrow ``harness-admin`` policy for the harness's later work; the root token is
   revoked. A new root can be generated from the stored unseal keys (``operator generate-root``).

Each service's credentials and certificate are then fetched *with that service's AppRole*
(:func:`fetch_material`), never with an admin token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from harness.trust.params import AppRoleSettings, PkiSettings
from harness.trust.pki import ServiceMaterial
from stack import registry
from stack.errors import VaultError
from stack.files import write_file
from stack.waiting import poll

ADMIN_POLICY = "harness-admin"


def ttl_seconds(text: str) -> int:
    """A Vault duration with one unit (``90s``, ``15m``, ``1h``, ``30d``) in seconds."""
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


def service_names(service: str, aliases: Sequence[str] = ()) -> list[str]:
    """DNS names a service's clients use: its network aliases (default: the service name; a cluster names every
    node) and localhost (plus IP SAN 127.0.0.1)."""
    return [*(aliases or (service,)), "localhost"]


def initial_secret(service: str, strict: bool = False) -> dict[str, Any]:
    """The KV document for a service, as its module declares it: random credentials and TLS flags."""
    document: dict[str, Any] = registry.get(service).driver.initial_secret(strict)
    return document


def service_policy(service: str) -> str:
    """HCL of the per-service policy: read its own secret, issue its own certificate, nothing else."""
    return (
        f'path "secret/data/{service}" {{\n  capabilities = ["read"]\n}}\n'
        f'path "pki_int/issue/{service}" {{\n  capabilities = ["create", "update"]\n}}\n'
    )


ADMIN_POLICY_HCL = """
# The harness's own later work: rotate credentials, (re)issue certificates, mint/destroy secret-ids,
# snapshot raft for backups and restore a snapshot. No sys/policy, sys/auth or sys/mounts changes.
path "secret/data/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }
path "pki_int/issue/*" { capabilities = ["create", "update"] }
path "pki_int/revoke" { capabilities = ["create", "update"] }
path "pki_int/roles/*" { capabilities = ["read"] }
path "pki_int/config/urls" { capabilities = ["read"] }
path "auth/approle/role/*" { capabilities = ["read"] }
path "auth/approle/role/+/role-id" { capabilities = ["read"] }
path "auth/approle/role/+/secret-id" { capabilities = ["create", "update"] }
path "auth/approle/role/+/secret-id/destroy" { capabilities = ["create", "update"] }
path "sys/storage/raft/snapshot" { capabilities = ["read"] }
path "sys/storage/raft/snapshot-force" { capabilities = ["create", "update", "sudo"] }
path "sys/storage/raft/configuration" { capabilities = ["read"] }
path "sys/policies/acl/*" { capabilities = ["read"] }
# OpenBao 2.6+ runs `operator generate-root` through these authenticated endpoints (Vault's sys/generate-root
# is unauthenticated); a new root token still needs the unseal-key quorum (docs/vault.md: "A new root token").
path "sys/generate-root-token/*" { capabilities = ["create", "read", "update", "delete"] }
"""


@dataclass
class BootstrapResult:
    """What the bootstrap produced; persisted (0600) next to the unseal keys."""

    admin_token: str
    approles: dict[str, dict[str, str]]  # service -> {"role_id", "secret_id"}
    names: dict[str, list[str]]
    root_revoked: bool
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        write_file(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> BootstrapResult:
        return cls(**json.loads(path.read_text()))


class _Steps:
    """Runs named steps, timing each; a Vault error stops the run with the step named."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t0 = time.monotonic()

    def run(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            result = action()
        except (hvac.exceptions.VaultError, requests.RequestException, OSError) as exc:
            raise VaultError(f"Vault bootstrap step '{name}' failed: {type(exc).__name__}: {str(exc)[:300]}") from None
        self.timings[name] = round(time.monotonic() - started, 3)
        return result

    def total(self) -> float:
        return round(time.monotonic() - self._t0, 3)


def bootstrap(client: hvac.Client, *, services: list[str], internal_url: str, pki: PkiSettings,
              approle: AppRoleSettings, aliases: Mapping[str, Sequence[str]] | None = None, revoke_root: bool = True,
              tls_strict: Iterable[str] = (), admin_period: str = "24h") -> BootstrapResult:
    """Configure PKI, KV, policies and AppRoles for ``services`` using the root token held by ``client``.

    Args:
        client: an hvac client holding the initial root token.
        services: every service of the stack (Vault included, for its own HTTPS certificate later).
        internal_url: Vault's URL on the stack network (issuing/CRL URLs point there).
        pki / approle: settings.
        aliases: the network aliases of each service's containers where they are not just its name (every node
            of a cluster): they go into its PKI role and certificates.
        revoke_root: revoke the root token at the end (the default).
        tls_strict: services whose ``tls_strict`` flag is set (they will serve TLS only).
        admin_period: renewal period of the harness-admin token (a periodic token lives as long as it is
            renewed within each period; the long-lived compose stack renews it at every ``compose up``).
    """
    steps = _Steps()
    strict = set(tls_strict)
    sys = client.sys

    def pki_root() -> None:
        sys.enable_secrets_engine("pki", path="pki", config={"max_lease_ttl": pki.root_ttl})
        client.write_data("pki/root/generate/internal", data={
            "common_name": pki.root_common_name, "key_type": pki.key_type, "key_bits": pki.key_bits,
            "ttl": pki.root_ttl, "issuer_name": "root"})
        client.write_data("pki/config/urls", data={
            "issuing_certificates": [f"{internal_url}/v1/pki/ca"],
            "crl_distribution_points": [f"{internal_url}/v1/pki/crl"]})

    def pki_intermediate() -> None:
        sys.enable_secrets_engine("pki", path="pki_int", config={"max_lease_ttl": pki.intermediate_ttl})
        csr = client.write_data("pki_int/intermediate/generate/internal", data={
            "common_name": pki.intermediate_common_name, "key_type": pki.key_type, "key_bits": pki.key_bits})
        signed = client.write_data("pki/root/sign-intermediate", data={
            "csr": csr["data"]["csr"], "common_name": pki.intermediate_common_name, "ttl": pki.intermediate_ttl,
            "format": "pem_bundle", "use_csr_values": False})
        client.write_data("pki_int/intermediate/set-signed", data={"certificate": signed["data"]["certificate"]})
        client.write_data("pki_int/config/urls", data={
            "issuing_certificates": [f"{internal_url}/v1/pki_int/ca"],
            "crl_distribution_points": [f"{internal_url}/v1/pki_int/crl"]})

    def roles() -> dict[str, list[str]]:
        names = {}
        for svc in services:
            names[svc] = service_names(svc, (aliases or {}).get(svc, ()))
            client.write_data(f"pki_int/roles/{svc}", data={
                "allowed_domains": names[svc], "allow_bare_domains": True, "allow_subdomains": False,
                "allow_glob_domains": False, "allow_localhost": True, "allow_ip_sans": True,
                "allow_wildcard_certificates": False, "enforce_hostnames": True, "server_flag": True,
                "client_flag": True, "basic_constraints_valid_for_non_ca": True,
                "key_type": pki.key_type, "key_bits": pki.key_bits,
                "max_ttl": pki.leaf_max_ttl, "ttl": pki.leaf_ttl})
        return names

    def kv() -> None:
        sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})

        def upgraded() -> bool:
            # A new KV v2 mount first "upgrades from non-versioned data" and refuses requests meanwhile
            # (seen here under load: "This backend will be unavailable for a brief period").
            try:  # a data path, as the bootstrap's writes use: 404 means the mount is ready
                client.secrets.kv.v2.read_secret_version(path=services[0], mount_point="secret",
                                                         raise_on_deleted_version=True)
            except hvac.exceptions.InvalidPath:
                return True
            except hvac.exceptions.InvalidRequest as exc:
                if "Upgrading" in str(exc):
                    return False
                raise
            return True

        poll(upgraded, what="the new KV v2 mount to finish its upgrade", timeout=30, accept=bool,
             transient=(hvac.exceptions.VaultDown, hvac.exceptions.InternalServerError),
             hint="KV v2 upgrades a fresh mount in the background; it normally takes well under a second")
        for svc in services:
            client.secrets.kv.v2.create_or_update_secret(path=svc, secret=initial_secret(svc, svc in strict),
                                                        mount_point="secret")

    def approles() -> dict[str, dict[str, str]]:
        sys.enable_auth_method("approle")
        result = {}
        for svc in services:
            sys.create_or_update_policy(name=svc, policy=service_policy(svc))
            client.auth.approle.create_or_update_approle(
                role_name=svc, token_policies=[svc], token_ttl=approle.token_ttl,
                token_max_ttl=approle.token_max_ttl, secret_id_ttl=approle.secret_id_ttl, token_type="service")
            role_id = client.auth.approle.read_role_id(role_name=svc)["data"]["role_id"]
            secret_id = client.auth.approle.generate_secret_id(role_name=svc)["data"]["secret_id"]
            result[svc] = {"role_id": role_id, "secret_id": secret_id}
        return result

    def admin() -> str:
        sys.create_or_update_policy(name=ADMIN_POLICY, policy=ADMIN_POLICY_HCL)
        token = client.auth.token.create(policies=[ADMIN_POLICY], no_parent=True, period=admin_period,
                                         display_name="harness-admin", renewable=True)
        return str(token["auth"]["client_token"])

    steps.run("pki root", pki_root)
    steps.run("pki intermediate", pki_intermediate)
    names = steps.run("pki roles", roles)
    steps.run("kv secrets", kv)
    creds = steps.run("policies and approles", approles)
    admin_token = steps.run("admin token", admin)
    if revoke_root:
        steps.run("revoke root", client.auth.token.revoke_self)
    steps.timings["total"] = steps.total()
    return BootstrapResult(admin_token=admin_token, approles=creds, names=names, root_revoked=revoke_root,
                           timings=steps.timings)


def approle_login(url: str, role_id: str, secret_id: str) -> hvac.Client:
    """A client logged in with an AppRole (token TTL and policies as the role says)."""
    client = hvac.Client(url=url, timeout=10)
    client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    return client


def fetch_material(url: str, service: str, creds: Mapping[str, str], names: list[str],
                   ttl: str | None = None) -> ServiceMaterial:
    """Log in with the service's AppRole, read ``secret/<service>`` and issue its certificate."""
    try:
        client = approle_login(url, creds["role_id"], creds["secret_id"])
        policies = tuple(client.auth.token.lookup_self()["data"]["policies"])
        secret = client.secrets.kv.v2.read_secret_version(path=service, mount_point="secret",
                                                          raise_on_deleted_version=True)["data"]["data"]
        dns = [n for n in names if n != "localhost"]
        data: dict[str, Any] = {"common_name": dns[0] if dns else "localhost",
                                "alt_names": ",".join(names), "ip_sans": "127.0.0.1"}
        if ttl:
            data["ttl"] = ttl
        issued = client.write_data(f"pki_int/issue/{service}", data=data)["data"]
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"fetching {service}'s credentials and certificate with its AppRole failed: "
                         f"{type(exc).__name__}: {exc}") from None
    return ServiceMaterial(service=service, secret=secret, certificate=issued["certificate"],
                           private_key=issued["private_key"], issuing_ca=issued["issuing_ca"],
                           ca_chain=tuple(issued.get("ca_chain") or ()), serial=issued["serial_number"],
                           token_policies=policies)
