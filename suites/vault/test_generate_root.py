"""The generate-root recipe of docs/vault.md, run verbatim against the stack's Vault: it must give a working
root token (which is then revoked), so the documented recipe cannot rot.

The block is read from docs/vault.md (the fenced block after the ``generate-root recipe`` marker); only its two
placeholders are filled in. The token comes back on a file descriptor of its own, never on stdout, in argv
or in a log."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

pytestmark = pytest.mark.vault

README = Path(__file__).resolve().parents[2] / "docs" / "vault.md"  # the manual page with the recipe
MARKER = "<!-- generate-root recipe:"


def readme_recipe(text: str) -> str:
    """The bash block right after the marker comment (fails loudly when the page lost it)."""
    found = re.search(re.escape(MARKER) + r"[^\n]*\n```bash\n(.*?)\n```", text, re.DOTALL)
    assert found, f"docs/vault.md has no bash block after {MARKER!r}"
    return found.group(1)


def test_readme_recipe_is_found_and_has_its_placeholders():
    recipe = readme_recipe(README.read_text())
    assert "state=.harness/runs/<run-id>" in recipe and "vault_container=<vault container>" in recipe
    assert " bao " not in recipe, "hashicorp/vault has no `bao`: use `vault`, which both image sets have"


def _run(script: str, token_file: Path, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """bash with -e and pipefail, so a failing step stops it; the descriptor $TOKEN_FD writes ``token_file``
    (0600). Secrets go in through ``env`` or files, never in the script (which is bash's argv)."""
    with token_file.open("w") as out:
        os.chmod(token_file, 0o600)
        return subprocess.run(["bash", "-c", f"set -eo pipefail\n{script}"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, pass_fds=(out.fileno(),),
                              env={**os.environ, **(env or {}), "TOKEN_FD": str(out.fileno())}, check=False)


def test_readme_generate_root_recipe_gives_a_root_token(harness_stack, vault_service, tmp_path):
    for tool in ("docker", "jq"):
        assert shutil.which(tool), f"the docs/vault.md recipe needs `{tool}` on PATH"
    vault = harness_stack.require("vault")
    (container_id,) = vault.container_ids()
    name = harness_stack.client.containers.get(container_id).name
    recipe = readme_recipe(README.read_text())
    script = (recipe.replace("state=.harness/runs/<run-id>", f"state={harness_stack.state_dir}")
              .replace("vault_container=<vault container>", f"vault_container={name}"))
    assert "<" not in script.split("#")[0], "a placeholder was left unfilled"
    token_file = tmp_path / "root-token"
    try:
        done = _run(script + '\nprintf %s "$root" >&"$TOKEN_FD"\n', token_file)
        assert done.returncode == 0, f"the docs/vault.md recipe failed (exit {done.returncode}): {done.stderr[-1500:]}"
        root = token_file.read_text()
        assert root, "the recipe ended without a token"
        client = hvac.Client(url=vault_service.url, token=root, timeout=10)
        info = client.auth.token.lookup_self()["data"]
        assert info["policies"] == ["root"], f"not a root token: policies {info['policies']}"
        assert client.sys.list_mounted_secrets_engines()["data"], "the root token cannot list mounts"
        client.auth.token.revoke_self()
        with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
            client.auth.token.lookup_self()
    finally:
        # An attempt left open by a failed step would block the next one: cancel it as docs/vault.md says.
        v = next(line for line in recipe.splitlines() if line.startswith("v() {"))
        _run(f"vault_container={name}\n{v}\nv operator generate-root -cancel >/dev/null\n", tmp_path / "unused",
             env={"VAULT_TOKEN": vault_service.token})
