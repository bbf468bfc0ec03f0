"""MongoDB: runs wherever a mongo image exists; here (no image, no registry) every test skips, naming it."""

from __future__ import annotations

import secrets

import pymongo.errors
import pytest

pytestmark = pytest.mark.mongodb


def test_connects_with_run_credentials(mongodb_service):
    with mongodb_service.client() as client:
        status = client.admin.command("connectionStatus")
    users = status["authInfo"]["authenticatedUsers"]
    assert {"user": mongodb_service.user, "db": "admin"} in users


def test_server_version(mongodb_service, harness_stack):
    with mongodb_service.client() as client:
        version = client.server_info()["version"]
    expected = harness_stack.expected_version("mongodb")
    assert version
    if expected:
        assert version.startswith(expected), f"server reports {version}, image promises {expected}"


def test_write_read_round_trip(mongodb_service):
    collection = f"probe_{secrets.token_hex(4)}"
    value = secrets.token_hex(16)
    with mongodb_service.client() as client:
        db = client[mongodb_service.database]
        db[collection].insert_one({"_id": 1, "value": value})
    with mongodb_service.client() as client:
        db = client[mongodb_service.database]
        assert db[collection].find_one({"_id": 1})["value"] == value
        db.drop_collection(collection)


def test_wrong_password_is_rejected(mongodb_service):
    with (
        mongodb_service.client(password=mongodb_service.password + "x") as client,
        pytest.raises(pymongo.errors.OperationFailure) as info,
    ):
        client.admin.command("ping")
    assert info.value.code == 18, info.value
