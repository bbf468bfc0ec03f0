#!/usr/bin/env bash
# devstack-harness setup for a Debian machine (the README's first command).
#
# Installs only what is missing, with the virtualenv (3) installed in the background meanwhile:
#   1. a Docker engine: Debian's docker.io, started with systemd or, without systemd, as a background dockerd;
#   1b. compose: Debian's docker-compose when neither `docker compose` nor `docker-compose` answers;
#   2. debootstrap (only needed to create a Debian base image when no debian:bookworm-slim can be had);
#   2b. Debian's chromium (headless: the HTML run report's browser test and screenshot);
#      (the Debian packages of 1-2b in one apt transaction)
#   3. a virtualenv .venv with this package and its dev tools;
#   4. the image set: `python -m harness images build` (builds the Debian set unless official images are
#      present or pullable; unchanged images are skipped; a few builds at once).
# Safe to run again. Needs root for steps 1-2 (prints what to do otherwise).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

SOCKET=/var/run/docker.sock
engine_answers() {
    python3 - "$SOCKET" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
sys.exit(0 if b"OK" in s.recv(4096) else 1)
PY
}

can_apt() { [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; }
browser() { command -v chromium || command -v chromium-browser || command -v google-chrome; }

# 3 (started first, in the background). virtualenv: pip's downloads and builds overlap apt's below. -----
PYTHON=${PYTHON:-python3}
VENV_LOG=$(mktemp)
install_venv() {
    if [[ ! -x .venv/bin/python ]]; then
        log "creating .venv with $($PYTHON --version)"
        "$PYTHON" -m venv .venv
    fi
    log "installing the package into .venv"
    # The harmless "Location ... is ignored" warning is dropped. errexit and pipefail hold in this background
    # subshell: a failing pip ends it with pip's status, which `wait` below reads.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
        | { grep -v -E "^WARNING: Location .* is ignored" || true; }
}
install_venv >"$VENV_LOG" 2>&1 &
venv_pid=$!

# 1-2b. Debian packages: what is missing, in one apt transaction ---------------------------------------
#   docker.io (+iptables) when no engine answers; docker-compose when no compose answers; debootstrap (+binutils)
#   for the Debian base image; chromium for the HTML report's browser test and screenshot.
packages=()
need_engine=no
if [[ -n "${DOCKER_HOST:-}" ]]; then
    log "DOCKER_HOST=$DOCKER_HOST is set: using that engine, not installing one"
elif engine_answers; then
    log "Docker engine answers at $SOCKET"
else
    need_engine=yes
    [[ $(id -u) -eq 0 ]] || die "no Docker engine answers at $SOCKET and this is not root; run this script as " \
        "root (it installs Debian's docker.io and starts dockerd), or start an engine and re-run"
    command -v dockerd >/dev/null 2>&1 || packages+=(docker.io iptables)
fi
if docker compose version >/dev/null 2>&1; then
    log "compose: docker compose v2 plugin"
elif command -v docker-compose >/dev/null 2>&1; then
    log "compose: $(docker-compose version --short 2>/dev/null || echo docker-compose)"
elif can_apt; then
    packages+=(docker-compose)
else
    log "no docker compose / docker-compose: \`python -m harness compose\` will not work until one is installed"
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    if can_apt; then
        packages+=(debootstrap binutils)
    else
        log "debootstrap is missing and this is not root: image builds will need debian:bookworm-slim locally"
    fi
fi
if browser >/dev/null; then
    log "browser: $(browser)"
elif can_apt; then
    packages+=(chromium)
else
    log "no chromium and this is not root: the HTML report's browser test will skip (apt-get install chromium)"
fi
if (( ${#packages[@]} )); then
    log "installing Debian's ${packages[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# 1. start the Docker engine ---------------------------------------------------------------------------
if [[ $need_engine == yes ]]; then
    if [[ -d /run/systemd/system ]]; then
        log "starting docker with systemd"
        systemctl start docker
    else
        # A dockerd that crashed or was killed leaves its pid file behind, and a new one refuses to start.
        if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
            log "removing stale /var/run/docker.pid"
            rm -f /var/run/docker.pid
        fi
        if pgrep -x dockerd >/dev/null; then
            log "a dockerd process exists but does not answer yet: waiting for it"
        else
            log "no systemd: starting dockerd in the background (log: /var/log/dockerd.log)"
            nohup dockerd >/var/log/dockerd.log 2>&1 &
        fi
    fi
    for _ in $(seq 1 120); do
        engine_answers && break
        sleep 0.5  # poll interval while dockerd starts; bounded to 60 s
    done
    engine_answers || die "dockerd did not answer within 60 s; see /var/log/dockerd.log"
    log "Docker engine is up"
fi

# 3 (joined). the virtualenv -----------------------------------------------------------------------------
venv_status=0
wait "$venv_pid" || venv_status=$?
cat "$VENV_LOG"
rm -f "$VENV_LOG"
(( venv_status == 0 )) || die "pip could not install the package and its dev tools into .venv (output above)"
.venv/bin/python -c "import harness, stack" || die "the package did not install into .venv"

# 4. images ------------------------------------------------------------------------------------------
log "building the image set (unchanged images are skipped)"
.venv/bin/python -m harness images build
.venv/bin/python -m harness down --stale >/dev/null
log "done. Run the suites with: .venv/bin/pytest"
