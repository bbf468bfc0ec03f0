"""Credential rotation: a new password goes to Vault first, then onto the running service.

If the service refuses the change, the previous KV version is written back, so Vault and the service never
disagree for longer than the call. It works on every kind of running stack: :class:`PasswordStack` names the two
members of :class:`harness.stacks.running.RunningStack` it uses (the stacks import trust, so trust does not import
them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import hvac

from harness.reports.redact import register
from stack import registry
from stack.base import random_secret
from stack.errors import HarnessError


def rotatable() -> list[str]:
    """The services whose spec declares ``rotatable_password`` (they change their password live)."""
    return registry.with_capability("rotatable_password")


class PasswordStack(Protocol):
    """What a password rotation uses of a running stack (mypy proves in :mod:`harness.stacks.running` that every
    ``RunningStack`` is one)."""

    def endpoint(self, name: str) -> Any: ...
    def record_password(self, name: str, new: str) -> None: ...


@dataclass(frozen=True)
class Rotation:
    service: str
    old_password: str
    new_password: str
    kv_version: int


def rotate_password(stack: PasswordStack, service: str) -> Rotation:
    """Rotate ``service``'s password on a running stack of any kind: write a new KV version with the
    harness-admin token, change it on the running server (its spec's ``change_password``, with the credentials
    the server has now) and let the stack keep it (``record_password``).

    Supported methods: GET/POST /v1/secret/data/{service} (Vault), then the service's own password change
    (ALTER ROLE, ALTER USER, updateUser, CONFIG SET requirepass, PUT /api/users/{user}).
    """
    if service not in rotatable():
        raise HarnessError(f"{service} has no password to rotate; rotatable: {', '.join(rotatable())}")
    change = registry.get(service).driver.change_password
    before = stack.endpoint(service)  # the credentials the server has now (attach mode reads them from Vault)
    admin: hvac.Client = stack.endpoint("vault").client()
    current = admin.secrets.kv.v2.read_secret_version(path=service, mount_point="secret",
                                                      raise_on_deleted_version=True)["data"]["data"]
    old = str(current["password"])
    new = random_secret()
    register(new)  # redacted from every output from now on (the old one was registered when Vault handed it out)
    written = admin.secrets.kv.v2.create_or_update_secret(path=service, secret={**current, "password": new},
                                                          mount_point="secret")
    try:
        change(before, new)
    except Exception as exc:
        admin.secrets.kv.v2.create_or_update_secret(path=service, secret=current, mount_point="secret")
        raise HarnessError(f"{service} refused the new password ({exc}); Vault was set back to the old one") from exc
    stack.record_password(service, new)
    return Rotation(service=service, old_password=old, new_password=new, kv_version=int(written["data"]["version"]))
