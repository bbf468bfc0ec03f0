"""The compose file says what the stack modules say (no drift between the two ways of running the stack),
and the pure pieces of ``compose up`` (material files, env, renewal rule, compose detection). No Docker."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from harness.settings import Settings
from harness.stacks import compose
from harness.stacks.compose import (
    COMPOSE_SERVICES,
    ComposeLayout,
    compose_env,
    file_name,
    install_list,
    needs_new_leaf,
    service_files,
)
from harness.trust.certs import OWNERS
from stack import mongodb, mysql, postgres, rabbitmq, redis_cluster, registry
from stack.base import TLS_CA, TLS_CERT, TLS_KEY, TLS_PEM, TlsMaterial
from stack.errors import ComposeError
from stack.registry import CATALOGUE
from stack.tls_policy import ERLANG_TLS13, GO_TLS12, OPENSSL_TLS12, TLS12_CIPHERS
from stack.vault import VAULT_PORT, VAULT_TLS_PORT, server_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"


@pytest.fixture(scope="module")
def spec():
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _default(value: str) -> str:
    """``${VAR:-default}`` -> default (the file's values when `compose up` did not set the variable)."""
    assert value.startswith("${") and ":-" in value, value
    return value[value.index(":-") + 2: value.rindex("}")]


def test_every_harness_service_is_in_the_file(spec):
    from harness.stacks.compose import compose_drift

    assert compose_drift(spec["services"]) == []
    assert set(spec["services"]) == {c for names in COMPOSE_SERVICES.values() for c in names}
    assert set(COMPOSE_SERVICES) == set(registry.names())


def test_compose_drift_names_what_is_missing_and_what_is_extra(spec):
    from harness.stacks.compose import compose_drift

    services = [c for c in spec["services"] if c != "redis-2"] + ["stray"]
    assert compose_drift(services) == ["redis: compose service 'redis-2' is not in the compose file",
                                       "compose service 'stray' belongs to no registered service"]


def test_server_options_equal_the_stack_modules(spec):
    services = spec["services"]
    assert services["postgres"]["command"] == postgres.server_options(tls=True)
    assert services["mysql"]["command"] == mysql.server_options(tls=True, strict=False)
    assert services["mongodb"]["command"] == mongodb.server_options(tls=True, strict=False)
    for node in COMPOSE_SERVICES["redis"]:
        assert services[node]["command"] == ["redis-server", redis_cluster.CONF_PATH]
    assert json.loads(services["vault"]["environment"]["VAULT_LOCAL_CONFIG"]) == server_config()
    assert services["vault"]["command"] == ["server"]


def test_every_compose_tls_listener_uses_the_shared_cipher_policy(spec):
    """The policy's own spellings, found in the compose file and in the config files `compose up` writes (a
    module and the compose file agreeing on an old list would pass the equality test above)."""
    services = spec["services"]
    assert f"ssl_ciphers={OPENSSL_TLS12}" in services["postgres"]["command"]
    assert "ssl_prefer_server_ciphers=on" in services["postgres"]["command"]
    assert f"--ssl-cipher={OPENSSL_TLS12}" in services["mysql"]["command"]
    assert f"opensslCipherConfig={OPENSSL_TLS12}" in services["mongodb"]["command"]
    listeners = json.loads(services["vault"]["environment"]["VAULT_LOCAL_CONFIG"])["listener"]
    tls_listeners = [entry["tcp"] for entry in listeners if not entry["tcp"].get("tls_disable")]
    assert tls_listeners and all(entry["tls_cipher_suites"] == GO_TLS12 for entry in tls_listeners)
    files = {name: service_files(name, {"password": "p", "user": "u", "vhost": "v"}, TLS, Settings())
             for name in ("redis", "rabbitmq")}
    redis_conf = files["redis"][redis_cluster.CONF_PATH].decode().splitlines()
    assert f"tls-ciphers {OPENSSL_TLS12}" in redis_conf and "tls-prefer-server-ciphers yes" in redis_conf
    assert "tls-cluster yes" in redis_conf  # the cluster bus runs on the same TLS settings
    rabbit_conf = files["rabbitmq"][rabbitmq.TLS_CONF].decode().splitlines()
    for prefix in ("ssl_options", "management.ssl"):
        listed = [line.split(" = ", 1)[1] for line in rabbit_conf if line.startswith(f"{prefix}.ciphers.")]
        assert listed == [*ERLANG_TLS13, *TLS12_CIPHERS], prefix
        assert f"{prefix}.honor_cipher_order = true" in rabbit_conf


def test_the_policy_is_ecdhe_with_aead_only():
    assert TLS12_CIPHERS and all(name.startswith(("ECDHE-RSA-", "ECDHE-ECDSA-")) for name in TLS12_CIPHERS)
    assert all(name.endswith(("-GCM-SHA256", "-GCM-SHA384", "-CHACHA20-POLY1305")) for name in TLS12_CIPHERS)
    assert OPENSSL_TLS12.split(":") == list(TLS12_CIPHERS)
    assert len(GO_TLS12.split(",")) == len(TLS12_CIPHERS)


def test_password_files_are_the_ones_the_modules_use(spec):
    env = {name: spec["services"][name]["environment"] for name in ("postgres", "mysql", "mongodb")}
    assert env["postgres"]["POSTGRES_PASSWORD_FILE"] == postgres.PASSWORD_FILE
    assert env["mysql"]["MYSQL_PASSWORD_FILE"] == mysql.PASSWORD_FILE
    assert env["mysql"]["MYSQL_ROOT_PASSWORD_FILE"] == mysql.ROOT_PASSWORD_FILE
    assert env["mongodb"]["MONGO_INITDB_ROOT_PASSWORD_FILE"] == mongodb.PASSWORD_FILE
    text = COMPOSE_FILE.read_text().lower()
    assert "password:" not in text.replace("password_file:", ""), "a password value in the compose file"


def test_default_images_are_the_pinned_official_ones(spec):
    for name, names in COMPOSE_SERVICES.items():
        for cname in names:
            image = spec["services"][cname]["image"]
            assert image.startswith(f"${{DSH_IMAGE_{name.upper()}:-"), image
            assert _default(image) == CATALOGUE[name].official


def test_ports_are_published_on_loopback_only(spec):
    for cname, service in spec["services"].items():
        assert service.get("ports"), f"{cname} publishes nothing"
        for port in service["ports"]:
            assert port.startswith("127.0.0.1:"), f"{cname} publishes {port} beyond loopback"


def test_every_service_has_a_short_interval_healthcheck_and_waits_for_a_healthy_vault(spec):
    for cname, service in spec["services"].items():
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and len(" ".join(check["test"])) > 20
        seconds = float(check["interval"].removesuffix("s"))
        assert seconds <= 5, f"{cname} checks every {seconds}s"
        if cname != "vault":
            assert service["depends_on"] == {"vault": {"condition": "service_healthy"}}


def test_entrypoint_installs_files_as_the_service_user_then_runs_the_image_entrypoint(spec):
    for name, names in COMPOSE_SERVICES.items():
        for cname in names:
            service = spec["services"][cname]
            assert service["entrypoint"] == ["/bin/sh", "/run/harness/install-files.sh", OWNERS[name],
                                             "docker-entrypoint.sh"]
            assert f"../certs/compose/{name}:/run/harness/src:ro" in service["volumes"]
            assert any(v.startswith("./install-files.sh:") for v in service["volumes"])


def test_redis_nodes_have_the_fixed_addresses_their_module_declares(spec):
    from stack.redis_cluster import COMPOSE_HOST_OCTETS

    for cname, octet in zip(COMPOSE_SERVICES["redis"], COMPOSE_HOST_OCTETS, strict=True):
        address = spec["services"][cname]["networks"]["devstack"]["ipv4_address"]
        assert address == f"${{DSH_SUBNET_PREFIX:-{Settings().compose_subnet_prefix}}}.{octet}"
    subnet = spec["networks"]["devstack"]["ipam"]["config"][0]["subnet"]
    assert subnet == f"${{DSH_SUBNET_PREFIX:-{Settings().compose_subnet_prefix}}}.0/24"


def test_vault_ports_match_the_module(spec):
    ports = spec["services"]["vault"]["ports"]
    assert any(p.endswith(f":{VAULT_PORT}") for p in ports) and any(p.endswith(f":{VAULT_TLS_PORT}") for p in ports)


# ---------------------------------------------------------------------------------------- pure pieces


TLS = TlsMaterial(certificate="CERT\n", private_key="KEY\n", ca_chain="CHAIN\n", root_ca="ROOT\n", serial="aa:bb")


def test_file_names_are_flat_and_unique():
    dests = [TLS_CERT, TLS_KEY, TLS_CA, TLS_PEM, postgres.PASSWORD_FILE, postgres.HBA_FILE, mysql.PASSWORD_FILE,
             mysql.ROOT_PASSWORD_FILE, redis_cluster.CONF_PATH, rabbitmq.CREDENTIALS_CONF, rabbitmq.TLS_CONF]
    names = [file_name(d) for d in dests]
    assert all("/" not in n for n in names)
    assert len(set(names)) == len(names)
    assert file_name(TLS_CERT) == "tls-server.crt"


def test_service_files_postgres():
    files = service_files("postgres", {"password": "pw1", "user": "u", "database": "d"}, TLS, Settings())
    assert files[postgres.PASSWORD_FILE] == b"pw1"
    assert files[postgres.HBA_FILE] == postgres.hba_config(strict=False).encode()
    # The CA file holds the issuing chain, not the root alone (MySQL 9 verifies its own certificate against it).
    assert files[TLS_CERT] == b"CERT\n" and files[TLS_KEY] == b"KEY\n" and files[TLS_CA] == b"CHAIN\n"
    assert TLS_PEM not in files


def test_service_files_redis_and_rabbitmq_and_mongodb():
    settings = Settings(redis_node_timeout_ms=1234)
    redis_conf = service_files("redis", {"password": "rpw"}, TLS, settings)[redis_cluster.CONF_PATH].decode()
    assert "requirepass rpw" in redis_conf and "masterauth rpw" in redis_conf
    assert "cluster-node-timeout 1234" in redis_conf and "tls-port 6380" in redis_conf and "port 6379" in redis_conf
    rabbit = service_files("rabbitmq", {"password": "qpw", "user": "qu", "vhost": "vh"}, TLS, settings)
    assert rabbit[rabbitmq.CREDENTIALS_CONF].decode() == "default_user = qu\ndefault_pass = qpw\ndefault_vhost = vh\n"
    assert "listeners.tcp = none" not in rabbit[rabbitmq.TLS_CONF].decode()  # dual mode
    mongo = service_files("mongodb", {"password": "mpw"}, TLS, settings)
    assert mongo[mongodb.PASSWORD_FILE] == b"mpw" and mongo[TLS_PEM] == b"CERT\nKEY\n"


def test_install_list_names_every_file_once():
    files = service_files("mysql", {"password": "a", "root_password": "b"}, TLS, Settings())
    lines = install_list(files).splitlines()
    assert sorted(line.split(" ")[1] for line in lines) == sorted(files)
    assert all(line.split(" ")[0] == file_name(line.split(" ")[1]) for line in lines)


def test_compose_env_carries_project_images_and_names():
    layout = ComposeLayout(COMPOSE_FILE, "proj", "10.9.8", Path("/s"), Path("/m"))
    env = compose_env(layout, {"postgres": "pg:1"}, {"postgres": {"user": "u", "database": "d", "password": "x"}})
    assert env == {"COMPOSE_PROJECT_NAME": "proj", "DSH_SUBNET_PREFIX": "10.9.8", "DSH_IMAGE_POSTGRES": "pg:1",
                   "DSH_POSTGRES_USER": "u", "DSH_POSTGRES_DB": "d"}
    assert "x" not in env.values(), "a password leaked into the compose environment"


def _cert(issuer_key, issuer_name, subject, days_valid, days_ago=0.0, ca=False):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days_valid))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    from cryptography.hazmat.primitives.serialization import Encoding

    return key, name, cert.public_bytes(Encoding.PEM).decode()


@pytest.fixture(scope="module")
def cas():
    key, name, pem = _cert(None, None, "int", 365, ca=True)
    other_key, other_name, other_pem = _cert(None, None, "other", 365, ca=True)
    return (key, name, pem), (other_key, other_name, other_pem)


def test_needs_new_leaf(cas):
    (key, name, pem), (other_key, other_name, _) = cas
    now = dt.datetime.now(dt.UTC)
    assert needs_new_leaf(None, pem, now) == "no certificate yet"
    assert needs_new_leaf(_cert(key, name, "svc", 7)[2], pem, now) == ""
    assert needs_new_leaf(_cert(other_key, other_name, "svc", 7)[2], pem, now) == "issued by another CA"
    # 7-day leaf issued 5.5 days ago: 1.5 days (< a third of its life) left
    assert needs_new_leaf(_cert(key, name, "svc", 7, days_ago=5.5)[2], pem, now).startswith("expires ")
    assert needs_new_leaf(_cert(key, name, "svc", 7, days_ago=4)[2], pem, now) == ""


def test_find_compose_prefers_v2_then_falls_back(monkeypatch):
    monkeypatch.setattr(compose.shutil, "which", lambda name: f"/usr/bin/{name}")
    calls = []

    def fake(argv, **_):
        calls.append(argv)
        code = 0 if argv[0] == "docker-compose" else 1
        return subprocess.CompletedProcess(argv, code, "", "docker: unknown command: docker compose")

    assert compose.find_compose(fake) == ["docker-compose"]
    assert calls == [["docker", "compose", "version"], ["docker-compose", "version"]]
    assert compose.find_compose(lambda argv, **_: subprocess.CompletedProcess(argv, 0, "", "")) == ["docker", "compose"]


def test_find_compose_says_what_it_tried(monkeypatch):
    monkeypatch.setattr(compose.shutil, "which", lambda name: None)
    with pytest.raises(ComposeError, match=r"docker-compose: not on PATH.*setup\.sh"):
        compose.find_compose()


# ------------------------------------------------------------------ declared volumes (no anonymous volumes)


def dockerfile_volumes(text: str) -> set[str]:
    """The paths of every ``VOLUME`` instruction (shell form ``VOLUME /a /b`` and JSON form ``VOLUME ["/a"]``).
    Hand-written: these Dockerfiles use neither line continuations nor variables in VOLUME, and a Dockerfile
    parser package for six lines is not worth a dependency; unsupported forms fail loudly."""
    found: set[str] = set()
    for line in text.splitlines():
        words = line.strip().split(None, 1)
        if len(words) != 2 or words[0].upper() != "VOLUME":
            continue
        value = words[1].strip()
        paths = json.loads(value) if value.startswith("[") else value.split()
        assert all(p.startswith("/") and "$" not in p for p in paths), f"unsupported VOLUME form: {line!r}"
        found.update(paths)
    return found


def test_dockerfile_volumes_parser():
    text = 'FROM x\nVOLUME /a\nvolume ["/b", "/c"]\nRUN echo VOLUME /not\nVOLUME /d /e\n'
    assert dockerfile_volumes(text) == {"/a", "/b", "/c", "/d", "/e"}
    with pytest.raises(AssertionError, match="unsupported VOLUME form"):
        dockerfile_volumes("VOLUME $DATA\n")


def test_debian_images_declare_the_official_images_volumes():
    from stack.registry import OFFICIAL_VOLUMES

    assert set(OFFICIAL_VOLUMES) == set(CATALOGUE)
    for name, spec in CATALOGUE.items():
        if spec.context_dir is None:
            continue  # no Debian build (MongoDB)
        declared = dockerfile_volumes((spec.context_dir / "Dockerfile").read_text())
        assert declared == set(OFFICIAL_VOLUMES[name]), f"{spec.debian} declares {sorted(declared)}, " \
            f"{spec.official} declares {sorted(OFFICIAL_VOLUMES[name])}"


def test_compose_names_a_volume_for_every_declared_path(spec):
    from stack.registry import OFFICIAL_VOLUMES

    named = set(spec["volumes"])
    for name, cnames in COMPOSE_SERVICES.items():
        for cname in cnames:
            mounts = {}
            for entry in spec["services"][cname]["volumes"]:
                source, target = entry.split(":")[:2]
                mounts[target] = source
            for path in OFFICIAL_VOLUMES[name]:
                assert path in mounts, f"{cname} leaves the image's VOLUME {path} to an anonymous volume"
                assert mounts[path] in named, f"{cname} mounts {mounts[path]} at {path}: not a named volume"
    used = {e.split(":")[0] for s in spec["services"].values() for e in s["volumes"] if not e.startswith(".")}
    assert used == named, f"volumes declared but unused or used but undeclared: {sorted(used ^ named)}"


def test_built_images_declare_the_volumes_compose_names():
    """With Docker: what the images really declare (Config.Volumes), for every image present locally."""
    import docker

    from stack.registry import OFFICIAL_VOLUMES

    try:
        client = docker.from_env(timeout=5)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine answers ({exc}); the Dockerfiles were compared above")
    checked = []
    for name, spec in CATALOGUE.items():
        for ref in (spec.official, spec.debian):
            if ref is None:
                continue
            try:
                config = client.images.get(ref).attrs["Config"]
            except docker.errors.ImageNotFound:
                continue
            declared = set(config.get("Volumes") or {})
            assert declared == set(OFFICIAL_VOLUMES[name]), f"{ref} declares {sorted(declared)}"
            checked.append(ref)
    if not checked:
        pytest.skip("Docker answers but none of the catalogue's images is present locally")
