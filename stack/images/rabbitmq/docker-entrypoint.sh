#!/usr/bin/env bash
# Entrypoint for the devstack-harness RabbitMQ image, following the official rabbitmq image:
#   RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS / RABBITMQ_DEFAULT_VHOST create the first user/vhost on a
#   fresh node; RABBITMQ_NODE_PORT moves the AMQP listener. Anything other than rabbitmq-server is exec'd.
# The broker runs as user rabbitmq and replaces this shell (PID 1), so `docker stop` reaches it.
set -euo pipefail

if [[ "${1:-rabbitmq-server}" != "rabbitmq-server" ]]; then
    exec "$@"
fi

conf=/etc/rabbitmq/conf.d/20-entrypoint.conf
: > "$conf"
# The defaults go into a config file read by the broker itself, so the password is not in argv.
# (The official image still accepts these variables; they are consulted only on a fresh node.)
[[ -n "${RABBITMQ_DEFAULT_USER:-}" ]] && printf 'default_user = %s\n' "$RABBITMQ_DEFAULT_USER" >> "$conf"
[[ -n "${RABBITMQ_DEFAULT_PASS:-}" ]] && printf 'default_pass = %s\n' "$RABBITMQ_DEFAULT_PASS" >> "$conf"
[[ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]] && printf 'default_vhost = %s\n' "$RABBITMQ_DEFAULT_VHOST" >> "$conf"
[[ -n "${RABBITMQ_NODE_PORT:-}" ]] && printf 'listeners.tcp.default = %s\n' "$RABBITMQ_NODE_PORT" >> "$conf"
unset RABBITMQ_DEFAULT_USER RABBITMQ_DEFAULT_PASS RABBITMQ_DEFAULT_VHOST RABBITMQ_NODE_PORT
chown rabbitmq:rabbitmq "$conf"
chmod 0600 "$conf"

# The Erlang cookie must exist, belong to rabbitmq and be private, or the CLI tools cannot reach the node.
cookie=/var/lib/rabbitmq/.erlang.cookie
if [[ ! -s "$cookie" ]]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$cookie"
fi
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
chmod 0400 "$cookie"

if [[ "$(id -u)" == 0 ]]; then
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups rabbitmq-server
fi
exec rabbitmq-server
