"""The upgrade drill's verdict (harness/drills/upgrade.py), without Docker: what carried over, what did not, known
gaps."""

from __future__ import annotations

from harness.drills.upgrade import UpgradePair, _gap, compare, pair_lines, pair_verdict
from harness.settings import Settings
from stack.mysql import UPGRADE_GAPS

EXPECTED = {"postgres.rows": "a1", "postgres.roles": "b2", "vault.kv": "c3"}


def test_everything_equal_carries_over():
    carried, not_carried = compare(EXPECTED, dict(EXPECTED), [])
    assert carried == ["postgres.roles", "postgres.rows", "vault.kv"] and not_carried == {}


def test_a_differing_or_absent_fingerprint_and_a_missing_object_did_not_carry_over():
    restored = {"postgres.rows": "changed", "vault.kv": "c3"}
    carried, not_carried = compare(EXPECTED, restored, ["postgres.table seed: absent"])
    assert carried == ["vault.kv"]
    assert not_carried == {"postgres.roles": "absent after the restore", "postgres.rows": "differs after the restore",
                           "postgres.table seed": "missing after the restore: postgres.table seed: absent"}


def _pair(**changes) -> UpgradePair:
    pair = UpgradePair("mysql", "bookworm", "sid", "MariaDB 10.11", "MySQL 9.7", "10.11.6", "9.7.4",
                       carried=["vault.kv"], **changes)
    pair.problems = pair_verdict(pair)
    return pair


def test_a_pair_that_lost_data_fails_with_what_and_why():
    pair = _pair(not_carried={"mysql.rows": "differs after the restore"})
    assert pair.problems == ["mysql MariaDB 10.11 (bookworm) -> MySQL 9.7 (sid): mysql.rows: differs after the restore"]
    assert "FAILED" in pair_lines([pair])[1]


def test_a_known_gap_is_reported_with_its_reason_not_failed():
    pair = _pair(not_carried={"restore": "ERROR at line 1: Unknown command '\\-'."},
                 known_gap="the dump's sandbox line")
    assert pair.problems == []
    lines = pair_lines([pair])
    assert "known gap" in lines[1]
    assert lines[2:] == ["mysql: not carried over: restore: ERROR at line 1: Unknown command '\\-'.",
                         "mysql: known gap (MariaDB 10.11 -> MySQL 9.7): the dump's sandbox line"]


def test_a_pair_that_carried_everything_passes_even_when_listed_as_a_gap():
    assert _pair(known_gap="listed").problems == [] and _pair().problems == []
    assert "ok" in pair_lines([_pair()])[1].split()[-1]


def test_known_gaps_come_from_the_service_module_by_flavor_pair():
    old, new = Settings(), Settings(release="sid")
    assert (old.image_of("mysql").flavor, new.image_of("mysql").flavor) == ("mariadb", "mysql")
    assert _gap("postgres", old, new) is None  # PostgreSQL declares no gap
    assert _gap("mysql", old, new) == UPGRADE_GAPS["mariadb->mysql"]
    assert _gap("mysql", old, Settings(release="trixie")) is None  # MariaDB -> MariaDB: no gap listed
