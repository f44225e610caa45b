"""A GStreamer RTSP server for the prober's tests and the demo, run by the system python (`gi`).

    /usr/bin/python3 infra/media/rtsp_server.py CONFIG.json

CONFIG: {"servers": [{"port": 8554, "mounts": {"/normal": "/tmp/normal.mp4"}},
                     {"port": 8555, "mounts": {...}, "users": {"cam": "s3cret"}}]}
Each mount serves the H.264 of an MP4 file (made by ffmpeg) over RTP, TCP or UDP as the
client asks, from the file's start for each client, in real time, then ends. A server with
`protocols` (e.g. ["tcp"]) accepts only those lower transports. A server with
`users` demands HTTP Basic authentication from one of them for every mount (GStreamer answers
401 only when no default token is set, so open and protected mounts live on separate
servers). Prints `ready` on standard output once every server listens; runs until SIGTERM.
"""

import json
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

LOWER_TRANSPORTS = {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}


def build(spec: dict) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(spec["port"]))
    users = spec.get("users") or {}
    if users:
        auth = GstRtspServer.RTSPAuth()
        for user, password in users.items():
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", user)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
    mounts = server.get_mount_points()
    for path, file in spec["mounts"].items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f"( filesrc location={file} ! qtdemux ! h264parse "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory.set_shared(False)
        if spec.get("protocols"):  # e.g. ["tcp"]: a client asking for UDP only is refused
            allowed = LOWER_TRANSPORTS[spec["protocols"][0]]
            for name in spec["protocols"][1:]:
                allowed |= LOWER_TRANSPORTS[name]
            factory.set_protocols(allowed)
        for user in users:
            factory.add_role_from_structure(
                Gst.Structure.new_from_string(
                    f"{user}, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )
            )
        mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"error: cannot listen on 127.0.0.1:{spec['port']}")
    return server


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as file:
        config = json.load(file)
    Gst.init(None)
    servers = [build(spec) for spec in config["servers"]]  # kept alive until the loop ends
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print("ready", len(servers), flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
