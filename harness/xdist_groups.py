"""The scheduler the plugin gives pytest-xdist for ``-n N``: tests that share a stack of their own (strict TLS,
the drills' clusters, a backup round trip) form one unit that goes to one worker, so that stack starts once;
every other test is its own unit. Units are handed out largest first (xdist's ``loadscope`` order), so the
long own-stack groups start early and run beside the rest.

The workers collect; each writes ``node id -> group`` for the grouped tests to a file the controller named
(``harness_groups`` in the worker input), and the scheduler reads it when it splits the collection.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xdist.scheduler import LoadScopeScheduling


class OwnStackScheduling(LoadScopeScheduling):  # type: ignore[misc]
    def __init__(self, config: Any, log: Any, groups_file: Path) -> None:
        super().__init__(config, log)
        self.groups_file = groups_file
        self._groups: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._groups is None:
            try:
                self._groups = dict(json.loads(self.groups_file.read_text()))
            except (OSError, ValueError):
                self._groups = {}
        return self._groups.get(nodeid, nodeid)
