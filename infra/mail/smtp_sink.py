"""A plain SMTP server on loopback that accepts every mail and keeps it as a file.

    python -m infra.mail.smtp_sink --port 2525 --maildir var/demo/mail

Each accepted message is written to MAILDIR as `<n>.eml` (the bytes as received, headers and
all), so a person can open what the subcommittee would have been sent. No TLS, no login: a
stand-in for the ministry's relay on this machine only (`make demo` starts it; the mailer then
runs with `mailer.security: none`). Prints `ready <port>` once it listens; runs until SIGTERM
or SIGINT. Needs aiosmtpd (the `dev` extra that `make` installs).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import threading
from pathlib import Path


class MailDir:
    """aiosmtpd handler: every message accepted, written to `directory/<n>.eml`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        taken = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
        self._numbers = itertools.count(max(taken, default=0) + 1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self._lock:
            number = next(self._numbers)
        target = self.directory / f"{number:06d}.eml"
        partial = target.with_suffix(".part")
        partial.write_bytes(bytes(envelope.original_content or envelope.content))
        os.replace(partial, target)  # a reader never sees half a message
        return "250 OK: kept"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.mail.smtp_sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print("error: aiosmtpd is not installed (pip install aiosmtpd)", file=sys.stderr)
        return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller = Controller(MailDir(args.maildir), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        print(f"ready {args.port}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
