"""The Vault seal drill (kind ``vault-seal``, ``vault-seal``): Vault restarted or killed -- it comes back sealed --
while two clients work, and the harness unseals it from its stored keys.

Clients (each in its own thread, each looking Vault's published port up again for every request):

* the *KV writer* writes numbered values to ``secret/drill-<hex>/<n>`` with the harness-admin token; a write that
  fails (sealed: 503, down: connection refused) is retried with the same number until Vault acknowledges it, as an
  application would -- so nothing it wrote while Vault was sealed may be missing afterwards;
* the *AppRole client* logs in with Vault's own AppRole and issues a certificate with that token, again and again.

A round:

1. Preconditions, polled with a deadline: Vault active; 20 acknowledged KV writes and 3 AppRole logins with a
   certificate issued.
2. The fault at ``t0``: ``restart`` (``docker restart``: graceful) or ``kill`` (``docker kill`` and start). The
   undo -- start the container unless it runs, wait for the API, unseal from the stored keys, wait until active --
   runs right away (the harness is what unseals), and in ``finally`` whatever happens.
3. Figures: ``unsealed_ms`` (t0 -> unsealed and active again), ``login_resume_ms`` / ``issue_resume_ms`` (t0 -> the
   first AppRole login / certificate issued after the fault took effect), ``client_outage_ms`` (the KV writer's
   longest silence between acknowledged writes), ``client_errors`` (every error either client saw).
4. Invariants (:func:`vault_verdict`): ``kv_lost`` = acknowledged KV writes that do not read back with their
   value (must be 0); every service's KV document reads back unchanged.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hvac

from harness.drills.kit import (
    POLL_S,
    DrillError,
    Timeline,
    ensure_running,
    fault_applied,
    ms,
    outage_ms,
)
from stack.drill_ops import ServiceDrill
from stack.errors import ReadinessTimeout
from stack.vault import VaultContainer, listener_answers
from stack.waiting import poll

VAULT_METRICS = ("unsealed_ms", "login_resume_ms", "issue_resume_ms", "client_outage_ms", "client_errors",
                 "kv_lost")
KV_BEFORE = 20
LOGINS_BEFORE = 3
MAX_OPS = 20_000


@dataclass
class VaultRound:
    round: int
    fault: str
    victim: str
    unsealed_ms: float | None = None
    login_resume_ms: float | None = None
    issue_resume_ms: float | None = None
    client_outage_ms: float | None = None
    # None: not counted (the round ended before the clients were stopped and the KV values read back)
    client_errors: int | None = None
    kv_written: int | None = None
    kv_lost: int | None = None
    logins: int | None = None
    certificates: int | None = None
    sealed_seen: bool | None = None
    errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def vault_verdict(acked: Mapping[str, str], read_back: Mapping[str, str | None], documents_before: Mapping[str, Any],
                  documents_after: Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    """Counts and problems after the seal: ``acked`` is every KV write Vault acknowledged (path -> value),
    ``read_back`` what those paths hold now (None: missing); the services' KV documents before and after."""
    lost = sorted(p for p, value in acked.items() if read_back.get(p) != value)
    problems = []
    if lost:
        problems.append(f"{len(lost)} acknowledged KV value(s) lost across the seal: {', '.join(lost[:10])}")
    changed = sorted(name for name in documents_before if documents_after.get(name) != documents_before[name])
    if changed:
        problems.append(f"KV document(s) of {', '.join(changed)} changed across the seal")
    return {"kv_lost": len(lost)}, problems


class _Client(threading.Thread):
    def __init__(self, deadline: float) -> None:
        super().__init__(daemon=True)
        self.deadline = deadline
        self.timeline = Timeline()
        self.stopping = threading.Event()

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout)

    def going(self, done: int) -> bool:
        return not self.stopping.is_set() and time.monotonic() < self.deadline and done < MAX_OPS


class KvWriter(_Client):
    """Numbered KV writes, each retried until acknowledged."""

    def __init__(self, url: Callable[[], str], token: str, prefix: str, deadline: float) -> None:
        super().__init__(deadline)
        self.url, self.token, self.prefix = url, token, prefix
        self.acked: dict[str, str] = {}

    def run(self) -> None:
        seq = 1
        while self.going(seq):
            path, value = f"{self.prefix}/{seq}", secrets.token_hex(8)
            try:
                hvac.Client(url=self.url(), token=self.token, timeout=3).secrets.kv.v2.create_or_update_secret(
                    path=path, secret={"value": value}, mount_point="secret")
            except Exception as exc:  # a client counts whatever it gets, and retries the same write
                self.timeline.error(exc)
                self.stopping.wait(POLL_S)
                continue
            self.acked[path] = value
            self.timeline.ack(seq)
            seq += 1
            self.stopping.wait(0.01)


class AppRoleClient(_Client):
    """AppRole login, then a certificate issued with that token; both timelines recorded."""

    def __init__(self, url: Callable[[], str], creds: Mapping[str, str], names: list[str], deadline: float) -> None:
        super().__init__(deadline)
        self.url, self.creds, self.names = url, creds, names
        self.issued = Timeline()

    def run(self) -> None:
        seq = 0
        while self.going(seq):
            seq += 1
            try:
                client = hvac.Client(url=self.url(), timeout=3)
                client.auth.approle.login(role_id=self.creds["role_id"], secret_id=self.creds["secret_id"])
                self.timeline.ack(seq)
                client.write_data("pki_int/issue/vault", data={"common_name": self.names[0], "ttl": "1h"})
                self.issued.ack(seq)
            except Exception as exc:
                self.timeline.error(exc)
                self.stopping.wait(POLL_S)
                continue
            self.stopping.wait(0.05)


def _first_after(timeline: Timeline, moment: float) -> float | None:
    return next((at for _, at in timeline.acks if at > moment), None)


def unseal_again(vault: VaultContainer, timeout: float) -> None:
    """Start the container unless it runs, wait for the API, unseal from the stored keys unless unsealed, and wait
    until Vault is active (the undo of every Vault fault)."""
    ensure_running(vault.get_wrapped_container())
    poll(lambda: listener_answers(vault.url), what="Vault's API to answer after the fault", timeout=timeout,
         interval=POLL_S, hint="read Vault's log")
    vault.unseal(timeout=timeout)


def vault_seal_round(stack: Any, service: str, drill: ServiceDrill, number: int, fault: str,
                     timeout: float) -> VaultRound:
    """One seal round; Vault is unsealed and active when it returns (or :class:`~stack.errors.ReadinessTimeout`
    says why not)."""
    vault = stack.require(service)
    bootstrap = stack.vault_bootstrap
    if not isinstance(vault, VaultContainer) or bootstrap is None:
        raise DrillError(f"drill {drill.name}: needs the stack's bootstrapped Vault")
    if fault not in ("restart", "kill"):
        raise DrillError(f"drill {drill.name}: unknown fault {fault!r}; one of {', '.join(drill.faults)}")
    wrapped = vault.get_wrapped_container()
    result = VaultRound(round=number, fault=fault, victim=vault.alias)
    poll(lambda: vault.health(), what=f"Vault to be active before round {number}", timeout=timeout, interval=0.2,
         accept=lambda h: h.get("sealed") is False and h.get("standby") is False, hint="read Vault's log")

    def url() -> str:
        return vault.url  # looked up every time: a restarted container may move port

    def admin() -> hvac.Client:
        return hvac.Client(url=url(), token=bootstrap.admin_token, timeout=10)

    def documents() -> dict[str, Any]:
        kv = admin().secrets.kv.v2
        return {name: kv.read_secret_version(path=name, mount_point="secret", raise_on_deleted_version=True)
                ["data"]["data"] for name in bootstrap.approles}

    before = documents()
    deadline = time.monotonic() + 4 * timeout
    writer = KvWriter(url, bootstrap.admin_token, f"drill-{secrets.token_hex(4)}", deadline)
    approle = AppRoleClient(url, bootstrap.approles[service], bootstrap.names[service], deadline)
    writer.start()
    approle.start()
    try:
        poll(lambda: (len(writer.timeline.acks), len(approle.issued.acks)), what=f"{KV_BEFORE} KV writes and "
             f"{LOGINS_BEFORE} AppRole logins with a certificate before the fault", timeout=timeout,
             interval=POLL_S, accept=lambda n: n[0] >= KV_BEFORE and n[1] >= LOGINS_BEFORE,
             hint="the clients stalled: see their errors and Vault's log")

        def apply() -> None:
            if fault == "restart":
                wrapped.restart(timeout=10)
            else:
                wrapped.kill()

        t0 = time.monotonic()
        with fault_applied(apply, lambda: unseal_again(vault, timeout)) as undo:
            down = time.monotonic()  # the fault took effect: the restart returned, or the container is dead
            try:
                ensure_running(wrapped)
                poll(lambda: listener_answers(vault.url), what=f"Vault's API to answer after the {fault}",
                     timeout=timeout, interval=POLL_S, hint="read Vault's log")
                result.sealed_seen = vault.health().get("sealed") is True
                undo()
            except ReadinessTimeout as exc:
                result.problems.append(str(exc))
                return result
            result.unsealed_ms = ms(t0, time.monotonic())
        unsealed = time.monotonic()
        try:
            poll(lambda: (writer.timeline.acked_after(unsealed), len([a for a in approle.issued.acks
                                                                     if a[1] > unsealed])),
                 what="5 KV writes and a certificate issued after the unseal", timeout=timeout, interval=POLL_S,
                 accept=lambda n: n[0] >= 5 and n[1] >= 1, hint="a client never resumed: see its errors")
        except ReadinessTimeout as exc:
            result.problems.append(str(exc))
        writer.stop()
        approle.stop()
        if not result.sealed_seen:
            result.problems.append(f"Vault did not come back sealed after the {fault}")
        result.login_resume_ms = ms(t0, _first_after(approle.timeline, down))
        result.issue_resume_ms = ms(t0, _first_after(approle.issued, down))
        result.client_outage_ms = outage_ms([at for _, at in writer.timeline.acks], t0)
        result.errors = {k: writer.timeline.errors.get(k, 0) + approle.timeline.errors.get(k, 0)
                         for k in {*writer.timeline.errors, *approle.timeline.errors}}
        result.client_errors = sum(result.errors.values())
        result.kv_written, result.logins, result.certificates = (len(writer.acked), len(approle.timeline.acks),
                                                                 len(approle.issued.acks))
        kv = admin().secrets.kv.v2
        read_back: dict[str, str | None] = {}
        for path in writer.acked:
            try:
                read_back[path] = kv.read_secret_version(path=path, mount_point="secret",
                                                         raise_on_deleted_version=True)["data"]["data"].get("value")
            except hvac.exceptions.InvalidPath:
                read_back[path] = None
        counts, problems = vault_verdict(writer.acked, read_back, before, documents())
        result.kv_lost = counts["kv_lost"]
        result.problems += problems
    finally:
        writer.stop()
        approle.stop()
    return result
