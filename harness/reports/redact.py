"""One redaction step: every secret value the run knows becomes ``***`` in whatever the harness writes or attaches.

The run registers its secrets where they come into existence (Vault's unseal keys and root token at init, the
admin token and AppRole secret-ids at bootstrap, each service's passwords when Vault hands them out, a password
at rotation, a backup passphrase when it is read) and the outputs pass through :func:`redact`: test reports
(so JUnit XML, the terminal and the JSON report see redacted text), the attached service logs, the JSON run
report and the Markdown summary.

Values shorter than :data:`MIN_LENGTH` are not registered: replacing a short word ("admin", "test") everywhere
would wreck the output, and every secret the harness generates is far longer (passwords 24 characters, tokens,
unseal keys and secret-ids 26 or more). A value that is registered is also matched in the forms it takes in
URLs (percent-encoded) and in JSON or ``repr`` text (backslash-escaped); hex unseal keys also in base64, the
other form Vault hands them out in.

Pieces count too: pytest abbreviates long values in assertion diffs (``'hvs.GX7krUrT...2MlOga9QQ'``), and a
length limit can cut a value. So after the whole values, every word of :data:`MIN_LENGTH` or more characters
(letters, digits and ``_+/=-``: the alphabets of the harness's passwords, tokens, hex and base64) that is a
piece of a registered value is masked as well (``'hvs.***...***'``). Pieces shorter than that stay: at most 7
characters on each side of a cut, of a value of 24 characters or more.

No library does this for arbitrary text (logging filters only see log records), hence the small module.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

MASK = "***"
MIN_LENGTH = 8
_WORD = re.compile(rf"[A-Za-z0-9_+/=-]{{{MIN_LENGTH},}}")
#: Field and key names whose string values are secrets, wherever they appear in the run's records.
SECRET_KEYS = frozenset({"password", "root_password", "passphrase", "token", "admin_token", "root_token",
                         "secret_id", "keys", "keys_base64", "unseal_keys", "private_key", "client_token"})
#: The run's private files that hold secrets (``<state>/runs/<id>/`` and ``<state>/compose/``).
SECRET_FILES = ("vault-init.json", "vault-bootstrap.json")

_lock = threading.Lock()
_values: set[str] = set()
_pattern: tuple[re.Pattern[str], tuple[str, ...]] | None = None  # (whole values, values for the piece test)


def _variants(value: str) -> set[str]:
    """The value and the other forms it takes in text the harness writes."""
    forms = {value, quote(value, safe=""), json.dumps(value)[1:-1], repr(value)[1:-1]}
    if len(value) % 2 == 0 and len(value) >= 32:
        with contextlib.suppress(ValueError):  # not hex: no base64 form to add
            forms.add(base64.b64encode(bytes.fromhex(value)).decode())
    return {f for f in forms if len(f) >= MIN_LENGTH}


def register(*values: str | bytes | None) -> None:
    """Remember secret values; ``None``, empty and short values (< MIN_LENGTH) are ignored."""
    global _pattern
    fresh: set[str] = set()
    for value in values:
        if isinstance(value, bytes):
            try:
                value = value.decode()
            except UnicodeDecodeError:  # binary key material does not show up in text output
                continue
        if value is None or len(value.strip()) < MIN_LENGTH:
            continue
        fresh |= _variants(value) | _variants(value.strip())
    with _lock:
        if fresh - _values:
            _values.update(fresh)
            _pattern = None


def register_fields(record: Any) -> None:
    """Register every string under a name of :data:`SECRET_KEYS` inside ``record`` (dataclasses, mappings and
    lists, nested): an endpoint's ``password``, a Vault init's ``keys`` and ``root_token``, a bootstrap's
    ``admin_token`` and ``approles[*].secret_id``."""
    register(*_secret_values(record, secret=False, seen=set()))


def _secret_values(record: Any, *, secret: bool, seen: set[int]) -> Iterable[str]:
    if isinstance(record, str | bytes):
        if secret:
            yield record.decode(errors="replace") if isinstance(record, bytes) else record
        return
    if id(record) in seen:
        return
    seen.add(id(record))
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        items: Iterable[tuple[Any, Any]] = ((f.name, getattr(record, f.name)) for f in dataclasses.fields(record))
    elif isinstance(record, Mapping):
        items = record.items()
    elif isinstance(record, list | tuple | set | frozenset):
        items = ((None, item) for item in record)
    else:
        return
    for key, value in items:
        inner = secret if key is None else str(key).lower() in SECRET_KEYS
        yield from _secret_values(value, secret=inner, seen=seen)


def register_state_dir(directory: Path) -> None:
    """Register the secrets of a run's private files (unseal keys, root and admin tokens, secret-ids)."""
    for name in SECRET_FILES:
        try:
            register_fields(json.loads((directory / name).read_text()))
        except (OSError, ValueError):
            continue  # not written (yet), or not ours to read: nothing to learn from it


def known() -> frozenset[str]:
    """Every registered form (for self-tests)."""
    with _lock:
        return frozenset(_values)


def forget() -> None:
    """Drop every registered value (for self-tests)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def _current() -> tuple[re.Pattern[str], tuple[str, ...]] | None:
    global _pattern
    with _lock:
        if _pattern is None and _values:
            # Longest first, so a value that contains another is replaced whole.
            ordered = tuple(sorted(_values, key=lambda v: (-len(v), v)))
            _pattern = (re.compile("|".join(re.escape(v) for v in ordered)), ordered)
        return _pattern


def redact(text: str) -> str:
    """``text`` with every registered secret, and every word that is a piece of one, replaced by ``***``."""
    current = _current()
    if current is None or not text:
        return text
    whole, values = current

    def piece(match: re.Match[str]) -> str:
        word = match.group()
        return MASK if any(word in value for value in values) else word

    return _WORD.sub(piece, whole.sub(MASK, text))


def active() -> bool:
    """Whether any secret is registered (nothing to redact otherwise)."""
    return _current() is not None


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret, or a piece of one, that :func:`redact` would mask."""
    return redact(text) != text


def redact_data(data: Any) -> Any:
    """A copy of JSON-like ``data`` (dicts, lists, strings, numbers) with every string redacted, keys too."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {redact(str(k)) if isinstance(k, str) else k: redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_data(v) for v in data]
    return data


def redact_in_place(obj: Any) -> Any:
    """Redact the strings inside ``obj`` (pytest's failure representations: dataclasses holding strings, lists
    and tuples), changing lists and attributes in place. Returns the (possibly new) value for ``obj``: a new
    string or tuple when ``obj`` was one."""
    return _walk(obj, set())


def _walk(obj: Any, seen: set[int]) -> Any:
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, int | float | bool | bytes) or obj is None:
        return obj
    if id(obj) in seen:
        return obj
    seen.add(id(obj))
    if isinstance(obj, list):
        obj[:] = [_walk(item, seen) for item in obj]
        return obj
    if isinstance(obj, tuple):
        items = [_walk(item, seen) for item in obj]
        if all(new is old for new, old in zip(items, obj, strict=True)):
            return obj
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)  # a namedtuple takes fields
    if isinstance(obj, dict):
        for key in list(obj):
            obj[key] = _walk(obj[key], seen)
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            old = getattr(obj, f.name)
            new = _walk(old, seen)
            if new is not old:
                object.__setattr__(obj, f.name, new)
        return obj
    return obj
