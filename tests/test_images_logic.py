"""Image logic without Docker: the context digest that makes rebuilds idempotent, and the catalogue."""

from __future__ import annotations

import pytest

from harness.images import SID_APT_CONF, apt_sources, build_args, context_digest, debian_specs
from harness.settings import Settings
from stack.errors import ConfigError
from stack.images import DEFAULT_RELEASE, RELEASES, TOOL_IMAGES
from stack.registry import CATALOGUE


def _ctx(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM base\n")
    (ctx / "entrypoint.sh").write_text("#!/bin/sh\n")
    return ctx


def test_digest_is_stable(tmp_path):
    ctx = _ctx(tmp_path)
    assert context_digest(ctx, "sha256:1", {"BASE": "b"}) == context_digest(ctx, "sha256:1", {"BASE": "b"})


@pytest.mark.parametrize("change", ["content", "mode", "new file", "base", "arg"])
def test_digest_changes_with_every_input(tmp_path, change):
    ctx = _ctx(tmp_path)
    before = context_digest(ctx, "sha256:1", {"BASE": "b"})
    base, args = "sha256:1", {"BASE": "b"}
    if change == "content":
        (ctx / "entrypoint.sh").write_text("#!/bin/sh\necho changed\n")
    elif change == "mode":
        (ctx / "entrypoint.sh").chmod(0o755)
    elif change == "new file":
        (ctx / "extra.conf").write_text("x\n")
    elif change == "base":
        base = "sha256:2"
    else:
        args = {"BASE": "other"}
    assert context_digest(ctx, base, args) != before


def test_derived_binary_is_not_hashed(tmp_path):
    ctx = _ctx(tmp_path)
    before = context_digest(ctx, "sha256:1", {})
    (ctx / "bao").write_bytes(b"\x7fELF" + b"0" * 1000)
    assert context_digest(ctx, "sha256:1", {}) == before


def test_official_tags_are_pinned():
    for spec in CATALOGUE.values():
        name, _, tag = spec.official.rpartition(":")
        assert name and tag and tag != "latest", spec.official
        assert any(ch.isdigit() for ch in tag), f"{spec.official} is not a pinned version"


def test_every_debian_image_has_a_context(tmp_path):
    for spec in debian_specs(Settings(), None):
        assert spec.context_dir is not None and (spec.context_dir / "Dockerfile").is_file(), spec.service


def test_mongodb_has_no_debian_build():
    with pytest.raises(ConfigError, match="mongodb has no Debian build"):
        debian_specs(Settings(), ["mongodb"])


# ---------------------------------------------------------------------------------------------- release lines


@pytest.mark.parametrize("release", RELEASES)
def test_every_release_line_builds_every_service_but_mongodb_from_a_real_context(release):
    specs = {spec.service: spec for spec in debian_specs(Settings(release=release), None)}
    assert set(specs) == {*CATALOGUE, *TOOL_IMAGES} - {"mongodb"}
    for name, spec in specs.items():
        assert spec.context_dir is not None and (spec.context_dir / "Dockerfile").is_file(), (release, name)
        if name not in TOOL_IMAGES:
            assert spec.release == release
            # The tag says the release beyond the default line, so images of different lines coexist.
            assert release == DEFAULT_RELEASE or spec.debian.endswith(f"-{release}"), spec.debian
            assert spec.debian_version and spec.product


def test_the_default_flavor_is_the_real_thing_where_the_release_has_it():
    flavors = {release: {name: Settings(release=release).image_of(name).flavor for name in ("mysql", "redis")}
               for release in RELEASES}
    assert flavors == {"bookworm": {"mysql": "mariadb", "redis": "redis"},
                       "trixie": {"mysql": "mariadb", "redis": "redis"},
                       "sid": {"mysql": "mysql", "redis": "redis"}}


def test_a_flavor_is_chosen_per_service_and_keeps_the_service():
    settings = Settings(release="sid", flavors=("mysql=mariadb", "redis=valkey"))
    mysql, redis = settings.image_of("mysql"), settings.image_of("redis")
    assert (mysql.service, mysql.debian, mysql.debian_version) == ("mysql", "devstack-harness/mariadb:11.8-sid",
                                                                   "11.8.")
    assert (redis.service, redis.debian, redis.debian_version) == ("redis", "devstack-harness/valkey:9.1-sid", "9.1.")
    assert dict(redis.build_args) == {"SERVER": "valkey"}


def test_build_args_carry_the_line_and_change_the_digest(tmp_path):
    trixie, sid = (Settings(release=r).image_of("postgres") for r in ("trixie", "sid"))
    assert build_args(trixie, "base") == {"BASE": "base", "PG_MAJOR": "17"}
    assert build_args(sid, "base") == {"BASE": "base", "PG_MAJOR": "18"}
    ctx = _ctx(tmp_path)
    assert context_digest(ctx, "sha256:1", build_args(trixie, "b")) != context_digest(ctx, "sha256:1",
                                                                                       build_args(sid, "b"))


@pytest.mark.parametrize(("changes", "message"), [
    ({"release": "buster"}, "release must be one of bookworm, trixie, sid, not 'buster'"),
    ({"flavors": ("mysql=mysql",)}, "flavors: mysql on bookworm is served by mariadb, not 'mysql'"),
    ({"release": "trixie", "flavors": ("redis=keydb",)},
     "flavors: redis on trixie is served by redis or valkey, not 'keydb'"),
    ({"flavors": ("cache=redis",)}, "flavors: 'cache=redis' is not service=flavor with a known service; valid "
                                    "services: vault, postgres, mysql, mongodb, redis, rabbitmq"),
])
def test_a_release_or_flavor_the_line_does_not_offer_is_refused_by_name(changes, message):
    with pytest.raises(ConfigError) as exc:
        Settings(**changes)
    assert str(exc.value) == message


def test_a_line_without_a_pinned_official_image_runs_its_debian_build():
    spec = Settings(release="sid").image_of("postgres")
    assert spec.official == "" and spec.official_version == ""  # no tag is pinned that could not be checked here
    assert Settings().image_of("postgres").official == "postgres:15.10"


def test_apt_sources_per_release():
    assert apt_sources("sid") == "deb http://deb.debian.org/debian sid main\n"
    assert apt_sources("trixie").splitlines() == [
        "deb http://deb.debian.org/debian trixie main", "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main"]
    assert "Check-Valid-Until" in SID_APT_CONF


def _fake_builds(monkeypatch, fail: str | None = None):
    """build_images with the base and each build faked: every build waits until BUILD_JOBS builds have begun (so a
    serial loop would time out), records itself, and ``fail`` raises as a failed build would."""
    import threading
    from types import SimpleNamespace

    import harness.images as images
    from stack.errors import ImageBuildError

    started = threading.Barrier(images.BUILD_JOBS, timeout=10)
    seen: list[str] = []

    def build_one(client, spec, base, base_id, force, log):
        started.wait()  # BrokenBarrierError after 10 s if fewer builds run at once
        seen.append(spec.service)
        if spec.service == fail:
            raise ImageBuildError(f"building {spec.debian} failed: apt said no")
        return images.BuildResult(spec.service, spec.debian, "built", 0.0)

    monkeypatch.setattr(images, "_build_one", build_one)
    monkeypatch.setattr(images, "ensure_base", lambda client, settings, log, release: f"base/{release}")
    client = SimpleNamespace(images=SimpleNamespace(get=lambda ref: SimpleNamespace(id="sha256:base")))
    return images, client, seen


def test_builds_run_several_at_once_and_results_keep_the_specs_order(monkeypatch):
    images, client, seen = _fake_builds(monkeypatch)
    specs = debian_specs(Settings(), None)
    assert len(specs) >= images.BUILD_JOBS
    results = images.build_images(client, Settings())
    assert [r.service for r in results] == [s.service for s in specs]
    assert sorted(seen) == sorted(s.service for s in specs)


def test_a_failed_build_among_parallel_ones_is_raised_with_no_build_left_running(monkeypatch):
    import threading

    from stack.errors import ImageBuildError

    images, client, seen = _fake_builds(monkeypatch, fail="postgres")
    specs = debian_specs(Settings(), None)
    with pytest.raises(ImageBuildError, match=r"^building devstack-harness/postgres:15 failed: apt said no$"):
        images.build_images(client, Settings())
    assert "postgres" in seen and set(seen) <= {s.service for s in specs}
    # Builds not yet begun are cancelled; those already running were waited for: none is left behind.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("image-build")]
