"""The camera prober: opens linked cameras' streams (RTSP, HTTP/MJPEG, files) with OpenCV's
FFmpeg backend on a schedule, measures each probe (reachability, time to first frame, fps,
resolution, brightness, sharpness, freeze) and publishes one `camera_heartbeat` per probe.

Modules: `cameras` (the camera list and the inventory), `redact` (stream URLs without their
credentials), `metrics` (pure measurements over frames), `probe` (one probe of one camera),
`snapshots` (one bounded JPEG per camera), `shard` (which prober probes which camera),
`prober` (the schedule, the pool and publishing), `run` (the process).
"""
