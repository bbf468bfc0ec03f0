#!/usr/bin/env bash
# Entrypoint for the devstack-harness redis image.
#
# Follows the official redis image's argument contract:
#   docker run img                          -> redis-server
#   docker run img --requirepass x          -> redis-server --requirepass x
#   docker run img /etc/redis/my.conf ...   -> redis-server /etc/redis/my.conf ...
#   docker run img redis-server --port 7000 -> redis-server --port 7000
#   docker run img redis-cli ...            -> any other command is exec'd as is
# redis-server runs as user "redis" in /data, as PID 1 (exec), so SIGTERM from
# `docker stop` reaches it directly.
set -euo pipefail

# A first argument that is an option ("-x"/"--x") or a config file means
# "arguments for redis-server".
if [[ $# -eq 0 || "$1" == -* || "$1" == *.conf ]]; then
    set -- redis-server "$@"
fi

# Anything that is not redis-server (redis-cli, bash, ...) runs unchanged.
if [[ "$1" != "redis-server" ]]; then
    exec "$@"
fi

# The official image compiles redis with protected mode OFF; Debian's binary
# defaults to ON, which makes every non-loopback client (i.e. everything coming
# through a published port) get a DENIED error when no password is set.
# Restore the official behaviour unless the caller decided explicitly, either
# on the command line or in a config file passed as an argument.
protected_mode_given=no
for arg in "${@:2}"; do
    if [[ "$arg" == *protected-mode* ]]; then
        protected_mode_given=yes
    elif [[ "$arg" == *.conf && -r "$arg" ]] \
        && grep -qiE '^[[:space:]]*protected-mode[[:space:]]' "$arg"; then
        protected_mode_given=yes
    fi
done
if [[ "$protected_mode_given" == no ]]; then
    set -- "$@" --protected-mode no
fi

if [[ "$(id -u)" == 0 ]]; then
    # /data may be a bind mount or volume owned by someone else: hand it to redis
    # so RDB/AOF/nodes.conf (cluster mode) can be written.
    find /data \! -user redis -exec chown redis:redis '{}' + 2>/dev/null || true
    # Same umask as the official image (persisted files not world-readable).
    umask 0077
    # Drop privileges and replace this shell: redis-server becomes PID 1.
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
fi

# Started with `docker run --user ...`: just run it.
exec "$@"
