"""Free TCP ports on loopback, for servers started by tests on ports nobody else uses.

A developer may already run `make up` (Kafka on 9092/9093, ClickHouse on 9000/8123) while the
tests start their own servers, so fixtures never assume the default ports.
"""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return `count` distinct free TCP ports on 127.0.0.1.

    All sockets stay bound until every port is chosen; calling `free_port()` repeatedly
    could hand back the same port twice, e.g. a broker's listener and its controller.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports
