#!/usr/bin/env bash
# Install the ClickHouse server binary that infra/clickhouse/server.py runs (used by
# `make setup`). On Debian/Ubuntu this is the distribution's package (ClickHouse 18.16 on
# Debian 12). Only the binary is wanted: server.py runs it with its own config under var/,
# so the package's system service must not be started (there may be no systemd at all).
#
# Does nothing if a server binary is already present. Without apt-get it explains the
# alternatives and exits 0: the rest of the project works without it (chDB is embedded).
set -euo pipefail

have_server() {
    [ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null 2>&1 \
        || command -v clickhouse >/dev/null 2>&1
}

if have_server; then
    echo "ClickHouse server already installed: $( [ -x /usr/sbin/clickhouse-server ] \
        && echo /usr/sbin/clickhouse-server || command -v clickhouse-server || command -v clickhouse)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    cat <<'EOF'
apt-get not found: install a ClickHouse server yourself (https://clickhouse.com/docs/install)
so that `clickhouse-server` or `clickhouse` is on PATH. Until then the tests that need a real
ClickHouse server are skipped unless CLICKHOUSE_TEST_URL points at one.
EOF
    exit 0
fi

# Root runs apt directly; anyone else goes through sudo when it exists.
source "$(dirname "$0")/../apt.sh"
apt_sudo clickhouse-server clickhouse-client

# Debian's maintainer scripts call invoke-rc.d to start the service after install; a
# policy-rc.d that exits 101 ("action forbidden") stops that. Only ours is removed after.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [ ! -e "$POLICY" ]; then
    "${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY && chmod 755 $POLICY"
    OWN_POLICY=1
fi
cleanup() {
    if [ "$OWN_POLICY" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap cleanup EXIT

PACKAGES=(clickhouse-server clickhouse-client)
install_packages() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

echo "installing ${PACKAGES[*]} with apt-get ..."
# The package lists are usually fresh enough; refresh them only when the install fails
# (e.g. a fresh container whose lists are empty, so the candidate is unknown).
if ! install_packages; then
    echo "install failed; running apt-get update and retrying ..."
    "${SUDO[@]}" apt-get update
    install_packages
fi

if have_server; then
    echo "ClickHouse server installed; start it with: python -m infra.clickhouse.server up"
else
    echo "error: the packages installed but no clickhouse-server binary was found" >&2
    exit 1
fi
