"""PostgreSQL: the run's credentials log in, the version is the image's, data round-trips, bad passwords fail."""

from __future__ import annotations

import secrets

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def test_connects_with_run_credentials(postgres_service):
    with postgres_service.connect() as conn:
        user, db = conn.execute("SELECT current_user, current_database()").fetchone()
    assert (user, db) == (postgres_service.user, postgres_service.dbname)


def test_server_version(postgres_service, harness_stack):
    with postgres_service.connect() as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    expected = harness_stack.expected_version("postgres")
    assert version
    if expected:
        assert version.startswith(expected), f"server reports {version}, image promises {expected}"


def test_write_read_round_trip(postgres_service):
    table = f"probe_{secrets.token_hex(4)}"
    value = secrets.token_hex(16)
    with postgres_service.connect() as conn:
        conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, value text NOT NULL)")
        conn.execute(f"INSERT INTO {table} (value) VALUES (%s)", (value,))
        conn.commit()
    with postgres_service.connect() as conn:  # a new session reads what the first committed
        assert conn.execute(f"SELECT value FROM {table}").fetchall() == [(value,)]
        conn.execute(f"DROP TABLE {table}")


def test_wrong_password_is_rejected(postgres_service):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        postgres_service.connect(password=postgres_service.password + "x")
