"""Dependency ordering and service-name validation (pure logic)."""

from __future__ import annotations

import re

import pytest

from harness.stacks.engine import DEPENDENCIES, new_run_id, start_layers, validate_services, with_dependencies
from stack import registry
from stack.errors import ConfigError


def test_postgres_pulls_in_vault_only():
    assert with_dependencies(["postgres"]) == ["vault", "postgres"]


def test_dependencies_come_first_and_no_duplicates():
    order = with_dependencies(["redis", "postgres", "vault", "redis"])
    assert order == ["vault", "redis", "postgres"]


def test_everything_but_vault_starts_in_one_parallel_layer():
    layers = start_layers(registry.names())
    assert layers[0] == ["vault"]
    assert sorted(layers[1]) == sorted(s for s in registry.names() if s != "vault")
    assert len(layers) == 2


def test_every_service_has_a_dependency_entry():
    assert set(DEPENDENCIES) == set(registry.names())


def test_dependencies_are_the_specs_depends_on():
    from stack import registry

    assert dict(DEPENDENCIES) == {spec.name: spec.depends_on for spec in registry.specs()}


def test_unknown_service_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown service 'oracle'; valid services: vault, postgres"):
        validate_services(["postgres", "oracle"])


def test_names_are_normalised():
    assert validate_services([" Postgres", "", "REDIS", "postgres"]) == ["postgres", "redis"]


def test_run_ids_sort_by_time_and_are_unique():
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", i) for i in ids)


def test_owner_alive_logic():
    import os
    import socket
    import subprocess

    from harness.stacks.engine import _owner_alive
    from stack.base import LABEL_OWNER_HOST, LABEL_OWNER_PID

    here = socket.gethostname()
    assert _owner_alive({LABEL_OWNER_HOST: here, LABEL_OWNER_PID: str(os.getpid())})
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not _owner_alive({LABEL_OWNER_HOST: here, LABEL_OWNER_PID: str(dead.pid)})
    assert _owner_alive({LABEL_OWNER_HOST: "another-machine", LABEL_OWNER_PID: str(dead.pid)})
    assert not _owner_alive({LABEL_OWNER_HOST: here, LABEL_OWNER_PID: "garbage"})
