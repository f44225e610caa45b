"""A token bucket per API key: `burst` requests at once, refilled at `rate` per second.

Per replica: with N gateway replicas behind a load balancer a key may send up to N times the
rate. The bucket protects the gateway and Kafka from one runaway provincial system; it is not
an accounting quota.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when a request of `key` may go ahead (one token taken), else the seconds until
        the next token (the Retry-After)."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    """HTTP's Retry-After is whole seconds: round up, so a client that obeys it succeeds."""
    return str(max(1, math.ceil(seconds)))
