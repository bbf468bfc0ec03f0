#!/usr/bin/env bash
# Entrypoint for the devstack-harness mysql image (Oracle's MySQL from Debian's mysql-server package).
#
# Environment contract (the official mysql image's, the part the harness and compose use):
#   MYSQL_ROOT_PASSWORD[_FILE]   required for a new data directory (or MYSQL_ALLOW_EMPTY_PASSWORD)
#   MYSQL_DATABASE[_FILE], MYSQL_USER[_FILE], MYSQL_PASSWORD[_FILE]
#   MYSQL_ROOT_HOST[_FILE]       default %
#   /docker-entrypoint-initdb.d/*.sh, *.sql   run once, at init
# Passwords are never printed.
#
# Arguments: `docker run img --ssl-ca=...` and `docker run img mysqld ...` append server options; any other
# command runs unchanged.
#
# Flow: root prepares /var/lib/mysql and /run/mysqld, then re-executes this script as user mysql (setpriv). That
# copy initialises an empty datadir (`mysqld --initialize-insecure`, then a socket-only temporary server applies
# the credentials), and finally execs `mysqld --bind-address=0.0.0.0 <args>`, which becomes PID 1.
set -euo pipefail

note() { printf '%s [Note] [Entrypoint]: %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S')" "$*"; }
die()  { printf '%s [ERROR] [Entrypoint]: %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S')" "$*" >&2; exit 1; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE.
file_env() {
    local var="$1" def="${2:-}" fvar="${1}_FILE" val
    if [[ -n "${!var:-}" && -n "${!fvar:-}" ]]; then
        die "Both $var and $fvar are set (but are exclusive)"
    fi
    val="$def"
    if [[ -n "${!var:-}" ]]; then
        val="${!var}"
    elif [[ -n "${!fvar:-}" ]]; then
        val="$(< "${!fvar}")"
    fi
    export "$var"="$val"
    unset "$fvar"
}

if [[ "${1:-}" == -* ]]; then
    set -- mysqld "$@"
fi
if [[ "${1:-}" != "mysqld" ]]; then
    exec "$@"
fi
shift

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/init.sock

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$DATADIR" /run/mysqld
    chown mysql:mysql /run/mysqld
    find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' + 2>/dev/null || true
    chmod 0750 "$DATADIR"
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" mysqld "$@"
fi

# SQL literal quoting: a single quote doubled, a backslash doubled (NO_BACKSLASH_ESCAPES is off by default).
sql_quote() { local s=${1//\\/\\\\}; printf "'%s'" "${s//\'/\'\'}"; }

init_database() {
    file_env MYSQL_ROOT_PASSWORD
    file_env MYSQL_DATABASE
    file_env MYSQL_USER
    file_env MYSQL_PASSWORD
    file_env MYSQL_ROOT_HOST '%'
    if [[ -z "$MYSQL_ROOT_PASSWORD" && -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ]]; then
        die "the data directory is empty and neither MYSQL_ROOT_PASSWORD[_FILE] nor MYSQL_ALLOW_EMPTY_PASSWORD is set"
    fi
    note "initialising the data directory"
    mysqld --initialize-insecure --datadir="$DATADIR" --default-time-zone=SYSTEM >/dev/null 2>&1 \
        || { mysqld --initialize-insecure --datadir="$DATADIR" --default-time-zone=SYSTEM; die "mysqld --initialize-insecure failed"; }
    mysqld --datadir="$DATADIR" --skip-networking --socket="$SOCKET" --pid-file=/run/mysqld/init.pid \
        --default-time-zone=SYSTEM --skip-log-bin "$@" &
    local pid=$! i
    for i in $(seq 1 600); do
        mysql --no-defaults --protocol=socket -uroot --socket="$SOCKET" -e 'SELECT 1' &>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "the temporary server exited during initialisation"
        sleep 0.1
    done
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_quote "$MYSQL_ROOT_PASSWORD");"
        if [[ "$MYSQL_ROOT_HOST" != localhost ]]; then
            echo "CREATE USER 'root'@$(sql_quote "$MYSQL_ROOT_HOST") IDENTIFIED BY $(sql_quote "$MYSQL_ROOT_PASSWORD");"
            echo "GRANT ALL ON *.* TO 'root'@$(sql_quote "$MYSQL_ROOT_HOST") WITH GRANT OPTION;"
        fi
        if [[ -n "$MYSQL_DATABASE" ]]; then
            echo "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE//\`/\`\`}\`;"
        fi
        if [[ -n "$MYSQL_USER" && -n "$MYSQL_PASSWORD" ]]; then
            echo "CREATE USER $(sql_quote "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_quote "$MYSQL_PASSWORD");"
            if [[ -n "$MYSQL_DATABASE" ]]; then
                echo "GRANT ALL ON \`${MYSQL_DATABASE//\`/\`\`}\`.* TO $(sql_quote "$MYSQL_USER")@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mysql --no-defaults --protocol=socket -uroot --socket="$SOCKET"
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) note "running $f"; . "$f" ;;
            *.sql) note "running $f"; MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --no-defaults --protocol=socket -uroot \
                       --socket="$SOCKET" "${MYSQL_DATABASE:-mysql}" < "$f" ;;
            *) ;;
        esac
    done
    MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysqladmin --no-defaults --protocol=socket -uroot --socket="$SOCKET" shutdown
    wait "$pid" || true
    unset MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
    note "initialisation done"
}

if [[ ! -d "$DATADIR/mysql" ]]; then
    init_database "$@"
fi
exec mysqld --bind-address=0.0.0.0 "$@"
