#!/usr/bin/env bash
# Entrypoint for the devstack-harness openbao image: OpenBao's `bao` behind the
# official hashicorp/vault image's contract.
#
#   (no arguments)        -> bao server -config=/vault/config -dev  (CMD)
#   server -dev [...]     -> dev server; listens on 0.0.0.0:8200 unless
#                            VAULT_DEV_LISTEN_ADDRESS / BAO_DEV_LISTEN_ADDRESS says otherwise
#   server [...]          -> bao server -config=/vault/config [...]
#   -flag ...             -> bao -flag ...
#   status, operator, ... -> bao <subcommand> ...
#   any other program     -> exec'd unchanged (bash, ...)
#
# Environment (official image names; OpenBao reads BAO_*, so they are mapped
# unless the BAO_* name is set explicitly):
#   VAULT_LOCAL_CONFIG        JSON/HCL written to /vault/config/local.json
#   VAULT_DEV_ROOT_TOKEN_ID   -> BAO_DEV_ROOT_TOKEN_ID
#   VAULT_DEV_LISTEN_ADDRESS  -> BAO_DEV_LISTEN_ADDRESS (default 0.0.0.0:8200)
#   VAULT_API_ADDR            -> BAO_API_ADDR
#   VAULT_CLUSTER_ADDR        -> BAO_CLUSTER_ADDR
#   VAULT_ADDR, VAULT_LOG_LEVEL, VAULT_LOG_FORMAT -> BAO_ADDR, BAO_LOG_LEVEL, BAO_LOG_FORMAT
#   SKIP_CHOWN   do not chown /vault/{config,file,logs} to user vault
#   SKIP_SETCAP  do not pass CAP_IPC_LOCK (mlock) on to the server
# (VAULT_REDIRECT_INTERFACE / VAULT_CLUSTER_INTERFACE are not supported: the
# image has no `ip` tool; set the *_ADDR variables instead.)
#
# bao runs as user "vault" and replaces this shell (exec), so it is PID 1 and
# `docker stop`'s SIGTERM reaches it directly.
set -euo pipefail

CONFIG_DIR=/vault/config

# No core dumps: a dump of the server process would contain keys and tokens.
ulimit -c 0

for name in DEV_ROOT_TOKEN_ID DEV_LISTEN_ADDRESS API_ADDR CLUSTER_ADDR ADDR LOG_LEVEL LOG_FORMAT; do
    vault_var="VAULT_$name" bao_var="BAO_$name"
    if [[ -n "${!vault_var:-}" && -z "${!bao_var+set}" ]]; then
        export "$bao_var=${!vault_var}"
    fi
done

# The official image writes VAULT_LOCAL_CONFIG whatever the command; the
# config directory is read in dev mode too.
# Not world-readable: server configs can hold credentials (seal, storage).
if [[ -n "${VAULT_LOCAL_CONFIG:-}" ]]; then
    (umask 0027 && printf '%s\n' "$VAULT_LOCAL_CONFIG" > "$CONFIG_DIR/local.json")
    if [[ "$(id -u)" == 0 ]]; then
        chown vault:vault "$CONFIG_DIR/local.json"
    fi
fi

if [[ $# -eq 0 ]]; then
    set -- server -dev
fi
if [[ "$1" == -* ]]; then
    set -- bao "$@"
fi

if [[ "$1" == server ]]; then
    shift
    for arg; do
        case "$arg" in
            -dev|--dev|-dev=true|--dev=true|-dev-tls|--dev-tls|-dev-tls=true|--dev-tls=true)
                # A dev server bound to bao's default 127.0.0.1:8200 is
                # unreachable through a published port (connection reset):
                # listen on all interfaces, as the official image does.
                export BAO_DEV_LISTEN_ADDRESS="${BAO_DEV_LISTEN_ADDRESS:-0.0.0.0:8200}"
                ;;
        esac
    done
    set -- bao server -config="$CONFIG_DIR" "$@"
elif [[ "$1" != bao && "$1" != vault ]] && ! command -v "$1" >/dev/null 2>&1; then
    # Not a program on PATH: a bao subcommand (status, operator, version, ...).
    set -- bao "$@"
fi

# Anything other than bao (bash, cat, ...) runs as given.
if [[ "$1" != bao && "$1" != vault ]]; then
    exec "$@"
fi

if [[ "$(id -u)" == 0 ]]; then
    if [[ -z "${SKIP_CHOWN:-}" ]]; then
        # Bind mounts/volumes arrive owned by someone else; the server (user
        # vault) must be able to write raft data, logs and local.json.
        for dir in /vault/config /vault/file /vault/logs; do
            if [[ -d "$dir" && "$(stat -c %u "$dir")" != "$(id -u vault)" ]]; then
                chown -R vault:vault "$dir" || echo "Could not chown $dir (may not have appropriate permissions)" >&2
            fi
        done
    fi

    # mlock: when the container was given CAP_IPC_LOCK (--cap-add IPC_LOCK),
    # hand that one capability to the unprivileged server as an ambient
    # capability (the official image uses setcap on the binary instead).
    # Without it, configs need disable_mlock = true, as usual in containers.
    caps=()
    cap_bnd="$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)"
    if [[ -z "${SKIP_SETCAP:-}" && -n "$cap_bnd" ]] && (( (16#$cap_bnd >> 14) & 1 )); then
        caps=(--inh-caps=+ipc_lock --ambient-caps=+ipc_lock)
    fi
    # setpriv keeps the environment, HOME=/root included; bao's dev mode
    # stores its token in ~/.bao-token and fails on /root.
    export HOME=/home/vault
    exec setpriv --reuid=vault --regid=vault --init-groups "${caps[@]}" "$@"
fi
exec "$@"
