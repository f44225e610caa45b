#!/usr/bin/env bash
# Install the headless browser the dashboard's browser test drives (used by `make setup`):
# Debian's `chromium` and its WebDriver, `chromium-driver` (/usr/bin/chromium and
# /usr/bin/chromedriver). The test starts them itself, headless, on loopback only; nothing here
# downloads a browser build of its own (Selenium's driver manager is never used).
#
# Does nothing if both are already present. Without apt-get it explains what to install and
# exits 0: the browser test then fails, saying what is missing.
set -euo pipefail

PACKAGES=(chromium chromium-driver)

missing() {
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            echo "$p"
        fi
    done
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    cat <<'TEXT'
apt-get not found: install Chromium and its matching chromedriver yourself so that
/usr/bin/chromium and /usr/bin/chromedriver exist. Until then the dashboard's browser test
(tests/e2e/test_dashboard_browser.py) fails, saying so.
TEXT
    exit 0
fi

mapfile -t TODO < <(missing)
if [ "${#TODO[@]}" -eq 0 ]; then
    echo "browser already installed: ${PACKAGES[*]}"
    exit 0
fi

# Root runs apt directly; anyone else goes through sudo when it exists.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "error: installing ${TODO[*]} needs root, and sudo is not available;" >&2
        echo "       run as root: apt-get install ${TODO[*]}" >&2
        exit 1
    fi
fi

install_packages() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${TODO[@]}"
}

echo "installing ${TODO[*]} with apt-get ..."
# Refresh the package lists only when the install fails (e.g. a fresh container).
if ! install_packages; then
    echo "install failed; running apt-get update and retrying ..."
    "${SUDO[@]}" apt-get update
    install_packages
fi

mapfile -t LEFT < <(missing)
if [ "${#LEFT[@]}" -ne 0 ]; then
    echo "error: still missing after apt-get: ${LEFT[*]}" >&2
    exit 1
fi
echo "browser installed: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
