"""Writing files that may hold secrets: created with their final mode, never readable in between."""

from __future__ import annotations

import os
from pathlib import Path


def write_file(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` (parents created 0700), created with ``mode`` and left with it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)  # O_CREAT's mode is ignored for an existing file
