"""MySQL (MariaDB on bookworm and trixie, Oracle's MySQL on sid): run credentials log in over a really-plain
connection, data round-trips, and the password plugin is the one the running server's table says."""

from __future__ import annotations

import secrets

import pymysql
import pytest

from stack.mysql import DEFAULT_AUTH_PLUGIN, server_flavor

pytestmark = pytest.mark.mysql


def _query(endpoint, sql, *args, **overrides):
    conn = endpoint.connect(**overrides)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args or None)
            rows = cur.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def test_connects_with_run_credentials(mysql_service):
    (user, db), = _query(mysql_service, "SELECT CURRENT_USER(), DATABASE()")
    assert user.split("@")[0] == mysql_service.user
    assert db == mysql_service.database


def test_root_password_works(mysql_service):
    (user,), = _query(mysql_service, "SELECT CURRENT_USER()", user="root", password=mysql_service.root_password)
    assert user.startswith("root@")


def test_server_version(mysql_service, harness_stack):
    (version,), = _query(mysql_service, "SELECT VERSION()")
    expected = harness_stack.expected_version("mysql")
    assert version
    if expected:
        assert version.startswith(expected), f"server reports {version}, image promises {expected}"


def test_app_user_has_the_servers_own_password_plugin(mysql_service):
    (version,), = _query(mysql_service, "SELECT VERSION()")
    (plugin,), = _query(mysql_service, "SELECT plugin FROM mysql.user WHERE user = %s", mysql_service.user,
                        user="root", password=mysql_service.root_password)
    flavor = server_flavor(version)
    assert plugin == DEFAULT_AUTH_PLUGIN[flavor], f"{version}: the application user has {plugin}"


def test_write_read_round_trip(mysql_service):
    table = f"probe_{secrets.token_hex(4)}"
    value = secrets.token_hex(16)
    _query(mysql_service, f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, value TEXT NOT NULL)")
    _query(mysql_service, f"INSERT INTO {table} (value) VALUES (%s)", value)
    assert _query(mysql_service, f"SELECT value FROM {table}") == ((value,),)
    _query(mysql_service, f"DROP TABLE {table}")


def test_plain_connection_is_really_plain(mysql_service):
    (_, cipher), = _query(mysql_service, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert cipher == "", f"a plain connection negotiated TLS ({cipher})"


def test_wrong_password_is_rejected(mysql_service):
    with pytest.raises(pymysql.err.OperationalError) as info:
        mysql_service.connect(password=mysql_service.password + "x")
    assert info.value.args[0] == 1045, info.value
