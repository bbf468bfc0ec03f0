#!/bin/sh
# Runs as root before the image's own entrypoint (see docker-compose.yml):
#   install-files.sh OWNER ENTRYPOINT [ARGS...]
# Copies every file listed in /run/harness/src/install.list ("<name> <destination>" per line, written by
# `python -m harness compose up`) to its destination, owned by OWNER with mode 0600, then execs the
# entrypoint. The source directory is a read-only bind mount of certs/compose/<service>/ (0600, owned by
# the host user), which the service user could not read directly. POSIX sh only: the images range from
# busybox (Vault) to Debian and Oracle Linux.
set -eu
owner=$1
shift
src=/run/harness/src
if [ ! -r "$src/install.list" ]; then
    echo "install-files.sh: $src/install.list is missing: start the stack with 'python -m harness compose up'" >&2
    exit 64
fi
while read -r name dest; do
    [ -n "$name" ] || continue
    mkdir -p "${dest%/*}"
    cp "$src/$name" "$dest.tmp"
    chown "$owner" "$dest.tmp"
    chmod 0600 "$dest.tmp"
    mv -f "$dest.tmp" "$dest"
done < "$src/install.list"
exec "$@"
