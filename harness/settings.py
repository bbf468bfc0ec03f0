"""One settings object for the whole harness.

Resolution order, highest first: environment variables ``HARNESS_<NAME>``, then the settings file
(``harness.toml`` in the working directory, or the file named by ``HARNESS_CONFIG``; keys under a
``[harness]`` table), then the defaults below. Per-service image overrides are ``HARNESS_IMAGE_<SERVICE>``
in the environment and ``image_<service>`` in the file.

Nothing here reads a service's own variables (``POSTGRES_PASSWORD`` and the like) from the host: service
credentials are generated per run and passed explicitly.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from harness.trust.params import AppRoleSettings, PkiSettings
from stack import registry
from stack.errors import ConfigError
from stack.images import RELEASES, TOOL_IMAGES, ImageSpec
from stack.registry import image_spec

ImageSet = Literal["auto", "official", "debian"]
StackMode = Literal["testcontainers", "compose"]
_PKI = PkiSettings()
_APPROLE = AppRoleSettings()


@dataclass(frozen=True)
class Settings:
    """Every tunable of the harness, with its default.

    Attributes:
        images: which image set to run: ``official`` (pinned Docker Hub tags), ``debian`` (built here from
            Debian packages) or ``auto`` (official where present or pullable, else debian).
        image_overrides: service name -> image reference; wins over the image set for that service.
        release: the Debian release line of the Debian image set: ``bookworm`` (Debian 12: PostgreSQL 15, MariaDB
            10.11, Redis 7.0, RabbitMQ 3.10), ``trixie`` (Debian 13: PostgreSQL 17, MariaDB 11.8, Redis 8.0 or
            Valkey 8.1, RabbitMQ 4.0) or ``sid`` (unstable: PostgreSQL 18, MySQL 9.7 or MariaDB 11.8, Redis 8.0 or
            Valkey 9.1, RabbitMQ 4.3). Also ``pytest --release``.
        flavors: ``service=flavor`` items choosing the server where a release offers two (``mysql=mysql|mariadb``,
            ``redis=redis|valkey``); unset, the first the release offers (MySQL on sid, Redis everywhere).
        state_dir: where runs keep private state (Vault keys, reports, certificates), mode 0700.
        report_path: the JSON run report written by the pytest plugin; empty means
            ``<state_dir>/report.json``.
        ready_timeout: seconds a service may take to answer its readiness probe.
        registry_probe_timeout: seconds ``auto`` may spend finding out whether a registry answers.
        report_tolerance: ``report summarize --previous`` flags a figure worse by more than this fraction (0.25).
            It must also be worse by more than a small absolute floor (see ``harness.reports.summary.FLOORS``).
        redis_masters: Redis cluster masters (3, the user's topology).
        redis_replicas: replicas per master (0 by default; the failover drills use 1).
        redis_node_timeout_ms: ``cluster-node-timeout`` of the Redis nodes.
        redis_full_coverage: ``cluster-require-full-coverage`` (yes: the whole cluster refuses while a slot is lost).
        drill_node_timeout_ms: ``cluster-node-timeout`` of the clusters the drills start.
        drill_promote_max_ms: a failover drill fails if the replica owns the slots later than this after the fault.
        drill_round_timeout_s: the longest a drill round may take (fault, measurements, restore).
        drill_max_rounds: upper bound for ``--rounds``.
        drill_latency_ms: delay the latency drill adds to one Redis node's packets towards its peers (below
            ``drill_node_timeout_ms``: no failover may follow).
        drill_partition_peer_timeout_ms / drill_partition_victim_timeout_ms: ``cluster-node-timeout`` during a
            partition round, of the partitioned master's peers and of the master itself. The master notices its
            isolation later than its peers promote its replica, which opens the split-brain window the round
            needs to prove anything: with ``min-replicas-to-write`` 0 it must acknowledge writes in it, with 1
            it must refuse them (``NOREPLICAS``, within ``min-replicas-max-lag`` 1 s, before the promotion).
        vault_key_shares / vault_key_threshold: Shamir split used at ``operator init``.
        keep_stack: leave the pytest session's containers running at exit (remove later with ``down``).
        reuse: keep the pytest session's stack for the next run and attach to it when its configuration hash
            (services, images and their ids, the settings that shape the stack, harness version) matches;
            ``pytest --reuse``. A mismatch, a stopped container, a sealed Vault or a refused login starts a fresh one.
            Destructive tests on the session stack are skipped then. ``python -m harness down`` removes it.
        keep_run_state: private state directories (Vault keys, tokens, certificates) of finished runs kept
            under ``<state_dir>/runs`` for debugging, newest first; older ones are removed when a run ends and by
            ``down`` (0: none kept). Runs whose containers exist (kept ``up`` stacks) always keep theirs.
        stack: ``testcontainers`` (the suites start their own containers) or ``compose`` (attach mode: the suites
            check the long-lived compose stack started by ``python -m harness compose up``).
        allow_destructive: in attach mode, run the destructive tests (restarts, kills, restores) against the
            compose stack instead of skipping them.
        compose_file: the compose file of the long-lived stack (its service material goes to
            ``certs/compose/`` beside the compose directory).
        compose_project: the compose project name (container, network and volume name prefix).
        compose_subnet_prefix: first three octets of the compose network's /24 (Redis nodes get fixed addresses
            there; change it if it collides with a network of yours).
        tls_strict: services that serve TLS only (comma-separated; the rest run dual mode, plain and TLS).
            Stored in Vault as each service's ``tls_strict`` flag, which the harness reads at start.
        tls_min_days_left: a served certificate with fewer days left fails ``certs status`` and the TLS suite.
        pki_root_common_name / pki_intermediate_common_name: CA subject names.
        pki_key_type / pki_key_bits: CA and leaf keys (RSA 2048: accepted by every client and server here).
        pki_root_ttl / pki_intermediate_ttl: CA lifetimes (10 y / 5 y, as the reference project).
        pki_leaf_ttl / pki_leaf_max_ttl: service certificate lifetime and the role's upper bound.
        approle_token_ttl / approle_token_max_ttl / approle_secret_id_ttl: AppRole lifetimes (1 h / 24 h / 30 d).
    """

    images: ImageSet = "auto"
    image_overrides: Mapping[str, str] = field(default_factory=dict)
    release: str = "bookworm"
    flavors: tuple[str, ...] = ()
    state_dir: Path = Path(".harness")
    report_path: Path | None = None
    ready_timeout: float = 180.0
    registry_probe_timeout: float = 15.0
    report_tolerance: float = 0.25
    redis_masters: int = 3
    redis_replicas: int = 0
    redis_node_timeout_ms: int = 5000
    redis_full_coverage: bool = True
    drill_node_timeout_ms: int = 1000
    drill_promote_max_ms: int = 5000
    drill_round_timeout_s: float = 60.0
    drill_max_rounds: int = 20
    drill_latency_ms: int = 250
    drill_partition_peer_timeout_ms: int = 4000
    drill_partition_victim_timeout_ms: int = 12000
    vault_key_shares: int = 5
    vault_key_threshold: int = 3
    keep_stack: bool = False
    reuse: bool = False
    keep_run_state: int = 3
    stack: StackMode = "testcontainers"
    allow_destructive: bool = False
    compose_file: Path = Path("compose/docker-compose.yml")
    compose_project: str = "devstack-harness"
    compose_subnet_prefix: str = "10.213.51"
    tls_strict: tuple[str, ...] = ()
    tls_min_days_left: int = 2
    # PKI and AppRole defaults live in one place, the bootstrap's own settings dataclasses.
    pki_root_common_name: str = _PKI.root_common_name
    pki_intermediate_common_name: str = _PKI.intermediate_common_name
    pki_key_type: str = _PKI.key_type
    pki_key_bits: int = _PKI.key_bits
    pki_root_ttl: str = _PKI.root_ttl
    pki_intermediate_ttl: str = _PKI.intermediate_ttl
    pki_leaf_ttl: str = _PKI.leaf_ttl
    pki_leaf_max_ttl: str = _PKI.leaf_max_ttl
    approle_token_ttl: str = _APPROLE.token_ttl
    approle_token_max_ttl: str = _APPROLE.token_max_ttl
    approle_secret_id_ttl: str = _APPROLE.secret_id_ttl

    def flavor_of(self, service: str) -> str | None:
        """The flavor ``flavors`` names for ``service``, or None (the release's default)."""
        for item in self.flavors:
            name, _, flavor = item.partition("=")
            if name.strip() == service:
                return flavor.strip()
        return None

    def image_of(self, name: str) -> ImageSpec:
        """Where a service's (or a tool image's) image comes from on this settings' release line and flavor."""
        if name in TOOL_IMAGES:  # tool images (nettools) do not depend on the release line
            return image_spec(name)
        return image_spec(name).on(self.release, self.flavor_of(name))

    def pki(self) -> PkiSettings:
        return PkiSettings(root_common_name=self.pki_root_common_name,
                           intermediate_common_name=self.pki_intermediate_common_name, key_type=self.pki_key_type,
                           key_bits=self.pki_key_bits, root_ttl=self.pki_root_ttl,
                           intermediate_ttl=self.pki_intermediate_ttl, leaf_max_ttl=self.pki_leaf_max_ttl,
                           leaf_ttl=self.pki_leaf_ttl)

    def approle(self) -> AppRoleSettings:
        return AppRoleSettings(token_ttl=self.approle_token_ttl, token_max_ttl=self.approle_token_max_ttl,
                               secret_id_ttl=self.approle_secret_id_ttl)

    def __post_init__(self) -> None:
        if self.stack not in get_args(StackMode):
            raise ConfigError(f"stack must be one of {', '.join(get_args(StackMode))}, not {self.stack!r}")
        octets = self.compose_subnet_prefix.split(".")
        if len(octets) != 3 or not all(o.isdigit() and 0 <= int(o) <= 255 for o in octets):
            raise ConfigError(f"compose_subnet_prefix must be three octets such as 10.213.51, "
                              f"not {self.compose_subnet_prefix!r}")
        if self.images not in get_args(ImageSet):
            raise ConfigError(f"images must be one of {', '.join(get_args(ImageSet))}, not {self.images!r}")
        services = registry.names()
        unknown = sorted(set(self.image_overrides) - set(services) - set(TOOL_IMAGES))
        if unknown:
            raise ConfigError(f"image override for unknown service {unknown}; valid services: {', '.join(services)} "
                              f"(tool images: {', '.join(TOOL_IMAGES)})")
        if self.redis_masters < 3:
            raise ConfigError(f"redis_masters must be at least 3 (a Redis cluster needs 3), not {self.redis_masters}")
        if self.redis_replicas < 0:
            raise ConfigError(f"redis_replicas must be >= 0, not {self.redis_replicas}")
        if not 1 <= self.vault_key_threshold <= self.vault_key_shares:
            raise ConfigError(
                f"vault_key_threshold must be between 1 and vault_key_shares ({self.vault_key_shares}), "
                f"not {self.vault_key_threshold}"
            )
        bad = sorted(set(self.tls_strict) - set(services))
        if bad:
            raise ConfigError(f"tls_strict names unknown service(s) {bad}; valid: {', '.join(services[1:])}")
        if "vault" in self.tls_strict:
            raise ConfigError("tls_strict cannot include vault: the harness bootstraps Vault over its plain "
                              "listener before Vault's own certificate exists")
        if self.tls_min_days_left < 0:
            raise ConfigError("tls_min_days_left must be >= 0")
        if self.drill_node_timeout_ms < 100 or self.redis_node_timeout_ms < 100:
            raise ConfigError("cluster node timeouts must be at least 100 ms")
        if self.keep_run_state < 0:
            raise ConfigError(f"keep_run_state must be >= 0 (0 keeps no finished run's state), not "
                              f"{self.keep_run_state}")
        if not 0 < self.drill_latency_ms < self.drill_node_timeout_ms:
            raise ConfigError(f"drill_latency_ms must be above 0 and below drill_node_timeout_ms "
                              f"({self.drill_node_timeout_ms}), not {self.drill_latency_ms}: the latency drill "
                              "checks that a delay below the node timeout triggers no failover")
        if not 3000 <= self.drill_partition_peer_timeout_ms <= self.drill_partition_victim_timeout_ms - 4000:
            raise ConfigError(f"drill_partition_peer_timeout_ms must be at least 3000 (the partitioned master must "
                              f"refuse writes, about 1-3 s after the cut, before the promotion) and at least 4000 "
                              f"below drill_partition_victim_timeout_ms (the split-brain window), not "
                              f"{self.drill_partition_peer_timeout_ms} and {self.drill_partition_victim_timeout_ms}")
        if self.release not in RELEASES:
            raise ConfigError(f"release must be one of {', '.join(RELEASES)}, not {self.release!r}")
        for item in self.flavors:
            name, sep, flavor = (part.strip() for part in item.partition("="))
            if not sep or name not in services:
                raise ConfigError(f"flavors: {item!r} is not service=flavor with a known service; valid services: "
                                  f"{', '.join(services)}")
            try:
                image_spec(name).on(self.release, flavor)
            except ValueError as exc:
                raise ConfigError(f"flavors: {exc}") from None
        if self.drill_max_rounds < 1:
            raise ConfigError("drill_max_rounds must be at least 1")
        for name in ("ready_timeout", "registry_probe_timeout", "drill_round_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if not 0 <= self.report_tolerance < float("inf"):  # also refuses nan
            raise ConfigError(f"report_tolerance must be a fraction >= 0 (0.25 = 25 %), not {self.report_tolerance}")

    @property
    def report_file(self) -> Path:
        return self.report_path if self.report_path is not None else self.state_dir / "report.json"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _convert(name: str, raw: Any, source: str) -> Any:
    """Turn a raw env string or TOML value into the field's type, with an error naming the source."""
    default = _FIELDS[name].default
    try:
        if name in ("state_dir", "report_path", "compose_file"):
            return Path(str(raw))
        if isinstance(default, tuple):
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid value for {name}: {exc}") from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("harness", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [harness] must be a table")
    return table


def load_settings(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Resolve the settings: ``HARNESS_*`` env > settings file > defaults.

    Args:
        environ: the environment to read (``os.environ`` when omitted).
        cwd: where to look for ``harness.toml`` (the working directory when omitted).
    """
    env = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else cwd
    values: dict[str, Any] = {}
    overrides: dict[str, str] = {}

    config_path = Path(env["HARNESS_CONFIG"]) if env.get("HARNESS_CONFIG") else base / "harness.toml"
    if env.get("HARNESS_CONFIG") and not config_path.is_file():
        raise ConfigError(f"HARNESS_CONFIG names {config_path}, which is not a file")
    if config_path.is_file():
        for key, raw in _read_file(config_path).items():
            if key.startswith("image_"):
                overrides[key.removeprefix("image_")] = str(raw)
            elif key in _FIELDS and key != "image_overrides":
                values[key] = _convert(key, raw, str(config_path))
            else:
                raise ConfigError(f"{config_path}: unknown setting {key!r}; valid: {', '.join(sorted(_env_names()))}")

    for name in _FIELDS:
        if name == "image_overrides":
            continue
        raw_env = env.get(f"HARNESS_{name.upper()}")
        if raw_env is not None and raw_env != "":
            values[name] = _convert(name, raw_env, f"HARNESS_{name.upper()}")
    for key, raw_env in env.items():
        if key.startswith("HARNESS_IMAGE_") and raw_env:
            overrides[key.removeprefix("HARNESS_IMAGE_").lower()] = raw_env

    if "images" in values:
        values["images"] = cast("ImageSet", values["images"])
    if "stack" in values:
        values["stack"] = cast("StackMode", values["stack"])
    return Settings(image_overrides=overrides, **values)


def _env_names() -> list[str]:
    return [n for n in _FIELDS if n != "image_overrides"] + [f"image_{s}" for s in registry.names()]


def settings_table() -> list[tuple[str, str, str]]:
    """(env variable, default, description) rows, for docs/settings.md (``python -m harness.settings_doc``)."""
    rows = []
    doc = Settings.__doc__ or ""
    for name, f in _FIELDS.items():
        if name == "image_overrides":
            rows.append(("HARNESS_IMAGE_<SERVICE>", "(image set)", "image reference for one service"))
            continue
        default = f.default if f.default is not dataclasses.MISSING else "(computed)"
        rows.append((f"HARNESS_{name.upper()}", str(default), _describe(doc, name)))
    return rows


def _describe(doc: str, name: str) -> str:
    """The field's text in the class docstring, with its indented continuation lines."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        head, sep, rest = line.strip().partition(":")
        if sep and name in (part.strip() for part in head.split("/")):
            indent = len(line) - len(line.lstrip())
            parts = [rest.strip()]
            for more in lines[i + 1:]:
                if not more.strip() or len(more) - len(more.lstrip()) <= indent:
                    break
                parts.append(more.strip())
            return " ".join(parts)
    return ""
