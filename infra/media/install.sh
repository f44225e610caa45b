#!/usr/bin/env bash
# Install the media tools the prober's tests serve real camera streams with (used by
# `make setup`): Debian's `ffmpeg` (generates the test clips) and GStreamer's RTSP server with
# its Python bindings (`gir1.2-gst-rtsp-server-1.0`, `python3-gi`) and the plugins that
# decode the clips and encode H.264 (x264enc is in -ugly, avdec_* in gstreamer1.0-libav).
# The prober itself needs none of this: it reads streams with OpenCV's bundled FFmpeg.
#
# Does nothing if everything is already present. Without apt-get it explains what to install
# and exits 0: the prober's stream tests then fail, saying what is missing.
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

source "$(dirname "$0")/../apt.sh"

apt_ensure "media tools" "apt-get not found: install ffmpeg, python3-gi and GStreamer's RTSP server (typelib
GstRtspServer-1.0) with the x264enc, rtph264pay and decodebin plugins yourself. Until then the
prober's stream tests fail, saying so." "${PACKAGES[@]}"
