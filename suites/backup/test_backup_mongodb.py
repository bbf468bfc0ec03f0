"""MongoDB backup round trip (mongodump/mongorestore inside the mongo container); runs wherever a mongo image
exists, and skips with the image named where none does. ``mongorestore --drop`` replaces every collection of
the database in the shared stack, so the test is ``destructive`` (run last; skipped in attach mode unless
allowed)."""

from __future__ import annotations

import pytest

from harness.backup.archive import basic_format_check, verify
from harness.backup.orchestration import create, restore

pytestmark = [pytest.mark.backup, pytest.mark.mongodb, pytest.mark.destructive]


def test_mongodb_dump_and_restore(mongodb_service, harness_stack, tmp_path):
    with mongodb_service.client() as client:
        coll = client[mongodb_service.database]["backup_probe"]
        coll.delete_many({})
        coll.insert_many([{"_id": i, "v": f"doc-{i}"} for i in range(250)])
    manifest = create(harness_stack, tmp_path, ["mongodb"], None)
    assert all(f.status == "ok" for f in verify(tmp_path, manifest.id, None, basic_format_check))
    with mongodb_service.client() as client:
        client[mongodb_service.database]["backup_probe"].delete_many({"_id": {"$lt": 100}})
    # Unencrypted, so not authenticated: this round trip is about mongodump/mongorestore, and opts in.
    restore(harness_stack, tmp_path, manifest.id, None, ["mongodb"], allow_unauthenticated=True)
    with mongodb_service.client() as client:
        docs = list(client[mongodb_service.database]["backup_probe"].find().sort("_id", 1))
    assert [d["v"] for d in docs] == [f"doc-{i}" for i in range(250)]
