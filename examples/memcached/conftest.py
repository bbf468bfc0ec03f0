"""Registers the example service with the harness for any pytest run that includes this directory: nothing in
stack/ or harness/ names it. ``pytest examples/memcached suites/ -m memcached`` runs its own suite and every
cross-service suite that covers a new service automatically."""

from __future__ import annotations

import sys
from pathlib import Path

from stack import registry

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the rootdir runs with --import-mode=importlib: the module dir is not on sys.path
    sys.path.insert(0, str(HERE))
if "memcached" not in registry.names():
    registry.register("memcached_service")
