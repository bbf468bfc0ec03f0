#!/usr/bin/env bash
# Entrypoint for the devstack-harness OpenBao image, following the official hashicorp/vault image:
#   (no args) / server -dev     -> dev server listening on 0.0.0.0:8200 (VAULT_DEV_* honoured)
#   server [args]               -> VAULT_LOCAL_CONFIG (if set) is written to /vault/config/local.json and
#                                  the server runs with -config=/vault/config
#   anything else starting with "-" or a bao subcommand -> passed to bao
# The server runs as user "vault" and replaces this shell (PID 1), so `docker stop` reaches it.
set -euo pipefail

# OpenBao reads BAO_*; the official image's contract is VAULT_*. Map what the harness and users rely on.
for name in ADDR API_ADDR CLUSTER_ADDR DEV_ROOT_TOKEN_ID DEV_LISTEN_ADDRESS; do
    vault_var="VAULT_$name" bao_var="BAO_$name"
    if [[ -n "${!vault_var:-}" && -z "${!bao_var:-}" ]]; then
        export "$bao_var=${!vault_var}"
    fi
done

if [[ $# -eq 0 ]]; then
    set -- server -dev
fi
if [[ "$1" == -* ]]; then
    set -- server "$@"
fi

if [[ "$1" == "server" ]]; then
    shift
    if [[ " $* " == *" -dev "* || " $* " == *" -dev="* ]]; then
        # A dev server inside a container must listen on all interfaces to be reachable through a
        # published port (bao's own default is 127.0.0.1, which gives connection resets).
        export BAO_DEV_LISTEN_ADDRESS="${BAO_DEV_LISTEN_ADDRESS:-0.0.0.0:8200}"
        set -- server "$@"
    else
        if [[ -n "${VAULT_LOCAL_CONFIG:-}" ]]; then
            printf '%s\n' "$VAULT_LOCAL_CONFIG" > /vault/config/local.json
        fi
        set -- server -config=/vault/config "$@"
    fi
    if [[ "$(id -u)" == 0 ]]; then
        chown -R vault:vault /vault/config /vault/file /vault/logs
        exec setpriv --reuid=vault --regid=vault --init-groups bao "$@"
    fi
    exec bao "$@"
fi

# A bao subcommand (operator, status, ...) or any other program.
if command -v "bao" >/dev/null && bao "$1" -h >/dev/null 2>&1; then
    exec bao "$@"
fi
exec "$@"
