"""The service registry: every spec is complete and consistent, and a service added through the registry alone
is handled by the engine graph, compose and certs, or refused loudly naming the missing capability."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_service import fake_spec

from harness.settings import Settings
from stack import registry
from stack.base import TlsInfo, TlsMaterial
from stack.driver import ServiceDriver, unknown_methods
from stack.service import MissingCapability, ServiceSpec

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_FIELDS = {f.name for f in dataclasses.fields(Settings)}


def _compose_services() -> set[str]:
    return set(yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())["services"])


def completeness_problems(spec: ServiceSpec, compose_file_services: set[str]) -> list[str]:
    """What a spec lacks, each as the field or method of that service to add (one line per gap, so a new service
    that is incomplete fails once per gap with the fix, not in every suite that happens to read the gap)."""
    name, driver, found = spec.name, spec.driver, []
    if not (spec.owner and spec.description):
        found.append(f"{name}: set ServiceSpec.owner (the user owning its files) and .description (marker help)")
    if spec.image.service != name:
        found.append(f"{name}: ImageSpec(service={spec.image.service!r}) must be service={name!r}")
    if not ((spec.image.debian is None) == (spec.image.context is None) == (spec.image.debian_version is None)):
        found.append(f"{name}: ImageSpec debian, context and debian_version go together (all set or all None)")
    if not set(spec.compose_services) <= compose_file_services:
        found.append(f"{name}: compose_services {sorted(set(spec.compose_services) - compose_file_services)} are not "
                     "in compose/docker-compose.yml: add the entries there, or leave compose_services empty")
    if not set(spec.depends_on) <= set(registry.names()) or name in spec.depends_on:
        found.append(f"{name}: depends_on {spec.depends_on} must name other registered services")
    if not set(spec.settings) <= SETTINGS_FIELDS:
        found.append(f"{name}: settings {sorted(set(spec.settings) - SETTINGS_FIELDS)} are not harness settings")
    found += [f"{name}: {type(driver).__name__}.{method}() is not a ServiceDriver method (misspelled?)"
              for method in unknown_methods(type(driver))]
    if spec.tls and not driver.has("reload_tls"):
        found.append(f"{name}: serves TLS: override reload_tls() in {type(driver).__name__} (live certificate "
                     "rotation)")
    if name != "vault":
        if "vault" not in spec.depends_on:
            found.append(f"{name}: depends_on must include 'vault', the root of trust")
        found += [f"{name}: override {capability}() in {type(driver).__name__} (the cross-service suites ask it)"
                  for capability in ("session", "tls_only_evidence") if spec.tls and not driver.has(capability)]
        found += [f"{name}: set {attr} on {type(driver).__name__} (the server's own error, for the suites)"
                  for attr in ("password_refusal", "plaintext_refusal") if getattr(driver, attr) is None]
        if spec.compose_services and driver.compose_password_file is None:
            found.append(f"{name}: set compose_password_file on {type(driver).__name__} (the compose attach suite)")
    if spec.backup and name != "vault" and (spec.backup_ops is None or spec.backup_ops.seed is None):
        found.append(f"{name}: backup=True needs backup_ops=BackupOps(..., seed=BackupSeed(...)) (the round trips)")
    return found


@pytest.mark.parametrize("name", registry.names())
def test_spec_is_complete_and_consistent(name: str) -> None:
    spec = registry.get(name)
    assert isinstance(spec.driver, ServiceDriver) and spec.driver.service == name
    assert completeness_problems(spec, _compose_services()) == []


def test_completeness_names_the_field_or_method_to_add() -> None:
    """An incomplete spec fails once per gap, each line saying what to add to which service."""
    spec = fake_spec("halfdone", depends_on=("vault",), backup=True, tls=False)
    assert completeness_problems(spec, _compose_services()) == [
        "halfdone: compose_services ['halfdone'] are not in compose/docker-compose.yml: add the entries there, or "
        "leave compose_services empty",
        "halfdone: set password_refusal on MinimalDriver (the server's own error, for the suites)",
        "halfdone: set plaintext_refusal on MinimalDriver (the server's own error, for the suites)",
        "halfdone: set compose_password_file on MinimalDriver (the compose attach suite)",
        "halfdone: backup=True needs backup_ops=BackupOps(..., seed=BackupSeed(...)) (the round trips)",
    ]
    assert completeness_problems(dataclasses.replace(spec, tls=True), set())[1:3] == [
        "halfdone: serves TLS: override reload_tls() in MinimalDriver (live certificate rotation)",
        "halfdone: override session() in MinimalDriver (the cross-service suites ask it)",
    ]


def test_registry_order_starts_with_vault_and_matches_the_modules() -> None:
    assert registry.names()[0] == "vault"
    assert [s.name for s in registry.specs()] == list(registry.MODULES)


def test_capability_flags_are_read_from_the_driver() -> None:
    """``rotatable_password`` is not declared beside the code: it is whether the driver changes passwords."""
    assert registry.with_capability("rotatable_password") == ["postgres", "mysql", "mongodb", "redis", "rabbitmq"]
    assert registry.get("vault").driver.has("change_password") is False
    with pytest.raises(ValueError, match=r"^'login' is not an optional capability; those are reload_tls, "):
        registry.get("vault").driver.has("login")


def test_a_driver_that_lacks_a_capability_names_the_method_to_add() -> None:
    vault = registry.get("vault").driver
    with pytest.raises(MissingCapability) as info:
        vault.change_password(None, "new")
    assert str(info.value) == ("service 'vault' has no 'change_password' capability; to add it: override "
                               "change_password() in the service's ServiceDriver subclass (stack.driver.ServiceDriver)")
    assert (info.value.service, info.value.capability) == ("vault", "change_password")


class _Minimal(ServiceDriver[Any]):
    endpoint_type = TlsInfo  # any dataclass: these tests never build one

    def make(self, req: Any) -> Any:
        return None

    def compose_endpoint(self, pub: Any) -> Any:
        return None

    def login(self, endpoint: Any) -> bool:
        return True

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        return {}


def test_a_misspelled_driver_method_is_found_not_ignored() -> None:
    class Typo(_Minimal):
        def compose_envs(self, secret: Any) -> dict[str, str]:  # meant: compose_env
            return {}

        def _helper(self) -> None:  # private helpers are the driver's own business
            return None

    assert unknown_methods(Typo) == ["compose_envs"]
    assert unknown_methods(_Minimal) == []


def test_a_driver_without_a_required_method_cannot_be_made() -> None:
    class NoLogin(ServiceDriver[Any]):
        endpoint_type = TlsInfo

        def make(self, req: Any) -> Any:
            return None

        def compose_endpoint(self, pub: Any) -> Any:
            return None

        def initial_secret(self, strict: bool) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match=r"abstract class NoLogin .*abstract methods? '?login"):
        NoLogin()  # type: ignore[abstract]


def test_a_driver_without_its_endpoint_type_is_refused_naming_it() -> None:
    class NoType(ServiceDriver[Any]):
        make, compose_endpoint, login, initial_secret = (_Minimal.make, _Minimal.compose_endpoint, _Minimal.login,
                                                         _Minimal.initial_secret)

    spec = registry.get("postgres")
    with pytest.raises(TypeError, match=r"^NoType \(service 'x'\) must declare endpoint_type = <its endpoint "):
        dataclasses.replace(spec, name="x", driver=NoType())


# ------------------------------------------------------------------------------ certs dispatch


class _Container:
    """A container that records signals: the old fall-through sent Vault's SIGHUP to anything unknown."""

    def __init__(self) -> None:
        self.signals: list[str] = []
        self.name = "container"

    def kill(self, signal: str) -> None:
        self.signals.append(signal)


def test_reload_tls_refuses_an_unknown_service_instead_of_sighup() -> None:
    from harness.trust.certs import reload_tls

    container = _Container()
    with pytest.raises(registry.UnknownService, match=r"unknown service 'oracle'; valid services: vault, "):
        reload_tls("oracle", object(), container, 1.0)
    assert container.signals == []


def test_reload_tls_dispatches_through_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.trust.certs import reload_tls

    seen: list[tuple[Any, Any, float]] = []
    spec = registry.get("postgres")

    class Recording(type(spec.driver)):  # type: ignore[misc]
        def reload_tls(self, endpoint: Any, container: Any, timeout: float) -> str:
            seen.append((endpoint, container, timeout))
            return "ok"

    fake = dataclasses.replace(spec, driver=Recording())
    monkeypatch.setitem(registry._loaded, "postgres", fake)
    assert reload_tls("postgres", "ep", "container", 3.0) == "ok"
    assert seen == [("ep", "container", 3.0)]


class _FakeStack:
    """A RunningStack that records what a rotation does to it (no Docker, no Vault)."""

    run_id = "fake-run"
    state_dir = Path("/nonexistent")
    vault_bootstrap = None
    ca = None
    ready_timeout = 7.0

    def __init__(self, serial: str = "01") -> None:
        self.calls: list[str] = []
        self.serial = serial
        self.nodes = [_Container(), _Container()]

    def endpoint(self, name: str) -> Any:
        self.calls.append(f"endpoint {name}")
        return types.SimpleNamespace(tls=TlsInfo(1234, "tls", self.serial, "/ca.pem", strict=False))

    def containers(self, name: str) -> list[Any]:
        self.calls.append(f"containers {name}")
        return self.nodes

    def record_tls(self, name: str, tls: TlsMaterial) -> None:
        self.calls.append(f"record_tls {name} {tls.serial}")
        self.serial = tls.serial


def test_rotation_is_one_path_through_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """rotate_certificate on any stack: issue, install in every container (the spec's files and owner), let the
    stack keep it, then the spec's reload_tls with the endpoint that carries the new serial."""
    import harness.trust.certs as certs

    new = TlsMaterial(certificate="c", private_key="k", ca_chain="a", root_ca="r", serial="02")
    installed: list[tuple[Any, list[str], str]] = []
    reloaded: list[tuple[str, Any, float]] = []
    monkeypatch.setattr(certs, "issue_tls", lambda stack, name: new)
    monkeypatch.setattr(certs, "put_private_files",
                        lambda c, files, what: installed.append((c, sorted(files), {o for _, o in files.values()})))
    spec = registry.get("mongodb")  # combined PEM: the spec's files, not a generic set

    class Recording(type(spec.driver)):  # type: ignore[misc]
        def reload_tls(self, endpoint: Any, container: Any, timeout: float) -> str:
            reloaded.append((endpoint.tls.serial, container, timeout))
            return "live: test"

    fake = dataclasses.replace(spec, driver=Recording())
    monkeypatch.setitem(registry._loaded, "mongodb", fake)
    stack = _FakeStack()
    done = certs.rotate_certificate(stack, "mongodb")  # type: ignore[arg-type]
    assert (done.old_serial, done.new_serial, done.how) == ("01", "02", "live: test")
    paths = sorted(spec.tls_files(new))
    assert installed == [(stack.nodes[0], paths, {"mongodb"}), (stack.nodes[1], paths, {"mongodb"})]
    assert reloaded == [("02", stack.nodes[0], 7.0)]
    assert stack.calls == ["endpoint mongodb", "containers mongodb", "record_tls mongodb 02", "endpoint mongodb"]


def test_rotation_refuses_an_unknown_service_before_touching_the_stack() -> None:
    from harness.trust.certs import rotate_certificate

    stack = _FakeStack()
    with pytest.raises(registry.UnknownService, match=r"^unknown service 'oracle'; valid services: vault, "):
        rotate_certificate(stack, "oracle")  # type: ignore[arg-type]
    assert stack.calls == []


# ------------------------------------------------------------------------------ an extra service

EXTRA = '''
import dataclasses
from typing import Any

from stack.base import TlsInfo
from stack.driver import ServiceDriver
from stack.images import ImageSpec
from stack.service import ServiceSpec


@dataclasses.dataclass(frozen=True)
class ExtraEndpoint:
    alias: str
    port: int
    tls: TlsInfo | None = None


class ExtraDriver(ServiceDriver[ExtraEndpoint]):
    """Only what every driver must have: no reload_tls, no sessions, no compose files."""

    endpoint_type = ExtraEndpoint

    def make(self, req: Any) -> Any:
        raise AssertionError("not started in these tests")

    def compose_endpoint(self, pub: Any) -> ExtraEndpoint:
        raise AssertionError("not in the compose stack")

    def login(self, endpoint: ExtraEndpoint) -> bool:
        return True

    def initial_secret(self, strict: bool) -> dict[str, Any]:
        return {{"password": "x", "tls_enabled": {tls}, "tls_strict": strict}}


SPEC = ServiceSpec(
    name="{name}",
    description="needs the extra test service (and Vault)",
    owner="extra",
    image=ImageSpec(service="{name}", official="example/extra:1.0", debian=None, context=None, product="Extra 1",
                    official_version="1.0", debian_version=None),
    driver=ExtraDriver(),
    compose_services=("{name}",),
    tls={tls},
)
'''


@pytest.fixture
def extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceSpec:
    """A service module on sys.path, added through ``registry.register`` only (TLS, only the required methods)."""
    (tmp_path / "extra_service_mod.py").write_text(textwrap.dedent(EXTRA.format(name="extra", tls=True)))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = registry.register("extra_service_mod")
    yield spec
    registry.unregister("extra")
    sys.modules.pop("extra_service_mod", None)


def test_extra_backed_up_service_without_a_seed_fails_naming_it(extra: ServiceSpec,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup round trips and the upgrade drill ask the spec for the seed (``harness.drills.upgrade.seed_of``): a
    backed-up service without one is named, not skipped."""
    from harness.drills.upgrade import seed_of
    from stack.backup_ops import BackupOps

    ops = BackupOps(lambda src: [], lambda src, files: None, lambda ep: "1")
    monkeypatch.setitem(registry._loaded, "extra", dataclasses.replace(extra, backup=True, backup_ops=ops))
    with pytest.raises(MissingCapability) as info:
        seed_of("extra")
    assert str(info.value) == ("service 'extra' has no 'backup_ops.seed' capability; to add it: give its ServiceSpec "
                               "backup_ops=BackupOps(..., seed=BackupSeed(...)) (stack.backup_ops)")
    assert seed_of("postgres").mark is not None  # a declared seed is found, marker included


def test_extra_service_is_in_the_engine_graph_after_vault(extra: ServiceSpec) -> None:
    from harness.stacks.engine import DEPENDENCIES, network_aliases, start_layers, validate_services, with_dependencies

    assert DEPENDENCIES["extra"] == ("vault",)
    assert validate_services(["extra"]) == ["extra"]
    assert with_dependencies(["extra"]) == ["vault", "extra"]
    assert start_layers(["extra", "postgres"]) == [["vault"], ["extra", "postgres"]]
    assert Settings(tls_strict=("extra",)).tls_strict == ("extra",)  # settings validate against the registry
    assert network_aliases(Settings())["extra"] == ["extra"]  # the default: its name


def test_extra_service_is_compose_drift_until_the_file_has_it(extra: ServiceSpec) -> None:
    from harness.stacks.compose import compose_drift

    assert compose_drift(_compose_services()) == ["extra: compose service 'extra' is not in the compose file"]
    assert compose_drift(_compose_services() | {"extra"}) == []


def test_extra_service_compose_material_is_its_tls_files_by_default(extra: ServiceSpec) -> None:
    from harness.stacks.compose import service_files

    tls = TlsMaterial(certificate="c", private_key="k", ca_chain="a", root_ca="r", serial="01")
    assert service_files("extra", {"password": "x"}, tls, Settings()) == {
        path: content for path, (content, _) in extra.tls_files(tls).items()}


def test_extra_service_certs_dispatch_defaults_and_missing_reload(extra: ServiceSpec) -> None:
    from harness.stacks.kept import endpoint_from_json
    from harness.trust.certs import reload_tls, targets

    container = _Container()
    with pytest.raises(MissingCapability, match=r"^service 'extra' has no 'reload_tls' capability; to add it: "
                                                r"override reload_tls\(\)"):
        reload_tls("extra", object(), container, 1.0)
    assert container.signals == []
    ep = endpoint_from_json("extra", {"alias": "extra", "port": 1, "tls": {"port": 1234, "protocol": "tls",
                                      "serial": "01", "ca_file": "/ca.pem", "strict": False}})
    found = targets({"extra": ep})  # the default: the endpoint's one TLS listener
    assert [(t.service, t.alias, t.port, t.protocol) for t in found] == [("extra", "extra", 1234, "tls")]


def test_extra_service_rotation_fails_naming_reload_tls_before_issuing(extra: ServiceSpec) -> None:
    """The extra service serves TLS but has no reload_tls: the one rotation path refuses it by name, and nothing
    is issued, installed or recorded (the stack is not even asked for its endpoint)."""
    from harness.trust.certs import rotate_certificate

    stack = _FakeStack()
    with pytest.raises(MissingCapability) as info:
        rotate_certificate(stack, "extra")  # type: ignore[arg-type]
    assert str(info.value).startswith("service 'extra' has no 'reload_tls' capability; to add it: override ")
    assert stack.calls == [] and stack.nodes[0].signals == []


def test_a_service_without_tls_is_refused_by_certs_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.trust.certs import reload_tls

    (tmp_path / "plain_service_mod.py").write_text(textwrap.dedent(EXTRA.format(name="plain", tls=False)))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("plain_service_mod")
    try:
        container = _Container()
        with pytest.raises(MissingCapability, match=r"^service 'plain' has no 'tls' capability; to add it: set "
                                                    r"tls=True in its ServiceSpec"):
            reload_tls("plain", object(), container, 1.0)
        assert container.signals == []
    finally:
        registry.unregister("plain")
        sys.modules.pop("plain_service_mod", None)


def test_a_service_without_compose_entry_is_left_out_of_the_compose_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compose up`` resolves images for the services in the compose file only; one registered from outside the
    package with no compose entry is reported as left out (attach mode then skips it naming the reason)."""
    import harness.stacks.compose as compose

    class Resolver:
        def __init__(self, client: Any, settings: Any) -> None:
            pass

        def resolve(self, name: str) -> Any:
            return types.SimpleNamespace(available=True, ref=f"{name}:1", image_id="id", source="debian", reason="",
                                         version="1")

    monkeypatch.setattr(compose, "ImageResolver", Resolver)
    monkeypatch.setitem(registry.MODULES, "outside", "outside_mod")
    monkeypatch.setitem(registry._loaded, "outside", fake_spec("outside", compose_services=()))
    images, unavailable = compose.resolve_images(None, Settings())  # type: ignore[arg-type]
    assert "outside" not in images and set(images) == set(registry.names()) - {"outside"}
    assert unavailable == {"outside": "its ServiceSpec declares no compose_services (it has no entry in the compose "
                                      "file)"}
