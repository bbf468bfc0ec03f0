"""Settings precedence: HARNESS_* env > harness.toml > defaults; bad values fail with the setting named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.settings import Settings, load_settings, settings_table
from stack.errors import ConfigError


def test_defaults(tmp_path):
    s = load_settings(environ={}, cwd=tmp_path)
    assert s == Settings()
    assert (s.images, s.vault_key_shares, s.vault_key_threshold, s.redis_masters) == ("auto", 5, 3, 3)


def test_file_beats_defaults_and_env_beats_file(tmp_path):
    (tmp_path / "harness.toml").write_text('[harness]\nimages = "debian"\nredis_replicas = 1\nready_timeout = 30\n')
    s = load_settings(environ={}, cwd=tmp_path)
    assert (s.images, s.redis_replicas, s.ready_timeout) == ("debian", 1, 30.0)
    s = load_settings(environ={"HARNESS_IMAGES": "official", "HARNESS_READY_TIMEOUT": "12.5"}, cwd=tmp_path)
    assert (s.images, s.redis_replicas, s.ready_timeout) == ("official", 1, 12.5)


def test_image_overrides_from_env_and_file(tmp_path):
    (tmp_path / "harness.toml").write_text('[harness]\nimage_postgres = "file/pg:1"\nimage_redis = "file/redis:1"\n')
    s = load_settings(environ={"HARNESS_IMAGE_POSTGRES": "env/pg:2"}, cwd=tmp_path)
    assert dict(s.image_overrides) == {"postgres": "env/pg:2", "redis": "file/redis:1"}


def test_harness_config_names_the_file(tmp_path):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("[harness]\nkeep_stack = true\n")
    assert load_settings(environ={"HARNESS_CONFIG": str(cfg)}, cwd=Path("/")).keep_stack is True
    with pytest.raises(ConfigError, match="not a file"):
        load_settings(environ={"HARNESS_CONFIG": str(tmp_path / "missing.toml")}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HARNESS_IMAGES": "latest"}, "images must be one of"),
        ({"HARNESS_REDIS_REPLICAS": "two"}, "HARNESS_REDIS_REPLICAS: invalid value"),
        ({"HARNESS_KEEP_STACK": "maybe"}, "not a boolean"),
        ({"HARNESS_VAULT_KEY_THRESHOLD": "6"}, "vault_key_threshold must be between"),
        ({"HARNESS_REDIS_MASTERS": "2"}, "at least 3"),
        ({"HARNESS_IMAGE_ORACLE": "x"}, "unknown service"),
    ],
)
def test_bad_values_name_the_setting(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env, cwd=tmp_path)


def test_unknown_file_key_is_rejected(tmp_path):
    (tmp_path / "harness.toml").write_text("[harness]\nimagez = 'x'\n")
    with pytest.raises(ConfigError, match="unknown setting 'imagez'"):
        load_settings(environ={}, cwd=tmp_path)


def test_service_env_vars_of_the_host_are_ignored(tmp_path):
    s = load_settings(environ={"POSTGRES_PASSWORD": "hunter2", "VAULT_TOKEN": "root"}, cwd=tmp_path)
    assert s == Settings()


def test_settings_table_covers_every_field():
    names = {row[0] for row in settings_table()}
    assert "HARNESS_IMAGES" in names and "HARNESS_IMAGE_<SERVICE>" in names
    assert all(desc for _, _, desc in settings_table()), "every setting needs a description"


def test_tls_strict_from_env_and_file(tmp_path):
    s = load_settings({"HARNESS_TLS_STRICT": "postgres, redis"}, cwd=tmp_path)
    assert s.tls_strict == ("postgres", "redis")
    (tmp_path / "harness.toml").write_text('[harness]\ntls_strict = ["mysql"]\ntls_min_days_left = 5\n')
    s = load_settings({}, cwd=tmp_path)
    assert s.tls_strict == ("mysql",) and s.tls_min_days_left == 5


@pytest.mark.parametrize(("value", "message"),
                         [("postgres,nope", "unknown service"), ("vault", "cannot include vault")])
def test_tls_strict_rejects_bad_services(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"HARNESS_TLS_STRICT": value}, cwd=tmp_path)


def test_keep_run_state_is_in_the_settings_page():
    page = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text()
    assert f"| `HARNESS_KEEP_RUN_STATE` | `{Settings().keep_run_state}` |" in page
