#!/usr/bin/env bash
# Entrypoint for the devstack-harness rabbitmq image (RabbitMQ 3.10, Debian).
#
# Environment contract (as the official rabbitmq image, 3.9+):
#   RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS / RABBITMQ_DEFAULT_VHOST
#       read by RabbitMQ itself when it creates its database on first boot
#       (default guest/guest and "/"); passed through untouched, so they never
#       land on disk or in the log.
#   RABBITMQ_NODE_PORT   AMQP port; written to conf.d/20-env.conf because
#       listeners.tcp.default in conf.d/10-defaults.conf would otherwise win.
#   RABBITMQ_NODENAME    default rabbit@localhost (image ENV).
# Image-level settings: management plugin enabled, guest allowed from
# non-loopback addresses, logs on stdout, HOME=/var/lib/rabbitmq (cookie).
#
# `rabbitmq-server` (the default command) runs as user rabbitmq and the Erlang
# VM becomes PID 1; any other command (rabbitmqctl, bash, ...) is exec'd as is.
set -euo pipefail

RABBIT_HOME=/var/lib/rabbitmq
COOKIE="$RABBIT_HOME/.erlang.cookie"
ENV_CONF=/etc/rabbitmq/conf.d/20-env.conf

if [[ $# -eq 0 ]]; then
    set -- rabbitmq-server
fi
if [[ "$1" != rabbitmq-server ]]; then
    # rabbitmqctl, rabbitmq-diagnostics, bash ... (Debian's /usr/sbin wrappers
    # switch to user rabbitmq themselves when called as root).
    exec "$@"
fi
shift

if [[ "$(id -u)" == 0 ]]; then
    # The data dir may be a fresh volume: it must belong to rabbitmq.
    mkdir -p "$RABBIT_HOME"
    find "$RABBIT_HOME" \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +

    # Erlang cookie: the server and every CLI tool (also `docker exec ...
    # rabbitmqctl`, which finds it through HOME=/var/lib/rabbitmq) must read the
    # same file, and Erlang refuses a cookie file that group/others can read.
    # A fresh random one per container (none is baked into the image).
    if [[ ! -s "$COOKIE" ]]; then
        (umask 0077 && od -An -N15 -tu1 /dev/urandom \
            | tr -s ' \n' '\n\n' | grep -v '^$' \
            | awk '{ printf "%c", 65 + $1 % 26 } END { print "" }' > "$COOKIE")
    fi
    chown rabbitmq:rabbitmq "$COOKIE"
    chmod 0400 "$COOKIE"

    # RABBITMQ_NODE_PORT: the env var alone loses against listeners.tcp.default
    # in conf.d/10-defaults.conf, so restate it in a file read after it.
    # Rewritten at every start so a changed/removed variable takes effect.
    rm -f "$ENV_CONF"
    if [[ -n "${RABBITMQ_NODE_PORT:-}" ]]; then
        if [[ ! "$RABBITMQ_NODE_PORT" =~ ^[0-9]+$ ]]; then
            echo >&2 "error: RABBITMQ_NODE_PORT must be a port number, got '$RABBITMQ_NODE_PORT'"
            exit 1
        fi
        printf '# written by docker-entrypoint.sh from RABBITMQ_NODE_PORT\nlisteners.tcp.default = %s\n' \
            "$RABBITMQ_NODE_PORT" > "$ENV_CONF"
        chmod 0644 "$ENV_CONF"
    fi
fi

cd "$RABBIT_HOME"   # erl_crash.dump and relative paths land in the data dir

# Debian's rabbitmq-server script keeps a /bin/sh parent around the Erlang VM
# (it traps signals and backgrounds `erl`) unless it believes it runs under
# systemd; then it `exec`s erl. RUNNING_UNDER_SYSTEMD is only read by that
# script (not by RabbitMQ itself), so setting it makes the VM PID 1. The VM
# handles SIGTERM from `docker stop` as a clean shutdown.
export RUNNING_UNDER_SYSTEMD=true

# Stop time: in 3.10 the management agent's shutdown hook calls
# application:set_env while OTP's application_controller is itself busy
# stopping applications, so that call sits in its 5 s gen_server timeout and
# `docker stop` takes ~6.3 s (upstream fixed it in 3.13, rabbitmq-server PR
# #11070). Queues and message stores are already closed cleanly at that point;
# -shutdown_time makes the VM halt after 3 s of shutdown instead of waiting out
# the timeout (the rest of the shutdown, without the plugin, takes ~1 s).
# A caller-supplied -shutdown_time in RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS wins.
if [[ "${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}" != *-shutdown_time* ]]; then
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-} -shutdown_time 3000"
fi
# /usr/lib/rabbitmq/bin/rabbitmq-server, not Debian's /usr/sbin wrapper: that
# one redirects all output to /var/log/rabbitmq/startup_log.
server=/usr/lib/rabbitmq/bin/rabbitmq-server
if [[ "$(id -u)" == 0 ]]; then
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$server" "$@"
fi
exec "$server" "$@"
