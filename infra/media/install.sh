#!/usr/bin/env bash
# Install the media tools the prober's tests serve real camera streams with (used by
# `make setup`): Debian's `ffmpeg` (generates the test clips) and GStreamer's RTSP server with
# its Python bindings (`gir1.2-gst-rtsp-server-1.0`, `python3-gi`) and the plugins that
# decode the clips and encode H.264 (x264enc is in -ugly, avdec_* in gstreamer1.0-libav).
# The prober itself needs none of this: it reads streams with OpenCV's bundled FFmpeg.
#
# Does nothing if everything is already present. Without apt-get it explains what to install
# and exits 0: the prober's stream tests are then skipped with that reason.
set -euo pipefail

PACKAGES=(
    ffmpeg
    python3-gi
    gir1.2-gstreamer-1.0
    gir1.2-gst-rtsp-server-1.0
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly
    gstreamer1.0-libav
)

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
apt-get not found: install ffmpeg, python3-gi and GStreamer's RTSP server (typelib
GstRtspServer-1.0) with the x264enc, rtph264pay and decodebin plugins yourself. Until then the
prober's stream tests are skipped.
TEXT
    exit 0
fi

mapfile -t TODO < <(missing)
if [ "${#TODO[@]}" -eq 0 ]; then
    echo "media tools already installed: ${PACKAGES[*]}"
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
echo "media tools installed: ffmpeg $(ffmpeg -version | head -1 | cut -d' ' -f3), GStreamer RTSP server"
