#!/usr/bin/env bash
# Entrypoint for the devstack-harness postgres image (PostgreSQL from Debian packages).
#
# Honours the official postgres image's environment contract:
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE   superuser password (required
#                                                unless POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER[_FILE]      superuser name (default: postgres)
#   POSTGRES_DB[_FILE]        database created at init (default: $POSTGRES_USER)
#   POSTGRES_INITDB_ARGS[_FILE]  extra initdb arguments (shell-quoted string)
#   POSTGRES_INITDB_WALDIR    initdb --waldir
#   POSTGRES_HOST_AUTH_METHOD auth method for `host all all all` (default scram-sha-256)
#   PGDATA                    data directory (default /var/lib/postgresql/data)
#   /docker-entrypoint-initdb.d/*.sh, *.sql, *.sql.gz   run once, at init
# Arguments: `docker run img -c ssl=on` and `docker run img postgres -c ssl=on`
# both append the options to the server command line; any other command
# (`bash`, `psql ...`) is exec'd unchanged.
#
# Flow: root prepares directories, then re-executes this script as user
# postgres (setpriv); that copy initialises an empty PGDATA and finally execs
# `postgres`, which thereby becomes PID 1 and receives `docker stop`'s signal.
set -euo pipefail

# file_env VAR [DEFAULT]: take VAR from $VAR or from the file named by
# $VAR_FILE (Docker secrets style); setting both is an error.
file_env() {
    local var="$1" def="${2:-}" fvar="${1}_FILE" val
    if [[ -n "${!var:-}" && -n "${!fvar:-}" ]]; then
        echo >&2 "error: both $var and $fvar are set (but are exclusive)"
        exit 1
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

# Options only asking postgres to print something must not trigger an initdb.
want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--describe-config|-V|--version|-C|-C*) return 0 ;;
        esac
    done
    return 1
}

# psql against the temporary server, over the unix socket only.
process_sql() {
    local runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [[ -n "${POSTGRES_DB:-}" ]]; then
        runner+=(--dbname "$POSTGRES_DB")
    fi
    PGHOST= PGHOSTADDR= "${runner[@]}" "$@"
}

# Run /docker-entrypoint-initdb.d/* in name order.
run_init_files() {
    local f
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                if [[ -x "$f" ]]; then
                    echo "$0: running $f"
                    "$f"
                else
                    # Sourced like the official image does; such scripts are
                    # written for plain sh semantics, so relax -u meanwhile.
                    echo "$0: sourcing $f"
                    set +u
                    # shellcheck disable=SC1090
                    . "$f"
                    set -u
                fi
                ;;
            *.sql)    echo "$0: running $f"; process_sql -f "$f" ;;
            *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | process_sql ;;
            *)        echo "$0: ignoring $f" ;;
        esac
    done
    shopt -u nullglob
}

init_database() {
    # Refuse to start an instance that anyone could log into without a
    # password, as the official image does.
    if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
        cat >&2 <<-'EOE'
		Error: Database is uninitialized and superuser password is not specified.
		       You must specify POSTGRES_PASSWORD to a non-empty value for the
		       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

		       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
		       connections without a password. This is *not* recommended.
		EOE
        exit 1
    fi

    # initdb. The password goes through a pipe (process substitution), never
    # onto the command line or into a file. POSTGRES_INITDB_ARGS is eval'd so
    # that quoting inside it works, like in the official image.
    local extra=()
    if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
        extra+=(--waldir "$POSTGRES_INITDB_WALDIR")
    fi
    if [[ -n "$POSTGRES_PASSWORD" ]]; then
        eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") "${extra[@]}" '"$POSTGRES_INITDB_ARGS"
    else
        eval 'initdb --username="$POSTGRES_USER" "${extra[@]}" '"$POSTGRES_INITDB_ARGS"
    fi

    # initdb's own pg_hba.conf trusts local (unix socket) and loopback
    # connections; everything else (i.e. all clients coming through a
    # published port) must authenticate. Same as the official image.
    {
        echo
        if [[ "$POSTGRES_HOST_AUTH_METHOD" == trust ]]; then
            echo '# warning: trust is enabled for all connections'
        fi
        printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
    } >> "$PGDATA/pg_hba.conf"

    # Listen on all interfaces in normal operation (the temporary server below
    # overrides this), and store passwords as SCRAM (md5 if asked for md5).
    local enc=scram-sha-256
    if [[ "$POSTGRES_HOST_AUTH_METHOD" == md5 ]]; then
        enc=md5
    fi
    {
        echo
        echo '# added by docker-entrypoint.sh'
        echo "listen_addresses = '*'"
        echo "password_encryption = $enc"
    } >> "$PGDATA/postgresql.conf"

    # Temporary server on the unix socket ONLY (listen_addresses=''), so no
    # TCP client (or a readiness probe) can reach the database before init is
    # complete. The container's own server options are passed too (e.g. ssl
    # settings), last option wins. printf %q keeps pg_ctl's shell quoting intact.
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    PGUSER="${PGUSER:-$POSTGRES_USER}" \
        pg_ctl -D "$PGDATA" -w start \
        -o "$(printf '%q ' "$@" -c listen_addresses='' -p "${PGPORT:-5432}")"

    # Create POSTGRES_DB unless it exists already ("postgres" always does).
    local exists
    exists="$(POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only --no-align \
        <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
    if [[ -z "$exists" ]]; then
        POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        echo "$0: created database \"$POSTGRES_DB\""
    fi

    run_init_files

    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo
    echo 'PostgreSQL init process complete; ready for start up.'
    echo
}

# --- argument handling ------------------------------------------------------
# `docker run img -c x=y` means `postgres -c x=y`.
if [[ $# -eq 0 || "$1" == -* ]]; then
    set -- postgres "$@"
fi
# Not the server (bash, psql, pg_dump, ...): run it as given.
if [[ "$1" != postgres ]]; then
    exec "$@"
fi
shift # "$@" now holds only the extra server options

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA POSTGRES_HOST_AUTH_METHOD

# --- root phase: directories, then drop privileges ---------------------------
if [[ "$(id -u)" == 0 ]]; then
    # PGDATA may be a fresh volume/bind mount owned by root; postgres insists
    # on owning it with mode 0700.
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 0700 "$PGDATA" || :
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
        chmod 0700 "$POSTGRES_INITDB_WALDIR"
    fi
    # Secrets were read above (as root, so root-only *_FILE mounts work) and
    # are handed over in the environment of the re-executed script.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

# --- postgres phase: initialise once, then become the server -----------------
if ! want_help "$@"; then
    if [[ -s "$PGDATA/PG_VERSION" ]]; then
        echo
        echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
        echo
    else
        init_database "$@"
    fi
fi

# The server does not need the password; keep it out of PID 1's environment.
unset POSTGRES_PASSWORD
exec postgres "$@"
