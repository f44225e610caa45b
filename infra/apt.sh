# Shared by the project's install scripts (infra/*/install.sh), sourced, not run:
#   source "$(dirname "$0")/../apt.sh"
#   apt_ensure "<what, for messages>" "<text when apt-get is missing>" PACKAGE...
# Installs with apt-get whichever of PACKAGE are not installed yet (root directly, anyone else
# through sudo), refreshing the package lists only when the first attempt fails, and checks
# they are all there afterwards. Returns 0 without doing anything when all are installed;
# prints the given text and returns 0 when there is no apt-get (the caller's tests then say
# what is missing); exits 1 when root is needed and there is no sudo, or the install failed.

apt_missing() {
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            echo "$p"
        fi
    done
}

# Sets the array SUDO to () for root, (sudo) for anyone else; exits 1 without sudo.
apt_sudo() {
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            SUDO=(sudo)
        else
            echo "error: installing $* needs root, and sudo is not available;" >&2
            echo "       run as root: apt-get install $*" >&2
            exit 1
        fi
    fi
}

apt_ensure() {
    local what="$1" no_apt="$2"
    shift 2
    local packages=("$@")
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        echo "$no_apt"
        return 0
    fi
    local todo left
    mapfile -t todo < <(apt_missing "${packages[@]}")
    if [ "${#todo[@]}" -eq 0 ]; then
        echo "$what already installed: ${packages[*]}"
        return 0
    fi
    apt_sudo "${todo[@]}"
    echo "installing ${todo[*]} with apt-get ..."
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${todo[@]}"; then
        echo "install failed; running apt-get update and retrying ..."
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${todo[@]}"
    fi
    mapfile -t left < <(apt_missing "${packages[@]}")
    if [ "${#left[@]}" -ne 0 ]; then
        echo "error: still missing after apt-get: ${left[*]}" >&2
        exit 1
    fi
    echo "$what installed: ${todo[*]}"
}
