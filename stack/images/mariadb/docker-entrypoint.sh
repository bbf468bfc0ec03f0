#!/usr/bin/env bash
# Entrypoint for the devstack-harness mariadb image (MariaDB 10.11, Debian);
# it stands in for both the official "mysql" and "mariadb" images.
#
# Environment contract (official images; MARIADB_* wins over MYSQL_*):
#   MYSQL_ROOT_PASSWORD[_FILE]      / MARIADB_ROOT_PASSWORD[_FILE]
#   MYSQL_ALLOW_EMPTY_PASSWORD      / MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
#   MYSQL_RANDOM_ROOT_PASSWORD      / MARIADB_RANDOM_ROOT_PASSWORD
#   MYSQL_DATABASE[_FILE]           / MARIADB_DATABASE[_FILE]
#   MYSQL_USER[_FILE]               / MARIADB_USER[_FILE]
#   MYSQL_PASSWORD[_FILE]           / MARIADB_PASSWORD[_FILE]
#   MYSQL_ROOT_HOST[_FILE]          / MARIADB_ROOT_HOST[_FILE]   (default %)
#   MYSQL_INITDB_SKIP_TZINFO        / MARIADB_INITDB_SKIP_TZINFO
#   /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz   run once, at init
# One of the root-password options is required for a new data directory; any
# non-empty value counts as "yes" for the ALLOW_EMPTY/RANDOM switches, as in
# the official image. A random root password is NOT printed (secrets stay out
# of the log); it is written to /var/lib/mysql/.root-password (mode 0600).
#
# Arguments: `docker run img --ssl-ca=...` and `docker run img mariadbd ...`
# (or `mysqld ...`) append server options; any other command runs unchanged.
#
# Flow: root prepares /var/lib/mysql and /run/mysqld, then re-executes this
# script as user mysql (setpriv). That copy initialises an empty datadir with
# a temporary socket-only server, and finally execs
# `mariadbd --bind-address=0.0.0.0 <args>`, which becomes PID 1.
set -euo pipefail

note() { printf '%s [Note] [Entrypoint]: %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S')" "$*"; }
warn() { printf '%s [Warn] [Entrypoint]: %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S')" "$*" >&2; }
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

# maria_file_env MYSQL_X [DEFAULT]: resolve MYSQL_X(_FILE), then
# MARIADB_X(_FILE) defaulting to it; the MARIADB_ value wins and both names
# end up holding it (init scripts may use either).
maria_file_env() {
    local var="$1" maria="MARIADB_${1#MYSQL_}"
    file_env "$var" "${2:-}"
    file_env "$maria" "${!var}"
    if [[ -n "${!maria}" ]]; then
        export "$var"="${!maria}"
    fi
}

setup_env() {
    maria_file_env MYSQL_ROOT_HOST '%'
    maria_file_env MYSQL_DATABASE
    maria_file_env MYSQL_USER
    maria_file_env MYSQL_PASSWORD
    maria_file_env MYSQL_ROOT_PASSWORD
    # Names differ between the two images; MARIADB_ first, MYSQL_ as fallback.
    : "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
    : "${MARIADB_RANDOM_ROOT_PASSWORD:=${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
    : "${MARIADB_INITDB_SKIP_TZINFO:=${MYSQL_INITDB_SKIP_TZINFO:-}}"
    export MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MARIADB_RANDOM_ROOT_PASSWORD MARIADB_INITDB_SKIP_TZINFO
    export MYSQL_ALLOW_EMPTY_PASSWORD="$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"
    export MYSQL_RANDOM_ROOT_PASSWORD="$MARIADB_RANDOM_ROOT_PASSWORD"
    export MYSQL_INITDB_SKIP_TZINFO="$MARIADB_INITDB_SKIP_TZINFO"
}

# Validate config files + arguments first: a bad option would otherwise only
# make get_config below fail, and `set -e` would end the script silently.
check_config() {
    local errors
    if ! errors="$(mariadbd "$@" --verbose --help 2>&1 >/dev/null)"; then
        die $'mariadbd failed while checking its configuration\n\tcommand was: mariadbd '"$*"$' --verbose --help\n\t'"$errors"
    fi
}

# Effective server setting (config files + arguments), e.g. datadir/socket.
get_config() {
    local conf="$1"; shift
    mariadbd "$@" --verbose --help 2>/dev/null \
        | awk -v conf="$conf" '$1 == conf && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }'
}

# Options that make mariadbd print something and exit: no init for those.
want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--print-defaults|-V|--version) return 0 ;;
        esac
    done
    return 1
}

# SQL string-literal escaping: backslash, newline, single quote.
sql_escape() {
    local s="${1//\\/\\\\}"
    s="${s//$'\n'/\\n}"
    printf '%s' "${s//\'/\\\'}"
}

# Client for the temporary server: unix socket only. The password travels in
# MYSQL_PWD (environment of the client process only), never on a command line.
process_sql() {
    local pw="$MYSQL_ROOT_PASSWORD"
    if [[ "${1:-}" == --no-root-password ]]; then
        pw=''; shift
    fi
    if [[ -n "$MYSQL_DATABASE" ]]; then
        set -- --database="$MYSQL_DATABASE" "$@"
    fi
    # --skip-ssl: MariaDB 11.4+ clients turn TLS on by default and verify the server's certificate; the temporary
    # server runs with the container's TLS options, whose certificate does not name localhost, so the client
    # aborts before logging in. The socket needs no TLS (the 10.11 client accepts the option too).
    MYSQL_PWD="$pw" mariadb --no-defaults --skip-ssl --protocol=socket -uroot -hlocalhost --socket="$SOCKET" "$@"
}

temp_server_start() {
    # --skip-networking: no TCP listener at all while initialising, so no
    # client or readiness probe can get in early. Its log (including
    # "mariadbd: ready for connections.") goes to the container's output,
    # which testcontainers' MySqlContainer waits for (it expects the line twice).
    mariadbd "$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" \
        --wsrep_on=OFF --expire-logs-days=0 --skip-slave-start \
        --loose-innodb_buffer_pool_load_at_startup=0 &
    TEMP_PID=$!
    note "Waiting for temporary server startup"
    local i
    for ((i = 0; i < 300; i++)); do
        if process_sql --no-root-password --database=mysql <<<'SELECT 1' &>/dev/null; then
            return 0
        fi
        kill -0 "$TEMP_PID" 2>/dev/null || die "Temporary server exited during startup"
        sleep 0.1
    done
    die "Unable to start temporary server"
}

temp_server_stop() {
    # SIGTERM = clean shutdown; no password needed (unlike mariadb-admin).
    kill "$TEMP_PID"
    wait "$TEMP_PID" || true
}

run_init_files() {
    local f
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [[ -x "$f" ]]; then
                    note "$0: running $f"
                    "$f"
                else
                    # Sourced, as in the official image; relax -u for
                    # scripts written for plain sh.
                    note "$0: sourcing $f"
                    set +u
                    # shellcheck disable=SC1090
                    . "$f"
                    set -u
                fi
                ;;
            *.sql)    note "$0: running $f"; process_sql < "$f" ;;
            *.sql.gz) note "$0: running $f"; gunzip -c "$f" | process_sql ;;
            *)        warn "$0: ignoring $f" ;;
        esac
    done
    shopt -u nullglob
}

# The image's pre-initialised datadir (build-template.sh) stands in for
# mariadb-install-db + the time zone load when the result would be the same:
# time zones wanted, and no server option that changes how the files are laid
# out (page size, table name case, data files, character set or collation).
TEMPLATE=/usr/share/devstack-harness/mysql-template
use_template() {
    [[ -d "$TEMPLATE/mysql" && -z "$MARIADB_INITDB_SKIP_TZINFO" && -d /usr/share/zoneinfo ]] || return 1
    local arg
    for arg; do
        if [[ "$arg" =~ (page[-_]size|lower[-_]case[-_]table|innodb[-_]data[-_]|character[-_]set|collation) ]]; then
            return 1
        fi
    done
    [[ -z "$(ls -A "$DATADIR")" ]]
}

init_database() {
    if [[ -z "$MYSQL_ROOT_PASSWORD" && -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" && -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]]; then
        die $'Database is uninitialized and password option is not specified\n\tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD\n\t(or their MYSQL_* equivalents)'
    fi
    if [[ "$MYSQL_USER" == root ]]; then
        die 'MARIADB_USER/MYSQL_USER="root": these variables configure a regular user; use the *_ROOT_PASSWORD variables for root'
    fi

    local from_template=''
    if use_template "$@"; then
        # The image's pre-initialised datadir (system and time zone tables,
        # no users or passwords): what the two steps below would produce.
        note "Copying the pre-initialised data directory $TEMPLATE"
        cp -a "$TEMPLATE/." "$DATADIR/"
        from_template=yes
    else
        note "Initializing database files"
        # Server options given to the container also apply here (e.g. page size),
        # except ones containing whitespace, which mariadb-install-db cannot pass on.
        local arg install_args=()
        for arg; do
            if [[ "$arg" =~ [[:space:]] ]]; then
                warn "Not passing argument '$arg' to mariadb-install-db (contains whitespace)"
            else
                install_args+=("$arg")
            fi
        done
        # auth-root-authentication-method=normal: root@localhost gets a password
        # (set below) instead of unix_socket auth, as in the official image.
        mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
            "${install_args[@]}" \
            --skip-test-db --old-mode='UTF8_IS_UTF8MB3' --default-time-zone=SYSTEM \
            --enforce-storage-engine= --skip-log-bin --expire-logs-days=0 \
            --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0
    fi
    note "Database files initialized"

    note "Starting temporary server"
    temp_server_start "$@"
    note "Temporary server started"

    if [[ -z "$from_template" && -z "$MARIADB_INITDB_SKIP_TZINFO" && -d /usr/share/zoneinfo ]]; then
        # Time zone tables, like the official image (CONVERT_TZ with names).
        mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo 2>/dev/null \
            | MYSQL_DATABASE='' process_sql --no-root-password --database=mysql
    fi

    if [[ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]]; then
        # 48 hex characters from the kernel RNG. Not logged: stored for the
        # operator in a file only root/mysql can read (docker exec ... cat).
        MYSQL_ROOT_PASSWORD="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
        export MYSQL_ROOT_PASSWORD MARIADB_ROOT_PASSWORD="$MYSQL_ROOT_PASSWORD"
        (umask 0077 && printf '%s\n' "$MYSQL_ROOT_PASSWORD" > "$DATADIR/.root-password")
        note "GENERATED ROOT PASSWORD written to $DATADIR/.root-password (not logged)"
    fi

    local root_pw db user user_pw root_create='' create_db='' create_user='' grants=''
    root_pw="$(sql_escape "$MYSQL_ROOT_PASSWORD")"
    # root from any host (the published port arrives via the docker gateway).
    if [[ -n "$MYSQL_ROOT_HOST" && "$MYSQL_ROOT_HOST" != localhost ]]; then
        local rhost; rhost="$(sql_escape "$MYSQL_ROOT_HOST")"
        root_create="CREATE USER 'root'@'${rhost}' IDENTIFIED BY '${root_pw}';
GRANT ALL ON *.* TO 'root'@'${rhost}' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'${rhost}' WITH GRANT OPTION;"
    fi
    if [[ -n "$MYSQL_DATABASE" ]]; then
        db="${MYSQL_DATABASE//\`/\`\`}"
        note "Creating database ${MYSQL_DATABASE}"
        create_db="CREATE DATABASE IF NOT EXISTS \`${db}\`;"
    fi
    if [[ -n "$MYSQL_USER" ]]; then
        if [[ -z "$MYSQL_PASSWORD" ]]; then
            # Official images silently skip this case; say so at least.
            warn "MARIADB_USER/MYSQL_USER is set without a password: user not created"
        else
            user="$(sql_escape "$MYSQL_USER")"
            user_pw="$(sql_escape "$MYSQL_PASSWORD")"
            note "Creating user ${MYSQL_USER}"
            create_user="CREATE USER '${user}'@'%' IDENTIFIED BY '${user_pw}';"
            if [[ -n "$MYSQL_DATABASE" ]]; then
                note "Giving user ${MYSQL_USER} access to schema ${MYSQL_DATABASE}"
                # "_" is a wildcard in GRANT database names; escape it.
                grants="GRANT ALL ON \`${db//_/\\_}\`.* TO '${user}'@'%';"
            fi
        fi
    fi

    note "Securing system users"
    # The SQL text contains passwords: it is fed through stdin, never logged.
    MYSQL_DATABASE='' process_sql --no-root-password --database=mysql --binary-mode <<-EOSQL
		SET @orig_sql_log_bin= @@SESSION.SQL_LOG_BIN;
		SET @@SESSION.SQL_LOG_BIN=0;
		-- passwords are escaped with backslashes: NO_BACKSLASH_ESCAPES must be off
		SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
		DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
		EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname,'\'');
		SET PASSWORD FOR 'root'@'localhost'= PASSWORD('${root_pw}');
		${root_create}
		SET @@SESSION.SQL_LOG_BIN=@orig_sql_log_bin;
		${create_db}
		${create_user}
		${grants}
	EOSQL

    run_init_files

    note "Stopping temporary server"
    temp_server_stop
    note "Temporary server stopped"
    echo
    note "MariaDB init process done. Ready for start up."
    echo
}

# --- argument handling ------------------------------------------------------
if [[ $# -eq 0 || "$1" == -* ]]; then
    set -- mariadbd "$@"
fi
if [[ "$1" != mariadbd && "$1" != mysqld ]] || want_help "${@:2}"; then
    exec "$@"   # mariadb client, mariadb-dump, bash, --version ...
fi
shift # "$@" now holds only the extra server options

check_config "$@"
setup_env
DATADIR="$(get_config datadir "$@")"
SOCKET="$(get_config socket "$@")"
[[ -n "$DATADIR" && -n "$SOCKET" ]] || die "mariadbd failed to report datadir/socket; configuration error? Try: mariadbd $* --verbose --help"
DATADIR="${DATADIR%/}"

# --- root phase: directories, then drop privileges ---------------------------
if [[ "$(id -u)" == 0 ]]; then
    # The datadir may be a fresh volume/bind mount; the socket directory
    # (/run/mysqld) must exist and belong to mysql, or mariadbd cannot start.
    mkdir -p "$DATADIR" "${SOCKET%/*}"
    find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
    chown mysql:mysql "${SOCKET%/*}"
    # *_FILE secrets were read above as root and travel in the environment.
    exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" mariadbd "$@"
fi

# --- mysql phase ------------------------------------------------------------
if [[ -d "$DATADIR/mysql" ]]; then
    note "Database directory $DATADIR already initialized; skipping initialization"
else
    init_database "$@"
fi

# The server itself does not need any of the passwords.
unset MYSQL_ROOT_PASSWORD MARIADB_ROOT_PASSWORD MYSQL_PASSWORD MARIADB_PASSWORD
# Debian's 50-server.cnf binds 127.0.0.1; listen on all interfaces instead.
# Arguments given to the container come last so they can override it.
exec mariadbd --bind-address=0.0.0.0 "$@"
