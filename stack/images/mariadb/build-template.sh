#!/usr/bin/env bash
# Build-time: a MariaDB data directory initialised the way docker-entrypoint.sh's init_database does it
# (same mariadb-install-db options, time zone tables loaded through a socket-only temporary server), but
# without any password, user or database: those are applied per container at start. Owned by mysql, 0750.
set -euo pipefail
target="$1"
socket=/run/mysqld/template.sock
install -d -o mysql -g mysql -m 0750 "$target"
as_mysql() { setpriv --reuid=mysql --regid=mysql --init-groups "$@"; }
as_mysql mariadb-install-db --datadir="$target" --rpm --auth-root-authentication-method=normal \
    --skip-test-db --old-mode='UTF8_IS_UTF8MB3' --default-time-zone=SYSTEM \
    --enforce-storage-engine= --skip-log-bin --expire-logs-days=0 \
    --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 >/dev/null
as_mysql mariadbd --datadir="$target" --skip-networking --default-time-zone=SYSTEM --socket="$socket" \
    --wsrep_on=OFF --expire-logs-days=0 --skip-slave-start --skip-log-bin \
    --loose-innodb_buffer_pool_load_at_startup=0 --loose-innodb_buffer_pool_dump_at_shutdown=0 &
pid=$!
for _ in $(seq 1 300); do
    mariadb --no-defaults --protocol=socket -uroot --socket="$socket" -e 'SELECT 1' mysql &>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "template server exited" >&2; exit 1; }
    sleep 0.1
done
mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo 2>/dev/null \
    | mariadb --no-defaults --protocol=socket -uroot --socket="$socket" mysql
zones=$(mariadb --no-defaults --protocol=socket -uroot --socket="$socket" -N -e 'SELECT COUNT(*) FROM time_zone_name' mysql)
[[ "$zones" -gt 100 ]] || { echo "time zone tables not loaded ($zones names)" >&2; exit 1; }
kill "$pid"
wait "$pid" || true
rm -f "$target"/*.pid "$target"/aria_log_control.lock
rm -f "$socket" "$socket.lock"
test -d "$target/mysql"
echo "template datadir: $(du -sh "$target" | cut -f1), $zones time zone names"
