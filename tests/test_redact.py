"""harness.reports.redact: which values are registered, and what redaction leaves of a text (no Docker)."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
from types import SimpleNamespace

import pytest

from harness.backup.archive import Keys
from harness.reports.redact import (
    MIN_LENGTH,
    contains_secret,
    forget,
    known,
    redact,
    redact_data,
    redact_in_place,
    register,
    register_fields,
    register_state_dir,
)
from harness.trust.bootstrap import BootstrapResult
from harness.trust.credentials import rotate_password
from harness.trust.pki import ServiceMaterial
from stack.vault import VaultInit


@pytest.fixture(autouse=True)
def _empty_registry():
    forget()
    yield
    forget()


def test_nothing_registered_leaves_text_alone():
    text = "password=hunter22 token=abcdefgh"
    assert redact(text) == text and not contains_secret(text)


def test_short_and_empty_values_are_ignored():
    register(None, "", "   ", "x" * (MIN_LENGTH - 1), b"short")
    assert known() == frozenset()
    assert redact("xxxxxxx test admin") == "xxxxxxx test admin"


def test_a_value_and_its_encoded_forms_are_masked():
    value = "p@ss/w0rd+\"quoted\"\\end"
    register(value)
    assert redact(f"plain {value} end") == "plain *** end"
    assert redact("url postgresql://u:p%40ss%2Fw0rd%2B%22quoted%22%5Cend@h/db") == "url postgresql://u:***@h/db"
    assert redact(json.dumps({"v": value})) == '{"v": "***"}'
    assert redact(repr(value)) == "'***'"


def test_hex_unseal_key_is_masked_in_base64_too():
    key = secrets.token_hex(32)
    register(key)
    assert redact(base64.b64encode(bytes.fromhex(key)).decode()) == "***"


def test_the_longest_value_wins():
    short, long = "abcdefghij", "abcdefghij-and-more"
    register(short, long)
    assert redact(f"{long} {short}") == "*** ***"


def test_pieces_of_a_value_are_masked_but_not_short_ones():
    token = "hvs." + "Q7" * 15
    register(token)
    abbreviated = f"'{token[:12]}...{token[-12:]}'"  # how pytest shortens a long value in a diff
    assert redact(abbreviated) == "'hvs.***...***'"
    assert redact(f"cut at a limit: {token[:20]}") == "cut at a limit: hvs.***"
    tail = token[-(MIN_LENGTH - 1):]
    assert redact(f"only {tail}") == f"only {tail}"  # 7 characters: left alone


def test_ordinary_words_are_not_pieces():
    register(secrets.token_urlsafe(24))
    text = "AssertionError: expected postgres_service.password to authenticate"
    assert redact(text) == text


def test_register_fields_takes_only_secret_names():
    material = ServiceMaterial(service="postgres", secret={"user": "devstack_user", "password": "P" * 24,
                                                           "database": "devstack_db"},
                               certificate="-----BEGIN CERTIFICATE-----", private_key="K" * 40,
                               issuing_ca="ca", ca_chain=("chain",), serial="01:02",
                               token_policies=("postgres-policy-name",))
    register_fields(material)
    assert redact("devstack_user devstack_db postgres-policy-name") == "devstack_user devstack_db postgres-policy-name"
    assert redact(f"{'P' * 24} {'K' * 40}") == "*** ***"


def test_register_fields_on_vault_init_and_bootstrap():
    init = VaultInit(keys=[secrets.token_hex(32), secrets.token_hex(32)], root_token="s." + "r" * 24,
                     shares=2, threshold=1)
    boot = BootstrapResult(admin_token="hvs." + "a" * 24, approles={"redis": {"role_id": "role-id-visible-1234",
                                                                              "secret_id": "S" * 36}},
                           names={"redis": ["redis-1"]}, root_revoked=True)
    register_fields(init)
    register_fields(boot)
    text = f"{init.keys[1]} {init.root_token} {boot.admin_token} {'S' * 36} role-id-visible-1234"
    assert redact(text) == "*** *** *** *** role-id-visible-1234"


def test_register_state_dir_reads_the_private_files(tmp_path):
    init = VaultInit(keys=[secrets.token_hex(32)], root_token="s." + "t" * 24, shares=1, threshold=1)
    init.save(tmp_path / "vault-init.json")
    register_state_dir(tmp_path)
    register_state_dir(tmp_path / "missing")  # nothing there: nothing learnt, no error
    assert redact(init.keys[0]) == "***"


def test_redact_data_and_in_place():
    secret = "Z" * 30
    register(secret)
    assert redact_data({"a": [secret, 1, None], secret: {"b": f"x {secret}"}}) == \
        {"a": ["***", 1, None], "***": {"b": "x ***"}}

    @dataclasses.dataclass(eq=False)
    class Entry:
        lines: list[str]
        location: tuple[str, int, str]

    entry = Entry([f"E  assert {secret!r}"], ("path.py", 3, f"Skipped: {secret}"))
    chain = [(entry, None, "cause")]
    assert redact_in_place(chain) is chain
    assert entry.lines == ["E  assert '***'"] and entry.location == ("path.py", 3, "Skipped: ***")
    assert redact_in_place(f"t {secret}") == "t ***"


# ----------------------------------------------------------------------- where the run registers secrets


def test_a_backup_passphrase_is_registered_when_keys_are_derived():
    passphrase = secrets.token_hex(16).encode()
    Keys.derive(passphrase)
    assert redact(f"passphrase {passphrase.decode()}") == "passphrase ***"


def test_a_rotated_password_is_registered_before_it_is_applied(monkeypatch):
    import dataclasses

    from stack import registry

    seen: list[str] = []
    recorded: list[str] = []

    class Kv:
        def read_secret_version(self, **_):
            return {"data": {"data": {"user": "u", "password": "O" * 24}}}

        def create_or_update_secret(self, **_):
            return {"data": {"version": 2}}

    class Admin:
        secrets = SimpleNamespace(kv=SimpleNamespace(v2=Kv()))

    real = registry.get("postgres")

    class Echoing(type(real.driver)):
        def change_password(self, endpoint, new):
            seen.append(redact(f"ALTER ROLE u PASSWORD '{new}'"))  # what a failing server might echo

    spec = dataclasses.replace(real, driver=Echoing())
    monkeypatch.setitem(registry._loaded, "postgres", spec)
    stack = SimpleNamespace(endpoint=lambda name: SimpleNamespace(client=lambda: Admin()),
                            record_password=lambda name, new: recorded.append(name))
    rotation = rotate_password(stack, "postgres")
    assert seen == ["ALTER ROLE u PASSWORD '***'"]
    assert recorded == ["postgres"]
    assert redact(rotation.new_password) == "***"
